"""Load a model file for export: the trainer's network plus the artifact metadata that goes with it."""
from __future__ import annotations

from pathlib import Path

from epick.runtime.artifact import build_artifact_metadata, file_sha256
from .graph import ContractGraph
from .onnx_export import DEFAULT_OPSET, exporter_versions


def load_for_export(model_path: str | Path, opset: int = DEFAULT_OPSET):
    """``(ContractGraph in eval mode, artifact metadata dict)`` of a verified ``.epick`` model file.

    The trainer's loader refuses damaged files and other model format versions (ModelFileError).
    """
    from epick.trainer.modelfile import load_model

    network, model_meta = load_model(model_path)
    graph = ContractGraph(network.eval()).eval()
    model_meta = {k: v for k, v in model_meta.items() if k != "exemplars"}  # bulky, not needed to pick
    meta = build_artifact_metadata(model_meta, file_sha256(model_path), list(graph.names),
                                   exporter=exporter_versions(opset))
    return graph, meta
