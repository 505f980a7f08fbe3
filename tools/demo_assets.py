"""Rebuild the demo assets of ``epick/runtime/demo/``: a narrow model trained on simulated
beta-galactosidase-like micrographs, its ONNX export, three held-out demo micrographs (8-bit JPEG)
with their truth STAR files, and a README that records how each was made and the AP reached.

    python -m tools.demo_assets OUT_DIR [--work DIR] [--epochs N] [--threads N]

Every step is an `epick` command (printed, and quoted in the README); the scratch folder keeps the
simulated MRC training set, the .epick model, the picks and the evaluation JSON.
Scale: micrographs are 1024 x 1024 px at 7.08 A/px, the pixel size of EMPIAR-10017 (1.77 A/px at
4096 px) seen at the network's 1024 px width, so the simulated particles are about as wide (in
network pixels) as the real ones.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from .steps import (best_validation_ap, epick, evaluation_text, pick_and_evaluate, recipe_parser, save_jpeg,
                    summary_line, write_section)

PARTICLE = "betagal"
SIZE = 1024  # px, square micrographs = the network's width (no downsampling)
PIXEL_SIZE = 7.08  # A/px
TRAIN_SEED, N_TRAIN = 100, 12  # training micrographs use seeds 100..111
DEMO_SEED, N_DEMO = 900, 3  # demo micrographs use seeds 900..902 (never seen in training)
JPEG_QUALITY = 85  # ~550 KB per 1024 x 1024 noisy micrograph (92 gives ~690 KB)
SNR = 0.4  # per-object SNR: particles faintly visible by eye at 1024 px, like a real 4096 px micrograph shrunk 4x
WIDTH = 0.25  # narrow network: ~1.2 M parameters, ~4.8 MB of float32 weights


def particle_diameter_px() -> float:
    """The simulated particle's diameter in micrograph pixels (what --diameter and eval use)."""
    from epick.simulator import particle_diameter_a

    return round(particle_diameter_a(PARTICLE) / PIXEL_SIZE, 1)


def simulate(out: Path, n: int, seed: int, log: list[str]) -> Path:
    """`epick simulate micrographs`: ``n`` betagal-like micrographs (MRC + truth STAR) into ``out``."""
    epick("simulate", "micrographs", out, "--type", PARTICLE, "--n", n, "--size", SIZE, "--seed", seed,
          "--pixel-size", PIXEL_SIZE, "--snr", SNR, log=log)
    return out


def train(train_dir: Path, model: Path, epochs: int, log: list[str]) -> float:
    """`epick train` (joint, from scratch) on the simulated set; returns the seconds taken."""
    return epick("train", "--data", train_dir, train_dir, PARTICLE, "--diameter", particle_diameter_px(),
                 "-o", model, "--width", WIDTH, "--target-width", SIZE, "--crop", 256, "--repeats", 4,
                 "--batch-size", 4, "--epochs", epochs, "--lr", "2e-3", "--val-fraction", 0.17, "--seed", 0,
                 "--quiet", log=log)


def demo_micrographs(sim_dir: Path, out: Path) -> tuple[list[Path], list[Path]]:
    """Convert the simulated demo MRCs to 8-bit JPEGs in ``out`` and copy their truth STARs beside them."""
    from epick.runtime.io.micrograph import read_micrograph

    jpegs, stars = [], []
    for mrc in sorted(sim_dir.glob("*.mrc")):
        jpegs.append(save_jpeg(read_micrograph(mrc).data, out / f"{mrc.stem}.jpg", JPEG_QUALITY))
        star = out / f"{mrc.stem}.star"
        shutil.copyfile(mrc.with_suffix(".star"), star)
        stars.append(star)
    return jpegs, stars


