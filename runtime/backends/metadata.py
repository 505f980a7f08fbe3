"""What an exported artifact says about itself: object type, stride, diameter, preprocessing, hash.

The export step stores one JSON object under the ONNX ``metadata_props`` key ``epick`` (TensorRT
engines and torch-GPU artifacts carry the same object in a sidecar ``<artifact>.json``, under the
key ``epick`` or at top level). Flat keys beside it are accepted as a fallback. Reading needs only
``json``: no onnx, no torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelFileError

OBJECT_TYPES = ("particle", "vesicle", "fiber")
_OBJECT_ALIASES = {"particles": "particle", "vesicles": "vesicle", "fibers": "fiber", "fibre": "fiber",
                   "fibres": "fiber", "filament": "fiber", "filaments": "fiber"}


@dataclass(frozen=True)
class ArtifactMetadata:
    """The model facts the runtime needs; ``raw`` keeps the whole JSON object."""

    object_type: str = "particle"
    stride: int = 4
    diameter: float | None = None          # particle box size in ORIGINAL micrograph pixels
    preprocess: dict = field(default_factory=dict)   # PreprocessParams.to_dict() of training
    model_hash: str | None = None
    format_version: int | None = None
    threshold: float | None = None         # default score threshold the model was tuned for
    raw: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict, source: str | Path = "<artifact>") -> "ArtifactMetadata":
        """Build from the exported JSON object; unknown keys stay in ``raw``."""
        if not isinstance(data, dict):
            raise ModelFileError(source, "metadata is not a JSON object", "re-export the model with `epick export`")
        obj = _first(data, "object_type", "object", "objects", default="particle")
        obj = _OBJECT_ALIASES.get(str(obj).lower(), str(obj).lower())
        if obj not in OBJECT_TYPES:
            raise ModelFileError(source, f"unknown object type {obj!r} in metadata",
                                 f"expected one of {', '.join(OBJECT_TYPES)}; re-export the model")
        pre = _first(data, "preprocess", "preprocessing", "preprocess_params", default={}) or {}
        if isinstance(pre, str):
            pre = json.loads(pre)
        diameter = _first(data, "diameter", "particle_diameter", "box_size", default=None)
        threshold = _first(data, "threshold", "score_threshold", default=None)
        version = _first(data, "format_version", "version", default=None)
        return cls(object_type=obj, stride=int(_first(data, "stride", "output_stride", default=4)),
                   diameter=None if diameter is None else float(diameter), preprocess=dict(pre),
                   model_hash=_first(data, "model_hash", "hash", "sha256", default=None),
                   format_version=None if version is None else int(version),
                   threshold=None if threshold is None else float(threshold), raw=dict(data))

    @classmethod
    def from_props(cls, props: dict[str, str], source: str | Path = "<artifact>") -> "ArtifactMetadata":
        """Build from string->string properties (ONNX metadata_props / a sidecar): key ``epick`` or flat keys."""
        blob = props.get("epick")
        if blob is not None:
            try:
                data = json.loads(blob) if isinstance(blob, str) else dict(blob)
            except (json.JSONDecodeError, TypeError, ValueError) as exc:
                raise ModelFileError(source, f"metadata key 'epick' is not valid JSON ({exc})",
                                     "re-export the model with `epick export`") from exc
            flat = {k: v for k, v in props.items() if k != "epick"}
            return cls.from_dict({**_decode_flat(flat), **data}, source)
        return cls.from_dict(_decode_flat(props), source)

    def check_object(self, requested: str | None, source: str | Path) -> None:
        """Refuse an artifact trained for another object type than the one asked for."""
        if requested is None:
            return
        want = _OBJECT_ALIASES.get(requested.lower(), requested.lower())
        if want != self.object_type:
            raise ModelFileError(source, f"this model picks {self.object_type}s, but {want}s were requested",
                                 f"use a {want} model, or drop --object to pick {self.object_type}s")


def read_sidecar(path: str | Path) -> dict | None:
    """The JSON sidecar ``<artifact>.json`` beside an engine/artifact, or None when absent."""
    side = Path(str(path) + ".json")
    if not side.is_file():
        return None
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(side, f"sidecar metadata is unreadable ({exc})", "re-export the artifact") from exc


def metadata_from_sidecar(path: str | Path) -> ArtifactMetadata:
    """Model metadata from the sidecar of an engine or torch-GPU artifact (refused when missing)."""
    data = read_sidecar(path)
    if data is None:
        raise ModelFileError(path, f"no metadata sidecar {Path(str(path) + '.json').name} beside the artifact",
                             "re-export with `epick export`, which writes the sidecar next to it")
    inner = data.get("epick", data)
    if isinstance(inner, str):
        inner = json.loads(inner)
    return ArtifactMetadata.from_dict(inner, path)


def _first(data: dict, *keys: str, default=None):
    for key in keys:
        if key in data and data[key] is not None:
            return data[key]
    return default


def _decode_flat(props: dict) -> dict:
    """Flat metadata values are strings; decode the JSON ones (numbers, dicts) and keep the rest."""
    out = {}
    for key, value in props.items():
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value
        else:
            out[key] = value
    return out
