"""Models bundled with epick (package data in ``epick/runtime/models/``) and how names resolve to them.

``models/catalogue.json`` lists each bundled model: ``name``, ``onnx`` (the file `epick pick`
runs), ``epick`` (the trainer's model file with its exemplar set, for `epick train --mode
continual --model NAME`), ``default`` (true for the one `epick pick` uses without --model),
``summary``, ``trained_on``, ``accuracy`` (measured figures, with the benchmark that measured
them) and ``add_sample``: the `epick train` options (``epochs``, ``lr``, ``crop``, ``repeats``,
``val_fraction``) measured for adding a sample to the model by fine-tuning or continual learning,
which `epick train --model NAME` uses for the options not given. A ``--model`` value that is not an
existing file but a bundled model's name resolves here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EpickError

MODELS_DIR = Path(__file__).resolve().parent / "models"
CATALOGUE = "catalogue.json"


@dataclass(frozen=True)
class BundledModel:
    """One entry of the catalogue, with absolute paths."""

    name: str
    onnx: Path
    epick: Path | None
    default: bool = False
    summary: str = ""
    trained_on: list[str] = field(default_factory=list)
    accuracy: dict = field(default_factory=dict)
    add_sample: dict = field(default_factory=dict)   # epick train option -> value (finetune, continual)


def bundled_models(folder: Path = MODELS_DIR) -> list[BundledModel]:
    """Every model of the catalogue whose ONNX file is present (none when there is no catalogue)."""
    path = folder / CATALOGUE
    if not path.is_file():
        return []
    rows = json.loads(path.read_text(encoding="utf-8"))["models"]
    out = []
    for row in rows:
        onnx = folder / row["onnx"]
        if not onnx.is_file():
            continue
        epick = folder / row["epick"] if row.get("epick") and (folder / row["epick"]).is_file() else None
        out.append(BundledModel(row["name"], onnx, epick, bool(row.get("default")), row.get("summary", ""),
                                list(row.get("trained_on", [])), dict(row.get("accuracy", {})),
                                dict(row.get("add_sample", {}))))
    return out


def default_model(folder: Path = MODELS_DIR) -> BundledModel:
    """The bundled model `epick pick` uses without --model."""
    models = bundled_models(folder)
    for m in models:
        if m.default:
            return m
    if models:
        return models[0]
    raise EpickError(f"no bundled model in {folder} (is this a partial install?); give --model MODEL.onnx")


def resolve_model(value: str | Path | None, *, kind: str = "onnx", folder: Path = MODELS_DIR,
                  option: str = "--model ") -> Path:
    """A --model value as a path: an existing file as is, a bundled model's name (or None: the
    default) as its ``kind`` file ("onnx" for picking, "epick" for training from it); ``option``
    prefixes the value in the error message."""
    if value is not None and (Path(value).exists() or Path(value).suffix):
        return Path(value)
    models = bundled_models(folder)
    chosen = default_model(folder) if value is None else next((m for m in models if m.name == str(value)), None)
    if chosen is None:
        names = ", ".join(m.name for m in models) or "none"
        raise EpickError(f"{option}{value}: no such file, and no bundled model of that name (bundled: {names}; "
                         "`epick models` lists them)")
    path = chosen.onnx if kind == "onnx" else chosen.epick
    if path is None:
        raise EpickError(f"the bundled model {chosen.name} ships no .epick model file to train from")
    return path


def bundled_model_of(path: str | Path, folder: Path = MODELS_DIR) -> BundledModel | None:
    """The bundled model whose ONNX or .epick file ``path`` is (None for any other file)."""
    target = Path(path).resolve()
    for m in bundled_models(folder):
        if target in {m.onnx.resolve(), m.epick.resolve() if m.epick else None}:
            return m
    return None


def as_options(values: dict) -> list[str]:
    """`epick train` options for ``values`` (e.g. {"val_fraction": 0.15} -> ["--val-fraction", "0.15"])."""
    return [a for k, v in values.items() for a in (f"--{k.replace('_', '-')}", str(v))]
