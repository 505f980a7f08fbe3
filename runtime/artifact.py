"""Metadata carried by every exported artifact (ONNX, TensorRT engine, torch-GPU package).

The runtime reads and checks artifacts with it; the export step (``epick.export``) writes it with
the same functions. Standard library and ``epick.runtime`` only (no torch, no onnx); ONNX Runtime is
imported inside ``read_onnx_metadata`` only.

Where the metadata lives:
- ONNX: ``metadata_props`` key ``"epick"`` holds the JSON blob below; a few flat copies
  (``epick.format_version``, ``epick.model_hash``, ``epick.object_type``, ``epick.output_stride``)
  are there for tools such as Netron.
- TensorRT: sidecar ``OUT.engine.json`` = the same blob plus ``"engine": {...}`` (TensorRT version,
  GPU name, compute capability, profiles), see ``check_engine_sidecar``.
- torch-GPU: sidecar ``OUT.pt2.json`` = the same blob plus ``"torch_gpu": {...}``.

JSON blob keys (``ARTIFACT_KEYS``):
    format_version    int, ARTIFACT_FORMAT_VERSION; another value is refused
    model_hash        "sha256:<hex>" of the model file the artifact was made from
    object_type       "particle" | "vesicle" | "fiber"
    output_stride     int, network pixels per heatmap cell (4)
    input_multiple    int, H and W of the input must be multiples of this (32)
    particle_diameter float or None, in ORIGINAL micrograph pixels (as stored in the model file)
    preprocess        dict, ``PreprocessParams.to_dict()`` of the model
    inputs            ["image"]: float32 [N, 1, H, W] = u8 / 255
    outputs           ["heatmap", "offset"(, "size")]; heatmap holds LOGITS
    heatmap_is_logits true: the runtime's peak step applies sigmoid and the 3x3 max-pool
    model             dict, the model file's own metadata (JSON-serialisable part)
    exporter          dict, versions of epick/torch/onnx used for the export
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from epick.runtime.errors import ModelFileError
from epick.runtime.picks import OBJECT_TYPES

ARTIFACT_FORMAT_VERSION = 1
METADATA_KEY = "epick"
FLAT_KEYS = ("format_version", "model_hash", "object_type", "output_stride")
ARTIFACT_KEYS = ("format_version", "model_hash", "object_type", "output_stride", "input_multiple",
                 "particle_diameter", "preprocess", "inputs", "outputs", "heatmap_is_logits",
                 "model", "exporter")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """``"sha256:<hex>"`` of a file's bytes (the model hash that ties an artifact to its model file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of ``value``; objects that are not become their ``str``."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if hasattr(value, "item"):  # numpy / torch scalars
        return _jsonable(value.item())
    return str(value)


def build_artifact_metadata(model_meta: Mapping[str, Any], model_hash: str, outputs: list[str],
                            *, exporter: Mapping[str, Any] | None = None,
                            output_stride: int = 4, input_multiple: int = 32) -> dict:
    """The artifact's JSON blob from the model file's metadata (keys as in this module's docstring)."""
    model = _jsonable(dict(model_meta))
    object_type = str(model.get("object_type", model.get("object", "particle")))
    diameter = model.get("particle_diameter", model.get("diameter"))
    return {
        "format_version": ARTIFACT_FORMAT_VERSION,
        "model_hash": model_hash,
        "object_type": object_type,
        "output_stride": int(model.get("output_stride", output_stride)),
        "input_multiple": int(input_multiple),
        "particle_diameter": None if diameter is None else float(diameter),
        "preprocess": model.get("preprocess", model.get("preprocess_params", {})) or {},
        "inputs": ["image"],
        "outputs": list(outputs),
        "heatmap_is_logits": True,
        "model": model,
        "exporter": _jsonable(dict(exporter or {})),
    }


def encode_metadata_props(meta: Mapping[str, Any]) -> dict[str, str]:
    """ONNX ``metadata_props`` (str -> str): the JSON blob under ``"epick"`` plus flat copies."""
    props = {METADATA_KEY: json.dumps(_jsonable(dict(meta)), sort_keys=True)}
    for key in FLAT_KEYS:
        if key in meta:
            props[f"{METADATA_KEY}.{key}"] = str(meta[key])
    return props


