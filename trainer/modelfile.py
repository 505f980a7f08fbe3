"""The model file (``.epick``): ONE safetensors file, loadable without executing code.

Layout (format version ``FORMAT_VERSION``):
- tensors ``net.<name>``: the detector's state dict (parameters and BatchNorm buffers);
- tensors ``exemplar.<i>.image`` (uint8 [H, W], preprocessed network image), ``exemplar.<i>.points``
  (float32 [n, 2], centres x, y in network pixels of that image) and, for vesicles,
  ``exemplar.<i>.sizes`` (float32 [n, 2]);
- safetensors ``__metadata__`` (str -> str): ``format`` = "epick-model", ``epick`` = the JSON
  metadata below, ``sha256`` = hex digest over the JSON text and every tensor (name, dtype, shape,
  bytes, in name order), checked on load so a damaged file is refused.

JSON metadata keys: ``format_version``, ``architecture`` (NetworkConfig.to_dict()),
``object_type`` (particle | vesicle | fiber), ``particle_diameter`` (ORIGINAL micrograph pixels, or
None), ``diameter_network`` (network pixels), ``output_stride`` (4), ``preprocess``
(PreprocessParams.to_dict()), ``history`` (one entry per dataset learned: name, mode, date,
particles, micrographs, epochs, val_ap), ``exemplars`` (per exemplar image: dataset, micrograph,
shape, count, tensor prefix), ``created``, ``epick_version``, ``training`` (settings of the last run).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from epick.runtime.errors import ModelFileError
from epick.runtime.io.atomic import atomic_path
from epick.runtime.model_card import EPICK_FORMAT

from .data import Sample
from .network import Detector, NetworkConfig

FORMAT = EPICK_FORMAT   # the safetensors header's "format" (the runtime reads headers too)
FORMAT_VERSION = 1
NET_PREFIX = "net."
EXEMPLAR_PREFIX = "exemplar."
REQUIRED_KEYS = ("format_version", "architecture", "object_type", "preprocess", "history", "exemplars")


@dataclass
class ModelFile:
    """A loaded model file: the detector (eval mode, CPU), its metadata and its exemplar set."""

    network: Detector
    metadata: dict
    exemplars: list[Sample] = field(default_factory=list)


def _digest(meta_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 hex over the metadata JSON and every tensor's name, dtype, shape and bytes (name order)."""
    h = hashlib.sha256(meta_json.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def exemplar_tensors(exemplars: list[Sample]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Tensors and JSON descriptors of an exemplar set."""
    tensors, rows = {}, []
    for i, ex in enumerate(exemplars):
        prefix = f"{EXEMPLAR_PREFIX}{i}"
        tensors[f"{prefix}.image"] = torch.from_numpy(np.ascontiguousarray(ex.image, dtype=np.uint8))
        tensors[f"{prefix}.points"] = torch.from_numpy(np.ascontiguousarray(ex.points, dtype=np.float32))
        if ex.sizes is not None:
            tensors[f"{prefix}.sizes"] = torch.from_numpy(np.ascontiguousarray(ex.sizes, dtype=np.float32))
        rows.append({"dataset": ex.dataset, "micrograph": ex.name, "shape": list(ex.image.shape),
                     "count": ex.count, "tensor": prefix, "window": ex.window,
                     "diameter_network": ex.diameter})
    return tensors, rows


def build_metadata(config: NetworkConfig, *, object_type: str, preprocess: dict, particle_diameter: float | None,
                   diameter_network: float, history: list[dict], training: dict | None = None) -> dict:
    """The JSON metadata of a model file (``exemplars`` is filled in by ``save_model``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        epick_version = version("epick")
    except PackageNotFoundError:  # pragma: no cover - source checkout without install
        epick_version = "unknown"
    return {"format_version": FORMAT_VERSION, "architecture": config.to_dict(), "object_type": object_type,
            "particle_diameter": None if particle_diameter is None else float(particle_diameter),
            "diameter_network": float(diameter_network), "output_stride": 4, "preprocess": dict(preprocess),
            "history": list(history), "exemplars": [], "training": dict(training or {}),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "epick_version": epick_version}


def save_model(path: str | Path, network: Detector, metadata: dict, exemplars: list[Sample] | None = None) -> Path:
    """Write ``network`` + ``metadata`` + ``exemplars`` to one ``.epick`` file, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {NET_PREFIX + k: v.detach().cpu().contiguous().clone() for k, v in network.state_dict().items()}
    ex_tensors, rows = exemplar_tensors(list(exemplars or []))
    tensors.update(ex_tensors)
    meta = dict(metadata, exemplars=rows, format_version=FORMAT_VERSION, architecture=network.config.to_dict())
    meta_json = json.dumps(meta, sort_keys=True)
    header = {"format": FORMAT, "epick": meta_json, "sha256": _digest(meta_json, tensors)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def _fail(path, problem: str, fix: str = "retrain it with `epick train`, or copy the file again") -> ModelFileError:
    return ModelFileError(path, problem, fix)


def read_model_file(path: str | Path, *, verify: bool = True) -> ModelFile:
    """Load and verify a ``.epick`` file: format, version, hash, architecture; ModelFileError otherwise."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such model file", "check the path (model files end in .epick)")
    artifact = {".onnx": "an ONNX file", ".engine": "a TensorRT engine", ".pt2": "a torch-GPU package"}
    if path.suffix.lower() in artifact:   # exported for picking only: no exemplars, no trainable weights
        raise _fail(path, f"is {artifact[path.suffix.lower()]} exported for picking, not an epick model file",
                    "give the .epick file it was exported from, or train one with `epick train --mode joint`")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise _fail(path, f"is not a readable epick model file ({type(exc).__name__}: {exc})") from exc
    if header.get("format") != FORMAT or "epick" not in header:
        raise _fail(path, "is a safetensors file but not an epick model (no epick metadata)",
                    "give a model written by `epick train`")
    meta_json = header["epick"]
    if verify and header.get("sha256") != _digest(meta_json, tensors):
        raise _fail(path, "is damaged: its content does not match the checksum stored in it")
    try:
        meta = json.loads(meta_json)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"has unreadable metadata ({exc})") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise _fail(path, f"has model format version {meta.get('format_version')!r}; this epick reads "
                    f"version {FORMAT_VERSION}", "retrain the model, or use the epick version that wrote it")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise _fail(path, f"metadata lacks {', '.join(missing)}")
    try:
        config = NetworkConfig.from_dict(meta["architecture"])
    except (TypeError, ValueError) as exc:
        raise _fail(path, f"describes an unknown architecture ({exc})") from exc
    network = Detector(config)
    state = {k[len(NET_PREFIX):]: v for k, v in tensors.items() if k.startswith(NET_PREFIX)}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise _fail(path, f"weights do not fit the architecture it names ({str(exc).splitlines()[0]})") from exc
    network.eval()
    return ModelFile(network, meta, _read_exemplars(path, meta, tensors))


def _read_exemplars(path: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> list[Sample]:
    out = []
    for row in meta.get("exemplars", []):
        prefix = row["tensor"]
        try:
            image = tensors[f"{prefix}.image"].numpy()
            points = tensors[f"{prefix}.points"].numpy().astype(np.float64)
        except KeyError as exc:
            raise _fail(path, f"lists exemplar {prefix} but does not hold its tensors") from exc
        sizes = tensors.get(f"{prefix}.sizes")
        out.append(Sample(name=row["micrograph"], dataset=row["dataset"], image=image, points=points,
                          sizes=None if sizes is None else sizes.numpy().astype(np.float64),
                          labelled=True, exemplar=True, diameter=row.get("diameter_network"),
                          window=row.get("window")))
    return out


def load_model(path: str | Path) -> tuple[Detector, dict]:
    """The detector (eval mode, CPU, float32) and the JSON metadata of a verified ``.epick`` file."""
    model = read_model_file(path)
    return model.network, model.metadata
