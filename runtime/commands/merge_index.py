"""`epick merge-index OUT`: the job-level files of a job array run with ``epick pick --shard I/N``.

Reads ``OUT/shards/shard-I-of-N.json`` of every shard (refusing when one is missing) and writes
RELION's ``autopick.star``, ``failures.txt``/``failures.json`` and ``pick_summary.json`` into OUT,
as one ``epick pick`` run over all the inputs would have (see ``epick.runtime.distributed``).

Example (Slurm job array of 10 tasks, then one merge):
    sbatch --array=0-9 --wrap 'epick pick mics/ --model m.onnx --out picks/ --shard ${SLURM_ARRAY_TASK_ID}/10'
    epick merge-index picks/
"""
from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """
epick merge-index picks/
epick merge-index /scratch/run42/picks
"""
WRITES = """
OUT/autopick.star, OUT/failures.txt + failures.json, OUT/pick_summary.json (as one `epick pick` run)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick merge-index`."""
    parser.add_argument("out", type=Path, help="the --out folder all shards wrote into")


def run(args: argparse.Namespace) -> int:
    """Merge the shard records of ``args.out`` and write the job-level files."""
    from ..distributed.merge_index import merge_shards

    outputs = merge_shards(args.out)
    outputs.flush()
    print(outputs.summary(None, "merged from shard records"))
    if "star" in outputs.formats:
        print(f"wrote {args.out / 'autopick.star'} ({len(outputs.index)} micrographs)")
    print(f"wrote {args.out / 'pick_summary.json'}")
    return 0
