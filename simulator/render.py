"""8-bit renderings of simulated micrographs that look like public JPEG/PNG data.

Public micrographs are often not raw float MRC: EMPIAR-10017's beta-gal JPEGs were denoised and
stretched over ~120 grey levels; EMPIAR-10947's PNGs are binned and contrast-stretched so that
only ~20-30 grey levels are used (1-99 % of the pixels span ~10 levels). A picker trained only on
float images meets those as a different kind of image; these renderings teach it both.

- ``float``: the simulated float32 image unchanged (written as MRC).
- ``denoised``: Gaussian low-pass of ``sigma`` U(8, 16) A (a denoiser keeps particle-scale
  structure and removes pixel noise: on the real beta-gal JPEGs under 2 % of the variance lies at
  scales below a quarter of the particle, and a low-pass of ~0.06 particle diameters = 11.5 A
  reproduces that), then the 1-99 % range stretched over U(90, 150) grey levels around a mean of
  U(110, 150) (the real JPEGs: 1-99 % = 69..189), clipped to 0..255 (written as JPEG).
- ``stretched``: no filter; grey level = mean U(95, 125) + z * U(1.2, 3.0) (z = the image in units
  of its robust standard deviation), rounded and clipped (written as PNG): 12-30 levels used,
  1-99 % of the pixels within 6-14 levels, like EMPIAR-10947 (19-25 levels, 1-99 % within ~10).
Truth coordinates are unchanged (same pixel grid).
"""
from __future__ import annotations

import numpy as np

RENDERS = ("float", "denoised", "stretched")
SUFFIX = {"float": ".mrc", "denoised": ".jpg", "stretched": ".png"}


def _robust_z(image: np.ndarray) -> np.ndarray:
    """(image - median) / (robust std from the 16-84 % quantiles), float32."""
    lo, med, hi = np.percentile(image, [15.87, 50.0, 84.13])
    return ((image - np.float32(med)) / np.float32(max((hi - lo) / 2.0, 1e-12))).astype(np.float32)


def render(image: np.ndarray, style: str, rng: np.random.Generator, pixel_size: float) -> np.ndarray:
    """``image`` (float32 e/px) rendered as ``style`` (see the module docstring): uint8, or float32 for "float"."""
    if style == "float":
        return image
    if style == "denoised":
        from scipy import ndimage

        sigma_px = float(rng.uniform(8.0, 16.0)) / float(pixel_size)
        smooth = ndimage.gaussian_filter(image, sigma_px, truncate=3.0) if sigma_px > 0.3 else image
        lo, hi = np.percentile(smooth, [1.0, 99.0])
        span, mean = float(rng.uniform(90.0, 150.0)), float(rng.uniform(110.0, 150.0))
        grey = (smooth - np.float32(0.5 * (lo + hi))) * np.float32(span / max(hi - lo, 1e-12)) + np.float32(mean)
    elif style == "stretched":
        grey = _robust_z(image) * np.float32(rng.uniform(1.2, 3.0)) + np.float32(rng.uniform(95.0, 125.0))
    else:
        raise ValueError(f"unknown rendering {style!r}; known: {', '.join(RENDERS)}")
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    """A rendering drawn with the given relative ``weights`` (names from RENDERS)."""
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]
