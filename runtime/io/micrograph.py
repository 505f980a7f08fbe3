"""Read and write micrographs: MRC (header parsed here, data read into memory), TIFF (tifffile),
PNG/JPEG (Pillow).

Every reader returns a float32 2-D array ``data[y, x]`` (x = column, y = row, see
``epick.runtime.picks``); a stack of frames (3-D MRC, multi-page TIFF) is averaged into one image.
Non-finite pixels (NaN/Inf) are replaced by the median of the finite pixels (0 when there are
none) and counted in ``Micrograph.n_nonfinite``. Every failure to read a file raises ONE
``MicrographError`` naming the file, the problem and, where there is one, the fix.

Only regular files are opened (a FIFO or a device named like a micrograph would block or never
end). MRC data is read with plain reads, not a memory map: a file that shrinks while it is read
is a MicrographError ("changed while being read"), never a SIGBUS that ends the process.
``completeness_problem`` says whether a file's image data lies within the file (for ``--watch``).
Headers declaring more than ``MAX_PIXELS`` pixels per image are refused before anything is
allocated.
"""
from __future__ import annotations

import glob
import logging
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import MicrographError
from .atomic import atomic_path

MRC_SUFFIXES = (".mrc", ".mrcs")
TIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png",)
JPEG_SUFFIXES = (".jpg", ".jpeg")
MICROGRAPH_SUFFIXES = MRC_SUFFIXES + TIFF_SUFFIXES + PNG_SUFFIXES + JPEG_SUFFIXES

_KIND_OF_SUFFIX = {**{s: "mrc" for s in MRC_SUFFIXES}, **{s: "tiff" for s in TIFF_SUFFIXES},
                   **{s: "png" for s in PNG_SUFFIXES}, **{s: "jpeg" for s in JPEG_SUFFIXES}}
_SUFFIX_OF_KIND = {"mrc": ".mrc", "tiff": ".tif", "png": ".png", "jpeg": ".jpg"}
log = logging.getLogger("epick.runtime")
_MRC_HEADER_BYTES = 1024
# MRC modes epick reads -> bytes per pixel (0 int8, 1 int16, 2 float32, 6 uint16, 12 float16).
_MRC_MODE_BYTES = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}
_MRC_MODE_DTYPE = {0: "i1", 1: "i2", 2: "f4", 6: "u2", 12: "f2"}
# The largest image epick decodes: 16384 x 16384 pixels (a 4x super-resolution EER frame; a K3
# super-resolution micrograph is 11520 x 8184), at most 65536 on a side, and stacks of at most
# MAX_STACK_PIXELS pixels in all (frames are averaged). Peak memory at this size: README.
MAX_PIXELS = 16384 * 16384
MAX_SIDE = 65536
MAX_STACK_PIXELS = 4 * MAX_PIXELS


def check_image_size(path: Path, ny: int, nx: int, frames: int = 1) -> None:
    """Refuse a declared image size epick will not decode (before anything is allocated)."""
    if max(nx, ny) > MAX_SIDE or nx * ny > MAX_PIXELS or nx * ny * max(frames, 1) > MAX_STACK_PIXELS:
        stack = f" x {frames} frames" if frames > 1 else ""
        raise MicrographError(path, f"declares {nx} x {ny} pixels{stack}, more than epick reads "
                              f"(at most {MAX_PIXELS // 2**20} Mpixels per image, {MAX_SIDE} on a side, "
                              f"{MAX_STACK_PIXELS // 2**20} Mpixels per stack)",
                              "the header is corrupt, or bin the micrograph before picking")


def open_regular(path: Path):
    """Open ``path`` for binary reading if it is a regular file (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise MicrographError(path, f"cannot be opened ({exc.strerror or exc})", "check that it exists and "
                              "its permissions") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise MicrographError(path, "is not a regular file (a folder, FIFO or device)", "give a micrograph file")
    return os.fdopen(fd, "rb")


@dataclass
class Micrograph:
    """One micrograph as read: float32 pixels ``data[y, x]``, pixel size in Å (None if unknown)."""

    data: np.ndarray
    pixel_size: float | None
    path: Path
    n_frames: int = 1
    n_nonfinite: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) in pixels."""
        return (int(self.data.shape[0]), int(self.data.shape[1]))


