"""Artifact metadata: JSON blob round trip, format-version refusal, runtime reader agreement,
TensorRT engine staleness from the sidecar."""
from __future__ import annotations

import json

import pytest

from epick.runtime import artifact as am
from epick.runtime.errors import ModelFileError

MODEL_META = {"format_version": 1, "object_type": "vesicle", "particle_diameter": 108.0,
              "output_stride": 4, "preprocess": {"target_width": 1024, "clip_low": 0.001},
              "architecture": {"width": 0.25, "with_size": True}}


def _meta(**changes):
    meta = am.build_artifact_metadata(MODEL_META, "sha256:" + "ab" * 32, ["heatmap", "offset", "size"],
                                      exporter={"opset": 18})
    meta.update(changes)
    return meta


def test_props_round_trip_keeps_every_key():
    meta = _meta()
    props = am.encode_metadata_props(meta)
    assert set(props) >= {"epick", "epick.format_version", "epick.model_hash", "epick.object_type"}
    assert all(isinstance(v, str) for v in props.values())
    back = am.decode_metadata_props(props, "x.onnx")
    assert back == json.loads(json.dumps(meta))
    assert back["object_type"] == "vesicle" and back["particle_diameter"] == 108.0
    assert back["preprocess"]["target_width"] == 1024 and back["outputs"][-1] == "size"
    assert back["heatmap_is_logits"] is True and back["model"]["architecture"]["with_size"] is True


def test_runtime_reader_sees_the_same_facts():
    from epick.runtime.backends.metadata import ArtifactMetadata

    meta = _meta()
    read = ArtifactMetadata.from_props(am.encode_metadata_props(meta), "x.onnx")
    assert (read.object_type, read.stride, read.diameter) == ("vesicle", 4, 108.0)
    assert read.preprocess == meta["preprocess"]
    assert read.model_hash == meta["model_hash"] and read.format_version == am.ARTIFACT_FORMAT_VERSION


def test_other_format_version_is_refused_with_a_fix():
    props = am.encode_metadata_props(_meta(format_version=am.ARTIFACT_FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match="format version") as info:
        am.decode_metadata_props(props, "old.onnx")
    assert "old.onnx" in str(info.value) and "epick export" in str(info.value)


@pytest.mark.parametrize("props", [{}, {"epick": "{not json"}, {"epick": "[1, 2]"}])
def test_missing_or_broken_blob_is_refused(props):
    with pytest.raises(ModelFileError, match="x.onnx"):
        am.decode_metadata_props(props, "x.onnx")


def test_missing_keys_and_unknown_object_are_refused():
    meta = _meta()
    del meta["output_stride"]
    with pytest.raises(ModelFileError, match="output_stride"):
        am.validate_metadata(meta, "x")
    with pytest.raises(ModelFileError, match="object type"):
        am.validate_metadata(_meta(object_type="blob"), "x")


def test_file_hash_changes_with_content(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"model one")
    b.write_bytes(b"model two")
    assert am.file_sha256(a) != am.file_sha256(b)
    assert am.file_sha256(a).startswith("sha256:") and len(am.file_sha256(a)) == 7 + 64


def _engine(tmp_path, **engine):
    path = tmp_path / "m.engine"
    path.write_bytes(b"\0engine")
    facts = {"tensorrt_version": "10.3.0", "gpu_name": "NVIDIA H100", "compute_capability": "9.0"}
    facts.update(engine)
    am.sidecar_path(path).write_text(json.dumps({**_meta(), "engine": facts}))
    return path


def test_current_engine_is_accepted(tmp_path):
    path = _engine(tmp_path)
    side = am.check_engine_current(path, trt_version="10.3.0", gpu_name="NVIDIA H100",
                                   compute_capability=(9, 0), model_hash=_meta()["model_hash"])
    assert side["engine"]["compute_capability"] == "9.0"


def test_stale_engine_is_refused_naming_each_mismatch(tmp_path):
    path = _engine(tmp_path)
    with pytest.raises(ModelFileError) as info:
        am.check_engine_current(path, trt_version="10.5.0", gpu_name="NVIDIA A100",
                                compute_capability="8.0", model_hash="sha256:other")
    msg = str(info.value)
    for word in ("stale", "10.3.0", "10.5.0", "compute capability", "A100", "sha256:other", "--tensorrt"):
        assert word in msg
    reasons = am.engine_mismatches(am.read_sidecar(path), trt_version="10.3.0", gpu_name="NVIDIA H100",
                                   compute_capability="8.9")
    assert len(reasons) == 1 and "8.9" in reasons[0]


def test_engine_without_sidecar_is_refused(tmp_path):
    path = tmp_path / "lonely.engine"
    path.write_bytes(b"x")
    with pytest.raises(ModelFileError, match="lonely.engine.json"):
        am.check_engine_current(path, trt_version="10", gpu_name="g", compute_capability="9.0")


def test_metadata_module_stays_light():
    import subprocess
    import sys

    code = ("import sys, epick.runtime.artifact; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'tensorrt') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
