"""``epick pick --cluster``: micrographs spread over Dask workers, one Picker per worker process.

    client (epick pick)                          worker process (any machine)
    find inputs, --skip-existing, chunks  --->   pick_chunk(job, paths): cached Picker, reads the
    of 4 x --batch paths (only paths travel)     files itself, writes each micrograph's outputs
    collects one small record per micrograph <---  atomically with epick pick's writer
    writes autopick.star, failures, pick_summary.json (same writer as one process)

Same files as one process: each micrograph's files come from the same ``PickOutputs.write`` on the
same Picks; the client orders the job-level files by name.

A worker that dies mid-chunk: the scheduler runs the chunk again on another worker (Dask retries a
task whose worker died up to ``distributed.scheduler.allowed-failures`` times, default 3). The
retry skips every micrograph whose outputs were all written by this job before the death, so no
file is written twice: the client notes (inode, mtime, size) of every output already present when
the job starts, and an output counts as this job's when it exists and differs from that note
(no clocks compared across machines). A chunk that keeps killing its workers is split into single
micrographs, so only the one that kills (e.g. a file whose read crashes the process) fails.

Workers must see the model and the micrographs at the same paths as the client (a shared file
system) and need epick with its picking dependencies installed. One worker process per GPU:
``local:N`` on a GPU machine gives worker i the GPU i mod (GPUs visible to the client) through
CUDA_VISIBLE_DEVICES before its Picker opens; Slurm jobs of docs/cluster/jobqueue.yaml get one GPU
each from Slurm; for other clusters start one worker per GPU (e.g. dask-cuda's ``dask cuda worker``).
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EpickError

CHUNK_BATCHES = 4          # micrographs per task = CHUNK_BATCHES x --batch
PLUGIN_NAME = "epick-pickers"


def _require_dask():
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise EpickError(f"--cluster needs Dask ({exc}); install it with: pip install 'epick[cluster]'") from None


# ---------------------------------------------------------------- worker side
_PICKERS: dict[tuple[str, str], object] = {}
_PICKERS_LOCK = threading.Lock()


def worker_picker(model: str, options: dict):
    """This process's Picker for ``model`` + ``options`` (opened once, then reused by every task)."""
    import json

    from ..commands.pick import open_picker

    key = (str(model), json.dumps(options, sort_keys=True, default=repr))   # an options object: its repr
    with _PICKERS_LOCK:
        picker = _PICKERS.get(key)
        if picker is None:
            picker = _PICKERS[key] = open_picker(model, options)
        return picker


def close_pickers() -> None:
    """Close every cached Picker of this process (worker teardown)."""
    with _PICKERS_LOCK:
        pickers = list(_PICKERS.values())
        _PICKERS.clear()
    for picker in pickers:
        picker.close()


Signature = tuple[int, int, int]   # (inode, mtime in ns, size) of an output file


def file_signature(path: Path) -> Signature | None:
    """(inode, mtime_ns, size) of ``path``, or None when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class PickJob:
    """What every task of one ``epick pick --cluster`` run shares (paths and options only)."""

    model: str
    options: dict
    out_dir: str
    formats: tuple[str, ...]
    diameter: float | None
    preview: frozenset = field(default_factory=frozenset)   # names whose preview PNG is written
    gpus: tuple[str, ...] = ()   # local:N on a GPU machine: worker i uses gpus[i % len(gpus)]


def _outputs(job: PickJob):
    from ..commands.pick import PickOutputs

    return PickOutputs(Path(job.out_dir), list(job.formats), diameter=job.diameter, preview=len(job.preview))


def _written_by_this_job(outputs, name: str, before: dict[str, Signature]) -> bool:
    """True when every output of ``name`` exists and is not the file that was there at the start."""
    for fmt, path in outputs.paths_for(name).items():
        now = file_signature(path)
        if now is None or now == tuple(before.get(fmt) or ()):
            return False
    return True


def _count_written(outputs, name: str) -> int:
    """Number of picks in ``name``'s outputs written by an earlier (killed) attempt of this job."""
    from ..io.coordinates import read_picks

    paths = outputs.paths_for(name)
    fmt = next(f for f in ("star", "csv", "cs", "box") if f in paths)
    return sum(len(p) for p in read_picks(paths[fmt]))


def pick_chunk(job: PickJob, paths: list[str], before: dict[str, dict[str, Signature]]) -> list[dict]:
    """Worker task: pick ``paths`` and write their outputs; one record per micrograph.

    A record is ``{"name", "source", "count"}`` for a picked micrograph, ``{"name", "source",
    "error"}`` for a failed one; ``backend`` says what ran. ``before`` holds the signatures of
    outputs present when the job started (see the module docstring).
    """
    outputs = _outputs(job)
    records, todo = [], []
    for source in paths:
        name = Path(source).name
        if _written_by_this_job(outputs, name, before.get(name, {})):
            records.append({"name": name, "source": source, "count": _count_written(outputs, name),
                            "backend": "earlier attempt"})
        else:
            todo.append(source)
    if not todo:
        return records
    pin_gpu(job.gpus)
    picker = worker_picker(job.model, job.options)
    wanted = sum(Path(p).name in job.preview for p in todo)
    for result in picker.pick_many(todo, keep_images=len(todo) if wanted else 0):
        if result.name not in job.preview:
            result.image = None
        if outputs.write(result):
            records.append({"name": result.name, "source": str(result.source),
                            "count": outputs.counts[result.name], "backend": picker.backend_name})
        else:
            records.append({"name": result.name, "source": str(result.source),
                            "error": outputs.failures[result.name], "backend": picker.backend_name})
    return records


