"""Writing simulated micrographs: float32 MRC (pixel size in the header) or an 8-bit JPEG/PNG
rendering (``render.py``), one RELION STAR of truth per micrograph (``# diameter_px`` comment,
radius / helical tube ID columns where relevant), and a manifest JSON per dataset.
"""
from __future__ import annotations

import json
from pathlib import Path

from epick.runtime.io.atomic import atomic_write
from epick.runtime.io.coordinates import write_picks
from epick.runtime.io.micrograph import write_mrc

from .micrograph import SimulatedMicrograph

MANIFEST_NAME = "manifest.json"


def write_simulated(sim: SimulatedMicrograph, folder: str | Path, render: str = "float") -> dict:
    """Write ``NAME.mrc`` (or ``.jpg`` / ``.png`` for an 8-bit ``render``, see ``render.py``) and
    ``NAME.star`` into ``folder``; return the manifest row (paths relative to folder)."""
    import numpy as np

    from .render import SUFFIX, render as render_image

    folder = Path(folder)
    name = sim.truth.micrograph
    if render == "float":
        mic = write_mrc(folder / f"{name}.mrc", sim.image, pixel_size=sim.params["pixel_size_a"])
    else:
        rng = np.random.default_rng([int(sim.params["seed"]), 8])  # the rendering is fixed by the seed too
        mic = _write_8bit(folder / f"{name}{SUFFIX[render]}",
                          render_image(sim.image, render, rng, sim.params["pixel_size_a"]))
    star = write_picks(sim.truth, folder / f"{name}.star", "star")
    return {"micrograph": mic.name, "coordinates": star.name, "params": {**sim.params, "render": render}}


def _write_8bit(path: Path, image) -> Path:
    """An 8-bit greyscale JPEG (quality 90) or PNG, written atomically."""
    from PIL import Image

    from epick.runtime.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG" if path.suffix == ".jpg" else "PNG",
                                              **({"quality": 90} if path.suffix == ".jpg" else {}))
    return path


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
