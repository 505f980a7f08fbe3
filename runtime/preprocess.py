"""The ONE preprocessing of epick (trainer, runtime, benchmarks, tests): micrograph -> uint8 network image.

Steps, each a module-level function so a GPU implementation can be checked step by step:

1. ``downsample(image, out_shape)``: separable area averaging with exact fractional overlap
   weights (``area_weights``), along y then along x, to width ``target_width`` (height keeps the
   aspect ratio); never upsamples. Non-finite pixels are left out of the average (weights
   renormalised).
2. ``robust_range(image, clip_low, clip_high)``: the clip quantiles from refined histograms
   (no sorting), robust to hot pixels and NaN/Inf; None for a constant image.
3. ``to_levels(image, lo, hi)``: linear map of [lo, hi] to 0..255 (round half up, clipped);
   NaN -> 128; a constant image -> all 128.
4. ``equalise(u8)``: histogram equalisation on the 256 levels (OpenCV's equalizeHist formula).

Coordinates: centre-of-pixel convention everywhere (see ``epick.runtime.picks``). Network pixel
``u`` covers original pixels ``[u * scale, (u + 1) * scale)`` (edges), so its centre is
``x = (u + 0.5) * scale_x - 0.5`` with ``scale_x = nx / network_nx`` (same for y).
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields, replace

import numba
import numpy as np

MID_GREY = 128
LEVELS = 256
# Relative spread below which an image counts as constant (float32 rounding of the area average).
CONSTANT_RTOL = 1e-5


# ---------------------------------------------------------------------------------------------
# Parameters and coordinate transform
# ---------------------------------------------------------------------------------------------
MAX_TARGET_WIDTH = 16384    # network image width (the EPicker default is 1024)
MAX_HIST_BINS = 1 << 20     # refinement histogram bins (default 4096)
MAX_FILTER_SIGMA = 64.0     # Gaussian low-pass / background sigma, network pixels


@dataclass(frozen=True)
class PreprocessParams:
    """Preprocessing settings, stored in model files so training and picking agree.

    - ``target_width``: network image width in pixels (images narrower than this keep their size).
    - ``clip_low`` / ``clip_high``: quantiles (0..1) mapped to grey levels 0 and 255.
    - ``hist_bins``: bins of each refinement histogram used to find those quantiles.
    - ``equalise``: histogram-equalise the 256 levels (the EPicker method; on by default).
    - ``particle_px``: 0 (fixed-width mode: every micrograph to ``target_width``), or the particle-
      size mode: every micrograph is resampled so that the particle diameter spans ``particle_px``
      network pixels, whatever its pixel size, so one model sees every particle at one scale.
    - ``diameter``: size mode (or a fixed-width mode with ``max_particle_px``), the particle diameter
      in ORIGINAL pixels of the micrographs at hand; set at training / picking time with
      ``with_diameter`` (a model stores 0 here).
    - ``lowpass``: standard deviation (network pixels) of a Gaussian low-pass applied after the
      downsampling; 0 (the default, and every model without the key) applies none.
    - ``highpass``: standard deviation (network pixels) of the Gaussian background subtracted after
      the low-pass; 0 (the default, and every model without the key) subtracts none.
    - ``max_particle_px`` / ``rescale_px``: fixed-width mode, when the particle diameter is known
      (``with_diameter``): a micrograph whose particles would span more than ``max_particle_px``
      network pixels at ``target_width`` is resampled instead so that they span ``rescale_px``
      (never upsampled). 0 (the default, and every model without the keys): off. A model trained on
      particles of up to some size sets them so that larger ones reach it at a size it knows.
    """

    target_width: int = 1024
    clip_low: float = 0.001
    clip_high: float = 0.999
    hist_bins: int = 4096
    equalise: bool = True
    particle_px: float = 0.0
    diameter: float = 0.0
    lowpass: float = 0.0
    highpass: float = 0.0
    max_particle_px: float = 0.0
    rescale_px: float = 0.0

    def __post_init__(self) -> None:
        # upper bounds: a damaged model file must not make preprocessing allocate gigabytes
        if not 1 <= int(self.target_width) <= MAX_TARGET_WIDTH:
            raise ValueError(f"target_width must lie in [1, {MAX_TARGET_WIDTH}], got {self.target_width}")
        if not 0.0 <= self.clip_low < self.clip_high <= 1.0:
            raise ValueError(f"need 0 <= clip_low < clip_high <= 1, got {self.clip_low}, {self.clip_high}")
        if not 256 <= int(self.hist_bins) <= MAX_HIST_BINS:
            raise ValueError(f"hist_bins must lie in [256, {MAX_HIST_BINS}], got {self.hist_bins}")
        if not (0 <= self.particle_px <= MAX_TARGET_WIDTH and 0 <= self.diameter <= 1e7):
            raise ValueError(f"particle_px and diameter must be >= 0 and sane, got {self.particle_px}, {self.diameter}")
        if not (0 <= self.max_particle_px <= MAX_TARGET_WIDTH and 0 <= self.rescale_px <= MAX_TARGET_WIDTH):
            raise ValueError(f"max_particle_px and rescale_px must lie in [0, {MAX_TARGET_WIDTH}], "
                             f"got {self.max_particle_px}, {self.rescale_px}")
        if (self.max_particle_px > 0) != (self.rescale_px > 0):
            raise ValueError("max_particle_px and rescale_px go together (both 0: off), "
                             f"got {self.max_particle_px}, {self.rescale_px}")
        for name in ("lowpass", "highpass"):
            if not 0.0 <= getattr(self, name) <= MAX_FILTER_SIGMA:
                raise ValueError(f"{name} (Gaussian sigma, network pixels) must lie in [0, {MAX_FILTER_SIGMA}], "
                                 f"got {getattr(self, name)}")

    @property
    def size_mode(self) -> bool:
        """True in the particle-size mode (``particle_px`` > 0)."""
        return self.particle_px > 0

    @property
    def rescales(self) -> bool:
        """True when the fixed-width mode resamples micrographs of large particles (``max_particle_px``)."""
        return not self.size_mode and self.max_particle_px > 0

    def with_diameter(self, diameter: float | None) -> "PreprocessParams":
        """These settings for micrographs whose particles are ``diameter`` original pixels across
        (size mode, or a fixed-width mode that ``rescales``: without a diameter it keeps the fixed
        width; any other fixed-width mode ignores it and returns itself)."""
        if self.rescales:
            return self if diameter is None or not float(diameter) > 0 else replace(self, diameter=float(diameter))
        if not self.size_mode:
            return self
        if diameter is None or not float(diameter) > 0:
            raise ValueError("the particle-size mode needs the particle diameter in pixels "
                             f"(got {diameter!r}); give --diameter or --diameter-a")
        return replace(self, diameter=float(diameter))

    def fixed_width_span(self, shape: tuple[int, int]) -> float | None:
        """Network pixels the particle diameter spans at ``target_width`` in a micrograph of ``shape``
        (None without a diameter)."""
        if not self.diameter > 0:
            return None
        return self.diameter * network_shape(shape, self.target_width)[1] / int(shape[1])

    def network_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """(ny, nx) of the network image of a micrograph of ``shape`` (ny, nx): width
        ``target_width``, or in size mode width round(nx * particle_px / diameter); never upsampled.
        A fixed-width mode that ``rescales`` and knows the diameter: width round(nx * rescale_px /
        diameter) when the particles would span more than ``max_particle_px`` at ``target_width``."""
        if not self.size_mode:
            span = self.fixed_width_span(shape)
            if self.rescales and span is not None and span > self.max_particle_px:
                width = max(1, int(math.floor(int(shape[1]) * self.rescale_px / self.diameter + 0.5)))
                return network_shape(shape, width)
            return network_shape(shape, self.target_width)
        if not self.diameter > 0:
            raise ValueError("the particle-size mode needs the particle diameter: use params.with_diameter(d)")
        width = max(1, int(math.floor(int(shape[1]) * self.particle_px / self.diameter + 0.5)))
        return network_shape(shape, width)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict of the settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PreprocessParams":
        """Settings from ``to_dict()`` output; unknown keys raise ValueError naming them."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown preprocessing settings {unknown}; known: {sorted(known)}")
        casts = {"target_width": int, "clip_low": float, "clip_high": float, "hist_bins": int, "equalise": bool,
                 "particle_px": float, "diameter": float, "lowpass": float,
                 "highpass": float, "max_particle_px": float, "rescale_px": float}
        return cls(**{k: casts[k](v) for k, v in data.items()})


