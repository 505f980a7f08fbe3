"""The TensorRT builder and backend against a stand-in of the TensorRT 10 and 11 public API
(tests/_tensorrt_standin.py): a removed or renamed call fails here, without TensorRT or a GPU.

The ONNX files are hand-made with onnx.helper (a stride-4 pooling network with the epick metadata),
FP32 or FP16 (half weights, float32 input and outputs with casts inside, like the FP16 export), so
the tests take milliseconds; the stand-in engine computes the same network on the host.
"""
from __future__ import annotations

import ctypes
import json

import numpy as np
import pytest

import _tensorrt_standin as standin
from epick.runtime.errors import ModelFileError

onnx = pytest.importorskip("onnx")


def make_onnx(path, half: bool):
    """image [N,1,H,W] float32 -> (Cast half) -> 4x4 average -> heatmap = p * 8 - 2, offset = (p, 1 - p)."""
    from onnx import TensorProto, helper

    from epick.runtime.artifact import build_artifact_metadata
    from epick.export.onnx_export import set_metadata

    kind = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    np_kind = np.float16 if half else np.float32

    def const(name, value):
        return helper.make_tensor(name, kind, [1], np.array([value], np_kind).tobytes(), raw=True)

    nodes = [helper.make_node("Cast", ["image"], ["x"], to=kind),
             helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("Mul", ["p", "eight"], ["p8"]), helper.make_node("Sub", ["p8", "two"], ["h"]),
             helper.make_node("Sub", ["one", "p"], ["q"]), helper.make_node("Concat", ["p", "q"], ["o"], axis=1),
             helper.make_node("Cast", ["h"], ["heatmap"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["o"], ["offset"], to=TensorProto.FLOAT)]
    dims = ["N", 1, "H", "W"]
    graph = helper.make_graph(
        nodes, "standin", [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, ["N", 1, "h", "w"]),
         helper.make_tensor_value_info("offset", TensorProto.FLOAT, ["N", 2, "h", "w"])],
        [const("eight", 8.0), const("two", 2.0), const("one", 1.0)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    set_metadata(model, build_artifact_metadata({"object_type": "particle", "preprocess": {"target_width": 256}},
                                                "sha256:standin", ["heatmap", "offset"]))
    onnx.save(model, str(path))
    return path


@pytest.fixture(params=["10.13.0", "11.1.0"])
def trt(request, monkeypatch):
    """Each test runs against the TensorRT 10 and the TensorRT 11 API."""
    module, cudart = standin.install(monkeypatch, request.param)
    module.cudart = cudart
    return module


def small_profiles(max_batch=2):
    from epick.export.tensorrt_build import ShapeProfile

    return [ShapeProfile("64x96", (1, 1, 64, 96), (max_batch, 1, 64, 96), (max_batch, 1, 64, 96)),
            ShapeProfile("any", (1, 1, 32, 32), (1, 1, 64, 64), (1, 1, 256, 256))]


def test_fp16_engine_from_fp16_onnx_is_strongly_typed_without_precision_flags(trt, tmp_path):
    from epick.export import tensorrt_build as tb

    onnx_path = make_onnx(tmp_path / "m.fp16.onnx", half=True)
    engine = tb.build_engine(onnx_path, tmp_path / "m.engine", fp16=True, profiles=small_profiles())
    created = [c for c in trt.calls if c[0] == "create_network"]
    assert created == [("create_network", 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))]
    assert ("build_serialized_network", []) in trt.calls        # no BuilderFlag: precision is in the ONNX
    side = json.loads((tmp_path / "m.engine.json").read_text())
    assert side["engine"]["fp16"] is True and side["engine"]["strongly_typed"] is True
    assert side["engine"]["tensorrt_version"] == trt.__version__
    assert side["engine"]["gpu_name"] == "NVIDIA H200" and side["engine"]["compute_capability"] == "9.0"
    assert json.loads(engine.read_bytes()[len(b"standin-plan"):])["half"] is True
    assert (tmp_path / "m.engine.timing").stat().st_size > 0
    assert tb.engine_is_current(engine, model_hash="sha256:standin", fp16=True) == []
    assert tb.engine_is_current(engine, fp16=False) == ["built FP16, FP32 was asked for"]


def test_precision_must_match_the_onnx_file(trt, tmp_path):
    from epick.export import tensorrt_build as tb

    fp32 = make_onnx(tmp_path / "m.onnx", half=False)
    with pytest.raises(ModelFileError, match="strongly typed") as info:
        tb.build_engine(fp32, tmp_path / "m.engine", fp16=True, profiles=small_profiles())
    assert "epick export MODEL --tensorrt m.engine --fp16" in str(info.value)
    assert not (tmp_path / "m.engine").exists()
    tb.build_engine(fp32, tmp_path / "m.engine", profiles=small_profiles())        # None: the file's precision
    assert json.loads((tmp_path / "m.engine.json").read_text())["engine"]["fp16"] is False


@pytest.mark.parametrize("version", ["8.6.1", "9.3.0", "12.0.0", "banana"])
def test_other_tensorrt_majors_are_refused_with_the_fix(monkeypatch, tmp_path, version):
    from epick.export import tensorrt_build as tb
    from epick.runtime.backends.tensorrt import TensorRTBackend

    standin.install(monkeypatch, version)
    with pytest.raises(ModelFileError, match=f"TensorRT {version} is not supported") as info:
        tb.import_tensorrt()
    assert "tensorrt>=10,<12" in str(info.value)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"standin-plan{}")
    with pytest.raises(ModelFileError, match="TensorRT 10 and 11"):
        TensorRTBackend(engine)


