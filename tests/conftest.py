"""Shared fixtures: where the shared real data lives, and small helpers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The shared data folder: $EPICK_SHARED_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("EPICK_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


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