def size_note(params: PreprocessParams, shape: tuple[int, int], pixel_size: float | None = None) -> str | None:
    """What a fixed-width model that rescales does with micrographs of ``shape`` (ny, nx), in words:
    the resampling when the diameter is known, else the particle size its fixed width covers, also
    in A when ``pixel_size`` (A/px) is known (None: nothing to say). The size is asked for, not
    guessed: on real micrographs the network marks sub-structure of large particles as confidently
    as whole ones (benchmarks/bench_network_width.py)."""
    if not params.rescales:
        return None
    width = network_shape(shape, params.target_width)[1]   # the fixed width, never upsampled
    span = params.fixed_width_span(shape)
    if span is None:
        largest = params.max_particle_px * int(shape[1]) / width
        in_a = f", {largest * pixel_size:.0f} A at {pixel_size:g} A/px" if pixel_size else ""
        return (f"no --diameter: picking at width {width}, where the model learnt particles of up to "
                f"{params.max_particle_px:g} px ({largest:.0f} px in these {shape[1]}-px-wide micrographs{in_a}); "
                f"it misses larger ones unless given --diameter PX or --diameter-a A")
    if span <= params.max_particle_px:
        return None
    return (f"particles of {params.diameter:g} px would span {span:.0f} px at the model's {width}-px width, more "
            f"than the {params.max_particle_px:g} it was trained on: micrographs are resampled so that they span "
            f"{params.rescale_px:g}")