def gpu_for_worker(name, gpus: tuple[str, ...]) -> str:
    """The GPU of local worker ``name`` (LocalCluster names them 0, 1, ...): one per GPU, round robin."""
    try:
        index = int(name)
    except (TypeError, ValueError):
        index = int.from_bytes(str(name).encode()[-4:], "big")
    return gpus[index % len(gpus)]


def pin_gpu(gpus: tuple[str, ...]) -> None:
    """Before this worker process opens its first Picker: make only its GPU visible (local:N)."""
    if not gpus or _PICKERS:
        return
    from distributed import get_worker

    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_for_worker(get_worker().name, gpus)


def visible_gpus() -> tuple[str, ...]:
    """GPUs this machine offers to local workers: CUDA_VISIBLE_DEVICES when set, else ``nvidia-smi -L``."""
    import subprocess

    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return tuple(g.strip() for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip())
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU "))


def check_worker(model: str, out_dir: str) -> str | None:
    """Run on every worker before the job: why it cannot take part (None when it can)."""
    if not Path(model).is_file():
        return f"cannot see the model {model}"
    if not Path(out_dir).is_dir():
        return f"cannot see the output folder {out_dir}"
    return None


def _pickers_plugin():
    from distributed.diagnostics.plugin import WorkerPlugin

    class PickerCache(WorkerPlugin):
        """Closes the worker's cached Pickers (GPU buffers, sessions) when the worker stops."""

        name = PLUGIN_NAME

        def teardown(self, worker) -> None:
            close_pickers()

    return PickerCache()


# ---------------------------------------------------------------- client side
def parse_cluster(text: str) -> tuple[str, int | str]:
    """``local:N`` -> ("local", N); ``slurm:N`` -> ("slurm", N); ``dask://HOST:PORT`` (or tcp://,
    tls://) -> ("address", "tcp://HOST:PORT")."""
    text = text.strip()
    for kind, what in (("local", "worker processes here"), ("slurm", "Slurm jobs (one GPU worker each)")):
        if text.startswith(f"{kind}:"):
            try:
                n = int(text[len(kind) + 1:])
            except ValueError:
                n = 0
            if n < 1:
                raise EpickError(f"--cluster {text}: give {kind}:N with N >= 1 {what}, e.g. {kind}:4")
            return kind, n
    for scheme, to in (("dask://", "tcp://"), ("tcp://", "tcp://"), ("tls://", "tls://")):
        if text.startswith(scheme) and ":" in text[len(scheme):]:
            return "address", to + text[len(scheme):]
    raise EpickError(f"--cluster {text!r}: give dask://HOST:PORT (a running Dask scheduler), local:N or slurm:N")


def slurm_cluster():
    """A dask-jobqueue SLURMCluster from the ``jobqueue.slurm`` Dask settings (docs/cluster/jobqueue.yaml)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:
        raise EpickError(f"--cluster slurm:N needs dask-jobqueue ({exc}); install it with: "
                         "pip install 'epick[cluster]'") from None
    import dask

    if not dask.config.get("jobqueue.slurm.cores", None):
        raise EpickError("--cluster slurm:N: no jobqueue.slurm settings found; copy docs/cluster/jobqueue.yaml "
                         "of the epick repository to ~/.config/dask/ and edit its partition and environment")
    return SLURMCluster()


def open_client(spec: str, options: dict):
    """(Client, the cluster it started or None) for ``--cluster``; local workers get cores/N ONNX Runtime
    threads each; ``slurm:N`` submits N worker jobs (they join as Slurm starts them)."""
    _require_dask()
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)   # scheduler/nanny chatter is not for users
    kind, value = parse_cluster(spec)
    if kind == "slurm":
        cluster = slurm_cluster()
        cluster.scale(jobs=int(value))
        return Client(cluster), cluster
    if kind == "local":
        if options.get("threads") is None:
            options["threads"] = max(1, (os.cpu_count() or 1) // int(value))
        cluster = LocalCluster(n_workers=int(value), threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        return Client(cluster), cluster
    try:
        return Client(value, timeout="30s"), None
    except OSError as exc:
        raise EpickError(f"--cluster {spec}: no Dask scheduler answered at {value} ({exc}); start one "
                         "(dask scheduler, or a SLURMCluster, see the README) and give its address") from None


def _chunks(paths: list[Path], size: int) -> list[list[str]]:
    """Absolute paths (workers have other working folders) in chunks of ``size``."""
    absolute = [str(Path(p).resolve()) for p in paths]
    return [absolute[i:i + size] for i in range(0, len(absolute), size)]


def pick_on_cluster(spec: str, model: str | Path, options: dict, outputs, todo: list[Path], *,
                    stop: threading.Event, quiet: bool = False) -> str:
    """Pick ``todo`` on the Dask cluster ``spec``; results go into ``outputs`` (the client's
    ``PickOutputs``, which then writes the job-level files). Returns the workers' backend name."""
    from tqdm import tqdm

    options = dict(options)
    client, cluster = open_client(spec, options)
    model = str(Path(model).resolve())
    job = PickJob(model, options, str(Path(outputs.out_dir).resolve()), tuple(outputs.formats), outputs.diameter,
                  frozenset(p.name for p in todo[:outputs.preview]),
                  visible_gpus() if parse_cluster(spec)[0] == "local" else ())
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    backends: set[str] = set()
    try:
        problems = {w: p for w, p in client.run(check_worker, model, job.out_dir).items() if p}
        if problems:
            worker, problem = next(iter(problems.items()))
            raise EpickError(f"Dask worker {worker} {problem} ({len(problems)} worker(s) cannot); workers need "
                             "the model, micrographs and --out at the same paths (a shared file system)")
        client.register_plugin(_pickers_plugin(), name=PLUGIN_NAME)
        outputs.out_dir.mkdir(parents=True, exist_ok=True)
        size = CHUNK_BATCHES * max(1, int(options.get("batch_size") or 1))
        given = {Path(p).name: str(p) for p in todo}    # the index keeps paths as given, as one process does
        backends = _run_chunks(client, job, _chunks(todo, size), outputs, given, stop, quiet, tqdm)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return ", ".join(sorted(backends)) or "dask (nothing picked)"


