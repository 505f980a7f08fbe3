"""How detectable the particles of each training recipe are, against the real sets, as the network sees them.

    python benchmarks/recipe_realism.py [--recipes lookalike varied ...] [--n 4] [--seed 100]
                                        [--snr-sweep 0.03 0.1 ...] [--model M.epick] [--json OUT]

Every image goes through the preprocessing of ``--model`` (default: the bundled general model;
network images 1024 wide, its low-pass and background filters), real micrographs (labels of the
shared data) and simulated ones (``tools.general_data.simulated_samples``, ``--n`` per recipe) alike.
Per micrograph, in network pixels:

- ``dprime``: detectability of its particles to a matched filter made of its own mean particle
  (the mean crop around the true centres, made zero-mean inside a disk of radius 0.6 diameters):
  (mean filter response at the true centres - mean at background points) / standard deviation at
  the background points, which lie farther than half a diameter from every centre; cross-fitted
  (each half of the particles scored with the other half's mean, so no crop scores itself). A linear
  detector's view of the signal-to-noise ratio: the particles it cannot separate from the
  background, a simulation that trains on much larger values teaches the model an easier task
  than the real one;
- ``particles``: labelled centres used (those whose crop lies inside the image).
``--snr-sweep`` also measures the ``lookalike`` recipe at each given per-particle SNR (the simulator's
``snr``), to read off which SNR gives a real set's d'.
Prints a table (median and range over micrographs per set or recipe), writes JSON (machine,
versions, every per-micrograph number).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_general as bg  # noqa: E402

TEMPLATE_RADIUS = 0.6        # x the diameter: the matched filter's disk
BACKGROUND_DISTANCE = 0.5    # x the diameter: background points at least this far from every centre
BACKGROUND_POINTS = 2000     # drawn per micrograph (fewer when the particles leave less room)
DEFAULT_RECIPES = ("lookalike", "varied", "packed", "lookden", "lookfaint", "denoised")


def inside_points(points: np.ndarray, shape: tuple[int, int], radius: int) -> np.ndarray:
    """``points`` (x, y) rounded to integer pixels, keeping those whose crop of ``radius`` lies fully inside."""
    h, w = shape
    xy = np.round(np.asarray(points, float)).astype(int).reshape(-1, 2)
    return xy[(xy[:, 0] >= radius) & (xy[:, 0] < w - radius) & (xy[:, 1] >= radius) & (xy[:, 1] < h - radius)]


def particle_crops(image: np.ndarray, xy: np.ndarray, radius: int) -> np.ndarray:
    """Crops [k, 2r+1, 2r+1] (float) centred on integer ``xy`` (x, y) from ``inside_points``."""
    return np.array([image[y - radius:y + radius + 1, x - radius:x + radius + 1] for x, y in xy],
                    dtype=np.float64).reshape(-1, 2 * radius + 1, 2 * radius + 1)


def _template(crops: np.ndarray, disk: np.ndarray) -> np.ndarray:
    """Mean crop, zero outside ``disk`` and zero-mean inside it."""
    t = np.where(disk, crops.mean(0), 0.0)
    t[disk] -= t[disk].mean()
    return t


def detectability(image: np.ndarray, points: np.ndarray, diameter: float, seed: int = 0) -> dict:
    """Matched-filter d' of the particles at ``points`` (x, y, pixels of ``image``) of ``diameter`` px.

    Cross-fitted: the particles are split in two halves at random, each half is scored with the mean
    particle of the other half (a crop inside its own template would raise its score by itself), and
    the two halves' d' are averaged."""
    from scipy.signal import fftconvolve
    from scipy.spatial import cKDTree

    radius = max(2, int(np.ceil(TEMPLATE_RADIUS * diameter)))
    img = np.asarray(image, np.float64)
    h, w = img.shape
    xy = inside_points(points, img.shape, radius)
    if len(xy) < 4:
        return {"dprime": None, "particles": int(len(xy))}
    rng = np.random.default_rng(seed)
    half = rng.permutation(len(xy)) % 2 == 0
    cand = rng.uniform((radius, radius), (w - radius, h - radius), size=(4 * BACKGROUND_POINTS, 2))
    dist, _ = cKDTree(np.asarray(points, float).reshape(-1, 2)).query(cand)
    background_xy = cand[dist > BACKGROUND_DISTANCE * diameter][:BACKGROUND_POINTS].astype(int)
    if len(background_xy) < 10:
        return {"dprime": None, "particles": int(len(xy))}
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disk = np.hypot(xx, yy) <= radius
    centred = img - img.mean()
    values = []
    for scored in (half, ~half):
        template = _template(particle_crops(img, xy[~scored], radius), disk)
        response = fftconvolve(centred, template[::-1, ::-1], mode="same")
        background = response[background_xy[:, 1], background_xy[:, 0]]
        if background.std() == 0:
            return {"dprime": None, "particles": int(len(xy))}
        at_particles = response[xy[scored, 1], xy[scored, 0]]
        values.append((at_particles.mean() - background.mean()) / background.std())
    return {"dprime": float(np.mean(values)), "particles": int(len(xy)), "background_points": int(len(background_xy))}


def measure_samples(samples) -> list[dict]:
    """detectability of each Sample (network image, centres, diameter in network px)."""
    return [{"micrograph": s.name, **detectability(s.image, s.points, s.diameter)} for s in samples]


def summary(rows: list[dict]) -> dict:
    """Median, min and max of d' over a group's micrographs."""
    vals = [r["dprime"] for r in rows if r["dprime"] is not None]
    if not vals:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": len(vals), "median": float(np.median(vals)), "min": float(min(vals)), "max": float(max(vals))}


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES))
    parser.add_argument("--n", type=int, default=4, help="simulated micrographs per recipe (default 4)")
    parser.add_argument("--seed", type=int, default=100, help="simulation seed (default 100)")
    parser.add_argument("--snr-sweep", type=float, nargs="*", default=[], metavar="SNR",
                        help="also the lookalike recipe at each of these SNRs")
    parser.add_argument("--model", type=Path, default=None, help="whose preprocessing (default: the bundled general model)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from epick.runtime.preprocess import PreprocessParams
    from epick.runtime.bundled import resolve_model
    from epick.trainer.modelfile import read_model_file
    from dataclasses import replace

    from tools.general_data import LOOKALIKE, RECIPES, REAL_SETS, real_samples, simulated_samples

    unknown = sorted(set(args.recipes) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {sorted(RECIPES)}")
    model = resolve_model(args.model or "general", kind="epick")
    prep = PreprocessParams.from_dict(read_model_file(model).metadata["preprocess"])
    record = bg.new_record("recipe_realism", {"recipes": args.recipes, "n": args.n, "seed": args.seed,
                                              "snr_sweep": args.snr_sweep,
                                              "model": str(model), "template_radius": TEMPLATE_RADIUS,
                                              "background_distance": BACKGROUND_DISTANCE})
    groups = [(f"real {name}", lambda name=name: real_samples(name, prep)) for name in REAL_SETS]
    groups += [(f"sim {r}", lambda r=r: simulated_samples(args.n, prep, seed=args.seed, recipe=RECIPES[r],
                                                          prefix=f"{r}{args.seed}_", progress=False))
               for r in args.recipes]
    groups += [(f"lookalike snr {x:g}", lambda x=x: simulated_samples(
        args.n, prep, seed=args.seed, recipe=replace(LOOKALIKE, snr=(x, x)), prefix=f"snr{x:g}_", progress=False))
        for x in args.snr_sweep]
    print(f"{'images':<20} {'micrographs':>11} {'d_prime median':>14} {'range':>13}")
    for label, make in groups:
        rows = measure_samples(make())
        s = summary(rows)
        record["rows"].append({"images": label, **s, "micrographs": rows})
        rng_txt = f"{s['min']:.2f}-{s['max']:.2f}" if s["n"] else "-"
        med = f"{s['median']:.2f}" if s["n"] else "-"
        print(f"{label:<20} {s['n']:>11} {med:>14} {rng_txt:>13}", flush=True)
    print(f"wrote {bg.write_json(record, args.json, 'recipe_realism')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
