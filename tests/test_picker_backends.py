"""Backends beyond ONNX Runtime CPU: refusals that work without a GPU, and GPU checks that skip cleanly."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _models import blob_micrograph, make_onnx
from epick.runtime.backends import artifact_kind, open_backend
from epick.runtime.backends.tensorrt import engine_problem, tensorrt_available
from epick.runtime.errors import ModelFileError

GPU = {"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


def _fake_engine(tmp_path: Path, **engine) -> Path:
    from epick.runtime.artifact import build_artifact_metadata

    path = tmp_path / "model.engine"
    path.write_bytes(b"serialized engine")
    side = build_artifact_metadata({"object_type": "particle", "preprocess": {}}, "sha256:abc", ["heatmap", "offset"])
    side["engine"] = {"tensorrt_version": "10.3.0", **GPU, **engine}
    path.with_name(path.name + ".json").write_text(json.dumps(side))
    return path


def test_engine_staleness_names_the_mismatch(tmp_path):
    engine = _fake_engine(tmp_path)
    assert engine_problem(engine, "10.3.0", GPU)[1] is None
    assert "TensorRT version" in engine_problem(engine, "10.7.0", GPU)[1]
    other = {"gpu_name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}
    problem = engine_problem(engine, "10.3.0", other)[1]
    assert "compute capability" in problem and "A100" in problem
    assert engine_problem(engine, "10.3.0", None)[1] == "no CUDA GPU is visible"
    engine.with_name("model.engine.json").unlink()
    assert "missing" in engine_problem(engine, "10.3.0", GPU)[1]


def test_artifact_kinds(tmp_path):
    assert artifact_kind(tmp_path / "a.onnx") == "onnx"
    assert artifact_kind(tmp_path / "a.engine") == "tensorrt"
    assert artifact_kind(tmp_path / "a.pt2") == "torch-gpu"
    assert artifact_kind(tmp_path / "a.epick") == "model"
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="cannot tell"):
        artifact_kind(odd)


@pytest.mark.skipif(tensorrt_available(), reason="checks the refusal on machines without TensorRT")
def test_engine_without_tensorrt_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ModelFileError, match="pick with the ONNX file"):
        open_backend(_fake_engine(tmp_path))


def test_auto_falls_back_to_onnxruntime_without_tensorrt(tmp_path):
    onnx_path = make_onnx(tmp_path / "m.onnx", target_width=256)
    _fake_engine(tmp_path).rename(tmp_path / "m.engine")
    backend = open_backend(onnx_path, "auto")
    if not tensorrt_available():
        assert backend.name.startswith("onnxruntime")


@pytest.mark.gpu
def test_tensorrt_engine_matches_onnxruntime(tmp_path):
    """On a GPU machine with TensorRT: FP16 engine picks equal ONNX Runtime picks."""
    if not tensorrt_available():
        pytest.skip("tensorrt, cuda-python or a CUDA GPU is missing")
    from epick.export.tensorrt_build import build_engine
    from epick.runtime import Picker

    onnx_path = make_onnx(tmp_path / "m.onnx", target_width=256)
    engine = build_engine(onnx_path, tmp_path / "m.engine")
    image = blob_micrograph(seed=3)[0]
    ref = Picker(onnx_path, "onnxruntime-cpu", threshold=0.5).pick(image)
    with Picker(engine, "tensorrt", threshold=0.5) as picker:
        assert picker.backend_name == "tensorrt"
        got = picker.pick(image)
    np.testing.assert_allclose(got.x, ref.x, atol=0.5)
    np.testing.assert_allclose(got.y, ref.y, atol=0.5)
