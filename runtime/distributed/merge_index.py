"""Shard records and the job-level files built from them (``epick merge-index OUT``).

A shard (``epick pick --shard I/N --out OUT``) writes its micrographs' coordinate files into OUT
as any run does, but not the job-level files (N tasks writing one ``autopick.star`` would
overwrite each other). It writes ``OUT/shards/shard-I-of-N.json`` instead (atomically):

    {"version": 1, "shard": I, "of": N, "formats": [...], "counts": {name: picks},
     "failures": {name: reason}, "index": {name: [micrograph path, STAR path]}, "skipped": k}

``merge_shards`` reads all N records and ``epick merge-index OUT`` writes RELION's
``autopick.star``, ``failures.txt``/``failures.json`` and ``pick_summary.json`` with the same
writer as a single ``epick pick`` run, so the job-level files are the same as that run's.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import EpickError, FileProblem
from ..io.atomic import atomic_write

RECORD_VERSION = 1
SHARD_DIR = "shards"
_NAME = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")


def record_path(out_dir: str | Path, index: int, count: int) -> Path:
    """``OUT/shards/shard-I-of-N.json``."""
    return Path(out_dir) / SHARD_DIR / f"shard-{index}-of-{count}.json"


def write_shard_record(outputs, index: int, count: int) -> Path:
    """Write what a shard's ``PickOutputs`` did (counts, failures, index entries, skipped)."""
    path = record_path(outputs.out_dir, index, count)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"version": RECORD_VERSION, "shard": index, "of": count,
              "formats": list(outputs.formats) + list(outputs.job_formats), "exposures": outputs.exposures,
              "diameter": outputs.diameter, "counts": outputs.counts, "failures": outputs.failures,
              "index": {k: list(v) for k, v in outputs.index.items()}, "skipped": outputs.skipped}
    with atomic_write(path) as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    return path


def read_records(out_dir: str | Path) -> list[dict]:
    """Every shard record in ``OUT/shards``, checked: one N, each shard 0..N-1 exactly once."""
    folder = Path(out_dir) / SHARD_DIR
    found = sorted(p for p in folder.glob("shard-*-of-*.json") if _NAME.match(p.name)) if folder.is_dir() else []
    if not found:
        raise FileProblem(folder, "holds no shard records (shard-I-of-N.json)",
                          "run `epick pick --shard I/N --out OUT` for every I first, with the same OUT")
    records = []
    for path in found:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("version") != RECORD_VERSION:
                raise ValueError(f"record version {record.get('version')!r}, expected {RECORD_VERSION}")
        except (OSError, ValueError) as exc:
            raise FileProblem(path, f"is not a readable shard record ({exc})",
                              "rerun that shard with the same --shard I/N") from exc
        records.append(record)
    counts = sorted({int(r["of"]) for r in records})
    if len(counts) > 1:
        raise EpickError(f"{folder}: shard records of different splits ({', '.join(f'N={n}' for n in counts)}); "
                         "delete the records of the old split and merge again")
    total = counts[0]
    missing = sorted(set(range(total)) - {int(r["shard"]) for r in records})
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise EpickError(f"{folder}: {len(missing)} of {total} shards have not finished (missing: {shown}); "
                         f"run `epick pick ... --shard I/{total}` for them (with --skip-existing to keep "
                         "what was picked), then merge again")
    formats = {tuple(r["formats"]) for r in records}
    if len(formats) > 1:
        raise EpickError(f"{folder}: the shards wrote different --format lists {sorted(formats)}; "
                         "rerun them with one --format")
    return records


def merge_shards(out_dir: str | Path):
    """A ``PickOutputs`` holding every shard's counts, failures, index entries and skips."""
    from ..commands.pick import PickOutputs

    records = read_records(out_dir)
    first = records[0]
    outputs = PickOutputs(Path(out_dir), list(first["formats"]), diameter=first.get("diameter"),
                          exposures=first.get("exposures"))   # job tables (jobstar, topaz, jobcs) are written here
    for record in records:
        outputs.counts.update({str(k): int(v) for k, v in record["counts"].items()})
        outputs.failures.update({str(k): str(v) for k, v in record["failures"].items()})
        outputs.index.update({str(k): (str(v[0]), str(v[1])) for k, v in record["index"].items()})
        outputs.skipped += int(record.get("skipped", 0))
    return outputs
