"""The .epick model file: round trip, exemplars, and clear errors for wrong or damaged files."""
import json

import numpy as np
import pytest
import torch

from epick.runtime.errors import ModelFileError
from epick.trainer.data import Sample
from epick.trainer.modelfile import build_metadata, load_model, read_model_file, save_model
from epick.trainer.network import NetworkConfig, build_detector


def _model(tmp_path, with_size=False):
    torch.manual_seed(0)
    net = build_detector(NetworkConfig.narrow(with_size))
    meta = build_metadata(net.config, object_type="vesicle" if with_size else "particle",
                          preprocess={"target_width": 256}, particle_diameter=108.0, diameter_network=27.0,
                          history=[{"name": "betagal", "mode": "joint", "date": "2024-01-01", "particles": 5}])
    ex = Sample("mic1", "betagal", np.arange(64 * 96, dtype=np.uint8).reshape(64, 96) % 251,
                np.array([[1.5, 2.0], [30.0, 40.0]]), sizes=np.ones((2, 2)) if with_size else None,
                exemplar=True, diameter=27.0)
    path = save_model(tmp_path / "m.epick", net, meta, [ex])
    return net, path


def test_round_trip_weights_metadata_and_exemplars(tmp_path):
    net, path = _model(tmp_path, with_size=True)
    loaded = read_model_file(path)
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.network.state_dict()[k])
    assert loaded.network.config == net.config and not loaded.network.training
    assert loaded.metadata["particle_diameter"] == 108.0 and loaded.metadata["history"][0]["name"] == "betagal"
    (ex,) = loaded.exemplars
    assert ex.image.dtype == np.uint8 and ex.image.shape == (64, 96) and ex.exemplar and ex.diameter == 27.0
    np.testing.assert_allclose(ex.points, [[1.5, 2.0], [30.0, 40.0]])
    assert ex.sizes.shape == (2, 2)
    module, meta = load_model(path)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(module(x), net.eval()(x)))
    json.dumps(meta)  # JSON-serialisable for the exporter


def test_damaged_file_is_refused(tmp_path):
    _, path = _model(tmp_path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # flip bits inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="damaged"):
        read_model_file(path)


def test_truncated_and_foreign_files_are_refused(tmp_path):
    _, path = _model(tmp_path)
    cut = tmp_path / "cut.epick"
    cut.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="cut.epick"):
        read_model_file(cut)
    text = tmp_path / "notes.epick"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a readable epick model"):
        read_model_file(text)
    from safetensors.torch import save_file
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ModelFileError, match="not an epick model"):
        read_model_file(other)
    with pytest.raises(ModelFileError, match="no such model file"):
        read_model_file(tmp_path / "missing.epick")


def test_other_format_version_is_refused(tmp_path):
    net, _ = _model(tmp_path)
    meta = build_metadata(net.config, object_type="particle", preprocess={}, particle_diameter=None,
                          diameter_network=10.0, history=[])
    path = save_model(tmp_path / "v.epick", net, meta)
    import epick.trainer.modelfile as mf
    old = mf.FORMAT_VERSION
    try:
        mf.FORMAT_VERSION = 99
        with pytest.raises(ModelFileError, match="format version 1"):
            read_model_file(path)
    finally:
        mf.FORMAT_VERSION = old


def test_an_exported_onnx_file_given_as_model_file_says_so(tmp_path):
    # a user who only has the bundled betagal_model.onnx tries `epick train --mode finetune --model X.onnx`
    from pathlib import Path

    onnx_file = Path(__file__).resolve().parents[1] / "runtime" / "demo" / "betagal_model.onnx"
    with pytest.raises(ModelFileError, match=r"betagal_model\.onnx: is an ONNX file exported for picking.*\.epick"):
        read_model_file(onnx_file)
