"""Ready-made data sets: ``continual10`` (ten particle datasets as diverse as the paper's, plus one
vesicle and one fiber dataset; train/test splits) and ``general`` (every type, each micrograph with
its own imaging drawn by ``draw_general``, for pre-training a general model). Layout:
``OUT/<dataset>/{train,test}/NAME.{mrc,jpg,png,star}``, ``OUT/<dataset>/manifest.json`` and
``OUT/suite.json``; every STAR carries its micrograph's particle diameter (``# diameter_px``) and
every manifest row its parameters. Everything is fixed by the suite seed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from epick.runtime.io.atomic import atomic_write

from .fibers import FIBER_TYPES
from .micrograph import auto_pixel_size, simulate_micrograph
from .output import MANIFEST_NAME, write_manifest, write_simulated
from .particles import list_particle_types, particle_diameter_a
from .render import choose as choose_render


@dataclass
class DatasetSpec:
    """One dataset of a suite: what is imaged and how its micrographs vary."""

    name: str
    object: str
    particle: str | None
    pixel_scale: float = 1.0  # multiplies the automatic pixel size (larger = smaller particles)
    density: tuple[float, float] = (0.12, 0.35)
    snr: tuple[float, float] = (0.06, 0.1)
    pixel_jitter: float = 0.0  # per-micrograph pixel size = dataset's * exp(U(-j, j))
    mtf_probability: float = 0.0  # chance that a micrograph gets the detector MTF
    extra: dict = field(default_factory=dict)
    varied: bool = False  # particles: draw every micrograph's imaging with draw_general instead


CONTINUAL10 = [
    DatasetSpec("ribosome", "particle", "ribosome", 1.2),
    DatasetSpec("proteasome", "particle", "proteasome", 1.0),
    DatasetSpec("apoferritin", "particle", "apoferritin", 1.1, (0.25, 0.45)),
    DatasetSpec("toxin", "particle", "toxin", 1.3),
    DatasetSpec("virus", "particle", "virus", 1.4, (0.2, 0.4)),
    DatasetSpec("betagal", "particle", "betagal", 1.0),
    DatasetSpec("small", "particle", "small", 1.0, (0.15, 0.4), (0.05, 0.08)),
    DatasetSpec("chaperonin", "particle", "chaperonin", 1.0),
    DatasetSpec("spike", "particle", "spike", 1.1),
    DatasetSpec("dumbbell", "particle", "dumbbell", 1.2),
    DatasetSpec("vesicle", "vesicle", None, 1.0, (0.1, 0.25), (0.6, 1.2)),
    DatasetSpec("fiber", "fiber", "amyloid", 1.0, (0.02, 0.05), (0.2, 0.4)),
]


# what ``draw_general`` draws from (each micrograph independently)
GENERAL_DETECTOR_PIXEL_A = (0.5, 2.5)   # detector pixel size, A
GENERAL_MAX_DIAMETER_PX = 160.0          # larger particles: the micrograph is binned 2x, 4x, ... (as users do)
GENERAL_RENDERS = {"float": 0.4, "denoised": 0.3, "stretched": 0.3}


def draw_general(rng: np.random.Generator, diameter_a: float, shape: tuple[int, int] = (1024, 1024)) -> dict:
    """Imaging of one varied micrograph of a particle ``diameter_a`` A across: keyword arguments of
    ``simulate_micrograph`` plus ``render`` (see ``render.py``), ``detector_pixel_a`` and ``binning``.

    Detector pixel 0.5-2.5 A, binned by the smallest power of 2 that keeps the particle within
    min(160 px, a third of the micrograph); sparse to crowded (area fraction 0.03-0.6 log-uniform,
    overlaps down to 0.6 diameters); per-pixel SNR 0.03-0.2 (log-uniform); thin to thick ice
    (15-90 nm); carbon edge on 25 %; contamination as the simulator draws it; junk (aggregates and
    broken particles) 0-25 % of the particles; detector MTF on half; rendered as float MRC (40 %),
    a denoised 8-bit JPEG (30 %) or a contrast-stretched few-level PNG (30 %).
    """
    px_detector = float(rng.uniform(*GENERAL_DETECTOR_PIXEL_A))
    limit = min(GENERAL_MAX_DIAMETER_PX, min(shape) / 3.0)
    binning = 1
    while diameter_a / (px_detector * binning) > limit:
        binning *= 2
    return {
        "pixel_size": round(px_detector * binning, 4),
        "density": float(np.exp(rng.uniform(np.log(0.03), np.log(0.6)))),
        "min_distance_frac": float(rng.uniform(0.6, 1.0)),
        "snr": float(np.exp(rng.uniform(np.log(0.03), np.log(0.2)))),
        "ice_thickness_nm": float(rng.uniform(15.0, 90.0)),
        "carbon": float(rng.uniform(0.08, 0.35)) if rng.uniform() < 0.25 else 0.0,
        "junk_fraction": float(rng.uniform(0.0, 0.25)),
        "mtf": bool(rng.uniform() < 0.5),
        "render": choose_render(rng, GENERAL_RENDERS),
        "detector_pixel_a": round(px_detector, 4),
        "binning": binning,
    }


def general_specs() -> list[DatasetSpec]:
    """Every particle type (parametric and atomic, 8-42 nm) with per-micrograph imaging from
    ``draw_general``, plus vesicles and every fiber type with wider variation."""
    specs = [DatasetSpec(f"general_{n}", "particle", n, varied=True) for n in list_particle_types()]
    specs.append(DatasetSpec("general_vesicle", "vesicle", None, 1.0, (0.08, 0.3), (0.4, 1.5), 0.3, 0.5))
    specs += [DatasetSpec(f"general_{n}", "fiber", n, 1.0, (0.01, 0.06), (0.15, 0.5), 0.3, 0.5)
              for n in FIBER_TYPES]
    return specs


SUITES = {"continual10": (lambda: CONTINUAL10, 10, 5), "general": (general_specs, 8, 2)}


def _object_diameter_a(spec: DatasetSpec) -> float:
    if spec.object == "particle":
        return particle_diameter_a(spec.particle)
    if spec.object == "vesicle":
        return 1200.0
    return FIBER_TYPES[spec.particle].diameter_nm * 10.0


def write_dataset(spec: DatasetSpec, out: Path, shape: tuple[int, int], n_train: int, n_test: int,
                  seed: int, progress=None) -> Path:
    """Simulate and write one dataset (train and test splits) with its manifest; returns the manifest path."""
    rng = np.random.default_rng(seed)
    px = auto_pixel_size(_object_diameter_a(spec), shape, spec.object) * spec.pixel_scale
    rows = []
    for i in range(n_train + n_test):
        split = "train" if i < n_train else "test"
        mseed = seed * 1000 + i
        if spec.varied:
            kwargs = draw_general(rng, _object_diameter_a(spec), shape)
            render, more = kwargs.pop("render"), {k: kwargs.pop(k) for k in ("detector_pixel_a", "binning")}
        else:
            kwargs = {"density": float(rng.uniform(*spec.density)), "snr": float(rng.uniform(*spec.snr)),
                      "pixel_size": round(px * float(np.exp(rng.uniform(-spec.pixel_jitter, spec.pixel_jitter))), 4),
                      "mtf": bool(rng.uniform() < spec.mtf_probability)}
            render, more = "float", {}
        sim = simulate_micrograph(shape, spec.particle, seed=mseed, object=spec.object,
                                  name=f"{spec.name}_{i:03d}", **kwargs, **spec.extra)
        sim.params.update(more)
        row = write_simulated(sim, out / spec.name / split, render)
        row["micrograph"] = f"{split}/{row['micrograph']}"
        row["coordinates"] = f"{split}/{row['coordinates']}"
        row["split"] = split
        rows.append(row)
        if progress is not None:
            progress.update(1)
    first = rows[0]["params"]
    header = {"dataset": spec.name, "object": spec.object, "particle": first["particle"],
              "diameter_px": first["diameter_px"], "diameter_a": first["diameter_a"],
              "pixel_size_a": px, "pixel_jitter": spec.pixel_jitter, "seed": seed, "shape": list(shape),
              "varied": spec.varied,  # True: pixel size, diameter_px and rendering differ per micrograph (rows)
              "n_train": n_train, "n_test": n_test, "generator": "epick.simulator"}
    return write_manifest(out / spec.name / MANIFEST_NAME, header, rows)


def write_suite(name: str, out: str | Path, shape: tuple[int, int] = (1024, 1024), seed: int = 0,
                n_train: int | None = None, n_test: int | None = None, only: list[str] | None = None) -> Path:
    """Write suite ``name`` ("continual10" or "general") under ``out``; returns ``out/suite.json``."""
    from tqdm import tqdm

    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known: {', '.join(SUITES)}")
    make, d_train, d_test = SUITES[name]
    n_train = d_train if n_train is None else n_train
    n_test = d_test if n_test is None else n_test
    all_specs = make()
    unknown = sorted(set(only or []) - {s.name for s in all_specs})
    if unknown:
        raise ValueError(f"suite {name} has no dataset {', '.join(unknown)}; "
                         f"it has {', '.join(s.name for s in all_specs)}")
    # a dataset's seed depends on its place in the full suite, so --only writes the same data
    chosen = [(k, s) for k, s in enumerate(all_specs) if not only or s.name in only]
    out = Path(out)
    datasets = []
    with tqdm(total=len(chosen) * (n_train + n_test), desc=f"simulate {name}", unit="mic") as bar:
        for k, spec in chosen:
            bar.set_postfix_str(spec.name)
            manifest = write_dataset(spec, out, shape, n_train, n_test, seed * 100 + k, bar)
            datasets.append({"dataset": spec.name, "object": spec.object, "manifest": str(manifest.relative_to(out))})
    path = out / "suite.json"
    with atomic_write(path) as handle:
        json.dump({"suite": name, "seed": seed, "shape": list(shape), "datasets": datasets}, handle, indent=1)
        handle.write("\n")
    return path
