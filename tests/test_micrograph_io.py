"""Micrograph reading/writing: every MRC mode, stacks, pixel size, TIFF/PNG/JPEG, damaged files, NaN."""
from __future__ import annotations

import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
from PIL import Image

from epick.runtime.errors import MicrographError
from epick.runtime.io.micrograph import (
    MICROGRAPH_SUFFIXES,
    find_micrographs,
    read_micrograph,
    read_micrograph_geometry,
    read_micrograph_shape,
    write_mrc,
)

RNG = np.random.default_rng(1234)


def _mrc_raw(path: Path, data: np.ndarray, voxel_size: float | None = None) -> Path:
    """Write ``data`` with mrcfile directly, keeping its dtype (so its MRC mode)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(data)
            if voxel_size is not None:
                mrc.voxel_size = voxel_size
    return path


@pytest.mark.parametrize("dtype, mode", [(np.int8, 0), (np.int16, 1), (np.float32, 2), (np.uint16, 6),
                                         (np.float16, 12)])
def test_every_mrc_mode_reads_as_float32_with_the_same_values(tmp_path, dtype, mode):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        data = RNG.integers(info.min, info.max, size=(37, 53), endpoint=True).astype(dtype)
    else:
        data = RNG.normal(0, 100, size=(37, 53)).astype(dtype)
    path = _mrc_raw(tmp_path / f"m{mode}.mrc", data)
    with mrcfile.open(path, header_only=True) as mrc:
        assert int(mrc.header.mode) == mode
    mic = read_micrograph(path)
    assert mic.data.dtype == np.float32 and mic.data.shape == (37, 53)
    np.testing.assert_array_equal(mic.data, data.astype(np.float32))
    assert mic.pixel_size is None and mic.n_frames == 1 and mic.n_nonfinite == 0


def test_imod_unsigned_mode_0_reads_as_uint8(tmp_path):
    data = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = _mrc_raw(tmp_path / "imod.mrc", data.view(np.int8))
    raw = bytearray(path.read_bytes())
    raw[152:156] = np.int32(1146047817).tobytes()  # IMOD stamp, flags 0: unsigned bytes
    raw[156:160] = np.int32(0).tobytes()
    path.write_bytes(bytes(raw))
    np.testing.assert_array_equal(read_micrograph(path).data, data.astype(np.float32))
    raw[156:160] = np.int32(1).tobytes()  # flag bit 0: signed bytes (the MRC2014 meaning)
    path.write_bytes(bytes(raw))
    np.testing.assert_array_equal(read_micrograph(path).data, data.view(np.int8).astype(np.float32))


def test_big_endian_mrc(tmp_path):
    data = RNG.normal(size=(6, 9)).astype(np.float32)
    path = tmp_path / "be.mrc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.new(path) as mrc:
            mrc.set_data(data.astype(">f4"))
    with mrcfile.open(path, header_only=True) as mrc:
        assert mrc.header.mode.dtype.byteorder == ">"
    np.testing.assert_array_equal(read_micrograph(path).data, data)


def test_mrc_stack_of_frames_is_averaged(tmp_path):
    frames = RNG.integers(0, 5, size=(5, 16, 24)).astype(np.int16)
    path = _mrc_raw(tmp_path / "movie.mrcs", frames)
    mic = read_micrograph(path)
    assert mic.n_frames == 5 and mic.shape == (16, 24)
    np.testing.assert_allclose(mic.data, frames.mean(axis=0), rtol=0, atol=1e-6)
    assert read_micrograph_shape(path) == (16, 24)


def test_pixel_size_round_trip_and_unknown_pixel_size(tmp_path):
    data = RNG.normal(size=(20, 30)).astype(np.float32)
    write_mrc(tmp_path / "a.mrc", data, pixel_size=1.337)
    write_mrc(tmp_path / "b.mrc", data)
    a = read_micrograph(tmp_path / "a.mrc")
    assert a.pixel_size == pytest.approx(1.337, rel=1e-6)
    np.testing.assert_array_equal(a.data, data)
    assert read_micrograph(tmp_path / "b.mrc").pixel_size is None
    # the header alone gives the same shape and pixel size (epick pick's size note reads it so)
    assert read_micrograph_geometry(tmp_path / "a.mrc") == ((20, 30), pytest.approx(1.337, rel=1e-6))
    assert read_micrograph_geometry(tmp_path / "b.mrc") == ((20, 30), None)


def test_write_mrc_keeps_float16_converts_others_and_leaves_no_temporary_file(tmp_path):
    half = RNG.normal(size=(8, 9)).astype(np.float16)
    write_mrc(tmp_path / "h.mrc", half)
    write_mrc(tmp_path / "i.mrc", np.arange(72, dtype=np.int64).reshape(8, 9))
    with mrcfile.open(tmp_path / "h.mrc") as mrc:
        assert mrc.data.dtype == np.float16
    with mrcfile.open(tmp_path / "i.mrc") as mrc:
        assert mrc.data.dtype == np.float32 and float(mrc.data[7, 8]) == 71.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.mrc", "i.mrc"]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_8_16_bit_and_float(tmp_path, dtype):
    if dtype == np.float32:
        data = RNG.normal(size=(30, 41)).astype(dtype)
    else:
        data = RNG.integers(0, np.iinfo(dtype).max, size=(30, 41), endpoint=True).astype(dtype)
    tifffile.imwrite(tmp_path / "x.tif", data)
    mic = read_micrograph(tmp_path / "x.tif")
    np.testing.assert_array_equal(mic.data, data.astype(np.float32))
    assert read_micrograph_shape(tmp_path / "x.tif") == (30, 41)


def test_multipage_tiff_frames_are_averaged(tmp_path):
    frames = RNG.integers(0, 4, size=(4, 12, 10)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "stack.tiff", frames, photometric="minisblack")
    for frame in frames:  # the same frames as pages appended one at a time
        tifffile.imwrite(tmp_path / "pages.tif", frame, append=True)
    for name in ("stack.tiff", "pages.tif"):
        mic = read_micrograph(tmp_path / name)
        assert mic.n_frames == 4, name
        np.testing.assert_allclose(mic.data, frames.mean(axis=0), atol=1e-6)
        assert read_micrograph_shape(tmp_path / name) == (12, 10)


def test_png_8_and_16_bit(tmp_path):
    u8 = RNG.integers(0, 255, size=(25, 33), endpoint=True).astype(np.uint8)
    u16 = RNG.integers(0, 65535, size=(25, 33), endpoint=True).astype(np.uint16)
    Image.fromarray(u8).save(tmp_path / "a.png")
    Image.fromarray(u16).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_micrograph(tmp_path / "a.png").data, u8)
    np.testing.assert_array_equal(read_micrograph(tmp_path / "b.png").data, u16.astype(np.float32))
    assert read_micrograph_shape(tmp_path / "b.png") == (25, 33)


def test_jpeg_8_bit_and_rgb_converted_to_grey(tmp_path):
    grey = np.tile(np.linspace(0, 255, 64), (48, 1)).astype(np.uint8)  # smooth: JPEG keeps it closely
    Image.fromarray(grey).save(tmp_path / "g.jpg", quality=95)
    mic = read_micrograph(tmp_path / "g.jpg")
    assert mic.shape == (48, 64)
    assert np.abs(mic.data - grey).max() <= 4
    rgb = np.zeros((6, 7, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "c.png")
    colour = read_micrograph(tmp_path / "c.png").data
    assert colour.shape == (6, 7)
    np.testing.assert_allclose(colour, 0.299 * 200 + 0.587 * 100 + 0.114 * 50, atol=1e-3)


def test_nan_and_inf_pixels_are_replaced_by_the_finite_median_and_counted(tmp_path):
    data = np.arange(100, dtype=np.float32).reshape(10, 10)
    data[0, 0], data[5, 5], data[9, 9] = np.nan, np.inf, -np.inf
    mic = read_micrograph(write_mrc(tmp_path / "n.mrc", data))
    assert mic.n_nonfinite == 3
    assert np.isfinite(mic.data).all()
    median = np.median(np.delete(np.arange(100), [0, 55, 99]))
    assert mic.data[0, 0] == mic.data[5, 5] == mic.data[9, 9] == pytest.approx(median)
    all_nan = read_micrograph(write_mrc(tmp_path / "all.mrc", np.full((4, 4), np.nan, np.float32)))
    assert all_nan.n_nonfinite == 16 and (all_nan.data == 0).all()


# --- damaged and mislabelled files: one MicrographError naming the file ------------------------
def _expect_error(path: Path, *words: str) -> str:
    with pytest.raises(MicrographError) as info:
        read_micrograph(path)
    message = str(info.value)
    assert path.name in message
    for word in words:
        assert word in message, message
    return message


def test_truncated_mrc(tmp_path):
    path = write_mrc(tmp_path / "full.mrc", RNG.normal(size=(64, 64)).astype(np.float32))
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(path.read_bytes()[:1024 + 64 * 30 * 4])
    _expect_error(cut, "truncated")
    with pytest.raises(MicrographError, match="cut.mrc"):
        read_micrograph_shape(cut)
    short = tmp_path / "short.mrc"
    short.write_bytes(path.read_bytes()[:500])
    _expect_error(short)


def test_empty_file(tmp_path):
    for name in ("empty.mrc", "empty.png", "empty.tif"):
        (tmp_path / name).write_bytes(b"")
        _expect_error(tmp_path / name, "empty")


def test_corrupt_files(tmp_path):
    garbage = RNG.integers(0, 256, size=4096).astype(np.uint8).tobytes()
    (tmp_path / "junk.mrc").write_bytes(garbage)
    _expect_error(tmp_path / "junk.mrc")
    (tmp_path / "junk.png").write_bytes(garbage)
    _expect_error(tmp_path / "junk.png")
    path = write_mrc(tmp_path / "mode.mrc", np.zeros((8, 8), np.float32))
    raw = bytearray(path.read_bytes())
    raw[12:16] = np.int32(4).tobytes()  # mode 4: complex, not a micrograph
    (tmp_path / "mode.mrc").write_bytes(bytes(raw))
    _expect_error(tmp_path / "mode.mrc", "mode 4")


def test_truncated_png_jpeg_tiff(tmp_path):
    img = RNG.integers(0, 255, size=(128, 128), endpoint=True).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(img).save(tmp_path / "a.jpg")
    tifffile.imwrite(tmp_path / "a.tif", img)
    for name in ("a.png", "a.jpg", "a.tif"):
        full = (tmp_path / name).read_bytes()
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(full[: len(full) // 2])
        _expect_error(cut)


def test_mislabelled_files_name_the_real_format(tmp_path):
    img = np.zeros((16, 16), np.uint8)
    Image.fromarray(img).save(tmp_path / "png_as.mrc", format="PNG")
    _expect_error(tmp_path / "png_as.mrc", "PNG", "png_as.png")
    Image.fromarray(img).save(tmp_path / "jpeg_as.png", format="JPEG")
    _expect_error(tmp_path / "jpeg_as.png", "JPEG")
    write_mrc(tmp_path / "mrc_as.tif", img.astype(np.float32))
    _expect_error(tmp_path / "mrc_as.tif", "MRC")


def test_missing_file_and_unknown_suffix(tmp_path):
    _expect_error(tmp_path / "nothere.mrc", "no such file")
    (tmp_path / "notes.txt").write_text("hello")
    _expect_error(tmp_path / "notes.txt", "unsupported suffix")


# --- finding micrographs ------------------------------------------------------------------------
def test_find_micrographs_expands_folders_and_globs_sorted_without_duplicates(tmp_path):
    for name in ("b.mrc", "a.tif", "c.JPG", "d.png", "notes.txt", ".a.mrc.tmp.mrc"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.mrc").write_bytes(b"x")
    found = find_micrographs(tmp_path)
    assert [p.name for p in found] == ["a.tif", "b.mrc", "c.JPG", "d.png"]
    mixed = find_micrographs([str(tmp_path / "*.mrc"), tmp_path / "b.mrc", tmp_path / "sub"])
    assert mixed == sorted([tmp_path / "b.mrc", tmp_path / "sub" / "e.mrc"])
    with pytest.raises(MicrographError, match="missing"):
        find_micrographs(tmp_path / "missing")
    with pytest.raises(MicrographError, match="no micrograph"):
        find_micrographs(str(tmp_path / "*.mrcs"))
    assert ".mrc" in MICROGRAPH_SUFFIXES and ".jpeg" in MICROGRAPH_SUFFIXES


def test_real_betagal_jpeg(betagal_dir):
    path = sorted(betagal_dir.glob("*.jpg"))[0]
    mic = read_micrograph(path)
    assert mic.shape == (4096, 4096) == read_micrograph_shape(path)
    assert mic.data.dtype == np.float32 and mic.pixel_size is None
    assert 0 <= mic.data.min() < mic.data.max() <= 255 and mic.data.std() > 5
