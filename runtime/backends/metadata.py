"""What an exported artifact says about itself, as the runtime uses it.

The JSON blob, its keys and its checks are in ``epick.runtime.artifact``
(standard library only, no torch/onnx; keys listed there). ONNX files carry the blob under the
``metadata_props`` key ``epick``; TensorRT engines and torch-GPU packages in a sidecar
``<artifact>.json``. This module turns a validated blob into the few typed fields the Picker needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..artifact import build_artifact_metadata, decode_metadata_props, file_sha256, validate_metadata
from ..errors import ModelFileError

_OBJECT_ALIASES = {"particles": "particle", "vesicles": "vesicle", "fibers": "fiber", "fibre": "fiber",
                   "fibres": "fiber"}


@dataclass(frozen=True)
class ArtifactMetadata:
    """The model facts the runtime needs; ``raw`` keeps the whole validated blob."""

    object_type: str = "particle"
    stride: int = 4
    diameter: float | None = None          # particle box size in ORIGINAL micrograph pixels
    preprocess: dict = field(default_factory=dict)   # PreprocessParams.to_dict() of training
    model_hash: str | None = None
    format_version: int | None = None
    threshold: float | None = None         # the model's score threshold, when it records one
    outputs: tuple[str, ...] = ("heatmap", "offset")
    raw: dict = field(default_factory=dict)

    @classmethod
    def from_blob(cls, blob: dict, source: str | Path) -> "ArtifactMetadata":
        """From the export step's JSON blob (validated: format version, keys, object type)."""
        from .interface_check import check_metadata_values

        blob = validate_metadata(blob, source)
        check_metadata_values(blob, source)
        model = blob.get("model") or {}
        threshold = model.get("threshold") if isinstance(model, dict) else None
        diameter = blob.get("particle_diameter")
        return cls(object_type=blob["object_type"], stride=int(blob["output_stride"]),
                   diameter=None if diameter is None else float(diameter), preprocess=dict(blob["preprocess"] or {}),
                   model_hash=blob.get("model_hash"), format_version=int(blob["format_version"]),
                   threshold=None if threshold is None else float(threshold),
                   outputs=tuple(blob.get("outputs") or ("heatmap", "offset")), raw=dict(blob))

    @classmethod
    def from_props(cls, props: dict[str, str], source: str | Path) -> "ArtifactMetadata":
        """From ONNX ``metadata_props`` / ONNX Runtime's ``custom_metadata_map``."""
        return cls.from_blob(decode_metadata_props(props, source), source)

    @classmethod
    def from_model_file(cls, model_meta: dict, path: str | Path, outputs: list[str]) -> "ArtifactMetadata":
        """From a trainer model file's metadata, as the export step would describe it."""
        try:
            blob = build_artifact_metadata(model_meta, file_sha256(path), outputs)
        except (TypeError, ValueError) as exc:   # e.g. a diameter that is not a number
            raise ModelFileError(path, f"has metadata epick cannot use ({exc})",
                                 "retrain it, or fix the value with this epick version") from exc
        return cls.from_blob(blob, path)

    def check_object(self, requested: str | None, source: str | Path) -> None:
        """Refuse an artifact trained for another object type than the one asked for."""
        if requested is None:
            return
        want = _OBJECT_ALIASES.get(requested.lower(), requested.lower())
        if want != self.object_type:
            raise ModelFileError(source, f"this model picks {self.object_type}s, but {want}s were requested",
                                 f"use a {want} model, or drop --object to pick {self.object_type}s")
