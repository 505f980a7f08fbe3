"""TensorRT engine: profiles for the common micrograph shapes (no TensorRT needed), clear refusal
when TensorRT is missing, and a real FP16 build + staleness check where TensorRT and a GPU exist."""
from __future__ import annotations

import json

import pytest

from epick.export import tensorrt_build as tb
from epick.runtime.errors import ModelFileError


def test_profiles_cover_common_micrographs_after_downsampling():
    from epick.runtime.preprocess import network_shape, pad_to_multiple
    import numpy as np

    profiles = tb.default_profiles()
    for width, height in tb.COMMON_MICROGRAPHS:
        ny, nx = network_shape((height, width), 1024)
        padded = pad_to_multiple(np.zeros((ny, nx), np.uint8), 32).shape
        fixed = [p for p in profiles if p.name == f"{width}x{height}"]
        assert len(fixed) == 1, f"no profile for {width}x{height}"
        for batch in (1, 32):
            assert fixed[0].accepts((batch, 1, *padded))
        assert not fixed[0].accepts((33, 1, *padded))
    catch_all = profiles[-1]
    assert catch_all.accepts((1, 1, 64, 1024)) and catch_all.accepts((1, 1, 2048, 1024))
    assert all(d % 32 == 0 for p in profiles for shape in (p.min, p.opt, p.max) for d in shape[2:])
    assert json.loads(json.dumps([p.to_dict() for p in profiles]))[0]["max"][0] == 32


def test_missing_tensorrt_is_a_clear_error():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(ModelFileError, match="TensorRT") as info:
            tb.import_tensorrt()
        assert "pip install 'tensorrt>=10,<12'" in str(info.value)
    else:
        pytest.skip("tensorrt is installed")


def test_cli_refuses_tensorrt_before_exporting(tmp_path, capsys):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed")
    except ImportError:
        pass
    from epick.runtime.cli import main

    model = tmp_path / "m.epick"
    model.write_bytes(b"not read: TensorRT is checked first")
    assert main(["export", str(model), "--tensorrt", str(tmp_path / "m.engine"), "--fp16"]) == 2
    assert "TensorRT" in capsys.readouterr().err
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.gpu
def test_fp16_engine_build_and_staleness(tmp_path):
    trt = pytest.importorskip("tensorrt")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from epick.runtime import artifact as am
    from epick.runtime.cli import main
    from _models import make_model_file

    model = make_model_file(tmp_path / "narrow.epick")
    onnx_path, engine = tmp_path / "narrow.onnx", tmp_path / "narrow.engine"
    assert main(["export", str(model), "--onnx", str(onnx_path), "--tensorrt", str(engine), "--fp16"]) == 0
    side = am.read_sidecar(engine)
    assert side["engine"]["tensorrt_version"] == trt.__version__ and side["engine"]["fp16"] is True
    assert side["model_hash"] == am.file_sha256(model)
    assert (tmp_path / "narrow.engine.timing").stat().st_size > 0
    assert tb.engine_is_current(engine, model_hash=side["model_hash"]) == []
    side["engine"]["tensorrt_version"] = "9.0.0"
    am.sidecar_path(engine).write_text(json.dumps(side))
    assert tb.engine_is_current(engine)
    with pytest.raises(ModelFileError, match="stale"):
        tb.ensure_engine(onnx_path, engine, rebuild=False)
