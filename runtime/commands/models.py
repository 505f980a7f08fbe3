"""`epick models`: the models bundled with epick, what they were trained on and how they measured.

    epick models            # table: name, default, what it was trained on, measured AP per real set
    epick models --json     # the catalogue as JSON (paths included)
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict

EXAMPLES = """
epick models
epick models --json > models.json
"""
WRITES = """
nothing: the table (or JSON with --json) on stdout
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick models`."""
    parser.add_argument("--json", action="store_true", help="print the catalogue as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the bundled models."""
    from ..bundled import MODELS_DIR, as_options, bundled_models

    models = bundled_models()
    if args.json:
        print(json.dumps([{k: (str(v) if k in ("onnx", "epick") and v is not None else v)
                           for k, v in asdict(m).items()} for m in models], indent=1))
        return 0
    if not models:
        print(f"no bundled models in {MODELS_DIR}")
        return 0
    for m in models:
        flag = " (default: `epick pick` without --model)" if m.default else ""
        print(f"{m.name}{flag}")
        print(f"  {m.summary}")
        print(f"  files: {m.onnx}" + (f", {m.epick.name} (for continual learning)" if m.epick else ""))
        if m.trained_on:
            print(f"  trained on: {'; '.join(m.trained_on)}")
        for name, row in m.accuracy.items():
            figures = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
            print(f"  measured on {name}: {figures}")
        if m.add_sample:
            print(f"  adding a sample: `epick train --mode continual|finetune --model {m.name}` uses "
                  f"{' '.join(as_options(m.add_sample))} "
                  "unless given (measured: README 'Add my sample')")
    return 0
