"""Steps shared by the recipes: run an `epick` command, save 8-bit JPEGs, pick + evaluate."""
from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import sys
import time
from pathlib import Path

import numpy as np

from epick.runtime.errors import EpickError


def recipe_parser(prog: str, doc: str | None, out_help: str, scratch: str, record: str) -> argparse.ArgumentParser:
    """The options every build recipe shares: OUT, --work (default $TMPDIR/``scratch``, outside the
    checkout), --epochs, --threads and --readme-only (rewrite the README from ``record`` of an earlier run)."""
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help=out_help)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / scratch,
                        help=f"scratch folder (default: $TMPDIR/{scratch}, outside the checkout)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for training")
    parser.add_argument("--readme-only", action="store_true",
                        help=f"only rewrite the README section from SCRATCH/{record} of an earlier run")
    return parser


def epick(*args: str | Path, log: list[str] | None = None) -> float:
    """Run ``epick ARGS`` in this process (same code as the console script); returns seconds taken.

    The command line is printed and appended to ``log`` so a README can quote it exactly.
    """
    from epick.runtime.cli import main

    argv = [str(a) for a in args]
    line = "epick " + shlex.join(argv)
    print(f"$ {line}", file=sys.stderr, flush=True)
    if log is not None:
        log.append(line)
    start = time.perf_counter()
    code = main(argv)
    if code != 0:
        raise EpickError(f"`{line}` failed with exit code {code}; see the message above")
    return time.perf_counter() - start


def save_jpeg(image: np.ndarray, path: Path, quality: int = 92) -> Path:
    """Write a float micrograph as an 8-bit greyscale JPEG (robust 0.1-99.9 % range -> 0..255), atomically.

    Pixel (row y, column x) stays pixel (y, x): coordinates of the float image hold for the JPEG.
    """
    from PIL import Image

    from epick.runtime.io.atomic import atomic_path
    from epick.runtime.preprocess import robust_range, to_levels

    lo_hi = robust_range(image)
    levels = to_levels(image, *(lo_hi if lo_hi else (None, None)))
    with atomic_path(path) as tmp:
        Image.fromarray(levels, mode="L").save(tmp, format="JPEG", quality=quality)
    return path


def pick_and_evaluate(model: Path, micrographs: list[Path], truth: list[Path], work: Path, *,
                      threshold: float | None = 0.1, log: list[str] | None = None) -> dict:
    """`epick pick` the micrographs with ``model`` into ``work/picks_T`` (T = threshold, "default" =
    the model's own), `epick eval` against ``truth``; returns the metrics (precision recall f1 ap ar
    + per micrograph) with the picking time (s) and the threshold."""
    tag = "default" if threshold is None else f"{threshold:g}"
    picks = work / f"picks_{tag}"
    extra = [] if threshold is None else ["--threshold", threshold]
    seconds = epick("pick", *micrographs, "--model", model, "--out", picks, *extra, "--threads", 2, "--quiet",
                    log=log)
    metrics_path = work / f"eval_{tag}.json"
    epick("eval", "--picks", picks, "--truth", *truth, "--json", metrics_path, log=log)
    metrics = json.loads(metrics_path.read_text())
    metrics.update(pick_seconds=seconds, threshold=tag)
    return metrics


def best_validation_ap(model: Path) -> float | None:
    """Validation AP of the best epoch of the last training recorded in a .epick model file."""
    from epick.trainer.modelfile import read_model_file

    history = read_model_file(model).metadata.get("history") or [{}]
    return history[-1].get("val_ap")


def summary_line(metrics: dict) -> str:
    """One line of the headline figures: AP, AR, precision, recall, F1 (and the pick threshold)."""
    line = ("AP {ap:.3f}  AR {ar:.3f}  precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}"
            .format(**{k: metrics[k] for k in ("ap", "ar", "precision", "recall", "f1")}))
    return f"threshold {metrics['threshold']}: {line}" if "threshold" in metrics else line


def evaluation_text(metrics: dict, at_default: dict) -> str:
    """Markdown: the two summary lines (threshold 0.1 for AP, the model's default for P/R) and the table."""
    return (f"- {summary_line(metrics)}\n- {summary_line(at_default)} (what `epick pick` gives without "
            f"--threshold)\n\nPer micrograph at threshold {metrics['threshold']}:\n\n{metrics_table(metrics)}")


def write_section(readme: Path, name: str, text: str) -> Path:
    """Put ``text`` between ``<!-- NAME -->`` markers of ``readme`` (replacing an earlier version,
    keeping every other section), atomically; recipes that share one README each own a section."""
    from epick.runtime.io.atomic import atomic_write

    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{text.strip()}\n{end}\n"
    old = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if start in old and end in old:
        head, rest = old.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        new = head + block + ("\n" + after if after else "")
    else:
        new = (old.rstrip("\n") + "\n\n" if old.strip() else "") + block
    with atomic_write(readme) as handle:
        handle.write(new)
    return readme


def metrics_table(metrics: dict) -> str:
    """Markdown table of the per-micrograph rows of `epick eval`'s JSON."""
    rows = "\n".join(f"| {r['micrograph']} | {r['n_truth']} | {r['n_picks']} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['ap']:.3f} |" for r in metrics["micrographs"])
    return ("| micrograph | truth | picks | precision | recall | AP |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: |\n" + rows)
