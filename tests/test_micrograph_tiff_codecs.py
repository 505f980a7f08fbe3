"""TIFF as EPU and SerialEM write it: LZW / ZSTD compression (imagecodecs), pixel size from the
resolution tags; a clear error naming the codec when its decoder is missing; a warning when a
movie's frames are averaged."""
from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from epick.runtime.errors import MicrographError
from epick.runtime.io.micrograph import read_micrograph, write_mrc

tifffile = pytest.importorskip("tifffile")
pytest.importorskip("imagecodecs")


def _image(seed=0):
    return (np.random.default_rng(seed).random((48, 64)) * 4000).astype(np.uint16)


@pytest.mark.parametrize("codec", ["lzw", "zstd", "deflate"])
def test_compressed_tiff_reads_exactly(tmp_path, codec):
    data = _image()
    path = tmp_path / f"mic_{codec}.tif"
    tifffile.imwrite(path, data, compression=codec)
    mic = read_micrograph(path)
    np.testing.assert_array_equal(mic.data, data.astype(np.float32))


def test_pixel_size_from_centimetre_resolution_tags(tmp_path):
    path = tmp_path / "mic.tif"
    tifffile.imwrite(path, _image(), compression="lzw", resolution=(1e8 / 1.06, 1e8 / 1.06),
                     resolutionunit="CENTIMETER")
    assert read_micrograph(path).pixel_size == pytest.approx(1.06, rel=1e-6)


def test_pixel_size_from_imagej_micron_unit(tmp_path):
    path = tmp_path / "mic.tif"
    tifffile.imwrite(path, _image(), imagej=True, resolution=(1 / 0.000083, 1 / 0.000083),
                     metadata={"unit": "micron"})
    assert read_micrograph(path).pixel_size == pytest.approx(0.83, rel=1e-5)


def test_default_72_dpi_is_not_a_pixel_size(tmp_path):
    path = tmp_path / "mic.tif"
    tifffile.imwrite(path, _image(), resolution=(72, 72), resolutionunit="INCH")
    assert read_micrograph(path).pixel_size is None


@pytest.mark.parametrize("codec,name", [("lzw", "LZW"), ("zstd", "ZSTD")])
def test_missing_codec_is_named(tmp_path, monkeypatch, codec, name):
    path = tmp_path / "mic.tif"
    tifffile.imwrite(path, _image(), compression=codec)
    monkeypatch.setitem(sys.modules, "imagecodecs", None)   # as in an install without imagecodecs
    with pytest.raises(MicrographError, match=f"{name}.*imagecodecs"):
        read_micrograph(path)


def test_averaging_a_movie_warns(tmp_path, caplog):
    path = tmp_path / "movie.mrc"
    write_mrc(path, np.random.default_rng(1).random((5, 32, 32)).astype(np.float32))
    with caplog.at_level(logging.WARNING, logger="epick.runtime"):
        mic = read_micrograph(path)
    assert mic.n_frames == 5
    assert any("5 frames averaged" in r.getMessage() for r in caplog.records)
    caplog.clear()
    single = tmp_path / "single.mrc"
    write_mrc(single, np.zeros((32, 32), np.float32))
    with caplog.at_level(logging.WARNING, logger="epick.runtime"):
        read_micrograph(single)
    assert not caplog.records
