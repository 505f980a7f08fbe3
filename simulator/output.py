"""Writing simulated micrographs: float32 MRC (pixel size in the header), one RELION STAR of truth
per micrograph (radius / helical tube ID columns where relevant), and a manifest JSON per dataset.
"""
from __future__ import annotations

import json
from pathlib import Path

from epick.runtime.io.atomic import atomic_write
from epick.runtime.io.coordinates import write_picks
from epick.runtime.io.micrograph import write_mrc

from .micrograph import SimulatedMicrograph

MANIFEST_NAME = "manifest.json"


def write_simulated(sim: SimulatedMicrograph, folder: str | Path) -> dict:
    """Write ``NAME.mrc`` and ``NAME.star`` into ``folder``; return the manifest row (paths relative to folder)."""
    folder = Path(folder)
    name = sim.truth.micrograph
    mrc = write_mrc(folder / f"{name}.mrc", sim.image, pixel_size=sim.params["pixel_size_a"])
    star = write_picks(sim.truth, folder / f"{name}.star", "star")
    return {"micrograph": mrc.name, "coordinates": star.name, "params": sim.params}


def write_manifest(path: str | Path, header: dict, rows: list[dict]) -> Path:
    """Write the dataset manifest (``header`` fields plus the per-micrograph ``rows``) atomically."""
    path = Path(path)
    with atomic_write(path) as handle:
        json.dump({**header, "micrographs": rows}, handle, indent=1, sort_keys=False, default=_jsonable)
        handle.write("\n")
    return path


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
