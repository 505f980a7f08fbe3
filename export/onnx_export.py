"""Lower a torch network to ONNX: opset >= 17, dynamic batch/height/width, simplified, with metadata.

The graph follows the artifact contract (``epick.export.graph``); height and width are exported as
``32 * k`` so every multiple of 32 is accepted. The JSON metadata blob of
``epick.runtime.artifact`` is stored under ``metadata_props["epick"]``.
"""
from __future__ import annotations

import logging
import tempfile
import warnings
from importlib import metadata as _pkg_metadata
from pathlib import Path
from typing import Any, Mapping

from epick.runtime.errors import ModelFileError
from epick.runtime.io.atomic import atomic_path

from epick.runtime.artifact import encode_metadata_props

log = logging.getLogger("epick.export")

MIN_OPSET = 17
DEFAULT_OPSET = 18  # the exporter's native opset; 17 works too (converted by onnx)
MAX_BATCH = 1024
MAX_SIDE = 16384  # network pixels; far beyond 1024-wide inputs of any common detector shape


def exporter_versions(opset: int) -> dict[str, Any]:
    """Versions of the packages that made the artifact (stored in its metadata)."""
    versions: dict[str, Any] = {"opset": int(opset)}
    for name in ("epick", "torch", "onnx", "onnxslim", "onnxscript"):
        try:
            versions[name] = _pkg_metadata.version(name)
        except _pkg_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _dynamic_shapes():
    """torch.export dims: batch 1..MAX_BATCH, height and width = 32 * k up to MAX_SIDE."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=MAX_BATCH)
    h32 = Dim("h32", min=1, max=MAX_SIDE // 32)
    w32 = Dim("w32", min=1, max=MAX_SIDE // 32)
    return {"image": {0: batch, 2: 32 * h32, 3: 32 * w32}}


def torch_to_onnx_model(graph, output_names: tuple[str, ...], *, opset: int = DEFAULT_OPSET,
                        example_hw: tuple[int, int] = (256, 320)):
    """Export ``graph`` (a ContractGraph-like module, float32 on CPU) to an ``onnx.ModelProto``."""
    import onnx
    import torch

    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is below the minimum {MIN_OPSET}")
    graph = graph.eval()
    # batch 2 and a non-square example so torch.export does not specialise any dim to its value
    example = torch.rand(2, 1, *example_hw, dtype=torch.float32)
    with tempfile.TemporaryDirectory(prefix="epick-onnx-") as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        raw = Path(tmp) / "raw.onnx"
        program = torch.onnx.export(graph, (example,), input_names=["image"], output_names=list(output_names),
                                    opset_version=opset, dynamic_shapes=_dynamic_shapes(), dynamo=True,
                                    verbose=False)
        program.save(str(raw))
        return onnx.load(str(raw))


def simplify_model(model):
    """Simplify with onnxslim (constant folding, fusions, dead nodes); return the new ModelProto."""
    import onnxslim

    return onnxslim.slim(model)


def set_metadata(model, meta: Mapping[str, Any]) -> None:
    """Replace the model's epick ``metadata_props`` with ``meta`` (encoded by epick.runtime.artifact)."""
    props = encode_metadata_props(meta)
    keep = [p for p in model.metadata_props if p.key not in props and not p.key.startswith("epick")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def export_onnx(graph, out_path: str | Path, meta: Mapping[str, Any], *, opset: int = DEFAULT_OPSET,
                simplify: bool = True) -> Path:
    """Write ``graph`` as ONNX to ``out_path`` (atomically) with ``meta`` in its metadata; return the path."""
    import onnx

    output_names = tuple(graph.names)
    model = torch_to_onnx_model(graph, output_names, opset=opset)
    if simplify:
        model = simplify_model(model)
    set_metadata(model, meta)
    model.producer_name = "epick"
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ModelFileError(out_path, f"the exported ONNX graph is invalid ({exc})",
                             "report this with the model file; try --no-simplify") from exc
    names = [o.name for o in model.graph.output]
    if names != list(output_names):
        raise ModelFileError(out_path, f"exported outputs are {names}, expected {list(output_names)}",
                             "report this with the model file")
    with atomic_path(out_path) as tmp:
        onnx.save(model, str(tmp))
    log.info("wrote %s (opset %d, outputs %s)", out_path, opset, ", ".join(names))
    return Path(out_path)