# ---------------------------------------------------------------------------------------------
# Format detection
# ---------------------------------------------------------------------------------------------
def _sniff(head: bytes) -> str | None:
    """Format named by a file's first 1024 bytes ('png', 'jpeg', 'tiff', 'mrc'), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if len(head) >= 212 and head[208:211] == b"MAP":
        return "mrc"
    return None


def _kind(path: Path) -> str:
    """The reader to use for ``path``: checks the file exists, is not empty and matches its suffix."""
    if not path.exists():
        problem = "is a broken symbolic link" if path.is_symlink() else "no such file"
        raise MicrographError(path, problem, "check the path")
    if not path.is_file():
        raise MicrographError(path, "is not a regular file (a folder, FIFO or device)",
                              "give a micrograph file, or a folder to find_micrographs")
    try:
        with open_regular(path) as handle:
            head = handle.read(_MRC_HEADER_BYTES)
    except OSError as exc:
        raise MicrographError(path, f"cannot be read ({exc.strerror or exc})", "check its permissions") from exc
    if not head:
        raise MicrographError(path, "is empty (0 bytes)", "copy or export the micrograph again")
    sniffed = _sniff(head)
    claimed = _KIND_OF_SUFFIX.get(path.suffix.lower())
    if claimed is None:
        if sniffed is None:
            raise MicrographError(path, f"has an unsupported suffix {path.suffix!r} and no known signature",
                                  f"use one of {', '.join(MICROGRAPH_SUFFIXES)}")
        return sniffed
    if sniffed is not None and sniffed != claimed:
        raise MicrographError(path, f"is named {path.suffix} but holds a {sniffed.upper()} file",
                              f"rename it to {path.stem}{_SUFFIX_OF_KIND[sniffed]}")
    if sniffed is None and claimed != "mrc":  # MRC files from old programs may lack the MAP signature
        raise MicrographError(path, f"is not a valid {claimed.upper()} file (its signature is missing)",
                              "the file is corrupt or of another format; export it again")
    return claimed


# ---------------------------------------------------------------------------------------------
# MRC
# ---------------------------------------------------------------------------------------------
def _mrc_header(path: Path):
    """The MRC header as a numpy record (mrcfile's header layout, the file's byte order), checked
    for a supported mode, sane sizes and enough data, before any data is read.

    Parsing it here (not with mrcfile) means a damaged header raises one MicrographError and never
    makes mrcfile emit warnings (``warnings.catch_warnings`` is not thread-safe)."""
    from mrcfile.dtypes import HEADER_DTYPE

    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(_MRC_HEADER_BYTES)
    if size < _MRC_HEADER_BYTES or len(head) < _MRC_HEADER_BYTES:
        raise MicrographError(path, f"is truncated: {size} bytes, shorter than the 1024-byte MRC header",
                              "copy the file again")
    # Byte order: the one giving a supported mode and positive sizes, else a small mode number
    # (to name an unsupported mode), else the header is garbage.
    candidates = [np.frombuffer(head, dtype=dt).view(np.recarray)[0]
                  for dt in (HEADER_DTYPE.newbyteorder("<"), HEADER_DTYPE.newbyteorder(">"))]
    header = next((h for h in candidates if int(h.mode) in _MRC_MODE_BYTES and min(h.nx, h.ny, h.nz) > 0),
                  next((h for h in candidates if 0 <= int(h.mode) < 2**16), None))
    if header is None:
        raise MicrographError(path, "has no valid MRC header", "the file is corrupt, or not an MRC file")
    nx, ny, nz, mode = int(header.nx), int(header.ny), int(header.nz), int(header.mode)
    if mode not in _MRC_MODE_BYTES:
        raise MicrographError(path, f"has MRC mode {mode}, which epick does not read",
                              "convert it to mode 2 (float32), 1 (int16), 6 (uint16), 0 (int8) or 12 (float16)")
    if nx <= 0 or ny <= 0 or nz <= 0:
        raise MicrographError(path, f"has an MRC header with size {nx} x {ny} x {nz}",
                              "the header is corrupt, or this is not an MRC file")
    extended = int(header.nsymbt)
    if extended < 0:
        raise MicrographError(path, f"has a negative extended-header length ({extended}) in its MRC header",
                              "the header is corrupt; write the file again")
    check_image_size(path, ny, nx, nz)
    need = mrc_data_end(header)
    if size < need:
        raise MicrographError(path, f"is truncated: its MRC header describes {nx} x {ny} x {nz} pixels "
                              f"(mode {mode}, {extended} bytes of extended header, {need} bytes in all) "
                              f"but the file has only {size} bytes",
                              "the copy or the acquisition was interrupted; copy the file again")
    return header


def mrc_data_end(header) -> int:
    """Byte offset of the end of the image data an MRC header describes."""
    return (_MRC_HEADER_BYTES + max(int(header.nsymbt), 0)
            + int(header.nx) * int(header.ny) * int(header.nz) * _MRC_MODE_BYTES[int(header.mode)])


def _mrc_pixel_size(header) -> float | None:
    """Pixel size in Å along x from the header (cella.x / mx), None when 0 or not set."""
    mx = int(header.mx)
    cella_x = float(header.cella.x)
    if mx <= 0 or not np.isfinite(cella_x) or cella_x <= 0:
        return None
    return float(f"{cella_x / mx:.7g}")  # the header holds float32: keep its 7 significant digits


_IMOD_STAMP = 1146047817  # IMOD's "IMOD" stamp at byte 152; flag bit 0 at byte 156 = signed bytes


def _mode0_is_unsigned(header) -> bool:
    """True for an IMOD-written mode-0 file without the signed-bytes flag: its bytes are uint8."""
    if int(header.mode) != 0:
        return False
    words = np.frombuffer(header.extra2.tobytes(), dtype=header.dtype["mode"])  # bytes 112..195, file order
    stamp, flags = int(words[10]), int(words[11])  # bytes 152 and 156
    return stamp == _IMOD_STAMP and not flags & 1


def _read_mrc(path: Path, keep_dtype: bool = False, allocate=None) -> tuple[np.ndarray, float | None, int]:
    """Pixels (float32 2-D, frames averaged), pixel size in Å, number of frames of an MRC file.

    Read frame by frame with plain reads (no memory map); a short read or a change of the file's
    size or modification time during the read is "changed while being read". ``keep_dtype``: a
    single-frame native-byte-order file comes back in its own dtype, read straight into
    ``allocate(shape, dtype)`` when given (the GPU path passes pinned buffers)."""
    header = _mrc_header(path)
    nx, ny, nz, mode = int(header.nx), int(header.ny), int(header.nz), int(header.mode)
    order = header.dtype["mode"].byteorder
    dtype = np.dtype("u1" if _mode0_is_unsigned(header) else _MRC_MODE_DTYPE[mode]).newbyteorder(order)
    keep = keep_dtype and nz == 1 and dtype.isnative
    try:
        with open_regular(path) as handle:
            before = os.fstat(handle.fileno())
            handle.seek(_MRC_HEADER_BYTES + int(header.nsymbt))
            frame = allocate((ny, nx), dtype) if keep and allocate is not None else np.empty((ny, nx), dtype=dtype)
            acc = None if nz == 1 else np.zeros((ny, nx), dtype=np.float64)
            for _ in range(nz):
                got = handle.readinto(memoryview(frame.reshape(-1).view(np.uint8)))
                if got != frame.nbytes:
                    raise _changed(path, f"{got} of {frame.nbytes} bytes of a frame could be read")
                if acc is not None:
                    acc += frame
            after = os.fstat(handle.fileno())
    except MicrographError:
        raise
    except OSError as exc:
        raise MicrographError(path, f"cannot be read ({exc.strerror or exc})", "check the disk and copy it again") from exc
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise _changed(path, f"size {before.st_size} -> {after.st_size} bytes")
    if keep:
        data = frame
    elif acc is None:
        data = frame.astype(np.float32, copy=False) if dtype == np.float32 else frame.astype(np.float32)
    else:
        acc /= nz
        data = acc.astype(np.float32)
    return np.ascontiguousarray(data), _mrc_pixel_size(header), nz


def _changed(path: Path, detail: str) -> MicrographError:
    return MicrographError(path, f"changed while being read ({detail})",
                           "it is still being written or was replaced; pick it again once it is complete")


def _frames_to_image(raw: np.ndarray) -> np.ndarray:
    """One float32 2-D image from a 2-D image or a (frames, y, x) stack (mean of the frames).

    Copies the data once and converts to native-endian float32 (TIFF stacks; MRC averages as it reads).
    """
    if raw.ndim == 2:
        return np.array(raw, dtype=np.float32, order="C")
    if raw.ndim != 3:
        raise ValueError(f"expected 2 or 3 dimensions, got shape {raw.shape}")
    if raw.shape[0] == 1:
        return np.array(raw[0], dtype=np.float32, order="C")
    acc = np.zeros(raw.shape[1:], dtype=np.float64)
    for frame in raw:
        acc += frame
    acc /= raw.shape[0]
    return acc.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# TIFF, PNG, JPEG
# ---------------------------------------------------------------------------------------------
def _rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """Luma (ITU-R BT.601 weights) of an (..., y, x, 3 or 4) array; alpha is ignored."""
    rgb = rgb[..., :3].astype(np.float32)
    return rgb[..., 0] * np.float32(0.299) + rgb[..., 1] * np.float32(0.587) + rgb[..., 2] * np.float32(0.114)


# TIFF ResolutionUnit -> Angstrom per unit (2 inch, 3 centimetre); ImageJ's 'unit' names
_TIFF_UNIT_A = {2: 2.54e8, 3: 1e8}
_IMAGEJ_UNIT_A = {"micron": 1e4, "um": 1e4, "\u00b5m": 1e4, "nm": 10.0, "nanometer": 10.0,
                  "a": 1.0, "angstrom": 1.0, "\u00c5": 1.0}
_PLAUSIBLE_PIXEL_A = (0.05, 100.0)   # outside: a writer's default resolution (72 dpi), not a pixel size


def _tiff_pixel_size(tif) -> float | None:
    """Pixel size in A/px from the first page's XResolution (pixels per unit) and its unit
    (TIFF ResolutionUnit inch/cm, or ImageJ's 'unit'); None when absent or implausible."""
    page = tif.pages[0]
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
    if not num or not den:
        return None
    per_unit = num / den
    unit_a = None
    imagej = tif.imagej_metadata or {}
    if isinstance(imagej.get("unit"), str):
        unit_a = _IMAGEJ_UNIT_A.get(imagej["unit"].strip().lower())
    if unit_a is None:
        unit = page.tags.get("ResolutionUnit")
        unit_a = _TIFF_UNIT_A.get(int(unit.value) if unit is not None else 2)
    if unit_a is None:
        return None
    pixel = unit_a / per_unit
    lo, hi = _PLAUSIBLE_PIXEL_A
    return float(f"{pixel:.6g}") if lo <= pixel <= hi else None


def _tiff_codec_problem(tif) -> str | None:
    """'compressed with LZW, which needs imagecodecs' when the page codec's package is missing."""
    compression = tif.pages[0].compression
    if int(compression) == 1:   # none
        return None
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        name = getattr(compression, "name", str(compression))
        return f"is compressed with {name}, whose decoder (the imagecodecs package) is not installed"
    return None


def _read_tiff(path: Path) -> tuple[np.ndarray, int, float | None]:
    """Pixels (float32 2-D, pages averaged), number of frames and pixel size (A/px) of a TIFF file."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = _first_series(tif, path)
            problem = _tiff_codec_problem(tif)
            if problem:
                raise MicrographError(path, problem, "pip install imagecodecs")
            pixel_size = _tiff_pixel_size(tif)
            axes = series.axes
            _check_tiff_series(path, series)
            problem = (_tiff_ifd_chain_problem(path, tif.filehandle.size)
                       or _tiff_extent_problem(tif, tif.filehandle.size))
            if problem:
                raise MicrographError(path, f"is truncated: {problem}", "copy the file again")
            data = series.asarray()
            # Pages appended one by one may form several equal series: they are frames too.
            more = [s for s in tif.series[1:] if s.shape == series.shape and s.axes == axes]
            if more and "S" not in axes:
                data = np.stack([data] + [s.asarray() for s in more])
                axes = "Q" + axes
    except MicrographError:
        raise
    except Exception as exc:
        raise MicrographError(path, f"cannot be read as TIFF ({exc})", "the file is truncated or corrupt; export it again") from exc
    if np.iscomplexobj(data):
        raise MicrographError(path, "holds complex pixels (a Fourier transform?), not an image",
                              "give the real-space micrograph")
    if "S" in axes and data.shape[axes.index("S")] in (3, 4):  # RGB(A) samples -> grey
        data = np.moveaxis(data, axes.index("S"), -1)
        data = _rgb_to_grey(data)
    data = np.squeeze(data)
    if data.ndim == 2:
        return np.asarray(data, dtype=np.float32), 1, pixel_size
    if data.ndim == 3:
        return _frames_to_image(data), int(data.shape[0]), pixel_size
    raise MicrographError(path, f"holds a TIFF series of shape {data.shape} (axes {axes})",
                          "give one image or one stack of frames")


def _first_series(tif, path: Path):
    """The first image series of an open TIFF; a TIFF with no pages is a MicrographError."""
    if not len(tif.pages) or not tif.series:
        raise MicrographError(path, "is a TIFF file with no image in it (no pages)",
                              "the file is truncated or was written empty; export it again")
    return tif.series[0]


def _check_tiff_series(path: Path, series) -> None:
    """Refuse complex pixels and absurd declared sizes before decoding a TIFF series."""
    if np.dtype(series.dtype).kind == "c":
        raise MicrographError(path, "holds complex pixels (a Fourier transform?), not an image",
                              "give the real-space micrograph")
    shape, axes = series.shape, series.axes
    ny, nx = int(shape[axes.index("Y")]), int(shape[axes.index("X")])
    frames = int(np.prod(shape, dtype=np.int64)) // max(nx * ny, 1)
    check_image_size(path, ny, nx, frames)


def _tiff_ifd_chain_problem(path: Path, size: int) -> str | None:
    """Why the chain of image file directories (pages) of a TIFF leaves the file (None when every
    IFD, and the pointer to the next, lies within its ``size`` bytes). Classic TIFF and BigTIFF."""
    import struct

    with open_regular(path) as handle:
        head = handle.read(16)
        if len(head) < 8:
            return "shorter than a TIFF header"
        order = "<" if head[:2] == b"II" else ">"
        big = struct.unpack(order + "H", head[2:4])[0] == 43
        count_fmt, entry_bytes, off_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
        offset = struct.unpack(order + off_fmt, head[8:16] if big else head[4:8])[0]
        seen: set[int] = set()
        while offset:
            if offset in seen or len(seen) > 1_000_000:
                return "its pages form a loop"
            seen.add(offset)
            count_size = struct.calcsize(count_fmt)
            if offset + count_size > size:
                return f"page {len(seen) - 1} starts at byte {offset}, but the file has {size} bytes"
            handle.seek(offset)
            count = struct.unpack(order + count_fmt, handle.read(count_size))[0]
            next_at = offset + count_size + count * entry_bytes
            if next_at + struct.calcsize(off_fmt) > size:
                return f"page {len(seen) - 1} runs to byte {next_at}, but the file has {size} bytes"
            handle.seek(next_at)
            offset = struct.unpack(order + off_fmt, handle.read(struct.calcsize(off_fmt)))[0]
    return None


def _tiff_extent_problem(tif, size: int) -> str | None:
    """Why a TIFF's strips or tiles do not all lie within its ``size`` bytes (None when they do)."""
    for i, page in enumerate(tif.pages):
        for offset, count in zip(page.dataoffsets, page.databytecounts):
            if offset + count > size:
                return f"page {i} has image data up to byte {offset + count}, but the file has {size} bytes"
    return None


def _read_pillow(path: Path, kind: str) -> np.ndarray:
    """Pixels (float32 2-D, RGB converted to grey) of a PNG or JPEG file (8 or 16 bit)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            check_image_size(path, img.size[1], img.size[0])
            img.load()
            mode = img.mode
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                mode = img.mode
            if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
                data = _rgb_to_grey(np.asarray(img.convert("RGB")))
            elif mode in ("LA", "La", "PA"):
                data = np.asarray(img)[..., 0].astype(np.float32)
            elif mode == "1":
                data = np.asarray(img.convert("L")).astype(np.float32)
            else:  # L (8 bit), I;16* (16 bit), I (32-bit int), F (float)
                data = np.asarray(img).astype(np.float32)
    except MicrographError:
        raise
    except Image.DecompressionBombError as exc:
        raise MicrographError(path, f"declares more pixels than epick reads ({exc})",
                              "the file is corrupt, or bin the micrograph before picking") from exc
    except Exception as exc:
        raise MicrographError(path, f"cannot be read as {kind.upper()} ({exc})",
                              "the file is truncated or corrupt; export it again") from exc
    if data.ndim != 2:
        raise MicrographError(path, f"decoded to shape {data.shape}, not a 2-D image", "give a grey or RGB image")
    return np.ascontiguousarray(data)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def replace_nonfinite(data: np.ndarray) -> int:
    """Replace NaN/Inf pixels in place by the median of the finite ones (0 if none); return their count."""
    if not np.issubdtype(data.dtype, np.floating):
        return 0
    # One pass without a temporary: a float64 sum of float32 values cannot overflow, so it is
    # finite exactly when every pixel is.
    if np.isfinite(np.add.reduce(data, axis=None, dtype=np.float64)):
        return 0
    finite = np.isfinite(data)
    n_bad = int(data.size - np.count_nonzero(finite))
    fill = float(np.median(data[finite])) if n_bad < data.size else 0.0
    data[~finite] = fill
    return n_bad


def read_micrograph(path: str | Path, *, keep_dtype: bool = False, allocate=None) -> Micrograph:
    """Read an MRC/TIFF/PNG/JPEG micrograph as float32 ``data[y, x]``; frames are averaged.

    ``keep_dtype``: a single-frame MRC keeps its own dtype (int8, uint8, int16, uint16, float16 or
    float32; no float32 copy), read into ``allocate(shape, dtype)`` when given; the GPU path converts
    on the device with the same values. A float file with non-finite pixels is still converted and
    repaired here (``replace_nonfinite``), so both paths see the same pixels.
    Raises MicrographError (naming the file, the problem and a fix) for missing, empty, truncated,
    corrupt, mislabelled or unsupported files.
    """
    path = Path(path)
    kind = _kind(path)
    pixel_size = None
    if kind == "mrc":
        data, pixel_size, n_frames = _read_mrc(path, keep_dtype, allocate)
    elif kind == "tiff":
        data, n_frames, pixel_size = _read_tiff(path)
    else:
        data, n_frames = _read_pillow(path, kind), 1
    if data.size == 0:
        raise MicrographError(path, "holds an image with no pixels", "export the micrograph again")
    if not data.flags.writeable or not data.flags.c_contiguous:
        data = np.array(data, dtype=np.float32, order="C")
    if data.dtype != np.float32 and np.issubdtype(data.dtype, np.floating) and \
            not np.isfinite(np.add.reduce(data, axis=None, dtype=np.float64)):
        data = data.astype(np.float32)      # kept float16 with NaN/Inf: repaired as float32 below
    n_bad = replace_nonfinite(data)
    if n_frames > 1:
        log.warning("%s: %d frames averaged into one image without alignment (a movie? pick the "
                    "motion-corrected micrograph)", path, n_frames)
    return Micrograph(data=data, pixel_size=pixel_size, path=path, n_frames=n_frames, n_nonfinite=n_bad)


def read_micrograph_shape(path: str | Path) -> tuple[int, int]:
    """(ny, nx) of a micrograph, from the header only (MRC, TIFF, PNG, JPEG all allow it)."""
    return read_micrograph_geometry(path)[0]


def read_micrograph_geometry(path: str | Path) -> tuple[tuple[int, int], float | None]:
    """((ny, nx), pixel size in A/px or None) of a micrograph, from the header only (MRC and TIFF
    may record the pixel size; PNG and JPEG do not)."""
    path = Path(path)
    kind = _kind(path)
    if kind == "mrc":
        header = _mrc_header(path)
        return (int(header.ny), int(header.nx)), _mrc_pixel_size(header)
    if kind == "tiff":
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                series = _first_series(tif, path)
                shape, axes = series.shape, series.axes
                pixel_size = _tiff_pixel_size(tif)
        except MicrographError:
            raise
        except Exception as exc:
            raise MicrographError(path, f"cannot be read as TIFF ({exc})", "the file is truncated or corrupt") from exc
        return (int(shape[axes.index("Y")]), int(shape[axes.index("X")])), pixel_size
    from PIL import Image

    try:
        with Image.open(path) as img:
            nx, ny = img.size
    except MicrographError:
        raise
    except Exception as exc:
        raise MicrographError(path, f"cannot be read as {kind.upper()} ({exc})", "the file is truncated or corrupt") from exc
    return (int(ny), int(nx)), None


def completeness_problem(path: str | Path) -> str | None:
    """Why ``path`` does not hold a complete micrograph yet, or None: the image data lies within
    the file (MRC: header + extended header + data; TIFF: every strip and tile of every page;
    PNG: ends with the IEND chunk; JPEG: ends with the EOI marker). Only regular files are opened."""
    path = Path(path)
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return "empty"
            head = handle.read(_MRC_HEADER_BYTES)
            handle.seek(max(0, size - 16))
            tail = handle.read()
    except (OSError, MicrographError) as exc:
        return getattr(exc, "problem", None) or f"unreadable ({exc})"
    kind = _sniff(head) or _KIND_OF_SUFFIX.get(path.suffix.lower())
    if kind == "jpeg":
        return None if tail.rstrip(b"\x00").endswith(b"\xff\xd9") else "JPEG end marker (EOI) missing"
    if kind == "png":
        return None if b"IEND" in tail else "PNG IEND chunk missing"
    try:
        if kind == "tiff":
            import tifffile

            chain = _tiff_ifd_chain_problem(path, size)
            if chain:
                return chain
            with tifffile.TiffFile(path) as tif:
                _first_series(tif, path)
                return _tiff_extent_problem(tif, size)
        _mrc_header(path)      # header-described data vs the file's length
    except MicrographError as exc:
        return exc.problem
    except Exception as exc:   # tifffile on a half-written file
        return f"unreadable yet ({type(exc).__name__}: {exc})"
    return None


def write_mrc(path: str | Path, data: np.ndarray, pixel_size: float | None = None) -> Path:
    """Write a 2-D image (or a frame stack) as MRC atomically: float16 stays float16, all else float32.

    ``pixel_size`` in Å goes to the header voxel size (0 = unknown when None).
    """
    import mrcfile

    path = Path(path)
    data = np.asarray(data)
    if data.ndim not in (2, 3):
        raise ValueError(f"write_mrc needs a 2-D image or a 3-D stack, got shape {data.shape}")
    dtype = np.float16 if data.dtype == np.float16 else np.float32
    data = np.ascontiguousarray(data, dtype=dtype)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = float(pixel_size) if pixel_size else 0.0
    return path


def _has_micrograph_suffix(path: Path) -> bool:
    """True for a visible name whose suffix is a micrograph suffix."""
    return path.suffix.lower() in MICROGRAPH_SUFFIXES and not path.name.startswith(".")


def _not_a_file(path: Path) -> str:
    """Why a path named like a micrograph is not one to read."""
    if path.is_symlink() and not path.exists():
        return "is a broken symbolic link (or a link loop)"
    if not path.exists():
        return "no such file or folder"
    return "is not a regular file (a folder, FIFO or device)"


def find_micrographs(paths: str | Path | Iterable[str | Path], problems: dict[str, str] | None = None) -> list[Path]:
    """Expand files, folders (their micrograph files, not recursive) and glob patterns into a
    sorted list of micrograph files without duplicates.

    Without ``problems``: raises MicrographError for a path that does not exist or a
    pattern/folder with no micrographs. With a ``problems`` dict: stale paths (missing files,
    broken links, link loops, FIFOs named like micrographs) are recorded there as
    ``{path: reason}`` and the rest is returned; it still raises when nothing at all is found.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: set[Path] = set()
    first_error: MicrographError | None = None
    for item in paths:
        item_path = Path(item)
        try:
            matches = _expand(item, item_path, problems)
        except MicrographError as exc:
            if problems is None:
                raise
            problems[str(item)] = exc.problem
            first_error = first_error or exc
            continue
        found.update(matches)
    if not found and first_error is not None:
        raise first_error
    return sorted(found)


def _regular_files(entries: list[Path], problems: dict[str, str] | None) -> list[Path]:
    """The regular files among ``entries``; the others (broken links, FIFOs, ...) go to ``problems``."""
    if problems is not None:
        problems.update({str(p): _not_a_file(p) for p in entries if not p.is_file()})
    return [p for p in entries if p.is_file()]


def _expand(item: str | Path, item_path: Path, problems: dict[str, str] | None) -> list[Path]:
    """The micrographs one command-line item names (file, folder or pattern)."""
    if item_path.is_dir():
        matches = _regular_files([p for p in item_path.iterdir() if _has_micrograph_suffix(p)], problems)
        if not matches:
            raise MicrographError(item_path, "is a folder with no micrographs",
                                  f"micrographs end in {', '.join(MICROGRAPH_SUFFIXES)}")
        return matches
    if item_path.is_file():
        return [item_path]
    if glob.has_magic(str(item)) and not item_path.is_symlink():
        matches = _regular_files([Path(p) for p in glob.glob(os.path.expanduser(str(item)))
                                  if _has_micrograph_suffix(Path(p))], problems)
        if not matches:
            raise MicrographError(item, "matches no micrograph files", "check the pattern and the folder")
        return matches
    raise MicrographError(item, _not_a_file(item_path), "check the path")
