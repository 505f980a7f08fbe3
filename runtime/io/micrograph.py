"""Read and write micrographs: MRC (mrcfile, memory-mapped), TIFF (tifffile), PNG/JPEG (Pillow).

Every reader returns a float32 2-D array ``data[y, x]`` (x = column, y = row, see
``epick.runtime.picks``); a stack of frames (3-D MRC, multi-page TIFF) is averaged into one image.
Non-finite pixels (NaN/Inf) are replaced by the median of the finite pixels (0 when there are
none) and counted in ``Micrograph.n_nonfinite``. Every failure to read a file raises ONE
``MicrographError`` naming the file, the problem and, where there is one, the fix.
"""
from __future__ import annotations

import glob
import os
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
_MRC_HEADER_BYTES = 1024
# MRC modes epick reads -> bytes per pixel (0 int8, 1 int16, 2 float32, 6 uint16, 12 float16).
_MRC_MODE_BYTES = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}


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
        raise MicrographError(path, "no such file", "check the path")
    if not path.is_file():
        raise MicrographError(path, "is not a file", "give a micrograph file, or a folder to find_micrographs")
    try:
        with open(path, "rb") as handle:
            head = handle.read(_MRC_HEADER_BYTES)
    except OSError as exc:
        raise MicrographError(path, f"cannot be opened ({exc.strerror or exc})", "check its permissions") from exc
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
    for a supported mode, sane sizes and enough data, before mrcfile sees the file.

    Parsing it here (not with mrcfile) means a damaged header raises one MicrographError and never
    makes mrcfile emit warnings (``warnings.catch_warnings`` is not thread-safe)."""
    from mrcfile.dtypes import HEADER_DTYPE

    size = path.stat().st_size
    if size < _MRC_HEADER_BYTES:
        raise MicrographError(path, f"is truncated: {size} bytes, shorter than the 1024-byte MRC header",
                              "copy the file again")
    with open(path, "rb") as handle:
        head = handle.read(_MRC_HEADER_BYTES)
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
    need = _MRC_HEADER_BYTES + max(extended, 0) + nx * ny * nz * _MRC_MODE_BYTES[mode]
    if extended < 0 or size < need:
        raise MicrographError(path, f"is truncated: its MRC header describes {nx} x {ny} x {nz} pixels "
                              f"(mode {mode}, {extended} bytes of extended header, {need} bytes in all) "
                              f"but the file has only {size} bytes",
                              "the copy or the acquisition was interrupted; copy the file again")
    return header


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


def _read_mrc(path: Path) -> tuple[np.ndarray, float | None, int]:
    """Pixels (float32 2-D, frames averaged), pixel size in Å, number of frames of an MRC file."""
    import mrcfile

    header = _mrc_header(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
                raw = mrc.data
                if raw is None:
                    raise MicrographError(path, "has an MRC header but no readable data", "copy the file again")
                if _mode0_is_unsigned(header):
                    raw = raw.view(np.uint8)
                data = _frames_to_image(raw)
    except MicrographError:
        raise
    except Exception as exc:
        raise MicrographError(path, f"cannot be read as MRC ({exc})", "the file is corrupt; export it again") from exc
    return data, _mrc_pixel_size(header), int(header.nz)


def _frames_to_image(raw: np.ndarray) -> np.ndarray:
    """One float32 2-D image from a 2-D image or a (frames, y, x) stack (mean of the frames).

    Copies the data once (out of the memory map) and converts to native-endian float32.
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


