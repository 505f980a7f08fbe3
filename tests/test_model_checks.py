"""A model that breaks the network contract is refused when it is loaded, naming the file and what
is wrong; NaN outputs are reported; metadata values are bounded; a rejected export leaves nothing
at the output path (issue 12, items 8 and 9)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from _models import blob_micrograph, make_onnx
from epick.runtime.errors import ModelFileError
from epick.runtime.picker import Picker

torch = pytest.importorskip("torch")


class _Pool(torch.nn.Module):
    """Heatmap and offset from average pooling by ``stride``; ``channels`` heatmap channels; NaN on request."""

    def __init__(self, stride: int = 4, channels: int = 1, nan: bool = False):
        super().__init__()
        self.pool = torch.nn.AvgPool2d(stride)
        self.channels, self.nan = channels, nan

    def forward(self, image):
        heat = self.pool(image[:, :1]).repeat(1, self.channels, 1, 1) * 10.0 - 5.0
        if self.nan:
            heat = heat * torch.tensor(float("nan"))
        return heat, torch.full_like(heat[:, :1], 0.5).repeat(1, 2, 1, 1)


def test_a_stride_8_network_labelled_stride_4_is_refused_at_load(tmp_path):
    path = make_onnx(tmp_path / "s8.onnx", module=_Pool(stride=8))
    with pytest.raises(ModelFileError, match=r"s8.onnx: output 'heatmap' is 8 x 12 for a 64 x 96 input: "
                                             r"output stride 8, but its metadata says 4"):
        Picker(path)
    Picker(make_onnx(tmp_path / "s4.onnx", module=_Pool(stride=4))).close()   # the contract passes


def test_input_channels_fixed_sizes_and_output_channels_are_checked(tmp_path):
    with pytest.raises(ModelFileError, match="3 channels"):
        Picker(make_onnx(tmp_path / "rgb.onnx", module=_Pool(), in_channels=3))
    with pytest.raises(ModelFileError, match="fixed size"):
        Picker(make_onnx(tmp_path / "fixed.onnx", module=_Pool(), dynamic=False))
    with pytest.raises(ModelFileError, match=r"output 'heatmap' has shape \[1, 2, 16, 24\]"):
        Picker(make_onnx(tmp_path / "two.onnx", module=_Pool(channels=2)))


def test_nan_outputs_are_a_named_failure_not_zero_picks(tmp_path):
    picker = Picker(make_onnx(tmp_path / "nan.onnx", module=_Pool(nan=True)))
    results = list(picker.pick_many([blob_micrograph((128, 128), n=2)[0]]))
    assert len(results) == 1 and not results[0].ok
    assert "NaN/Inf values in its 'heatmap' output" in results[0].error


@pytest.mark.parametrize("meta, words", [
    ({"particle_diameter": "big"}, "particle diameter of 'big'"),
    ({"particle_diameter": -20.0}, "particle diameter of -20.0"),
    ({"preprocess": {"target_width": 256, "hist_bins": 10**9}}, "hist_bins must lie in"),
    ({"preprocess": {"target_width": 10**7}}, "target_width must lie in"),
    ({"threshold": 7}, "score threshold of 7"),
])
def test_metadata_values_are_bounded_and_typed(tmp_path, meta, words):
    extra = dict(meta)
    diameter = extra.pop("particle_diameter", 24.0)
    path = tmp_path / "m.onnx"
    try:
        make_onnx(path, module=_Pool(), diameter=diameter, extra_meta=extra)
    except (TypeError, ValueError):        # the exporter itself refuses a non-numeric diameter
        from epick.runtime.artifact import encode_metadata_props
        import onnx

        make_onnx(path, module=_Pool())
        model = onnx.load(str(path))
        blob = json.loads(next(p.value for p in model.metadata_props if p.key == "epick"))
        blob.update(meta)
        del model.metadata_props[:]
        for key, value in encode_metadata_props(blob).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(path))
    start = time.perf_counter()
    with pytest.raises(ModelFileError) as info:
        Picker(path)
    assert str(path) in str(info.value) and words in str(info.value)
    assert time.perf_counter() - start < 10   # refused before allocating (10**9 bins: 8 GB)


def test_a_model_file_declaring_an_absurd_width_is_refused_before_building(tmp_path):
    from safetensors.torch import save_file

    from epick.trainer import modelfile

    meta = {"format_version": modelfile.FORMAT_VERSION, "architecture": {"width": 64.0, "head_conv": 256,
            "with_size": False, "name": "dla34"}, "object_type": "particle", "preprocess": {},
            "history": [], "exemplars": []}
    meta_json = json.dumps(meta)
    path = tmp_path / "wide.epick"
    save_file({}, str(path), metadata={"format": modelfile.FORMAT, "epick": meta_json,
                                       "sha256": modelfile._digest(meta_json, {})})
    with pytest.raises(ModelFileError, match="wide.epick: describes an unknown architecture .*width must lie"):
        modelfile.read_model_file(path)


def test_an_export_that_fails_verification_leaves_nothing_at_the_output(tmp_path, monkeypatch, capsys):
    from epick.runtime.cli import main
    from epick.trainer.modelfile import build_metadata, save_model
    from epick.trainer.network import Detector, NetworkConfig

    config = NetworkConfig.narrow()
    model = save_model(tmp_path / "m.epick", Detector(config),
                       build_metadata(config, object_type="particle", preprocess={"target_width": 256},
                                      particle_diameter=20.0, diameter_network=5.0, history=[]))
    (tmp_path / "other").mkdir()
    wrong = make_onnx(tmp_path / "other" / "wrong.onnx", module=_Pool())

    def export_wrong_network(graph, out_path, meta, **kw):   # the real exporter takes minutes on 2 cores
        Path(out_path).write_bytes(wrong.read_bytes())
        return Path(out_path)

    from epick.export import onnx_export

    monkeypatch.setattr(onnx_export, "export_onnx", export_wrong_network)
    out = tmp_path / "m.onnx"
    out.write_bytes(b"an earlier good file")
    assert main(["export", str(model), "--onnx", str(out)]) == 2
    assert "disagrees with torch" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier good file"            # the rejected export never replaced it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.epick", "m.onnx", "other"]   # no temporary left