@dataclass(frozen=True)
class Transform:
    """Maps positions between the original micrograph and the network image (centre-of-pixel).

    ``original_shape`` and ``network_shape`` are (ny, nx); ``scale_x = nx / network_nx`` and
    ``scale_y = ny / network_ny`` are original pixels per network pixel (>= 1, never upsampled).
    """

    original_shape: tuple[int, int]
    network_shape: tuple[int, int]
    scale_x: float
    scale_y: float

    @classmethod
    def between(cls, original_shape: tuple[int, int], network_shape: tuple[int, int]) -> "Transform":
        """The transform from ``original_shape`` (ny, nx) to ``network_shape`` (ny, nx)."""
        ny, nx = (int(v) for v in original_shape)
        my, mx = (int(v) for v in network_shape)
        return cls((ny, nx), (my, mx), nx / mx, ny / my)

    def to_original(self, x_net, y_net):
        """Network-image pixel coordinates -> original pixel coordinates (scalars or arrays)."""
        return ((np.asarray(x_net, dtype=np.float64) + 0.5) * self.scale_x - 0.5,
                (np.asarray(y_net, dtype=np.float64) + 0.5) * self.scale_y - 0.5)

    def to_network(self, x, y):
        """Original pixel coordinates -> network-image pixel coordinates (scalars or arrays)."""
        return ((np.asarray(x, dtype=np.float64) + 0.5) / self.scale_x - 0.5,
                (np.asarray(y, dtype=np.float64) + 0.5) / self.scale_y - 0.5)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict."""
        return {"original_shape": list(self.original_shape), "network_shape": list(self.network_shape),
                "scale_x": self.scale_x, "scale_y": self.scale_y}

    @classmethod
    def from_dict(cls, data: dict) -> "Transform":
        """Transform from ``to_dict()`` output."""
        return cls(tuple(int(v) for v in data["original_shape"]), tuple(int(v) for v in data["network_shape"]),
                   float(data["scale_x"]), float(data["scale_y"]))


def network_shape(shape: tuple[int, int], target_width: int = 1024) -> tuple[int, int]:
    """(ny, nx) of the network image: width ``target_width``, height round(ny * target_width / nx)
    (half up, at least 1); an image narrower than ``target_width`` keeps its size."""
    ny, nx = int(shape[0]), int(shape[1])
    if nx <= target_width:
        return ny, nx
    return max(1, int(math.floor(ny * target_width / nx + 0.5))), int(target_width)


# ---------------------------------------------------------------------------------------------
# Step 1: area downsampling
# ---------------------------------------------------------------------------------------------
def area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact area-averaging weights along one axis, for ``n_out <= n_in`` output pixels.

    Output pixel j covers input edges [j*s, (j+1)*s) with s = n_in / n_out; input pixel i gets
    weight |[i, i+1) ∩ [j*s, (j+1)*s)| / s. Returns ``start`` (int32[n_out]) and ``weights``
    (float32[n_out, taps]): output j = sum_k weights[j, k] * input[start[j] + k]. Every
    ``start[j] + k`` is inside the input (the last rows are shifted left, with leading zero
    weights); each row sums to 1.
    """
    if not 1 <= n_out <= n_in:
        raise ValueError(f"area_weights needs 1 <= n_out <= n_in, got n_out={n_out}, n_in={n_in}")
    s = n_in / n_out
    lo_edges = np.arange(n_out, dtype=np.float64) * s
    hi_edges = np.minimum((np.arange(n_out, dtype=np.float64) + 1.0) * s, n_in)
    first = np.floor(lo_edges).astype(np.int64)
    stop = np.minimum(np.ceil(hi_edges - 1e-9).astype(np.int64), n_in)
    taps = int((stop - first).max())
    start = np.minimum(first, n_in - taps)
    idx = (start[:, None] + np.arange(taps)[None, :]).astype(np.float64)
    overlap = np.minimum(idx + 1.0, hi_edges[:, None]) - np.maximum(idx, lo_edges[:, None])
    weights = np.clip(overlap, 0.0, None) / s
    return start.astype(np.int32), weights.astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _careful_sum(values, i0, stride, weights_j):  # pragma: no cover - compiled
    """sum_k w_k * values[i0 + k*stride] over finite values only, renormalised by their weight;
    NaN when no finite value has weight."""
    acc = np.float32(0.0)
    bad = np.float32(0.0)
    for k in range(weights_j.size):
        w = weights_j[k]
        if w != 0.0:
            v = values[i0 + k * stride]
            if np.isfinite(v):
                acc += w * v
            else:
                bad += w
    if bad == 0.0:
        return acc
    good = np.float32(1.0) - bad
    return acc / good if good > 1e-6 else np.float32(np.nan)


