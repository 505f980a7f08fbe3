"""Training and test data of the general model (issue 16), as preprocessed ``Sample`` lists.

- ``simulated_samples``: simulated micrographs of a ``SimRecipe`` (``LOOKALIKE``: beta-gal-like
  particles of 31.6 px at 1024 px, the bundled demo model's recipe; ``VARIED``: every parametric
  type, 16-64 px, SNR drawn, half of them rendered as 8-bit images the way public data look: low-pass
  filtered (denoised look) and quantised to 16-256 grey levels over a robust range; ``RECIPES`` names
  these and the variants measured beside them: FAINT, ATOMIC (the shared PDB models), DENOISED,
  LOOKDEN, LOOKFAINT, PACKED (faint cores packed edge to edge, labelled with their spacing)), each
  with the simulator's ice / carbon / contamination / junk.
- ``real_samples``: a real set of the shared data (``../shared/data``: EMPIAR-10017 beta-gal,
  EMPIAR-10947) with its STAR truth.

Every image goes through the runtime's ``preprocess`` with the model's ``PreprocessParams``
(fixed width, or the particle-size mode: resampled so the particle diameter spans ``particle_px`` pixels).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from epick.trainer.data import Sample

REAL_SETS = {"betagal": "empiar10017_betagal", "empiar10947": "empiar10947"}
PARAMETRIC_TYPES = ("ribosome", "proteasome", "apoferritin", "toxin", "virus", "betagal", "small", "chaperonin",
                    "spike", "dumbbell", "ring", "cage", "prolate", "lshape")
# particle types projected from the atomic models of the shared data (simulator.particles.ATOMIC_MODELS)
ATOMIC_TYPES = ("pdb-6z6u", "pdb-4v1w", "pdb-4v5d", "pdb-3jb9", "pdb-6qt9")


def shared_data() -> Path:
    """The shared real data ($EPICK_SHARED_DATA, else ../shared/data beside the checkout)."""
    env = os.environ.get("EPICK_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def render_8bit(image: np.ndarray, rng: np.random.Generator, diameter_px: float,
                lowpass: tuple[float, float] = (0.0, 0.12), levels: Sequence[int] = (16, 24, 32, 64, 256)
                ) -> np.ndarray:
    """An 8-bit rendering like public JPEG/PNG data: Gaussian low-pass (sigma drawn in ``lowpass`` x
    the diameter), robust 0.5-99.5 % range, quantised to one of ``levels`` grey levels (returned as
    float32 levels)."""
    from scipy.ndimage import gaussian_filter

    sigma = float(rng.uniform(*lowpass)) * diameter_px
    img = gaussian_filter(image.astype(np.float32), sigma) if sigma > 0.3 else image.astype(np.float32)
    lo, hi = np.percentile(img, [0.5, 99.5])
    n_levels = int(rng.choice(list(levels)))
    q = np.clip((img - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return (np.floor(q * (n_levels - 1) + 0.5) * (255.0 / (n_levels - 1))).astype(np.float32)


@dataclass(frozen=True)
class SimRecipe:
    """What a simulated training set looks like. Sizes are pixels of the simulated micrograph, which
    is simulated directly at the network scale (``size`` = the fixed-width mode's 1024)."""

    types: tuple[str, ...] = ("betagal",)
    diameter_px: tuple[float, float] = (31.6, 31.6)   # drawn log-uniformly
    snr: tuple[float, float] = (0.4, 0.4)             # per-particle SNR, drawn log-uniformly
    density: tuple[float, float] = (0.1, 0.4)         # area fraction covered, drawn uniformly
    render_fraction: float = 0.0                      # share rendered as 8-bit public-data look-alikes
    lowpass: tuple[float, float] = (0.0, 0.12)        # their low-pass sigma, x the diameter
    levels: tuple[int, ...] = (16, 24, 32, 64, 256)   # their grey levels (one drawn per micrograph)
    size: int = 1024
    # centres at least this x the diameter apart, drawn uniformly when the two differ (the simulator's
    # default 0.85 otherwise); with ``label_spacing`` the labels' diameter is that spacing, not the
    # particle's: a small visible core inside a larger labelled disk, packed as tightly as it allows
    min_distance: tuple[float, float] = (0.85, 0.85)
    label_spacing: bool = False


# beta-gal-like particles at the scale of a 4096-px micrograph resampled to width 1024 (the recipe
# of the bundled demo model, which transfers to both real sets)
LOOKALIKE = SimRecipe()
# every parametric type, 16-64 px, SNR 0.15-0.6, half rendered as 8-bit images
VARIED = SimRecipe(types=PARAMETRIC_TYPES, diameter_px=(16.0, 64.0), snr=(0.15, 0.6), render_fraction=0.5)
# faint, larger, crowded particles in few grey levels, like binned contrast-stretched PNG data
FAINT = SimRecipe(types=("betagal", "apoferritin", "proteasome", "ribosome"), diameter_px=(32.0, 64.0),
                  snr=(0.1, 0.3), density=(0.3, 0.5), render_fraction=1.0, lowpass=(0.0, 0.0), levels=(16, 24, 32))
# the atomic models' projections (apoferritin, ribosome, spliceosome, virus capsid unit), sizes and looks as VARIED
ATOMIC = SimRecipe(types=ATOMIC_TYPES, diameter_px=(16.0, 64.0), snr=(0.15, 0.6), render_fraction=0.5)
# denoised-looking, crowded micrographs of every parametric type: the real beta-gal JPEGs (denoised) keep
# almost no variance above 4 cycles per particle diameter and most of it at 1-2 (crowded particles);
# a low-pass of 0.05-0.12 diameters over crowded particles puts the simulated spectrum there (0.08 matches)
DENOISED = SimRecipe(types=PARAMETRIC_TYPES, diameter_px=(20.0, 40.0), snr=(0.2, 0.6), density=(0.25, 0.5),
                     render_fraction=1.0, lowpass=(0.05, 0.12), levels=(64, 128, 256))
# the beta-gal look-alikes crowded and rendered the denoised way, or crowded and fainter (raw look)
LOOKDEN = replace(LOOKALIKE, render_fraction=1.0, lowpass=(0.05, 0.12), levels=(64, 128, 256), density=(0.25, 0.5))
LOOKFAINT = replace(LOOKALIKE, snr=(0.12, 0.3), density=(0.25, 0.5))
# faint cores (every parametric type, 20-36 px, SNR 0.04-0.3) packed 1.6-2.2 diameters apart as tightly
# as they go and labelled with that spacing, like EMPIAR-10947: its particles average to a dark spot of
# about a quarter of the labelled 60 px, ~275 per 1024-px micrograph, as hard to see as SNR ~0.04 here
# (benchmarks/recipe_realism.py); half rendered as 8-bit images
PACKED = SimRecipe(types=PARAMETRIC_TYPES, diameter_px=(20.0, 36.0), snr=(0.04, 0.3), density=(0.2, 0.3),
                   render_fraction=0.5, min_distance=(1.6, 2.2), label_spacing=True)
# every parametric type at 48-128 px, as VARIED otherwise: large particles, or a small pixel size, at the
# 1024 scale (the model trained without them loses them above ~50 px)
LARGE = replace(VARIED, diameter_px=(48.0, 128.0))
RECIPES = {"lookalike": LOOKALIKE, "varied": VARIED, "large": LARGE, "faint": FAINT, "atomic": ATOMIC, "denoised": DENOISED,
           "lookden": LOOKDEN, "lookfaint": LOOKFAINT, "packed": PACKED}


def simulated_samples(n: int, params, *, seed: int = 0, recipe: SimRecipe = LOOKALIKE, dataset: str = "sim",
                      prefix: str | None = None, progress: bool = True) -> list[Sample]:
    """``n`` simulated micrographs of ``recipe`` (types cycled; micrograph i has simulator seed
    ``seed * 1000 + i`` and the name ``<prefix><i>``, prefix default ``<dataset><seed>_``)
    preprocessed with ``params`` as Samples."""
    from tqdm import tqdm

    from epick.runtime.preprocess import preprocess
    from epick.simulator import simulate_micrograph
    from epick.simulator.particles import atomic_models_dir, particle_diameter_a, set_atomic_models_dir

    if set(recipe.types) & set(ATOMIC_TYPES) and atomic_models_dir() is None:
        set_atomic_models_dir(shared_data() / "atomic_models")   # the shared data's PDB models, for this call
        try:
            return simulated_samples(n, params, seed=seed, recipe=recipe, dataset=dataset, prefix=prefix,
                                     progress=progress)
        finally:
            set_atomic_models_dir(None)
    rng = np.random.default_rng(seed)
    name_prefix = prefix if prefix is not None else f"{dataset}{seed}_"

    def log_uniform(lo_hi: tuple[float, float]) -> float:
        return float(np.exp(rng.uniform(*np.log(lo_hi))))

    out = []
    for i in tqdm(range(n), desc="simulate", unit="mic", disable=not progress):
        kind = recipe.types[i % len(recipe.types)]
        d_px = log_uniform(recipe.diameter_px)
        snr = log_uniform(recipe.snr)
        lo, hi = recipe.min_distance
        spacing = float(rng.uniform(lo, hi)) if hi > lo else lo
        sim = simulate_micrograph((recipe.size, recipe.size), kind, pixel_size=particle_diameter_a(kind) / d_px,
                                  seed=seed * 1000 + i, density=float(rng.uniform(*recipe.density)), snr=snr,
                                  min_distance_frac=spacing)
        d = float(sim.params["diameter_px"])
        image = (render_8bit(sim.image, rng, d, recipe.lowpass, recipe.levels) if rng.uniform() < recipe.render_fraction
                 else sim.image)
        d_label = d * spacing if recipe.label_spacing else d   # px of the simulated micrograph
        u8, tr = preprocess(image, params.with_diameter(d_label))
        u, v = tr.to_network(sim.truth.x, sim.truth.y)
        out.append(Sample(f"{name_prefix}{i:04d}", dataset, u8, np.stack([u, v], 1), diameter=d_label / tr.scale_x,
                          scale=float(tr.scale_x)))
    return out


def real_samples(name: str, params, *, names: Sequence[str] | None = None, dataset: str | None = None
                 ) -> list[Sample]:
    """The micrographs of shared real set ``name`` (optionally only ``names``, by stem) as labelled Samples."""
    from epick.runtime.io.coordinates import read_picks
    from epick.runtime.io.micrograph import find_micrographs, read_micrograph
    from epick.runtime.preprocess import preprocess

    out = []
    for path in find_micrographs([shared_data() / REAL_SETS[name]]):
        if names is not None and path.stem not in names:
            continue
        truth = read_picks(path.with_suffix(".star"))[0]
        mic = read_micrograph(path)
        u8, tr = preprocess(mic.data, params.with_diameter(float(truth.diameter)))
        u, v = tr.to_network(truth.x, truth.y)
        out.append(Sample(path.stem, dataset or name, u8, np.stack([u, v], 1),
                          diameter=float(truth.diameter) / tr.scale_x, scale=float(tr.scale_x)))
    return out


def score_samples(network, samples: Sequence[Sample], thresholds: Sequence[float] | None = None) -> dict:
    """AP and AR (all peaks >= 0.05), and F1 per score threshold with the best one, of ``network``
    on labelled ``samples`` (the project's evaluate, box IoU >= 0.5 at each sample's diameter)."""
    from epick.runtime.evaluate import evaluate
    from epick.runtime.picks import Picks

    from epick.trainer.validate import predict_peaks, truth_picks

    thresholds = list(thresholds if thresholds is not None else np.round(np.arange(0.05, 0.96, 0.05), 2))
    peaks = [predict_peaks(network, s.image) for s in samples]
    truth = [truth_picks(s) for s in samples]
    diam = float(np.mean([s.diameter for s in samples]))
    rows = {}
    for t in thresholds:
        picks = [Picks(s.name, p.x[p.score >= t], p.y[p.score >= t], score=p.score[p.score >= t],
                       diameter=s.diameter) for s, p in zip(samples, peaks)]
        m = evaluate(picks, truth, diameter=diam)
        rows[float(t)] = {k: m[k] for k in ("ap", "ar", "precision", "recall", "f1")}
    base = rows[float(thresholds[0])]
    best = max(rows, key=lambda t: rows[t]["f1"] or 0.0)
    return {"ap": base["ap"], "ar": base["ar"], "best_f1": rows[best]["f1"], "best_threshold": best,
            "n_micrographs": len(samples), "by_threshold": {f"{t:g}": r for t, r in rows.items()}}
