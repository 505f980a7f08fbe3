"""Shared fixtures: where the shared real data lives, and small helpers."""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The shared data folder: $EPICK_SHARED_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("EPICK_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


# the simulator's pdb-* particle types read their PDB files from here (epick.simulator.particles)
os.environ.setdefault("EPICK_ATOMIC_MODELS", str(shared_data_dir() / "atomic_models"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"shared data not found at {path}; set EPICK_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def betagal_dir(shared_data: Path) -> Path:
    return shared_data / "empiar10017_betagal"


@pytest.fixture(scope="session")
def viewer_job(tmp_path_factory):
    """(micrograph folder, picks folder): simulated micrographs picked by the bundled demo model
    (see _viewer_data.make_picked_job); shared by the viewer's API and browser tests."""
    from _viewer_data import make_picked_job

    return make_picked_job(tmp_path_factory.mktemp("viewer_job"))


class NarrowExport(NamedTuple):
    """A narrow-network model file and the ONNX file `epick export` wrote from it."""

    model: Path
    onnx: Path


@pytest.fixture(scope="session")
def narrow_export(tmp_path_factory) -> NarrowExport:
    """`epick export --onnx --opset 17` (verified, simplified) of ``_models.make_model_file`` (a
    particle model whose heatmap follows the image: seed 0, target width 1024, diameter 108 px),
    made once per test session: the
    export costs tens of seconds on 2 cores, and the ONNX tests, the Picker-vs-trainer test and
    others share it. Tests must not modify these files."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from _models import make_model_file

    from epick.runtime.cli import main

    folder = tmp_path_factory.mktemp("narrow_export")
    model = make_model_file(folder / "narrow.epick", follows_image=True)
    out = folder / "narrow.onnx"
    assert main(["export", str(model), "--onnx", str(out), "--opset", "17"]) == 0
    return NarrowExport(model, out)
