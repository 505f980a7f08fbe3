"""Steps shared by the recipes: run an `epick` command, save 8-bit JPEGs, pick + evaluate."""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from epick.runtime.errors import EpickError


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
                      threshold: float = 0.1, log: list[str] | None = None) -> dict:
    """`epick pick` the micrographs with ``model`` into ``work/picks``, `epick eval` against ``truth``;
    returns the metrics (precision recall f1 ap ar + per micrograph) and the picking time (s)."""
    picks = work / "picks"
    seconds = epick("pick", *micrographs, "--model", model, "--out", picks, "--threshold", threshold,
                    "--threads", 2, "--quiet", log=log)
    metrics_path = work / "eval.json"
    epick("eval", "--picks", picks, "--truth", *truth, "--json", metrics_path, log=log)
    metrics = json.loads(metrics_path.read_text())
    metrics["pick_seconds"] = seconds
    return metrics


def summary_line(metrics: dict) -> str:
    """One line of the headline figures: AP, AR, precision, recall, F1."""
    return ("AP {ap:.3f}  AR {ar:.3f}  precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}"
            .format(**{k: metrics[k] for k in ("ap", "ar", "precision", "recall", "f1")}))


def write_section(readme: Path, name: str, text: str) -> Path:
    """Put ``text`` between ``<!-- NAME -->`` markers of ``readme`` (replacing an earlier version,
    keeping every other section), atomically; recipes that share one README each own a section."""
    from epick.runtime.io.atomic import atomic_write

    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{text.strip()}\n{end}\n"
    old = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1].lstrip("\n")
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