def _backend(trt, tmp_path, max_batch=2):
    from epick.export import tensorrt_build as tb
    from epick.runtime.backends.tensorrt import TensorRTBackend

    engine = tb.build_engine(make_onnx(tmp_path / "m.onnx", half=True), tmp_path / "m.engine",
                             profiles=small_profiles(max_batch))
    return TensorRTBackend(engine)


def test_backend_splits_batches_over_the_profile_and_reuses_buffers(trt, tmp_path):
    backend = _backend(trt, tmp_path)
    assert backend.max_batch == 2 and backend.device_io and backend.metadata.model_hash == "sha256:standin"
    images = np.random.default_rng(0).random((5, 1, 64, 96)).astype(np.float32)
    out = backend.infer(images)
    want_heat, want_off = standin.standin_network(images)
    np.testing.assert_array_equal(out["heatmap"], want_heat)
    np.testing.assert_array_equal(out["offset"], want_off)
    runs = [c[1] for c in trt.calls if c[0] == "execute_async_v3"]
    assert runs == [(2, 1, 64, 96), (2, 1, 64, 96), (1, 1, 64, 96)]
    allocated = len(trt.cudart.live)
    backend.infer(images)                                      # same shapes: no new allocations
    assert len(trt.cudart.live) == allocated
    odd = np.random.default_rng(1).random((1, 1, 128, 64)).astype(np.float32)   # the catch-all profile
    np.testing.assert_array_equal(backend.infer(odd)["heatmap"], standin.standin_network(odd)[0])
    backend.close()
    assert not trt.cudart.live and not trt.cudart.streams      # every buffer and the stream freed


def test_backend_infer_device_on_device_pointers(trt, tmp_path):
    from epick.runtime.backends.base import DeviceArrayView

    backend = _backend(trt, tmp_path)
    images = np.random.default_rng(2).random((3, 1, 64, 96)).astype(np.float32)
    err, ptr = trt.cudart.cudaMalloc(images.nbytes)
    ctypes.memmove(ptr, images.ctypes.data, images.nbytes)
    out = backend.infer_device(DeviceArrayView(ptr, images.shape, np.float32))
    cai = out["heatmap"].__cuda_array_interface__
    assert cai["shape"] == (3, 1, 16, 24) and cai["typestr"] == "<f4"
    heat = np.frombuffer((ctypes.c_float * (3 * 16 * 24)).from_address(cai["data"][0]), np.float32)
    np.testing.assert_array_equal(heat.reshape(3, 1, 16, 24), standin.standin_network(images)[0])
    backend.close()


def test_stale_engine_is_refused_with_the_rebuild_command_or_rebuilt_by_the_callers_builder(trt, tmp_path):
    """The runtime never rebuilds through the export step itself: without a builder a stale engine is
    refused with the `epick export` command; a builder passed by the caller rebuilds it once."""
    from epick.export import tensorrt_build as tb
    from epick.runtime import artifact as am
    from epick.runtime.backends.tensorrt import TensorRTBackend

    onnx_path = make_onnx(tmp_path / "m.onnx", half=True)
    engine = tb.build_engine(onnx_path, tmp_path / "m.engine", profiles=small_profiles())
    side = am.read_sidecar(engine)
    side["engine"]["gpu_name"] = "a GPU of another machine"
    am.sidecar_path(engine).write_text(json.dumps(side))
    with pytest.raises(ModelFileError, match="another machine") as info:
        TensorRTBackend(engine)
    assert f"epick export MODEL.epick (the model file with hash sha256:standin) --tensorrt {engine} --rebuild" \
        in str(info.value)
    calls = []

    def builder(onnx_source, engine_path):
        calls.append((onnx_source, engine_path))
        tb.build_engine(onnx_source, engine_path, profiles=small_profiles())

    backend = TensorRTBackend(engine, builder=builder)
    assert calls == [(onnx_path, engine)] and backend.name == "tensorrt"
    backend.close()


@pytest.mark.slow
def test_cli_fp16_engine_from_a_model_file_through_an_fp16_onnx(trt, tmp_path, capsys):
    """epick export MODEL --tensorrt OUT --fp16: an FP16 ONNX is exported and checked on picks, the
    strongly typed engine is built from it; a second call finds the engine current."""
    pytest.importorskip("torch")
    from test_export_onnx import make_model_file

    from epick.runtime.cli import main

    model = make_model_file(tmp_path / "narrow.epick")
    engine = tmp_path / "narrow.engine"
    assert main(["export", str(model), "--tensorrt", str(engine), "--fp16"]) == 0
    out = capsys.readouterr().out
    assert "FP16 ONNX parity" in out and "picks the same" in out
    side = json.loads((tmp_path / "narrow.engine.json").read_text())
    assert side["engine"]["fp16"] is True and side["engine"]["strongly_typed"] is True
    assert json.loads(engine.read_bytes()[len(b"standin-plan"):])["half"] is True
    assert main(["export", str(model), "--tensorrt", str(engine), "--fp16"]) == 0
    assert "is current" in capsys.readouterr().out
