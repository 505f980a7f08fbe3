"""Helpers for the trainer tests (no tests here): small micrographs made by the project's simulator
(``epick.simulator.simulate_micrograph``), written as MRC + truth STAR like `epick simulate` does.

Two kinds of particles, each a simulator particle type drawn at a fixed size in pixels:
"apo" (apoferritin-like hollow shell, 16 px) and "virus" (icosahedral capsid filled with genome, 26 px).
Micrographs are 256 x 256 px with the simulator's full realism (CTF, shot noise, ice, junk); the
per-particle SNR is high (4) so a narrow network learns them in ~50 Adam steps (~20 s on one core);
at SNR 0.5-1.5 the same 12-epoch run stays below AP 0.4.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from epick.runtime.picks import Picks

# kind -> (simulator particle type, diameter in pixels)
TYPES = {"apo": ("apoferritin", 16.0), "virus": ("virus", 26.0)}
KINDS = {kind: diameter for kind, (_, diameter) in TYPES.items()}
N_PARTICLES = {"apo": 60, "virus": 40}  # per 256 x 256 micrograph: ~20 % and ~30 % of the area
SNR = 4.0  # per-object SNR after the CTF (simulator default 0.08): clearly visible, learnt in ~50 Adam steps


def simulate(kind: str, n: int, seed: int, shape=(256, 256), snr: float = SNR):
    """(SimulatedMicrograph, centres [n, 2] (x, y) in px) of one micrograph of ``kind``."""
    from epick.simulator import particle_diameter_a, simulate_micrograph

    particle, diameter = TYPES[kind]
    pixel_size = particle_diameter_a(particle) / diameter  # A/px that draws the particle ``diameter`` px wide
    sim = simulate_micrograph(shape, particle, n_particles=n, pixel_size=pixel_size, seed=seed, snr=snr,
                              name=f"{kind}_{seed}")
    return sim, np.stack([sim.truth.x, sim.truth.y], axis=1)


def write_dataset(folder: Path, kind: str, n_mics: int, seed: int, n_particles: int | None = None,
                  keep_fraction: float = 1.0, **kwargs) -> tuple[Path, Path]:
    """Write ``n_mics`` MRC micrographs and one STAR per micrograph (a random ``keep_fraction`` of
    the particles labelled); returns (micrograph dir, star dir)."""
    from epick.runtime.io.coordinates import write_picks
    from epick.runtime.io.micrograph import write_mrc

    mics, stars = folder / "mics", folder / "stars"
    mics.mkdir(parents=True, exist_ok=True)
    stars.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 10_000)
    for i in range(n_mics):
        sim, pts = simulate(kind, n_particles or N_PARTICLES[kind], seed * 1000 + i, **kwargs)
        keep = rng.random(len(pts)) < keep_fraction
        name = f"{kind}_{seed}_{i:03d}"
        write_mrc(mics / f"{name}.mrc", sim.image, pixel_size=sim.params["pixel_size_a"])
        write_picks([Picks(name, pts[keep, 0], pts[keep, 1], diameter=KINDS[kind], shape=sim.image.shape)],
                    stars / f"{name}.star", diameter=KINDS[kind])
    return mics, stars


def write_mixed_dataset(folder: Path, kind: str, other: str, n_mics: int, seed: int,
                        n_particles: int = 30) -> tuple[Path, Path]:
    """Like ``write_dataset`` for ``kind``, but each micrograph also holds ``n_particles`` of ``other``
    that are left unlabelled (the sum of two simulated micrographs): a new sample whose grids also
    carry the old particle, so a model trained on its labels alone learns to ignore the old one."""
    from epick.runtime.io.coordinates import write_picks
    from epick.runtime.io.micrograph import write_mrc

    mics, stars = folder / "mics", folder / "stars"
    mics.mkdir(parents=True, exist_ok=True)
    stars.mkdir(parents=True, exist_ok=True)
    for i in range(n_mics):
        sim, pts = simulate(kind, n_particles, seed * 1000 + i)
        background, _ = simulate(other, n_particles, seed * 1000 + 500 + i)
        image = (sim.image + background.image).astype(np.float32)
        name = f"{kind}+{other}_{seed}_{i:03d}"
        write_mrc(mics / f"{name}.mrc", image, pixel_size=sim.params["pixel_size_a"])
        write_picks([Picks(name, pts[:, 0], pts[:, 1], diameter=KINDS[kind], shape=image.shape)],
                    stars / f"{name}.star", diameter=KINDS[kind])
    return mics, stars