def readme(out: Path, record: dict) -> str:
    """The README section: what each asset is, the exact commands, and the measured figures (``record``)."""
    best = record.get("val_ap")
    files = "\n".join(f"- `{p.name}` ({p.stat().st_size / 1024:.0f} KB)" for p in sorted(out.iterdir())
                      if p.name.startswith(("demo_model", f"{PARTICLE}_0")))
    commands = "\n".join(record["commands"])
    return f"""## Simulated demo (`demo_assets` recipe)

Built by `python -m tools.demo_assets OUT` ({record["date"]}).
Everything here is simulated with `epick simulate` (no real data): {PARTICLE}-like particles
(diameter {particle_diameter_px()} px), {SIZE} x {SIZE} px at {PIXEL_SIZE} A/px, per-particle SNR {SNR}, default realism
(CTF, shot noise, ice, junk, occasional carbon and contamination).

{files}

- `demo_model.onnx`: the narrow detector (width {WIDTH}, target width {SIZE}) trained from scratch
  (`epick train`, joint mode) on {N_TRAIN} simulated micrographs (seeds {TRAIN_SEED}..{TRAIN_SEED + N_TRAIN - 1}),
  exported with `epick export --onnx` (the preprocessing and particle diameter travel in its metadata).
  Training took {record["train_seconds"] / 60:.1f} min on the shared 2-core CPU (CPU only, one torch thread,
  another training running beside it); best validation AP {"-" if best is None else f"{best:.3f}"} on the
  2 micrographs the trainer held out.
- `*.jpg` + `*.star`: {N_DEMO} demo micrographs (seeds {DEMO_SEED}..{DEMO_SEED + N_DEMO - 1}, never seen in
  training), 8-bit greyscale JPEG (quality {JPEG_QUALITY}, robust 0.1-99.9 % grey range), and their truth
  centres (RELION STAR, pixels of the JPEG).

### Measured on the demo micrographs (`epick pick` + `epick eval`, box IoU >= 0.5)

{evaluation_text(record["metrics"], record["metrics_default"])}

### Commands (run in this order by the recipe; SCRATCH = its --work folder)

```
{commands}
```
The recipe converts the demo MRCs to JPEG in Python (`steps.save_jpeg`) between the simulate and
pick commands.
"""


TITLE = """# Demo assets

Built by the scripts in `tools/` (run from the repository root); each section below is rewritten by its script.
Two models live here: `demo_model.onnx` goes with the simulated demo micrographs (`betagal_0009*.jpg`);
`betagal_model.onnx` is for real EMPIAR-10017-like beta-gal micrographs
(`epick pick --model .../betagal_model.onnx MICROGRAPHS --out DIR`). `make demo` picks the demo
micrographs with the bundled general model (`runtime/models/`), as `epick pick` does without
`--model`; code that wants the demo's own model takes `demo_model.onnx` by name."""


def write_readme(out: Path, record: dict) -> Path:
    """Write (or replace) the "demo" section of ``OUT/README.md``, adding the title when new."""
    path = out / "README.md"
    if not path.is_file():
        write_section(path, "title", TITLE)
    return write_section(path, "demo", readme(out, record))


def main(argv: list[str] | None = None) -> int:
    """Build every demo asset into OUT_DIR (see the module docstring)."""
    parser = recipe_parser("python -m tools.demo_assets", __doc__, "asset folder (e.g. runtime/demo)",
                           "epick_demo_work", "demo_record.json")
    args = parser.parse_args(argv)
    out, work = args.out, args.work
    record_path = work / "demo_record.json"
    if args.readme_only:
        write_readme(out, json.loads(record_path.read_text()))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    train_dir = simulate(work / "train", N_TRAIN, TRAIN_SEED, log)
    model = work / "demo_model.epick"
    train_s = train(train_dir, model, args.epochs, log)
    onnx = out / "demo_model.onnx"
    epick("export", model, "--onnx", onnx, log=log)
    sim_demo = simulate(work / "demo_mrc", N_DEMO, DEMO_SEED, log)
    jpegs, stars = demo_micrographs(sim_demo, out)
    metrics = pick_and_evaluate(onnx, jpegs, stars, work, threshold=0.1, log=log)
    at_default = pick_and_evaluate(onnx, jpegs, stars, work, threshold=None, log=log)
    record = {"date": time.strftime("%Y-%m-%d"), "train_seconds": train_s, "val_ap": best_validation_ap(model),
              "metrics": metrics, "metrics_default": at_default,
              "commands": [c.replace(str(work), "SCRATCH").replace(str(out), "OUT") for c in log]}
    record_path.write_text(json.dumps(record, indent=1))
    write_readme(out, record)
    print(summary_line(metrics), summary_line(at_default), sep="\n", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
