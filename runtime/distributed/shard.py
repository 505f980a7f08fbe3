"""``epick pick --shard I/N``: a deterministic 1/N of the inputs, for job arrays without Dask.

Rule: micrograph ``path`` belongs to shard ``I`` (0-based, 0 <= I < N) when
``int(sha1(path.name)[:16], 16) % N == I``. It depends only on the file NAME (not the folder, not
the order or the number of files listed), so every array task agrees on the split even when they
list a folder that is still filling, no two shards pick the same micrograph (outputs are named by
stem, so two files of one name cannot both be picked into one folder anyway), and together the N
shards cover every input. The split is balanced on average (a hash, not round robin): with M
micrographs a shard holds M/N +- about sqrt(M/N).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from ..errors import EpickError


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/10"`` -> ``(3, 10)``; anything else (or I outside 0..N-1) is an EpickError with the fix."""
    fix = ("give --shard I/N with 0 <= I < N, e.g. --shard ${SLURM_ARRAY_TASK_ID}/10 in a job "
           "array submitted with --array=0-9")
    try:
        i_text, n_text = str(text).split("/")
        index, count = int(i_text), int(n_text)
    except ValueError:
        raise EpickError(f"--shard {text!r} is not I/N; {fix}") from None
    if count < 1 or not 0 <= index < count:
        raise EpickError(f"--shard {text}: shard index {index} is outside 0..{count - 1}; {fix}")
    return index, count


def shard_of(name: str, count: int) -> int:
    """The shard (0-based) of a micrograph file name among ``count`` shards."""
    digest = hashlib.sha1(Path(name).name.encode("utf-8")).hexdigest()
    return int(digest[:16], 16) % count


def select_shard(paths: Sequence[str | Path], index: int, count: int) -> list[Path]:
    """The paths of shard ``index`` of ``count``, in their given order."""
    return [Path(p) for p in paths if shard_of(Path(p).name, count) == index]
