"""The Slurm set-up documented in the README (docs/cluster/jobqueue.yaml) produces the job script
it promises; dask-jobqueue writes the script without Slurm being installed."""
from __future__ import annotations

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="the cluster extra (pip install 'epick[cluster]') brings PyYAML")
pytest.importorskip("dask_jobqueue", reason="needs the cluster extra: pip install 'epick[cluster]'")

CONFIG = Path(__file__).resolve().parents[1] / "docs" / "cluster" / "jobqueue.yaml"


@pytest.fixture()
def slurm_settings():
    import dask

    slurm = yaml.safe_load(CONFIG.read_text())["jobqueue"]["slurm"]
    # one key at a time: merged over dask-jobqueue's defaults, as dask merges ~/.config/dask/*.yaml
    with dask.config.set({f"jobqueue.slurm.{key}": value for key, value in slurm.items()}):
        yield slurm


def test_documented_slurm_config_gives_one_gpu_worker_per_job(slurm_settings, tmp_path, monkeypatch):
    from epick.runtime.distributed.dask_pick import slurm_cluster

    monkeypatch.chdir(tmp_path)  # dask-jobqueue creates the (relative) log directory where it starts

    cluster = slurm_cluster()
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for directive in ("#SBATCH -J epick-worker", "#SBATCH -p gpu", "#SBATCH -n 1", "#SBATCH --cpus-per-task=8",
                      "#SBATCH --mem=30G", "#SBATCH -t 04:00:00", "#SBATCH --gres=gpu:1",
                      "#SBATCH -e epick-dask-logs/epick-worker-%J.err"):
        assert directive in lines, directive
    assert "source /opt/epick/venv/bin/activate" in lines
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert cluster.scheduler_address.split("://")[1] in worker           # workers dial this client's scheduler
    for arg in ("--nthreads 2", "--nanny", "--death-timeout 120", "--local-directory $TMPDIR"):
        assert arg in worker, arg
    assert "--nworkers" not in worker                                     # one worker process (Picker) per job


def test_slurm_cluster_needs_settings(monkeypatch):
    import dask

    from epick.runtime.distributed.dask_pick import parse_cluster, slurm_cluster
    from epick.runtime.errors import EpickError

    assert parse_cluster("slurm:8") == ("slurm", 8)
    with dask.config.set({"jobqueue.slurm.cores": None}), pytest.raises(EpickError, match="jobqueue.yaml"):
        slurm_cluster()