def validate_metadata(meta: Any, source: str | Path) -> dict:
    """Check an artifact's blob (format version, required keys); raise ModelFileError naming ``source``."""
    fix = "re-export it from the model file with this epick version: epick export MODEL ..."
    if not isinstance(meta, dict):
        raise ModelFileError(source, "the epick metadata is not a JSON object", fix)
    version = meta.get("format_version")
    if version != ARTIFACT_FORMAT_VERSION:
        raise ModelFileError(source, f"artifact format version {version!r}, this epick reads version "
                             f"{ARTIFACT_FORMAT_VERSION}", fix)
    missing = [k for k in ARTIFACT_KEYS if k not in meta]
    if missing:
        raise ModelFileError(source, f"the epick metadata lacks {', '.join(missing)}", fix)
    if meta["object_type"] not in OBJECT_TYPES:
        raise ModelFileError(source, f"unknown object type {meta['object_type']!r}", fix)
    return meta


def decode_metadata_props(props: Mapping[str, str], source: str | Path) -> dict:
    """The validated JSON blob from ONNX ``metadata_props`` / ORT ``custom_metadata_map``."""
    if METADATA_KEY not in props:
        raise ModelFileError(source, "no epick metadata in this ONNX file (not exported by epick?)",
                             "export it with: epick export MODEL --onnx OUT.onnx")
    try:
        meta = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise ModelFileError(source, f"the epick metadata is not valid JSON ({exc})",
                             "re-export it: epick export MODEL --onnx OUT.onnx") from exc
    return validate_metadata(meta, source)


def read_onnx_metadata(path: str | Path) -> dict:
    """Read and validate the epick metadata of an ONNX file (uses ONNX Runtime, no session run)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf kinds
        raise ModelFileError(path, f"ONNX Runtime cannot load it ({exc})",
                             "re-export it: epick export MODEL --onnx OUT.onnx") from exc
    return decode_metadata_props(session.get_modelmeta().custom_metadata_map, path)


def sidecar_path(artifact: str | Path) -> Path:
    """The JSON sidecar of an engine or package: ``OUT.engine`` -> ``OUT.engine.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def read_sidecar(artifact: str | Path) -> dict:
    """Read and validate the sidecar JSON of ``artifact``; ModelFileError when missing or stale."""
    path = sidecar_path(artifact)
    if not path.is_file():
        raise ModelFileError(artifact, f"its metadata file {path.name} is missing",
                             "rebuild the artifact with epick export (it writes both files)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(path, f"cannot read it ({exc})", "rebuild the artifact with epick export") from exc
    return validate_metadata(meta, path)


def engine_mismatches(sidecar: Mapping[str, Any], *, trt_version: str, gpu_name: str,
                      compute_capability: str | tuple[int, int],
                      model_hash: str | None = None) -> list[str]:
    """Reasons why a TensorRT engine described by ``sidecar`` cannot run here (empty list: it can).

    A serialized engine is tied to the exact TensorRT version and the GPU (compute capability) it
    was built on; ``model_hash`` (optional) ties it to the model file the user asked for.
    """
    engine = sidecar.get("engine", {})
    if isinstance(compute_capability, (tuple, list)):
        compute_capability = f"{compute_capability[0]}.{compute_capability[1]}"
    wanted = {"TensorRT version": (engine.get("tensorrt_version"), trt_version),
              "compute capability": (engine.get("compute_capability"), str(compute_capability)),
              "GPU": (engine.get("gpu_name"), gpu_name)}
    reasons = [f"built for {name} {built!r}, this machine has {here!r}"
               for name, (built, here) in wanted.items() if built != here]
    if model_hash is not None and sidecar.get("model_hash") != model_hash:
        reasons.append(f"built from model {sidecar.get('model_hash')!r}, not from {model_hash!r}")
    return reasons


def check_engine_current(engine_path: str | Path, *, trt_version: str, gpu_name: str,
                         compute_capability: str | tuple[int, int],
                         model_hash: str | None = None) -> dict:
    """The engine's sidecar if the engine matches this machine (and model); else ModelFileError."""
    sidecar = read_sidecar(engine_path)
    reasons = engine_mismatches(sidecar, trt_version=trt_version, gpu_name=gpu_name,
                                compute_capability=compute_capability, model_hash=model_hash)
    if reasons:
        raise ModelFileError(engine_path, "stale TensorRT engine: " + "; ".join(reasons),
                             "rebuild it on this machine: epick export MODEL --tensorrt "
                             f"{Path(engine_path).name} --fp16")
    return sidecar
