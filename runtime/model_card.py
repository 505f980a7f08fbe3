"""What a model file holds, read from its metadata alone (no torch, no weights loaded): the network,
preprocessing and threshold, every dataset it learnt in order with how (joint, fine-tuning,
continual learning) and what each step measured, and its exemplar set.

Reads a trainer model file (``.epick``: the safetensors header's ``epick`` JSON) or an exported
artifact (``.onnx``: its metadata props; ``.engine`` / ``.pt2``: the JSON sidecar), whose ``model``
blob is the metadata of the model file it was exported from. Sizes are network pixels.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelFileError

EPICK_FORMAT = "epick-model"   # the safetensors header's "format" of a .epick (trainer/modelfile.py writes it)


def read_model_metadata(path: str | Path) -> dict:
    """The model metadata (history, exemplars, preprocessing, ...) of a .epick, .onnx, .engine or .pt2 file."""
    from .artifact import read_onnx_metadata, read_sidecar

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "no such model file", "check the path; model files end in .epick, .onnx, .engine or .pt2")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return read_onnx_metadata(path)["model"]
    if suffix in (".engine", ".pt2"):
        return read_sidecar(path)["model"]
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            header = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise ModelFileError(path, f"is not a readable epick model file ({type(exc).__name__}: {exc})",
                             "give a .epick written by `epick train`, or an exported .onnx / .engine / .pt2") from exc
    if header.get("format") != EPICK_FORMAT or "epick" not in header:
        raise ModelFileError(path, "is a safetensors file but not an epick model (no epick metadata)",
                             "give a model written by `epick train`")
    try:
        return json.loads(header["epick"])
    except json.JSONDecodeError as exc:
        raise ModelFileError(path, f"has unreadable metadata ({exc})", "copy the file again") from exc


def format_ap(value: float | None) -> str:
    """An AP with 3 decimals, or "n/a" when there is none."""
    return "n/a" if value is None else f"{value:.3f}"


def kept_text(old_ap: dict[str, dict[str, float | None]]) -> str:
    """"name before -> after, ..." for AP on each old dataset's exemplars (a training step's ``old_exemplar_ap``)."""
    return ", ".join(f"{name} {format_ap(ap.get('before'))} -> {format_ap(ap.get('after'))}"
                     for name, ap in old_ap.items())


def describe_preprocess(prep: dict) -> str:
    """One line: the scale mode and the filters of a model's preprocessing."""
    scale = (f"particle-size mode ({prep['particle_px']:g} px per diameter)" if prep.get("particle_px")
             else f"fixed width {prep.get('target_width', 1024)} px")
    if not prep.get("particle_px") and prep.get("max_particle_px"):
        scale += (f" (given a diameter, particles above {prep['max_particle_px']:g} px there are resampled "
                  f"to {prep['rescale_px']:g})")
    filters = [f"{label} {prep[key]:g}" for key, label in (("lowpass", "low-pass"), ("highpass", "background"))
               if prep.get(key)]
    return scale + (f", {', '.join(filters)} (Gaussian sigma, px)" if filters else "")


def training_steps(history: list[dict]) -> list[list[dict]]:
    """The history's entries grouped by training run (one entry per dataset; a run's share its date and mode)."""
    steps: list[list[dict]] = []
    for entry in history:
        if steps and (entry.get("date"), entry.get("mode")) == (steps[-1][0].get("date"), steps[-1][0].get("mode")):
            steps[-1].append(entry)
        else:
            steps.append([entry])
    return steps


def describe_step(step: list[dict]) -> str:
    """One line for one training run: its datasets, how they were learnt, what the run measured."""
    first = step[0]
    data = ", ".join(f"{e.get('name', '?')} ({e.get('micrographs', '?')} micrographs, {e.get('particles', '?')} "
                     f"objects{', sparse labels' if e.get('sparse') else ''})" for e in step)
    mean = {"continual": " (new + old exemplars)"}.get(first.get("mode"), " (mean over them)" if len(step) > 1 else "")
    text = (f"{first.get('mode', '?')} on {data}: {first.get('epochs', '?')} epochs, kept epoch "
            f"{first.get('best_epoch', '?')}, validation AP {format_ap(first.get('val_ap'))}{mean}")
    kept = first.get("old_exemplar_ap") or {}
    if kept:
        text += "; old datasets on their exemplars, before -> after: " + kept_text(kept)
    return text


def describe_exemplars(rows: list[dict]) -> list[str]:
    """One line per dataset of the exemplar set: windows, their sizes and objects."""
    per: dict[str, list[dict]] = {}
    for row in rows:
        per.setdefault(row.get("dataset", "?"), []).append(row)
    out = []
    for name, group in per.items():
        sizes = ", ".join("x".join(str(v) for v in (r.get("shape") or ["?"])) for r in group)
        out.append(f"{name}: {len(group)} window{'s' if len(group) > 1 else ''} ({sizes} px), "
                   f"{sum(int(r.get('count', 0)) for r in group)} objects")
    return out


def describe_model(meta: dict, *, exported: bool = False) -> list[str]:
    """Lines describing a model from its metadata (``read_model_metadata``); ``exported``: an
    artifact, whose exemplars stay in the model file it came from."""
    from .picker import DEFAULT_THRESHOLD

    arch = meta.get("architecture", {})
    flips = arch.get("test_flips", 1)
    lines = [f"{meta.get('object_type', 'particle')} model, {arch.get('name', 'dla34')}"
             + (f", {flips} test flips" if flips and flips > 1 else "")
             + f"; {describe_preprocess(meta.get('preprocess', {}))}"
             + (f"; threshold {meta['threshold']:g}" if meta.get("threshold") is not None
                else f"; no threshold stored (`epick pick` uses {DEFAULT_THRESHOLD:g})")]
    lines.append(f"written {meta.get('created', '?')} by epick {meta.get('epick_version', '?')}")
    steps = training_steps(meta.get("history", []))
    lines.append(f"trained in {len(steps)} run{'s' if len(steps) != 1 else ''}, oldest first:")
    lines += [f"  {i}. {describe_step(step)}" for i, step in enumerate(steps, 1)]
    rows = meta.get("exemplars", [])
    if exported:
        lines.append("exemplars: in the .epick model file this was exported from (continual learning starts there)")
    elif not rows:
        lines.append("exemplars: none")
    else:
        lines.append("exemplars (what continual learning replays):")
        lines += [f"  {line}" for line in describe_exemplars(rows)]
    return lines