def _before(outputs, chunk: list[str]) -> dict[str, dict[str, Signature]]:
    """Signatures of the outputs of ``chunk`` present now (before the job writes any)."""
    found = {}
    for source in chunk:
        name = Path(source).name
        sigs = {fmt: sig for fmt, path in outputs.paths_for(name).items() if (sig := file_signature(path))}
        if sigs:
            found[name] = sigs
    return found


def _run_chunks(client, job: PickJob, chunks: list[list[str]], outputs, given: dict[str, str], stop, quiet,
                tqdm) -> set[str]:
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    before = {c[0]: _before(outputs, c) for c in chunks if c}
    chunk_of = {}
    futures = []
    for chunk in chunks:
        fut = client.submit(pick_chunk, job, chunk, before[chunk[0]], pure=False)
        chunk_of[fut.key] = chunk
        futures.append(fut)
    backends: set[str] = set()
    pending = as_completed(futures)
    total = sum(len(c) for c in chunks)
    with tqdm(total=total, unit="mic", desc=f"picking on {len(client.scheduler_info()['workers'])} workers",
              disable=quiet, dynamic_ncols=True, file=sys.stderr) as bar:
        for fut in pending:
            chunk = chunk_of.pop(fut.key)
            try:
                records = fut.result()
            except KilledWorker as exc:
                if len(chunk) > 1:     # find the micrograph that kills: retry one by one
                    bar.write(f"epick pick: a chunk of {len(chunk)} micrographs killed its workers; "
                              "retrying them one by one", file=sys.stderr)
                    for source in chunk:
                        single = client.submit(pick_chunk, job, [source],
                                               _only(before[chunk[0]], source), pure=False)
                        chunk_of[single.key] = [source]
                        pending.add(single)
                    continue
                records = [{"name": Path(chunk[0]).name, "source": chunk[0],
                            "error": f"killed the Dask workers that picked it ({exc.__class__.__name__})"}]
            except FutureCancelledError:
                continue
            except Exception as exc:
                for other in list(pending.futures):
                    other.cancel()
                if isinstance(exc, EpickError):   # e.g. the output folder is full: the same one line
                    raise
                raise EpickError(f"a Dask worker failed on {Path(chunk[0]).name} and {len(chunk) - 1} more "
                                 f"({type(exc).__name__}: {exc})") from exc
            for record in records:
                backends.add(record.pop("backend", ""))
                _record_result(outputs, record, given.get(record["name"], record["source"]), bar)
            bar.update(len(records))
            bar.set_postfix(picks=sum(outputs.counts.values()), failed=len(outputs.failures), refresh=False)
            if stop.is_set():   # Ctrl-C: keep what finished, drop the rest (rerun with --skip-existing)
                break
        if stop.is_set():
            for other in list(pending.futures):
                other.cancel()
    backends.discard("earlier attempt")
    return backends


def _only(before: dict, source: str) -> dict:
    name = Path(source).name
    return {name: before[name]} if name in before else {}


def _record_result(outputs, record: dict, source: str, bar) -> None:
    """Fold one worker record into the client's PickOutputs (as ``PickOutputs.write`` would)."""
    name = record["name"]
    if "error" in record:
        outputs.fail(name, record["error"])
        bar.write(f"epick pick: {name}: {record['error']}", file=sys.stderr)
        return
    outputs.failures.pop(name, None)
    outputs.counts[name] = int(record["count"])
    outputs.picked_now += 1
    outputs._index(source, name)
