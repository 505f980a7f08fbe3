"""ONNX export of the narrow network through `epick export`: opset, dynamic shapes, metadata round
trip, parity with torch on random and real micrographs, refusal of other model format versions."""
from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from epick.runtime import artifact as am  # noqa: E402
from epick.export.graph import ContractGraph  # noqa: E402
from epick.export.parity import (compare, onnx_runner, random_network_batch, real_network_batch,  # noqa: E402
                                 torch_runner)
from epick.runtime.cli import main as epick_main  # noqa: E402
from epick.runtime.errors import ModelFileError  # noqa: E402

from _models import make_model_file  # noqa: E402

HEATMAP_TOL = 1e-4


@pytest.fixture(scope="module")
def exported(narrow_export):
    """(model file, ONNX file written by `epick export --onnx`, torch graph of the same model)."""
    from epick.trainer.modelfile import load_model

    network, _ = load_model(narrow_export.model)
    return narrow_export.model, narrow_export.onnx, ContractGraph(network).eval()


def test_onnx_has_opset_names_and_dynamic_axes(exported):
    _, out, _ = exported
    model = onnx.load(str(out))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (image,) = model.graph.input
    assert image.name == "image"
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims[1] == 1 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))
    assert [o.name for o in model.graph.output] == ["heatmap", "offset"]


def test_metadata_round_trip_from_model_file(exported):
    model, out, _ = exported
    from epick.runtime.backends.onnxruntime import OnnxRuntimeBackend

    meta = am.read_onnx_metadata(out)
    assert meta["model_hash"] == am.file_sha256(model)
    assert meta["object_type"] == "particle" and meta["output_stride"] == 4
    assert meta["particle_diameter"] == 108.0 and meta["preprocess"] == {"target_width": 1024}
    assert meta["format_version"] == am.ARTIFACT_FORMAT_VERSION and meta["exporter"]["opset"] == 17
    backend = OnnxRuntimeBackend(out, device="cpu")
    assert backend.metadata.model_hash == meta["model_hash"] and backend.metadata.diameter == 108.0


@pytest.mark.parametrize("shape", [(1, 1, 256, 256), (3, 1, 96, 160), (2, 1, 320, 64)])
def test_parity_random_inputs_any_batch_and_multiple_of_32(exported, shape):
    _, out, graph = exported
    report = compare(torch_runner(graph), onnx_runner(out), [random_network_batch(shape, seed=sum(shape))])
    assert report.max_abs_diff["heatmap"] <= HEATMAP_TOL, report.summary()
    assert report.max_abs_diff["offset"] <= HEATMAP_TOL, report.summary()
    assert report.picks_identical, report.details
    assert sum(report.picks_reference) > 0  # the comparison of picks is not vacuous


def test_parity_real_micrograph(exported, betagal_dir):
    _, out, graph = exported
    first = sorted(betagal_dir.glob("*.jpg"))[0]
    batch = real_network_batch([first], {"target_width": 1024})
    assert batch.shape == (1, 1, 1024, 1024) and 0.0 <= batch.min() < batch.max() <= 1.0
    report = compare(torch_runner(graph), onnx_runner(out), [batch])
    assert report.max_abs_diff["heatmap"] <= HEATMAP_TOL, report.summary()
    assert report.picks_identical and sum(report.picks_reference) > 0, report.details


def test_picks_comparison_detects_a_difference(exported):
    _, out, graph = exported
    batch = random_network_batch((1, 1, 128, 128), seed=5)
    reference = torch_runner(graph)

    def shifted(images):
        values = reference(images)
        heat = values["heatmap"].copy()
        heat[0, 0, 5, 5] = heat.max() + 1.0  # a new, strongest peak
        return {**values, "heatmap": heat}

    report = compare(reference, shifted, [batch])
    assert not report.picks_identical and not report.ok(HEATMAP_TOL)


def test_artifact_of_other_format_version_is_refused(exported, tmp_path):
    from epick.export.onnx_export import set_metadata

    _, out, _ = exported
    model = onnx.load(str(out))
    meta = am.read_onnx_metadata(out)
    set_metadata(model, {**meta, "format_version": 99})
    old = tmp_path / "old.onnx"
    onnx.save(model, str(old))
    with pytest.raises(ModelFileError, match="format version 99"):
        am.read_onnx_metadata(old)


def test_model_file_of_other_format_version_is_refused(tmp_path, monkeypatch, capsys):
    from epick.trainer import modelfile

    monkeypatch.setattr(modelfile, "FORMAT_VERSION", 99)
    model = make_model_file(tmp_path / "future.epick")
    monkeypatch.undo()
    out = tmp_path / "future.onnx"
    assert epick_main(["export", str(model), "--onnx", str(out)]) == 2
    err = capsys.readouterr().err
    assert "future.epick" in err and "format version" in err and "99" in err
    assert not out.exists()


def test_export_without_artifact_is_an_error(tmp_path, capsys):
    model = tmp_path / "m.epick"
    model.write_bytes(b"")
    assert epick_main(["export", str(model)]) == 2
    assert "--onnx" in capsys.readouterr().err


@pytest.fixture(scope="module")
def flipped_vesicle(tmp_path_factory):
    """A vesicle model (size head) saved twice, without and with 4 test flips, and the ONNX export
    of the flipped one: (plain model file, flipped export graph, ONNX file). One export serves the
    size-head and test-flip tests (each export costs tens of seconds on 2 cores)."""
    from dataclasses import replace

    from epick.export.model_source import load_for_export
    from epick.export.onnx_export import export_onnx
    from epick.trainer.modelfile import read_model_file, save_model

    folder = tmp_path_factory.mktemp("flipped_vesicle")
    plain = make_model_file(folder / "plain.epick", with_size=True, follows_image=True)
    model = read_model_file(plain)
    model.network.config = replace(model.network.config, test_flips=4)
    flipped = save_model(folder / "flips.epick", model.network, model.metadata, model.exemplars)
    graph, meta = load_for_export(flipped)
    return plain, graph, export_onnx(graph, folder / "flips.onnx", meta, simplify=False)


def test_size_head_is_exported(flipped_vesicle):
    _, graph, out = flipped_vesicle
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["heatmap", "offset", "size"]
    assert am.read_onnx_metadata(out)["object_type"] == "vesicle"
    report = compare(torch_runner(graph), onnx_runner(out), [random_network_batch((1, 1, 64, 96))])
    assert report.max_abs_diff["size"] <= HEATMAP_TOL


def test_test_flips_are_exported_into_the_graph(flipped_vesicle):
    """A model with test_flips 4 exports the flip average (Slice with negative steps): ONNX equals the
    torch model for a batch of two, and differs from the same weights without flips."""
    from epick.export.model_source import load_for_export

    plain, graph, out = flipped_vesicle
    batch = random_network_batch((2, 1, 64, 96), seed=3)
    report = compare(torch_runner(graph), onnx_runner(out), [batch])
    assert all(report.max_abs_diff[name] <= HEATMAP_TOL for name in ("heatmap", "offset", "size")), report.summary()
    plain_graph, _ = load_for_export(plain)
    assert compare(torch_runner(plain_graph), onnx_runner(out), [batch]).max_abs_diff["heatmap"] > 1e-3
    assert am.read_onnx_metadata(out)["model"]["architecture"]["test_flips"] == 4
