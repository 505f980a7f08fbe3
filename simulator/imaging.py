"""Image formation: electron wavelength, CTF with astigmatism and B-factor envelope, detector MTF.

Conventions: spatial frequency ``k`` in 1/A; defocus in A, positive = underfocus (RELION);
astigmatism angle in degrees from the x axis (image columns). The weak-phase image contrast is
``c = IFFT(CTF * FFT(phase))`` with ``CTF = -(sqrt(1 - A^2) sin(gamma) + A cos(gamma)) * exp(-B k^2 / 4)``
and ``gamma = pi * lambda * df * k^2 - pi / 2 * Cs * lambda^3 * k^4``, so protein (positive phase)
is dark at low frequency, as in real underfocused micrographs; the recorded intensity is
``dose * (1 + 2 c)``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

INTERACTION_RAD_PER_V_A = 6.53e-4  # sigma at 300 kV: phase (rad) per volt-Angstrom of projected potential
PROTEIN_CONTRAST_V = 2.5  # mean inner potential of protein minus that of vitreous ice (V)


def electron_wavelength_a(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Angstrom (0.0197 A at 300 kV)."""
    v = voltage_kv * 1e3
    return 12.2643 / np.sqrt(v * (1 + 0.978466e-6 * v))


@dataclass
class CTFParams:
    """Microscope and defocus settings of one micrograph (A, mm, kV, degrees, A^2)."""

    defocus_u_a: float = 15000.0
    defocus_v_a: float = 15000.0
    astigmatism_angle_deg: float = 0.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    bfactor_a2: float = 80.0

    def to_dict(self) -> dict:
        """JSON-ready copy."""
        return {k: float(v) for k, v in asdict(self).items()}


def frequency_grid(shape: tuple[int, int], pixel_size: float, real: bool = True):
    """(kx, ky) in 1/A on the (r)fft2 grid of an image of ``shape`` (rows, cols) at ``pixel_size`` A/px."""
    ny, nx = shape
    ky = np.fft.fftfreq(ny, d=pixel_size).astype(np.float32)[:, None]
    kx = (np.fft.rfftfreq(nx, d=pixel_size) if real else np.fft.fftfreq(nx, d=pixel_size)).astype(np.float32)[None, :]
    return kx, ky


def ctf_2d(shape: tuple[int, int], pixel_size: float, p: CTFParams, real: bool = True) -> np.ndarray:
    """The CTF (with B-factor envelope) on the rfft2 grid of an image of ``shape``, float32.

    Astigmatism: df(theta) = mean + half_diff * cos(2 (theta - angle)), evaluated without arctan2 as
    cos(2 theta) = (kx^2 - ky^2) / k^2 and sin(2 theta) = 2 kx ky / k^2 (all float32 for speed).
    """
    kx, ky = frequency_grid(shape, pixel_size, real)
    kx2, ky2 = kx * kx, ky * ky
    k2 = kx2 + ky2
    lam = float(electron_wavelength_a(p.voltage_kv))
    cs = float(p.cs_mm) * 1e7
    mean_df = 0.5 * float(p.defocus_u_a + p.defocus_v_a)
    half = 0.5 * float(p.defocus_u_a - p.defocus_v_a)
    a2 = 2.0 * float(np.deg2rad(p.astigmatism_angle_deg))
    # gamma = pi lam (mean_df k^2 + half (cos2a (kx^2 - ky^2) + sin2a 2 kx ky)) - pi/2 Cs lam^3 k^4
    g = (kx2 - ky2) * (half * float(np.cos(a2)))
    g += (2.0 * half * float(np.sin(a2))) * (kx * ky)
    g += mean_df * k2
    g *= np.pi * lam
    g -= (0.5 * np.pi * cs * lam ** 3) * (k2 * k2)
    a = float(p.amplitude_contrast)
    ctf = np.sin(g)
    ctf *= -np.sqrt(1.0 - a * a)
    ctf -= a * np.cos(g)
    if p.bfactor_a2:
        ctf *= np.exp(k2 * (-float(p.bfactor_a2) / 4.0))
    return ctf.astype(np.float32, copy=False)


def ctf_zeros_per_a(defocus_a: float, p: CTFParams, n: int = 5) -> np.ndarray:
    """The first ``n`` spatial frequencies (1/A) where the (isotropic) CTF is zero.

    Zeros satisfy gamma = m * pi - arctan(A / sqrt(1 - A^2)), m = 1, 2, ...; solved for k^2 from the
    quadratic in k^2 (the Cs term) on the branch that starts at k = 0.
    """
    lam = electron_wavelength_a(p.voltage_kv)
    cs = p.cs_mm * 1e7
    a = p.amplitude_contrast
    phi = np.arctan(a / np.sqrt(1 - a * a))
    out = []
    for m in range(1, n + 1):
        target = m * np.pi - phi
        qa, qb, qc = 0.5 * np.pi * cs * lam ** 3, -np.pi * lam * defocus_a, target
        disc = qb * qb - 4 * qa * qc
        if disc < 0:
            break
        k2 = (-qb - np.sqrt(disc)) / (2 * qa)
        out.append(np.sqrt(k2))
    return np.array(out)


def detector_mtf(shape: tuple[int, int], real: bool = True) -> np.ndarray:
    """A counting detector's MTF on the rfft2 grid: sinc(f_x) * sinc(f_y), f in cycles/px (0.64 at Nyquist)."""
    kx, ky = frequency_grid(shape, 1.0, real)
    return (np.sinc(kx) * np.sinc(ky)).astype(np.float32)


def radial_profile(power: np.ndarray, pixel_size: float, nbins: int | None = None):
    """Rotational average of a centred (fftshifted) 2-D power spectrum: (k 1/A, mean power)."""
    ny, nx = power.shape
    y, x = np.indices(power.shape)
    r = np.hypot((x - nx // 2) / nx, (y - ny // 2) / ny) / pixel_size
    nbins = nbins or min(ny, nx) // 2
    edges = np.linspace(0, 0.5 / pixel_size, nbins + 1)
    idx = np.digitize(r.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < nbins)
    s = np.bincount(idx[ok], weights=power.ravel()[ok], minlength=nbins)
    c = np.bincount(idx[ok], minlength=nbins)
    return 0.5 * (edges[1:] + edges[:-1]), s / np.maximum(c, 1)
