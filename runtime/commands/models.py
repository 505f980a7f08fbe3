"""`epick models`: the models bundled with epick, what they were trained on and how they measured;
or, given model files, what each holds (``runtime/model_card.py``).

    epick models            # table: name, default, what it was trained on, measured AP per real set
    epick models --json     # the catalogue as JSON (paths included)
    epick models MINE.epick # the datasets it learnt, in order and how, its exemplars, preprocessing
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict

EXAMPLES = """
epick models
epick models --json > models.json
epick models mine.epick general
"""
WRITES = """
nothing: the table (or JSON with --json) on stdout
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick models`."""
    parser.add_argument("files", nargs="*", metavar="MODEL",
                        help="model files (.epick, .onnx, .engine, .pt2) or bundled model names: say what each "
                             "holds (datasets learnt, in order and how; exemplars; preprocessing) instead")
    parser.add_argument("--json", action="store_true", help="print the catalogue (or the models' metadata) as JSON")


def describe_files(names: list[str], as_json: bool) -> int:
    """Print what each model file (or bundled model, by name: its .epick) holds."""
    from ..bundled import resolve_model
    from ..model_card import describe_model, read_model_metadata

    paths = [resolve_model(name, kind="epick", option="") for name in names]
    metas = [read_model_metadata(path) for path in paths]   # every file read before anything is printed
    if as_json:
        print(json.dumps([{"file": str(p), "metadata": m} for p, m in zip(paths, metas)], indent=1))
        return 0
    for path, meta in zip(paths, metas):
        print(path)
        for line in describe_model(meta, exported=path.suffix.lower() != ".epick"):
            print(f"  {line}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the bundled models, or what the given model files hold."""
    from ..bundled import MODELS_DIR, as_options, bundled_models

    if args.files:
        return describe_files(args.files, args.json)

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