@numba.njit(cache=True, nogil=True)
def _resample_cols(image, start, weights):  # pragma: no cover - compiled
    """Along y: out[j, x] = sum_k weights[j, k] * image[start[j] + k, x], float32.

    Fast pass without checks (contiguous rows, vectorises); outputs that came out non-finite are
    recomputed leaving the non-finite inputs out (``_careful_sum``)."""
    ny, nx = image.shape
    n_out, taps = weights.shape
    out = np.zeros((n_out, nx), dtype=np.float32)
    flat = image.reshape(-1)
    for j in range(n_out):
        o = out[j]
        i0 = start[j]
        for k in range(taps):
            w = weights[j, k]
            row = image[i0 + k]
            for x in range(nx):
                o[x] += w * row[x]
        for x in range(nx):
            if not np.isfinite(o[x]):
                o[x] = _careful_sum(flat, i0 * nx + x, nx, weights[j])
    return out


@numba.njit(cache=True, nogil=True)
def _resample_rows(image, start, weights):  # pragma: no cover - compiled
    """Along x: out[y, j] = sum_k weights[j, k] * image[y, start[j] + k], float32, with the same
    non-finite handling as ``_resample_cols``."""
    ny, nx = image.shape
    n_out, taps = weights.shape
    out = np.empty((ny, n_out), dtype=np.float32)
    for y in range(ny):
        row = image[y]
        for j in range(n_out):
            i0 = start[j]
            acc = np.float32(0.0)
            for k in range(taps):
                acc += weights[j, k] * row[i0 + k]
            if not np.isfinite(acc):
                acc = _careful_sum(row, i0, 1, weights[j])
            out[y, j] = acc
    return out