def _read_tiff(path: Path) -> tuple[np.ndarray, int]:
    """Pixels (float32 2-D, pages averaged) and number of frames of a TIFF file."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            data = series.asarray()
            # Pages appended one by one may form several equal series: they are frames too.
            more = [s for s in tif.series[1:] if s.shape == series.shape and s.axes == axes]
            if more and "S" not in axes:
                data = np.stack([data] + [s.asarray() for s in more])
                axes = "Q" + axes
    except Exception as exc:
        raise MicrographError(path, f"cannot be read as TIFF ({exc})", "the file is truncated or corrupt; export it again") from exc
    if "S" in axes and data.shape[axes.index("S")] in (3, 4):  # RGB(A) samples -> grey
        data = np.moveaxis(data, axes.index("S"), -1)
        data = _rgb_to_grey(data)
    data = np.squeeze(data)
    if data.ndim == 2:
        return np.asarray(data, dtype=np.float32), 1
    if data.ndim == 3:
        return _frames_to_image(data), int(data.shape[0])
    raise MicrographError(path, f"holds a TIFF series of shape {data.shape} (axes {axes})",
                          "give one image or one stack of frames")


def _read_pillow(path: Path, kind: str) -> np.ndarray:
    """Pixels (float32 2-D, RGB converted to grey) of a PNG or JPEG file (8 or 16 bit)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
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


def read_micrograph(path: str | Path) -> Micrograph:
    """Read an MRC/TIFF/PNG/JPEG micrograph as float32 ``data[y, x]``; frames are averaged.

    Raises MicrographError (naming the file, the problem and a fix) for missing, empty, truncated,
    corrupt, mislabelled or unsupported files.
    """
    path = Path(path)
    kind = _kind(path)
    pixel_size = None
    if kind == "mrc":
        data, pixel_size, n_frames = _read_mrc(path)
    elif kind == "tiff":
        data, n_frames = _read_tiff(path)
    else:
        data, n_frames = _read_pillow(path, kind), 1
    if data.size == 0:
        raise MicrographError(path, "holds an image with no pixels", "export the micrograph again")
    if not data.flags.writeable or not data.flags.c_contiguous:
        data = np.array(data, dtype=np.float32, order="C")
    n_bad = replace_nonfinite(data)
    return Micrograph(data=data, pixel_size=pixel_size, path=path, n_frames=n_frames, n_nonfinite=n_bad)


def read_micrograph_shape(path: str | Path) -> tuple[int, int]:
    """(ny, nx) of a micrograph, from the header only (MRC, TIFF, PNG, JPEG all allow it)."""
    path = Path(path)
    kind = _kind(path)
    if kind == "mrc":
        header = _mrc_header(path)
        return int(header.ny), int(header.nx)
    if kind == "tiff":
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape, axes = series.shape, series.axes
        except Exception as exc:
            raise MicrographError(path, f"cannot be read as TIFF ({exc})", "the file is truncated or corrupt") from exc
        return int(shape[axes.index("Y")]), int(shape[axes.index("X")])
    from PIL import Image

    try:
        with Image.open(path) as img:
            nx, ny = img.size
    except Exception as exc:
        raise MicrographError(path, f"cannot be read as {kind.upper()} ({exc})", "the file is truncated or corrupt") from exc
    return int(ny), int(nx)


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


def _is_micrograph_name(path: Path) -> bool:
    """True for a visible file whose suffix is a micrograph suffix."""
    return path.suffix.lower() in MICROGRAPH_SUFFIXES and not path.name.startswith(".") and path.is_file()


def find_micrographs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand files, folders (their micrograph files, not recursive) and glob patterns into a
    sorted list of micrograph files without duplicates.

    Raises MicrographError for a path that does not exist or a pattern/folder with no micrographs.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: set[Path] = set()
    for item in paths:
        item_path = Path(item)
        if item_path.is_dir():
            matches = [p for p in item_path.iterdir() if _is_micrograph_name(p)]
            if not matches:
                raise MicrographError(item_path, "is a folder with no micrographs",
                                      f"micrographs end in {', '.join(MICROGRAPH_SUFFIXES)}")
        elif item_path.is_file():
            matches = [item_path]
        elif glob.has_magic(str(item)):
            matches = [Path(p) for p in glob.glob(os.path.expanduser(str(item))) if _is_micrograph_name(Path(p))]
            if not matches:
                raise MicrographError(item, "matches no micrograph files", "check the pattern and the folder")
        else:
            raise MicrographError(item, "no such file or folder", "check the path")
        found.update(matches)
    return sorted(found)
