"""Micrographs for the screen: downsampled by area averaging, lightly low-passed, robust 8-bit
levels, encoded as JPEG (a few hundred KB instead of a raw MRC of tens of MB).

The image covers the whole micrograph: display pixel ``(i, j)`` is the area average of original
pixels ``[j*s, (j+1)*s) x [i*s, (i+1)*s)`` (edges), so a pick at original ``(x, y)`` (centre of
pixel convention) lies at display ``((x + 0.5) / s - 0.5, (y + 0.5) / s - 0.5)`` as in
``preprocess.Transform``.
"""
from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

DEFAULT_WIDTH = 1280        # display pixels across; a 4k micrograph becomes ~250 KB of JPEG
# the page asks for up to MAX_WIDTH (a few MB) only when zoomed in past its first image
MAX_WIDTH = 4096
JPEG_QUALITY = 85
CLIP = (0.005, 0.995)       # quantiles mapped to black and white


def display_levels(image: np.ndarray, width: int = DEFAULT_WIDTH) -> np.ndarray:
    """uint8 ``[ny', nx']`` image for display: area-averaged to ``width`` (never up), Gaussian
    low-pass of 0.7 display pixels (shot noise hides particles at this scale), robust levels."""
    from scipy.ndimage import gaussian_filter

    from ..preprocess import downsample, network_shape, robust_range, to_levels

    small = downsample(image, network_shape(image.shape, int(width)))
    small = gaussian_filter(small, 0.7, mode="nearest")
    bounds = robust_range(small, *CLIP)
    return to_levels(small, *(bounds or (None, None)))


def encode_jpeg(levels: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Greyscale JPEG bytes of a uint8 image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(levels, dtype=np.uint8), mode="L").save(
        buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


class ImageCache:
    """JPEGs of micrographs by (path, mtime, width), least recently used dropped beyond ``max_bytes``.
    Thread-safe; two requests for the same image may both render it (harmless, rare)."""

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def jpeg(self, path: Path, width: int = DEFAULT_WIDTH) -> bytes:
        """The display JPEG of micrograph ``path`` at ``width`` display pixels."""
        from ..io.micrograph import read_micrograph

        width = int(min(max(width, 64), MAX_WIDTH))
        key = (str(path), Path(path).stat().st_mtime_ns, width)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = encode_jpeg(display_levels(read_micrograph(path).data, width))
        with self._lock:
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)
        return data