def downsample(image: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Area-average a 2-D image to ``out_shape`` (ny, nx), each no larger than the input, float32:
    columns first (along y, ``_resample_cols``), then rows (along x, ``_resample_rows``), each a
    float32 weighted sum in tap order. Non-finite pixels are left out of each average (weights
    renormalised); an output pixel with no finite input is NaN. Returns the input (as float32)
    when the shapes match."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    ny, nx = image.shape
    my, mx = int(out_shape[0]), int(out_shape[1])
    if my != ny:
        image = _resample_cols(image, *area_weights(ny, my))
    if mx != nx:
        image = _resample_rows(image, *area_weights(nx, mx))
    return image


# ---------------------------------------------------------------------------------------------
# Step 1b: Gaussian low-pass (optional)
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def gaussian_weights(n: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blur along one axis of ``n`` pixels in ``area_weights``' form (``start``, ``weights``);
    computed once per (n, sigma) (every micrograph of a run has the same shape), read-only.

    Kernel: exp(-k^2 / (2 sigma^2)) for |k| <= r = ceil(3 sigma), normalised to sum 1 (float64,
    then float32). Edges are mirror-symmetric (pixel -1 is pixel 0, pixel n is pixel n-1): a tap
    that falls outside adds its weight to its mirror pixel, so every output is a weighted sum over
    the contiguous window ``start[j] .. start[j] + taps - 1`` inside the image and the blur runs on
    the same kernels as the downsampling. Axes shorter than the kernel get a shorter window.
    """
    if n < 1 or not sigma > 0:
        raise ValueError(f"gaussian_weights needs n >= 1 and sigma > 0, got n={n}, sigma={sigma}")
    r = int(math.ceil(3.0 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-r, r + 1, dtype=np.float64) / sigma) ** 2)
    kernel /= kernel.sum()
    taps = min(2 * r + 1, n)
    start = np.clip(np.arange(n) - r, 0, n - taps)
    weights = np.zeros((n, taps), dtype=np.float64)
    for j in range(n):
        src = np.arange(j - r, j + r + 1)
        while np.any((src < 0) | (src >= n)):     # mirror until inside (several times on tiny axes)
            src = np.where(src < 0, -src - 1, src)
            src = np.where(src >= n, 2 * n - 1 - src, src)
        np.add.at(weights[j], src - start[j], kernel)
    start, weights = start.astype(np.int32), weights.astype(np.float32)
    start.flags.writeable = weights.flags.writeable = False
    return start, weights


def lowpass(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of a 2-D float32 image (``sigma`` in its pixels; 0 returns it unchanged):
    along y, then along x, as float32 weighted sums in tap order (the sums of ``_resample_cols`` /
    ``_resample_rows``, which the GPU's resampling kernels compute too)."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    if not sigma > 0:
        return image
    ny, nx = image.shape
    along_y = _resample_cols(image, *gaussian_weights(ny, sigma))
    # the pass along x runs as a pass along y of the transpose: the same sums in the same tap order
    # (the same bits as _resample_rows), but over contiguous rows, which vectorises (6x faster at 193 taps)
    along_x = _resample_cols(np.ascontiguousarray(along_y.T), *gaussian_weights(nx, sigma))
    return np.ascontiguousarray(along_x.T)


def subtract_background(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image - lowpass(image, sigma)`` in float32 (``sigma`` in its pixels; 0 returns it unchanged):
    removes gradients and steps wider than ``sigma``, keeps what is smaller."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    if not sigma > 0:
        return image
    return image - lowpass(image, sigma)


# ---------------------------------------------------------------------------------------------
# Step 2: robust range from refined histograms
# ---------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _finite_min_max(flat):  # pragma: no cover - compiled
    """(min, max, count) of the finite values."""
    mn = np.inf
    mx = -np.inf
    n = 0
    for v in flat:
        if np.isfinite(v):
            n += 1
            if v < mn:
                mn = v
            if v > mx:
                mx = v
    return mn, mx, n


@numba.njit(cache=True, nogil=True)
def _histogram(flat, lo, hi, bins):  # pragma: no cover - compiled
    """Counts of finite values below ``lo``, in each of ``bins`` equal bins of [lo, hi] (hi
    included in the last bin), and above ``hi``."""
    hist = np.zeros(bins, dtype=np.int64)
    below = 0
    above = 0
    scale = bins / (hi - lo)
    for v in flat:
        if not np.isfinite(v):
            continue
        if v < lo:
            below += 1
        elif v > hi:
            above += 1
        else:
            b = int((v - lo) * scale)
            if b >= bins:
                b = bins - 1
            hist[b] += 1
    return below, hist, above


def _value_of_rank(below: int, hist: np.ndarray, rank: int, lo_edge: float, width: float) -> tuple[int, float]:
    """Bin holding the value of 0-based ``rank`` (values below the range come first) and that
    value, interpolated linearly by rank inside the bin."""
    cum = below + np.cumsum(hist)
    b = int(min(np.searchsorted(cum, rank, side="right"), hist.size - 1))
    before = cum[b] - hist[b]
    inside = (rank - before + 0.5) / hist[b] if hist[b] > 0 else 0.5
    return b, lo_edge + (b + min(max(inside, 0.0), 1.0)) * width


def is_constant(mn: float, mx: float, n: int) -> bool:
    """True when ``n`` finite values spanning [mn, mx] count as one value: none at all, or a spread
    within float32 rounding of the area average (max - min <= CONSTANT_RTOL * max |value|)."""
    return n == 0 or not mx - mn > CONSTANT_RTOL * max(abs(mn), abs(mx))


def refine_range(histogram, mn: float, mx: float, n: int, clip_low: float = 0.001, clip_high: float = 0.999,
                 bins: int = 4096, max_rounds: int = 6) -> tuple[float, float] | None:
    """The quantile search of ``robust_range`` given the finite (min, max, count) of an image and
    ``histogram(lo_edge, hi_edge) -> (below, hist)``: the count of finite values below ``lo_edge``
    and an int64[bins] histogram of [lo_edge, hi_edge] (hi included in the last bin). Shared by the
    CPU and GPU paths so they make the same decisions.

    Round 1 histograms [min, max]; each next round histograms only the bins between the two
    quantiles, until they lie >= bins/4 bins apart (a quarter grey level) or ``max_rounds`` is
    reached, so a hot pixel (which stretches [min, max]) costs one or two extra passes. A quantile
    is interpolated by rank inside its bin. Returns None for a constant image (``is_constant``);
    falls back to (min, max) when the two quantiles coincide to float32 precision, as in a
    near-constant image with a few outliers (else rounding noise would be stretched to 0..255).
    """
    mn, mx = float(mn), float(mx)
    if is_constant(mn, mx, n):
        return None
    rank_lo = int(math.floor(clip_low * (n - 1)))
    rank_hi = int(math.ceil(clip_high * (n - 1)))
    lo_edge, hi_edge = mn, mx
    for _ in range(max_rounds):
        below, hist = histogram(lo_edge, hi_edge)
        width = (hi_edge - lo_edge) / bins
        b_lo, lo = _value_of_rank(below, hist, rank_lo, lo_edge, width)
        b_hi, hi = _value_of_rank(below, hist, rank_hi, lo_edge, width)
        if b_hi - b_lo >= bins // 4 or width <= (mx - mn) * 1e-12:
            break
        lo_edge, hi_edge = lo_edge + b_lo * width, lo_edge + (b_hi + 1) * width
    if is_constant(lo, hi, 2):
        return mn, mx
    return float(lo), float(hi)


def robust_range(image: np.ndarray, clip_low: float = 0.001, clip_high: float = 0.999,
                 bins: int = 4096, max_rounds: int = 6) -> tuple[float, float] | None:
    """Values at quantiles ``clip_low`` and ``clip_high`` of the finite pixels, found from refined
    histograms without sorting (see ``refine_range``); None for a constant or all-NaN image."""
    flat = np.ascontiguousarray(image).reshape(-1)
    mn, mx, n = _finite_min_max(flat)

    def histogram(lo_edge: float, hi_edge: float):
        below, hist, _above = _histogram(flat, lo_edge, hi_edge, bins)
        return below, hist

    return refine_range(histogram, mn, mx, n, clip_low, clip_high, bins, max_rounds)


# ---------------------------------------------------------------------------------------------
# Step 3 and 4: 8-bit levels, equalisation
# ---------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _to_levels(flat, lo, hi, out):  # pragma: no cover - compiled
    """out = clip(floor((v - lo) * 255 / (hi - lo) + 0.5), 0, 255); NaN -> 128 (float64 maths)."""
    scale = 255.0 / (hi - lo)
    for i in range(flat.size):
        v = flat[i]
        if v != v:
            out[i] = 128
            continue
        t = (v - lo) * scale + 0.5  # clip as float first: floor() of 1e30/inf overflows int64
        if t < 0.0:
            t = 0.0
        elif t > 255.0:
            t = 255.0
        out[i] = np.uint8(math.floor(t))


def to_levels(image: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """Map [lo, hi] linearly to grey levels 0..255 (uint8, clipped, NaN -> 128); all 128 when
    ``lo``/``hi`` is None or ``hi <= lo`` (a constant image)."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    out = np.empty(image.shape, dtype=np.uint8)
    if lo is None or hi is None or not hi > lo:
        out.fill(MID_GREY)
        return out
    _to_levels(image.reshape(-1), float(lo), float(hi), out.reshape(-1))
    return out


@numba.njit(cache=True, nogil=True)
def _equalise(flat, out):  # pragma: no cover - compiled
    """OpenCV equalizeHist: lut[v] = round((cdf[v] - cdf_min) * 255 / (N - cdf_min))."""
    hist = np.zeros(256, dtype=np.int64)
    for v in flat:
        hist[v] += 1
    n = flat.size
    first = 0
    while first < 256 and hist[first] == 0:
        first += 1
    cdf_min = hist[first] if first < 256 else 0
    lut = np.empty(256, dtype=np.uint8)
    if n - cdf_min == 0:  # one grey level only: keep it
        for v in range(256):
            lut[v] = v
    else:
        scale = 255.0 / (n - cdf_min)
        cum = 0
        for v in range(256):
            cum += hist[v]
            u = math.floor((cum - cdf_min) * scale + 0.5)
            lut[v] = np.uint8(min(max(u, 0.0), 255.0))
    for i in range(n):
        out[i] = lut[flat[i]]


def equalise(levels: np.ndarray) -> np.ndarray:
    """Histogram equalisation of a uint8 image on its 256 levels; a one-level image is unchanged."""
    levels = np.ascontiguousarray(levels, dtype=np.uint8)
    out = np.empty_like(levels)
    _equalise(levels.reshape(-1), out.reshape(-1))
    return out


# ---------------------------------------------------------------------------------------------
# The whole preprocessing, and network-input helpers
# ---------------------------------------------------------------------------------------------
def preprocess(image: np.ndarray, params: PreprocessParams | None = None) -> tuple[np.ndarray, Transform]:
    """Micrograph ``image[y, x]`` (any real dtype, 2-D) -> (uint8 network image, Transform).

    Downsample to ``params.network_shape`` (width ``target_width``, or in the particle-size mode the
    width that puts the particle diameter on ``particle_px`` pixels; never upsample), low-pass when
    ``params.lowpass`` > 0, subtract the background when ``params.highpass`` > 0, clip at robust
    quantiles to 8 bits, then histogram-equalise. NaN/Inf pixels, hot pixels and constant images
    are handled.
    """
    params = params or PreprocessParams()
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"preprocess needs a non-empty 2-D image, got shape {image.shape}")
    out_shape = params.network_shape(image.shape)
    small = subtract_background(lowpass(downsample(image, out_shape), params.lowpass), params.highpass)
    bounds = robust_range(small, params.clip_low, params.clip_high, params.hist_bins)
    levels = to_levels(small, *(bounds or (None, None)))
    if params.equalise:
        levels = equalise(levels)
    return levels, Transform.between(image.shape, out_shape)


def pad_to_multiple(img: np.ndarray, multiple: int = 32, mode: str = "mean") -> np.ndarray:
    """Pad the last two axes (y, x) at the bottom/right to multiples of ``multiple`` so coordinates
    do not move. ``mode``: "mean" (rounded mean grey of the image) or "edge" (repeat the last row/
    column). Returns the input itself when no padding is needed."""
    ny, nx = img.shape[-2:]
    py, px = (-ny) % multiple, (-nx) % multiple
    if py == 0 and px == 0:
        return img
    pad = [(0, 0)] * (img.ndim - 2) + [(0, py), (0, px)]
    if mode == "edge":
        return np.pad(img, pad, mode="edge")
    if mode != "mean":
        raise ValueError(f"pad mode must be 'mean' or 'edge', got {mode!r}")
    value = float(np.mean(img, dtype=np.float64))
    if np.issubdtype(img.dtype, np.integer):
        value = int(math.floor(value + 0.5))
    return np.pad(img, pad, mode="constant", constant_values=value)


# Padding geometry of the network input, shared by the host and the device picking paths
PAD_MULTIPLE = 32   # network H and W are multiples of this (the contract)


def padded_shape(shape: tuple[int, int], min_side: int = 0, multiple: int = PAD_MULTIPLE) -> tuple[int, int]:
    """(H, W) of the network input for a network image of ``shape`` (ny, nx): each side rounded up to
    ``multiple`` and to at least ``min_side`` (itself rounded up to ``multiple``)."""
    floor = int(math.ceil(max(int(min_side), 0) / multiple) * multiple)
    return tuple(max(n + (-n) % multiple, floor) for n in (int(shape[0]), int(shape[1])))  # type: ignore[return-value]


def pad_network_image(u8: np.ndarray, min_side: int = 0) -> np.ndarray:
    """``pad_to_multiple(u8, 32)`` grown at the bottom/right to at least ``min_side`` per axis with the
    same grey (network pixels; coordinates do not move). The input itself when nothing is padded."""
    shape = padded_shape(u8.shape, min_side)
    padded = pad_to_multiple(u8, PAD_MULTIPLE)
    if tuple(padded.shape) == shape:
        return padded
    # the grey pad_to_multiple uses ("mean" mode), taken from it: padding the flattened image by one
    # row fills that row with the mean grey of the whole image
    grey = pad_to_multiple(u8.reshape(1, -1), 2)[1, 0]
    out = np.full(shape, grey, dtype=u8.dtype)
    out[: u8.shape[0], : u8.shape[1]] = u8
    return out


def network_input(u8: np.ndarray) -> np.ndarray:
    """The network's float32 input from uint8 images: u8 / 255 (same shape)."""
    return np.divide(np.asarray(u8, dtype=np.uint8), np.float32(255.0), dtype=np.float32)
