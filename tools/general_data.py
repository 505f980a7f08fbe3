"""Training and test data of the general model (issue 16), as preprocessed ``Sample`` lists.

- ``simulated_samples``: varied simulated micrographs (every particle type, diameters 28-110 px,
  sparse to crowded, SNR drawn, the simulator's ice / carbon / contamination / junk), half of them
  rendered as 8-bit images the way public data look: low-pass filtered (denoised look) and
  quantised to 16-256 grey levels over a robust range (EMPIAR-10947's PNGs use ~20-30 levels,
  EMPIAR-10017's JPEGs are denoised).
- ``real_samples``: a real set of the shared data (``../shared/data``: EMPIAR-10017 beta-gal,
  EMPIAR-10947) with its STAR truth.

Every image goes through the runtime's ``preprocess`` with the model's ``PreprocessParams``
(particle-size mode: resampled so the particle diameter spans ``particle_px`` pixels).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from epick.trainer.data import Sample

REAL_SETS = {"betagal": "empiar10017_betagal", "empiar10947": "empiar10947"}
PARAMETRIC_TYPES = ("ribosome", "proteasome", "apoferritin", "toxin", "virus", "betagal", "small", "chaperonin",
                    "spike", "dumbbell", "ring", "cage", "prolate", "lshape")
DIAMETER_RANGE = (28.0, 110.0)  # particle diameter, original pixels of the simulated micrographs


def shared_data() -> Path:
    """The shared real data ($EPICK_SHARED_DATA, else ../shared/data beside the checkout)."""
    env = os.environ.get("EPICK_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def render_8bit(image: np.ndarray, rng: np.random.Generator, diameter_px: float) -> np.ndarray:
    """An 8-bit rendering like public JPEG/PNG data: Gaussian low-pass (sigma 0-12 % of the
    diameter), robust 0.5-99.5 % range, quantised to 16-256 levels (returned as float32 levels)."""
    from scipy.ndimage import gaussian_filter

    sigma = float(rng.uniform(0.0, 0.12)) * diameter_px
    img = gaussian_filter(image.astype(np.float32), sigma) if sigma > 0.3 else image.astype(np.float32)
    lo, hi = np.percentile(img, [0.5, 99.5])
    levels = int(rng.choice([16, 24, 32, 64, 256]))
    q = np.clip((img - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return (np.floor(q * (levels - 1) + 0.5) * (255.0 / (levels - 1))).astype(np.float32)


def simulated_samples(n: int, params, *, seed: int = 0, size: int = 768, render_fraction: float = 0.5,
                      types: Sequence[str] = PARAMETRIC_TYPES, dataset: str = "sim", progress: bool = True
                      ) -> list[Sample]:
    """``n`` varied simulated micrographs (types cycled) preprocessed with ``params`` as Samples."""
    from tqdm import tqdm

    from epick.runtime.preprocess import preprocess
    from epick.simulator import simulate_micrograph
    from epick.simulator.particles import particle_diameter_a

    rng = np.random.default_rng(seed)
    out = []
    for i in tqdm(range(n), desc="simulate", unit="mic", disable=not progress):
        kind = types[i % len(types)]
        d_px = float(np.exp(rng.uniform(*np.log(DIAMETER_RANGE))))
        sim = simulate_micrograph((size, size), kind, pixel_size=particle_diameter_a(kind) / d_px,
                                  seed=seed * 100000 + i, density=float(rng.uniform(0.05, 0.45)),
                                  snr=float(np.exp(rng.uniform(np.log(0.03), np.log(0.2)))))
        d = float(sim.params["diameter_px"])
        image = render_8bit(sim.image, rng, d) if rng.uniform() < render_fraction else sim.image
        u8, tr = preprocess(image, params.with_diameter(d))
        u, v = tr.to_network(sim.truth.x, sim.truth.y)
        out.append(Sample(f"{dataset}_{i:04d}", dataset, u8, np.stack([u, v], 1), diameter=d / tr.scale_x,
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
