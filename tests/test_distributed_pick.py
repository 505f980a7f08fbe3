"""Picking beyond one process: --shard I/N + merge-index and --cluster (Dask) give the same files as
one `epick pick` run, file for file, on simulated micrographs; a worker killed mid-chunk loses
nothing and no output is written twice."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from _models import make_onnx
from epick.runtime.cli import main
from epick.runtime.distributed.shard import parse_shard, select_shard, shard_of
from epick.runtime.errors import EpickError

N_MICS = 6
ARGS = ["--format", "star,csv,box", "--batch", "1", "--quiet", "--threads", "1", "--readers", "1"]


@contextlib.contextmanager
def inside(folder: Path):
    """Run in ``folder`` so that every run writes the same relative paths into autopick.star."""
    folder.mkdir(parents=True, exist_ok=True)
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def pick(root: Path, run: str, *extra: str) -> int:
    with inside(root / run):
        return main(["pick", "../mics", "--model", "../blob.onnx", "--out", "picks", *ARGS, *extra])


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "shards" not in p.parts}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """6 simulated micrographs + 1 corrupt file, a blob-detector model, and one single-process run."""
    from epick.runtime.io.micrograph import write_mrc
    from epick.simulator.micrograph import simulate_micrograph

    root = tmp_path_factory.mktemp("distributed")
    make_onnx(root / "blob.onnx", target_width=256)
    (root / "mics").mkdir()
    for i in range(N_MICS):
        write_mrc(root / "mics" / f"sim{i:02d}.mrc", simulate_micrograph((256, 320), seed=i, n_particles=6).image)
    (root / "mics" / "corrupt.mrc").write_bytes(b"\x01\x02" * 700)
    assert pick(root, "single") == 0
    reference = files_of(root / "single" / "picks")
    summary = json.loads(reference["pick_summary.json"])
    assert summary["picked"] == N_MICS and summary["failed"] == 1 and summary["picks_total"] > 4 * N_MICS
    return root, reference


def test_shard_split_is_deterministic_disjoint_and_complete():
    names = [f"FoilHole_{i}_Data_{i * 7 % 13}.mrc" for i in range(2000)]
    shards = [select_shard(names, i, 7) for i in range(7)]
    assert sorted(p.name for s in shards for p in s) == sorted(names)          # complete, disjoint
    assert all(240 < len(s) < 330 for s in shards)                              # 2000/7 = 286 +- ~3 sd
    # a task that lists the folder in another order, another folder or later (more files) agrees
    later = list(reversed(names)) + ["new_1.mrc", "new_2.mrc"]
    assert {p.name for p in select_shard(later, 3, 7)} - {"new_1.mrc", "new_2.mrc"} == {p.name for p in shards[3]}
    assert shard_of("/a/b/x.mrc", 7) == shard_of("x.mrc", 7)
    assert parse_shard("0/1") == (0, 1) and parse_shard("9/10") == (9, 10)
    for bad in ("10/10", "-1/4", "1/0", "3", "a/b"):
        with pytest.raises(EpickError, match="SLURM_ARRAY_TASK_ID"):
            parse_shard(bad)


def test_shards_then_merge_index_equal_one_run(job, capsys):
    root, reference = job
    out = root / "sharded" / "picks"
    for i in (0, 1):
        assert pick(root, "sharded", "--shard", f"{i}/3") == 0
    assert not (out / "autopick.star").exists() and not (out / "pick_summary.json").exists()
    assert main(["merge-index", str(out)]) == 2                      # shard 2 has not run
    assert "1 of 3 shards have not finished (missing: 2)" in capsys.readouterr().err
    assert pick(root, "sharded", "--shard", "2/3") == 0
    assert sorted(p.name for p in (out / "shards").iterdir()) == [f"shard-{i}-of-3.json" for i in range(3)]
    with inside(root / "sharded"):
        assert main(["merge-index", "picks"]) == 0
    assert files_of(out) == reference


def test_cluster_options_are_checked(job):
    from epick.runtime.distributed.dask_pick import parse_cluster

    assert parse_cluster("local:3") == ("local", 3)
    assert parse_cluster("dask://node7:8786") == ("address", "tcp://node7:8786")
    for bad in ("local:0", "local:x", "node7:8786", "dask://node7"):
        with pytest.raises(EpickError, match="local:N"):
            parse_cluster(bad)
    root, _ = job
    assert pick(root, "bad", "--shard", "0/2", "--cluster", "local:2") == 2


@pytest.mark.slow   # starts its own LocalCluster (~10-20 s on 2 shared cores); the kill test covers Dask by default
def test_local_workers_get_one_gpu_each(monkeypatch):
    from epick.runtime.distributed.dask_pick import gpu_for_worker, visible_gpus

    assert [gpu_for_worker(i, ("0", "1", "2")) for i in range(4)] == ["0", "1", "2", "0"]
    assert gpu_for_worker("tcp-worker-a", ("3",)) == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus() == ("2", "5")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == ()


def test_local_cluster_equals_one_run(job):
    pytest.importorskip("distributed", reason="needs the cluster extra: pip install 'epick[cluster]'")
    root, reference = job
    assert pick(root, "local2", "--cluster", "local:2") == 0
    assert files_of(root / "local2" / "picks") == reference


def test_killed_worker_loses_nothing_and_writes_nothing_twice(job):
    """Same files as one run although one worker process is SIGKILLed after writing 2 micrographs of
    its chunk (4 per chunk at --batch 1): the chunk runs again on a worker, which skips those 2
    (their files keep inode and mtime: written once) and picks the rest."""
    pytest.importorskip("distributed", reason="needs the cluster extra: pip install 'epick[cluster]'")
    import cloudpickle
    from distributed import Client, LocalCluster

    import _dask_kill

    cloudpickle.register_pickle_by_value(_dask_kill)   # workers need not import the tests folder
    root, reference = job
    flag = root / "killed.json"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as cluster, Client(cluster) as client:
        client.register_plugin(_dask_kill.KillAfterWrites(str(flag), after=2))
        assert pick(root, "killed", "--cluster", cluster.scheduler_address.replace("tcp://", "dask://")) == 0
    killed = json.loads(flag.read_text())
    assert len(killed["written"]) == 2
    assert files_of(root / "killed" / "picks") == reference
    for path, (inode, mtime_ns) in killed["files"].items():   # written once, by the worker that died
        st = Path(path).stat()
        assert (st.st_ino, st.st_mtime_ns) == (inode, mtime_ns), path


def test_runtime_and_shards_do_not_import_dask():
    import subprocess
    import sys

    code = ("import sys, epick.runtime, epick.runtime.distributed.shard, epick.runtime.distributed.merge_index, "
            "epick.runtime.commands.pick; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed', 'dask_jobqueue')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
