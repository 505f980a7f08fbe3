"""Train a narrow model on 10 real beta-galactosidase micrographs (EMPIAR-10017, shared data) and
test it on the other 4 with `epick pick` + `epick eval`.

    python -m tools.betagal OUT_DIR [--data DIR] [--work DIR] [--epochs N]

The 14 micrographs are sorted by name (= acquisition time); the first 10 train (2 of them hold out
validation AP for choosing the best epoch), the last 4 are the test set. The data are never copied:
the scratch folder links to them. Writes ``OUT/betagal_model.onnx``, ``SCRATCH/betagal_record.json``
(figures, commands) and the "betagal" section of ``OUT/README.md``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .steps import (best_validation_ap, epick, evaluation_text, pick_and_evaluate, recipe_parser, summary_line,
                    write_section)

DIAMETER_PX = 108.0  # particle diameter in the 4096 px micrographs (written in each STAR)
N_TEST = 4
WIDTH = 0.25
TARGET_WIDTH = 1024


def default_data_dir() -> Path:
    """$EPICK_SHARED_DATA/empiar10017_betagal, else ../shared/data/empiar10017_betagal beside the checkout."""
    env = os.environ.get("EPICK_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return root / "empiar10017_betagal"


def split(data: Path, work: Path) -> tuple[Path, Path, list[str]]:
    """Link the first 10 micrographs (+ STAR) into ``work/train`` and the last 4 into ``work/test``."""
    from epick.runtime.errors import FileProblem

    mics = sorted(data.glob("*.jpg"))
    if len(mics) <= N_TEST:
        raise FileProblem(data, f"holds {len(mics)} JPEG micrographs, need more than {N_TEST}",
                          "point --data at the empiar10017_betagal folder of the shared data")
    folders = {"train": mics[:-N_TEST], "test": mics[-N_TEST:]}
    for name, files in folders.items():
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        for mic in files:
            for src in (mic, mic.with_suffix(".star")):
                link = folder / src.name
                if not link.exists():
                    link.symlink_to(src.resolve())
    return work / "train", work / "test", [m.stem for m in folders["test"]]


def readme(record: dict) -> str:
    """The README section for the real-data model, from the run's ``record``."""
    best = record.get("val_ap")
    return f"""## Real beta-galactosidase model (`betagal` recipe)

Built by `python -m tools.betagal OUT` ({record["date"]}) from the 14 EMPIAR-10017
micrographs of the shared data (4096 x 4096 8-bit JPEG, particle diameter {DIAMETER_PX:g} px; not shipped here).
Sorted by name, the first 10 train (the trainer holds 2 of them out for validation AP, best
{"-" if best is None else f"{best:.3f}"}); the last 4 are the test set: {", ".join(record["test_micrographs"])}.

`betagal_model.onnx`: narrow detector (width {WIDTH}, target width {TARGET_WIDTH}), {record["epochs"]} epochs from
scratch, {record["train_seconds"] / 60:.1f} min of training on the shared 2-core CPU (CPU only, one torch thread,
another training running beside it).

### Held-out test micrographs (`epick pick` + `epick eval`, box IoU >= 0.5, {DIAMETER_PX:g} px boxes)

{evaluation_text(record["metrics"], record["metrics_default"])}

The truth labels miss some real particles (shared data README), so part of the "false" picks are
likely real particles; precision is a lower bound.

### Commands (SCRATCH = the recipe's --work folder, which links the data)

```
{chr(10).join(record["commands"])}
```
"""


def main(argv: list[str] | None = None) -> int:
    """Split, train, export, pick and evaluate (see the module docstring)."""
    parser = recipe_parser("python -m tools.betagal", __doc__,
                           "folder for betagal_model.onnx and README.md (e.g. runtime/demo)",
                           "epick_betagal_work", "betagal_record.json")
    parser.add_argument("--data", type=Path, default=None, help="the empiar10017_betagal folder")
    args = parser.parse_args(argv)
    work = args.work
    record_path = work / "betagal_record.json"
    if args.readme_only:
        write_section(args.out / "README.md", "betagal", readme(json.loads(record_path.read_text())))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    log: list[str] = []
    train_dir, test_dir, test_names = split(args.data or default_data_dir(), work)
    model = work / "betagal_model.epick"
    train_s = epick("train", "--data", train_dir, train_dir, "betagal", "--diameter", DIAMETER_PX, "-o", model,
                    "--width", WIDTH, "--target-width", TARGET_WIDTH, "--crop", 256, "--repeats", 4,
                    "--batch-size", 4, "--epochs", args.epochs, "--lr", "2e-3", "--val-fraction", 0.2,
                    "--seed", 0, "--quiet", log=log)
    onnx = args.out / "betagal_model.onnx"
    epick("export", model, "--onnx", onnx, log=log)
    tests = sorted(test_dir.glob("*.jpg"))
    truth = [t.with_suffix(".star") for t in tests]
    metrics = pick_and_evaluate(onnx, tests, truth, work, threshold=0.1, log=log)
    at_default = pick_and_evaluate(onnx, tests, truth, work, threshold=None, log=log)
    record = {"date": time.strftime("%Y-%m-%d"), "epochs": args.epochs, "train_seconds": train_s,
              "val_ap": best_validation_ap(model), "test_micrographs": test_names, "metrics": metrics,
              "metrics_default": at_default,
              "commands": [c.replace(str(work), "SCRATCH").replace(str(args.out), "OUT") for c in log]}
    record_path.write_text(json.dumps(record, indent=1))
    write_section(args.out / "README.md", "betagal", readme(record))
    print(summary_line(metrics), summary_line(at_default), sep="\n", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
