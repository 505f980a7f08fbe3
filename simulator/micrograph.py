"""simulate_micrograph: one micrograph with known truth (particles, vesicles or fibers).

Image model (weak phase object, per pixel):
    thickness  t(x)  A of protein-equivalent density along the beam (objects, junk, carbon, ice blobs)
    phase      phi = sigma * dV * t                      (rad; sigma at 300 kV, dV = 2.5 V)
    contrast   c   = IFFT(CTF * FFT(gain * phi)) + CTF-filtered ice noise
    intensity  I   = N0 * T(x) * (1 + 2 c)               (N0 = dose * pixel_size^2 electrons/px,
                                                          T = ice / carbon / contamination transmission)
    image      = I + sqrt(I) * z  (shot noise, Gaussian approximation)  [* detector MTF]
``gain`` is 1 for physical contrast (``snr=None``) or set so that the per-object SNR equals ``snr``:
SNR = 4 N0 * mean(c_obj^2 over the objects' own pixels) / N0, i.e. the mean-square signal of the
CTF-filtered truth objects where their projected density exceeds 10 % of a typical peak, divided
by the shot-noise variance per pixel.
The output image is float32 electrons per pixel, ``image[y, x]`` (x = column, y = row).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.fft as sfft

from epick.runtime.picks import OBJECT_TYPES, Picks

from . import fibers as F
from . import realism as R
from .imaging import INTERACTION_RAD_PER_V_A, PROTEIN_CONTRAST_V, CTFParams, ctf_2d, detector_mtf
from .layout import paste, sample_positions
from .particles import get_particle_type
from .projection import DEFAULT_BINS, projection
from .vesicles import vesicle_projection

DEFAULT_SNR = {"particle": 0.08, "vesicle": 1.0, "fiber": 0.3}  # per-pixel SNR over the objects' own pixels
DEFAULT_DOSE = 40.0  # e/A^2
CARBON_THICKNESS_A = 120.0
CARBON_CONTRAST_V = 4.0
CONTAMINATION_CONTRAST_V = 0.5  # phase per A of extra ice (kept small: the weak-phase model)


@dataclass
class SimulatedMicrograph:
    """A simulated micrograph: image (float32 e/px), truth (centres in px of this image), parameters."""

    image: np.ndarray
    truth: Picks
    params: dict
    potential: np.ndarray | None = field(default=None, repr=False)  # truth objects' thickness (A), on request
    excluded: np.ndarray | None = field(default=None, repr=False)  # carbon / ice blobs (bool), on request


def auto_pixel_size(object_diameter_a: float, shape: tuple[int, int], obj: str = "particle") -> float:
    """Pixel size (A/px) giving objects a convenient size: particles min(shape)/10 px (24..120 px),
    fibers min(shape)/40 px (4..30 px), vesicles (mean diameter) min(shape)/5 px (24..400 px)."""
    m = min(shape)
    if obj == "fiber":
        target = np.clip(m / 40, 4, 30)
    elif obj == "vesicle":
        target = np.clip(m / 5, 24, 400)
    else:
        target = np.clip(m / 10, 24, 120)
    return float(round(object_diameter_a / target, 3))


CALIBRATION_WINDOW = 1024  # px: the SNR of big micrographs is measured on a central window this size


def _object_snr(potential: np.ndarray, layer: np.ndarray | None, layer_ft: Callable[[], np.ndarray],
                ctf_ft: np.ndarray, ctf: CTFParams, px: float, n0: float, sigma: float) -> float:
    """Physical per-object SNR: 4 N0 * mean(c_obj^2) over the objects' own pixels (thickness above
    10 % of a typical peak), c_obj = CTF-filtered phase of the truth objects alone.
    ``layer_ft()`` gives the objects' phase on the rfft2 grid when the whole image must be used.

    Micrographs larger than CALIBRATION_WINDOW^2 (particles and vesicles) are measured on their
    central window (one small FFT instead of a full-size inverse FFT); fibers use the full image.
    """
    if not np.any(potential > 0):
        return 0.0
    ny, nx = potential.shape
    w = CALIBRATION_WINDOW
    if layer is not None and ny * nx > 2 * w * w:
        y0, x0 = (ny - min(ny, w)) // 2, (nx - min(nx, w)) // 2
        window = layer[y0:y0 + min(ny, w), x0:x0 + min(nx, w)]
        if np.any(window > 0):
            c_obj = sfft.irfft2(sfft.rfft2(window, workers=1) * (np.float32(sigma) * ctf_2d(window.shape, px, ctf)),
                                s=window.shape, workers=1)
            return _mean_square_inside(window, c_obj, n0)
    c_obj = sfft.irfft2(layer_ft() * ctf_ft, s=(ny, nx), workers=1)
    return _mean_square_inside(potential, c_obj, n0)


def _mean_square_inside(potential: np.ndarray, c_obj: np.ndarray, n0: float) -> float:
    inside = potential > 0.1 * float(np.percentile(potential[potential > 0], 99))
    return 4.0 * n0 * float(np.mean(np.square(c_obj[inside], dtype=np.float64)))


def _background(rng: np.random.Generator, shape: tuple[int, int], px: float, ice_t: float, ice_g: float,
                uneven: float, carbon_depth: float, n_cont: int):
    """Ice transmission, carbon film and ice contamination.

    Returns (transmission T, ``other`` thickness layer in protein-equivalent A for things that are
    not in the truth, ``allowed`` bool mask for object centres, carbon fraction, number of blobs).
    """
    trans = R.ice_transmission(rng, shape, ice_t, ice_g, uneven)
    other = np.zeros(shape, dtype=np.float32)
    allowed = np.ones(shape, dtype=bool)
    carbon_frac = 0.0
    if carbon_depth > 0:
        cmask = R.carbon_region(rng, shape, carbon_depth)
        carbon_frac = float(cmask.mean())
        trans[cmask] *= np.float32(np.exp(-CARBON_THICKNESS_A / R.ICE_MEAN_FREE_PATH_A * 2))
        other[cmask] += CARBON_THICKNESS_A * CARBON_CONTRAST_V / PROTEIN_CONTRAST_V
        allowed &= ~cmask
    n_blobs = 0
    if n_cont > 0:
        thick, blobs = R.contamination_blobs(rng, shape, n_cont, px)
        trans *= np.exp(-thick / R.ICE_MEAN_FREE_PATH_A).astype(np.float32)
        other += thick * (CONTAMINATION_CONTRAST_V / PROTEIN_CONTRAST_V)
        allowed &= thick <= 0
        n_blobs = len(blobs)
    return trans, other, allowed, carbon_frac, n_blobs


def _place_particles(rng: np.random.Generator, obj: np.ndarray, other: np.ndarray, allowed: np.ndarray,
                     kind: str, px: float, diameter_px: float, n: int, min_distance_frac: float,
                     junk_frac: float, n_bins: int):
    """Paste ``n`` particle projections into ``obj`` and junk (aggregates, fragments) into ``other``.

    Returns (x, y, junk centres (k, 2) as (x, y)); all integer pixel positions.
    """
    pos = sample_positions(rng, n, obj.shape, diameter_px / 2, min_distance_frac * diameter_px, allowed)
    bins = rng.integers(n_bins, size=len(pos))
    turns = rng.integers(4, size=len(pos))
    for (cx, cy), b, k in zip(pos, bins, turns):
        paste(obj, np.rot90(projection(kind, px, int(b)), int(k)), int(cx), int(cy))
    n_junk = int(round(junk_frac * len(pos))) if junk_frac > 0 else 0
    if junk_frac > 0 and len(pos) >= 4:
        n_junk = max(n_junk, 1)
    jpos = np.zeros((0, 2), dtype=np.int64)
    if n_junk:
        jpos = sample_positions(rng, n_junk, obj.shape, 0, 1.5 * diameter_px, allowed,
                                occupied=pos, occupied_dist=1.3 * diameter_px)
        for jx, jy in jpos:
            if rng.uniform() < 0.5:
                piece = R.aggregate(rng, kind, px, n_bins, diameter_px)
            else:
                piece = R.broken_particle(rng, kind, px, n_bins)
            paste(other, piece, int(jx), int(jy))
    return pos[:, 0], pos[:, 1], jpos


def _place_vesicles(rng: np.random.Generator, obj: np.ndarray, allowed: np.ndarray, px: float,
                    radius_nm: tuple[float, float], n: int | None, density: float):
    """Paste bilayer vesicles (overlaps allowed) into ``obj``; returns (x, y, radius px)."""
    ny, nx = obj.shape
    r_lo, r_hi = (v * 10.0 / px for v in radius_nm)
    mean_r = 0.5 * (r_lo + r_hi)
    if n is None:
        n = max(1, int(round(density * ny * nx / (np.pi * mean_r ** 2))))
    pos = sample_positions(rng, n, obj.shape, 0.5 * r_lo, 0.6 * mean_r, allowed)
    radii = rng.uniform(r_lo, r_hi, len(pos))
    for (cx, cy), r in zip(pos, radii):
        paste(obj, vesicle_projection(r * px, px), int(cx), int(cy))
    return pos[:, 0], pos[:, 1], radii


def _place_fibers(rng: np.random.Generator, obj: np.ndarray, ftype: F.FiberType, px: float, diameter_px: float,
                  n: int, persistence_px: float, spacing: float):
    """Splat ``n`` worm-like centre lines into ``obj``; returns ordered truth points (x, y, tube id)."""
    ny, nx = obj.shape
    xs, ys, ids = [], [], []
    for _ in range(n):
        start = rng.uniform((0.1 * nx, 0.1 * ny), (0.9 * nx, 0.9 * ny))
        ang = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.6, 1.6) * max(ny, nx)
        path = F.worm_like_path(rng, start - 0.5 * length * np.array([np.cos(ang), np.sin(ang)]), ang,
                                length, persistence_px)
        s_nm = np.arange(len(path)) * F.STEP_PX * px / 10.0  # position along the fiber
        phase0 = rng.uniform(0, 2 * np.pi)
        w = F.STEP_PX * px * (1 + ftype.modulation * np.cos(2 * np.pi * s_nm / ftype.crossover_nm + phase0))
        F.splat_line(obj, path, w)
        for piece in F.truth_points(path, spacing, obj.shape, diameter_px / 2):
            ids.append(np.full(len(piece), len(ids) + 1))
            xs.append(piece[:, 0])
            ys.append(piece[:, 1])
    if not xs:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ids)


def _form_image(rng: np.random.Generator, obj: np.ndarray, other: np.ndarray, trans: np.ndarray,
                kernel_ft: np.ndarray | None, ctf: CTFParams, px: float, n0: float, snr: float | None,
                ice_noise: float, mtf: bool, keep_potential: bool):
    """Phase -> CTF -> intensity -> shot noise (see the module docstring).

    Returns (image float32 e/px, truth potential or None, physical SNR, contrast gain).
    """
    shape = obj.shape
    ny, nx = shape
    sigma = np.float32(INTERACTION_RAD_PER_V_A * PROTEIN_CONTRAST_V)  # rad per A of protein
    ctf_ft = ctf_2d(shape, px, ctf)
    has_other = bool(np.any(other))
    if kernel_ft is None:
        # particles / vesicles: the SNR needs only the real-space layer, so truth objects and the
        # rest share one forward FFT (the full-size object FFT is made only when needed)
        potential = obj
        snr_physical = _object_snr(potential, obj, lambda: sfft.rfft2(obj, workers=1) * sigma,
                                   ctf_ft, ctf, px, n0, float(sigma))
        total_ft = sfft.rfft2(obj + other if has_other else obj, workers=1)
        total_ft *= sigma
    else:
        # fibers: the cylinder kernel applies to the centre lines only
        obj_ft = sfft.rfft2(obj, workers=1)
        obj_ft *= kernel_ft
        potential = sfft.irfft2(obj_ft, s=shape, workers=1)
        obj_ft *= sigma
        snr_physical = _object_snr(potential, None, lambda: obj_ft, ctf_ft, ctf, px, n0, float(sigma))
        total_ft = obj_ft
        if has_other:
            total_ft += sigma * sfft.rfft2(other, workers=1)
    potential = potential.copy() if keep_potential else None
    gain = float(np.sqrt(snr / snr_physical)) if (snr is not None and snr_physical > 0) else 1.0
    total_ft *= np.float32(gain)
    if ice_noise > 0:
        # white ice-structure phase, made directly on the rfft grid (variance N * s^2 per coefficient)
        flat = ctf_ft.ravel()
        mean_ctf2 = float(np.dot(flat, flat)) / flat.size
        s = np.sqrt(ice_noise / (4.0 * n0 * max(mean_ctf2, 1e-12)))
        scale = np.float32(s * np.sqrt(ny * nx / 2.0))
        white = rng.standard_normal((total_ft.shape[0], 2 * total_ft.shape[1]), dtype=np.float32)
        white *= scale
        total_ft += white.view(np.complex64)  # adjacent float pairs = (real, imag)
        del white
    total_ft *= ctf_ft
    intensity = sfft.irfft2(total_ft, s=shape, workers=1)  # contrast c, turned into N0 T (1 + 2 c) in place
    del total_ft
    intensity *= np.float32(2.0)
    intensity += np.float32(1.0)
    intensity *= trans
    intensity *= np.float32(n0)
    np.maximum(intensity, 0, out=intensity)
    image = np.sqrt(intensity)
    image *= rng.standard_normal(shape, dtype=np.float32)
    image += intensity
    if mtf:
        image = sfft.irfft2(sfft.rfft2(image, workers=1) * detector_mtf(shape), s=shape, workers=1)
    return np.ascontiguousarray(image, dtype=np.float32), potential, snr_physical, gain


def simulate_micrograph(shape: tuple[int, int] = (512, 512), particle: str | None = None,
                        n_particles: int | None = None, pixel_size: float | None = None, seed: int = 0,
                        object: str = "particle", *, name: str | None = None,
                        density: float | None = None, min_distance_frac: float = 0.85,
                        snr: float | None | str = "auto", dose: float = DEFAULT_DOSE,
                        defocus_um: float | None = None, astigmatism_um: float | None = None,
                        astigmatism_angle_deg: float | None = None, voltage_kv: float = 300.0,
                        cs_mm: float = 2.7, amplitude_contrast: float = 0.07, bfactor_a2: float | None = None,
                        ice_thickness_nm: float | None = None, ice_gradient_nm: float | None = None,
                        unevenness: float | None = None, ice_noise: float = 0.3, mtf: bool = False,
                        contamination: int | None = None, carbon: float | None = None,
                        junk_fraction: float | None = None, clean: bool = False,
                        n_bins: int = DEFAULT_BINS,
                        vesicle_radius_nm: tuple[float, float] = (20.0, 100.0),
                        persistence_nm: float | None = None, fiber_spacing_px: float | None = None,
                        keep_potential: bool = False) -> SimulatedMicrograph:
    """Simulate one micrograph of ``shape`` (ny, nx) px with known truth; deterministic for ``seed``.

    - ``object``: "particle" (``particle`` = a type from list_particle_types(), default ribosome),
      "vesicle" (truth radius in px) or "fiber" (``particle`` = a fiber type, default amyloid; truth
      as ordered points with tube IDs).
    - ``n_particles``: objects to place (particles, vesicles or fibers); default from ``density``
      (fraction of the area the objects cover, default 0.2; crowded ~0.5 with overlaps when
      ``min_distance_frac`` < 1).
    - ``pixel_size`` A/px (default: auto_pixel_size). ``snr``: per-object SNR after the CTF (None =
      physical contrast at ``dose`` e/A^2; "auto" = DEFAULT_SNR of the object kind). Defocus
      0.8-3 um, astigmatism and B-factor are drawn when not given.
    - Realism (drawn when None; all off with ``clean=True``): ``contamination`` blobs, ``carbon``
      (fraction of the image depth covered by carbon film), ``junk_fraction`` (aggregates and broken
      particles per particle), ``unevenness``, ice thickness and gradient; ``ice_noise`` is the
      CTF-filtered ice structure's variance relative to shot noise; ``mtf`` applies a detector MTF.
    - ``keep_potential``: also return the truth objects' projected thickness (A), before the CTF,
      and the ``excluded`` mask (carbon film and ice contamination, where no object is placed).
    """
    if object not in OBJECT_TYPES:
        raise ValueError(f"object must be one of {OBJECT_TYPES}, not {object!r}")
    ny, nx = int(shape[0]), int(shape[1])
    if ny < 16 or nx < 16:
        raise ValueError(f"micrograph shape {shape} is too small (at least 16 x 16 px)")
    shape = (ny, nx)
    rng = np.random.default_rng(seed)
    if snr == "auto":
        snr = DEFAULT_SNR[object]

    # ---- what is imaged, at which scale
    if object == "particle":
        kind = particle or "ribosome"
        diameter_a = get_particle_type(kind).diameter_a
    elif object == "vesicle":
        kind = "vesicle"
        diameter_a = float(sum(vesicle_radius_nm)) * 10.0  # mean diameter, A
    else:
        kind = particle or "amyloid"
        if kind not in F.FIBER_TYPES:
            raise ValueError(f"unknown fiber type {kind!r}; known: {', '.join(F.FIBER_TYPES)}")
        diameter_a = F.FIBER_TYPES[kind].diameter_nm * 10.0
    px = float(pixel_size) if pixel_size else auto_pixel_size(diameter_a, shape, object)
    diameter_px = diameter_a / px
    n0 = dose * px * px  # electrons per pixel

    # ---- microscope (drawn in a fixed order so a seed fixes everything)
    draw = rng.uniform(size=8)
    df_um = defocus_um if defocus_um is not None else 0.8 + 2.2 * draw[0]
    ast_um = astigmatism_um if astigmatism_um is not None else 0.02 + 0.15 * draw[1]
    ast_deg = astigmatism_angle_deg if astigmatism_angle_deg is not None else 180.0 * draw[2]
    bfac = bfactor_a2 if bfactor_a2 is not None else 40.0 + 110.0 * draw[3]
    ctf = CTFParams(df_um * 1e4 + ast_um * 5e3, df_um * 1e4 - ast_um * 5e3, ast_deg,
                    voltage_kv, cs_mm, amplitude_contrast, bfac)
    if clean:
        ice_t, ice_g, uneven, n_cont, carbon_depth, junk_frac = 400.0, 0.0, 0.0, 0, 0.0, 0.0
    else:
        ice_t = ice_thickness_nm * 10 if ice_thickness_nm is not None else 250.0 + 500.0 * draw[4]
        # drawn small: on the real EMPIAR-10017 and -10947 micrographs under 1 % of the variance (after
        # epick's preprocessing) lies at scales above 4 particle diameters; a 12 nm ice gradient or 1.5 %
        # illumination unevenness put 70-80 % there and halved the particles' contrast after equalisation
        ice_g = ice_gradient_nm * 10 if ice_gradient_nm is not None else 25.0 * draw[5]
        uneven = unevenness if unevenness is not None else 0.0002 + 0.002 * draw[6]
        n_cont = contamination if contamination is not None else int(rng.poisson(0.8 * ny * nx / 2048.0 ** 2))
        carbon_depth = carbon if carbon is not None else (rng.uniform(0.08, 0.3) if draw[7] < 0.2 else 0.0)
        junk_frac = junk_fraction if junk_fraction is not None else 0.08
    if density is None:
        density = 0.2 if object != "fiber" else 0.03

    trans, other, allowed, carbon_frac, n_blobs = _background(rng, shape, px, ice_t, ice_g, uneven,
                                                              carbon_depth, n_cont)
    obj = np.zeros(shape, dtype=np.float32)  # truth objects: thickness in A of protein-equivalent density
    radius = tube_id = kernel_ft = None
    extra: dict = {}
    junk_xy = np.zeros((0, 2), dtype=np.int64)
    if object == "particle":
        if n_particles is None:
            n_particles = int(round(density * ny * nx / (np.pi * diameter_px ** 2 / 4)))
        truth_x, truth_y, junk_xy = _place_particles(rng, obj, other, allowed, kind, px, diameter_px, n_particles,
                                                    min_distance_frac, junk_frac, n_bins)
    elif object == "vesicle":
        truth_x, truth_y, radius = _place_vesicles(rng, obj, allowed, px, vesicle_radius_nm, n_particles, density)
    else:
        ftype = F.FIBER_TYPES[kind]
        lp_px = (persistence_nm if persistence_nm is not None else ftype.persistence_nm) * 10.0 / px
        if n_particles is None:
            n_particles = max(1, int(round(density * ny * nx / (diameter_px * max(ny, nx)))))
        spacing = fiber_spacing_px or max(4.0, diameter_px)
        truth_x, truth_y, tube_id = _place_fibers(rng, obj, ftype, px, diameter_px, n_particles, lp_px, spacing)
        kernel_ft = F.disk_kernel_ft(shape, diameter_px / 2)
        extra = {"persistence_nm": lp_px * px / 10.0, "spacing_px": float(spacing)}
    image, potential, snr_physical, gain = _form_image(rng, obj, other, trans, kernel_ft, ctf, px, n0, snr,
                                                       ice_noise, mtf, keep_potential)

    mname = name or f"{kind}_{seed:06d}"
    truth = Picks(mname, np.asarray(truth_x, float), np.asarray(truth_y, float),
                  score=np.ones(len(truth_x)), radius=radius, tube_id=tube_id, shape=shape,
                  diameter=float(2 * np.median(radius) if object == "vesicle" and len(radius) else diameter_px),
                  pixel_size=px)
    params = {
        "micrograph": mname, "object": object, "particle": kind, "seed": int(seed), "shape": [ny, nx],
        "pixel_size_a": px, "diameter_a": float(diameter_a), "diameter_px": float(diameter_px),
        "n_objects": int(len(truth_x)) if object != "fiber" else int(len(set(tube_id.tolist()))),
        "n_points": int(len(truth_x)),
        "dose_e_per_a2": float(dose), "electrons_per_px": float(n0), "snr_target": snr,
        "snr_physical": float(snr_physical), "snr": float(snr_physical * gain * gain), "contrast_gain": gain,
        "ctf": ctf.to_dict(), "defocus_um": float(df_um), "ice_thickness_a": float(ice_t),
        "ice_gradient_a": float(ice_g), "unevenness": float(uneven), "ice_noise": float(ice_noise),
        "mtf": bool(mtf), "contamination_blobs": n_blobs, "carbon_fraction": carbon_frac,
        "junk": len(junk_xy), "junk_xy": junk_xy.tolist(), "density": float(density),
        "min_distance_frac": float(min_distance_frac),
        "n_bins": int(n_bins), "clean": bool(clean), **extra,
    }
    if object == "particle":
        params["particle_source"] = get_particle_type(kind).source
    return SimulatedMicrograph(image, truth, params, potential, ~allowed if keep_potential else None)
