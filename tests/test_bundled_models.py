"""Bundled models (issue 16): the catalogue, `epick models`, name resolution for --model, and the
default model `epick pick` uses without --model."""

import json

import pytest

from epick.runtime import bundled
from epick.runtime.errors import EpickError
from _models import make_onnx


def _catalogue(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / bundled.CATALOGUE).write_text(json.dumps({"models": rows}))
    return folder


def test_catalogue_resolution_and_default(tmp_path):
    folder = _catalogue(tmp_path / "models", [
        {"name": "other", "onnx": "other.onnx"},
        {"name": "general", "onnx": "general.onnx", "epick": "general.epick", "default": True,
         "summary": "s", "trained_on": ["sim"], "accuracy": {"betagal": {"ap": 0.8}}},
        {"name": "missing", "onnx": "missing.onnx"}])
    make_onnx(folder / "other.onnx")
    make_onnx(folder / "general.onnx")
    (folder / "general.epick").write_bytes(b"x")
    models = bundled.bundled_models(folder)
    assert [m.name for m in models] == ["other", "general"]   # a listed model without its file is left out
    assert bundled.default_model(folder).name == "general"
    assert bundled.resolve_model(None, folder=folder) == folder / "general.onnx"
    assert bundled.resolve_model("other", folder=folder) == folder / "other.onnx"
    assert bundled.resolve_model("general", kind="epick", folder=folder) == folder / "general.epick"
    assert bundled.resolve_model(str(tmp_path / "x.onnx"), folder=folder) == tmp_path / "x.onnx"  # a path stays
    with pytest.raises(EpickError, match="no bundled model of that name"):
        bundled.resolve_model("nonesuch", folder=folder)
    with pytest.raises(EpickError, match="ships no .epick"):
        bundled.resolve_model("other", kind="epick", folder=folder)
    with pytest.raises(EpickError, match="no bundled model"):
        bundled.default_model(tmp_path / "empty")


def test_the_shipped_default_model_has_exemplars_a_threshold_and_one_preprocessing():
    models = bundled.bundled_models()
    if not models:
        pytest.skip("no bundled models in this checkout")
    default = bundled.default_model()
    assert default.epick is not None and default.accuracy
    from epick.runtime.backends.metadata import ArtifactMetadata
    import onnx

    from epick.trainer.modelfile import read_model_file

    props = {p.key: p.value for p in onnx.load(str(default.onnx), load_external_data=False).metadata_props}
    meta = ArtifactMetadata.from_props(props, default.onnx)
    model = read_model_file(default.epick)
    assert meta.threshold is not None and 0.0 < meta.threshold < 1.0
    assert meta.preprocess == model.metadata["preprocess"]   # the ONNX was exported from this .epick
    from epick.runtime.artifact import read_onnx_metadata

    # same architecture, test-time flips included, in both files
    assert read_onnx_metadata(default.onnx)["model"]["architecture"] == model.network.config.to_dict()
    assert len(model.exemplars) > 0 and {e.dataset for e in model.exemplars} >= {"betagal", "empiar10947"}


def test_epick_models_lists_the_bundled_models(capsys):
    from epick.runtime.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for m in bundled.bundled_models():
        assert m.name in out
    assert main(["models", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


def test_pick_without_model_uses_the_bundled_general_model(tmp_path, shared_data, capsys):
    from epick.runtime.cli import main
    from epick.runtime.io.coordinates import read_picks

    if not bundled.bundled_models():
        pytest.skip("no bundled models in this checkout")
    folder = shared_data / "empiar10947"
    if not folder.is_dir():
        pytest.skip(f"shared data not found: {folder}")
    mic = sorted(folder.glob("*.png"))[0]
    # no option but the micrograph: the general model needs no diameter
    assert main(["pick", str(mic), "--out", str(tmp_path), "--threads", "1", "--quiet"]) == 0
    assert "general.onnx" in capsys.readouterr().err
    picks = read_picks(tmp_path / f"{mic.stem}_autopick.star")[0]
    truth = read_picks(mic.with_suffix(".star"))[0]
    assert 0.3 * len(truth) < len(picks) < 3 * len(truth)   # a real micrograph of ~200-300 particles


def test_bundled_model_of_names_the_bundled_files_only(tmp_path):
    folder = _catalogue(tmp_path / "models", [
        {"name": "general", "onnx": "general.onnx", "epick": "general.epick", "default": True,
         "add_sample": {"epochs": 7, "lr": 0.002}}])
    make_onnx(folder / "general.onnx")
    (folder / "general.epick").write_bytes(b"x")
    assert bundled.bundled_model_of(folder / "general.epick", folder).add_sample == {"epochs": 7, "lr": 0.002}
    assert bundled.bundled_model_of(folder / "general.onnx", folder).name == "general"
    assert bundled.bundled_model_of(tmp_path / "mine.epick", folder) is None


@pytest.fixture
def captured_training(monkeypatch):
    """`epick train` runs up to the trainer, which records the TrainConfig it was given instead of training."""
    pytest.importorskip("torch")
    import epick.trainer.train as train

    configs = []

    def fake_train_model(specs, config, output, **kwargs):
        configs.append(config)
        return output, train.FitResult(best_state={}, best_epoch=0, best_ap=None)

    monkeypatch.setattr(train, "train_model", fake_train_model)
    return configs


def _schedule(config):
    return {"epochs": config.epochs, "lr": config.lr, "crop": config.crop, "repeats": config.repeats,
            "val_fraction": config.val_fraction}


def test_adding_a_sample_to_the_bundled_model_uses_its_measured_schedule(tmp_path, captured_training, capsys):
    from epick.runtime.cli import main
    from epick.trainer.train import TrainConfig

    general = next((m for m in bundled.bundled_models() if m.name == "general"), None)
    if general is None or general.epick is None:
        pytest.skip("no bundled general model in this checkout")
    # the measured schedule is short: `epick train --mode continual --model general` alone is the 3-9 min run
    assert general.add_sample["epochs"] < TrainConfig.epochs and general.add_sample["crop"] < TrainConfig.crop
    data = ["--data", str(tmp_path), str(tmp_path), "mine"]
    out = str(tmp_path / "mine.epick")
    paper = {"epochs": 120, "lr": 1e-4, "crop": 512, "repeats": 0, "val_fraction": 0.2}
    for mode in ("continual", "finetune"):
        assert main(["train", "--mode", mode, "--model", "general", *data, "-o", out]) == 0
        assert _schedule(captured_training[-1]) == general.add_sample
        assert "schedule measured for adding a sample" in capsys.readouterr().err
    # an option given wins over the measured value; the bundled file's path counts as the bundled model
    assert main(["train", "--mode", "continual", "--model", str(general.epick), *data, "-o", out,
                 "--epochs", "3", "--lr", "0.01"]) == 0
    assert _schedule(captured_training[-1]) == dict(general.add_sample, epochs=3, lr=0.01)
    assert "--epochs" not in capsys.readouterr().err.split("measured")[-1]   # says only what it took from the model
    # a model made by continual learning keeps the schedule it was trained with
    from epick.trainer.modelfile import read_model_file, save_model

    model = read_model_file(general.epick)
    mine = {"epochs": 7, "lr": 0.003, "crop": 128, "repeats": 2, "val_fraction": 0.3}
    save_model(tmp_path / "mine.epick", model.network, dict(model.metadata, training={"mode": "continual", **mine}),
               model.exemplars)
    assert main(["train", "--mode", "continual", "--model", str(tmp_path / "mine.epick"), *data, "-o", out]) == 0
    assert _schedule(captured_training[-1]) == mine
    assert "the schedule mine.epick was trained with (continual)" in capsys.readouterr().err
    # a model trained jointly (this copy of the bundled model's file, not bundled), and joint training, keep the
    # paper's schedule
    other = tmp_path / "other.epick"
    other.write_bytes(general.epick.read_bytes())
    assert read_model_file(other).metadata["training"]["mode"] == "joint"
    assert main(["train", "--mode", "finetune", "--model", str(other), *data, "-o", out]) == 0
    assert main(["train", "--mode", "joint", *data, "-o", out]) == 0
    assert [_schedule(c) for c in captured_training[-2:]] == [paper, paper]
    assert "epick train: " not in capsys.readouterr().err


def test_only_the_first_process_of_a_ddp_run_says_which_schedule_it_took(monkeypatch, capsys):
    pytest.importorskip("torch")
    from argparse import Namespace

    from epick.trainer.cli import SCHEDULE_OPTIONS, training_schedule

    general = next((m for m in bundled.bundled_models() if m.name == "general"), None)
    if general is None or general.epick is None:
        pytest.skip("no bundled general model in this checkout")
    args = Namespace(mode="continual", **{k: None for k in SCHEDULE_OPTIONS})
    for rank, says in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        schedule = training_schedule(args, general.epick)
        assert {k: schedule[k] for k in general.add_sample} == general.add_sample
        assert ("schedule measured" in capsys.readouterr().err) == says


def test_the_general_model_told_the_diameter_finds_particles_larger_than_it_was_trained_on(tmp_path, capsys):
    """Simulated 2048-px micrograph of 192-px particles: 96 px at the 1024 width, beyond the 64 px the
    general model trained on. Without --diameter it misses most (AP 0.21 here); with it the micrograph
    is resampled so the particles span 32 px (AP 0.94; benchmarks/bench_particle_size.py). Without it
    epick pick names the largest particle the fixed width suits."""
    import mrcfile
    import numpy as np

    from epick.runtime.cli import main
    from epick.runtime.evaluate import evaluate
    from epick.runtime.io.coordinates import read_picks
    from epick.runtime.picks import Picks
    from epick.simulator import simulate_micrograph
    from epick.simulator.particles import particle_diameter_a

    if not bundled.bundled_models():
        pytest.skip("no bundled models in this checkout")
    sim = simulate_micrograph((2048, 2048), "ribosome", pixel_size=particle_diameter_a("ribosome") / 192, seed=1,
                              density=0.25, snr=0.3)
    mic = tmp_path / "large.mrc"
    with mrcfile.new(mic) as f:
        f.set_data(sim.image.astype(np.float32))
        f.voxel_size = 1.5   # A/px, which epick pick's note turns the size limit into
    truth = [Picks("large", sim.truth.x, sim.truth.y)]
    ap = {}
    for label, extra in (("plain", []), ("diameter", ["--diameter", "192"])):
        out = tmp_path / label
        assert main(["pick", str(mic), "--out", str(out), "--threshold", "0.01", "--threads", "1", "--quiet", *extra]) == 0
        (picks,) = read_picks(out / "large_autopick.star")
        ap[label] = evaluate([picks], truth, 192.0)["ap"]
        err = capsys.readouterr().err
        assert ("resampled so that they span 32" in err) == (label == "diameter")
        # without it, epick pick says how large a particle the fixed width suits in these micrographs
        assert ("learnt particles of up to 64 px (128 px in these 2048-px-wide micrographs, 192 A at 1.5 A/px); "
                "it misses larger ones unless given --diameter" in err) == (label == "plain")
    assert ap["diameter"] > 0.85 and ap["plain"] < ap["diameter"] - 0.3


def test_the_general_model_says_what_particle_size_its_fixed_width_covers(tmp_path):
    """preprocess.size_note, which epick pick and epick-cryosparc print: without a diameter the largest
    particle the fixed width covers in micrographs of that width; with one, whether they are resampled."""
    from epick.runtime.picker import Picker
    from epick.runtime.preprocess import size_note

    if not bundled.bundled_models():
        pytest.skip("no bundled models in this checkout")
    general = bundled.resolve_model("general")
    with Picker(general, threads=1) as picker:
        assert "up to 64 px (256 px in these 4096-px-wide micrographs)" in size_note(picker.params, (4096, 4096))
        assert "(256 px in these 4096-px-wide micrographs, 271 A at 1.06 A/px)" in size_note(picker.params, (4096, 4096),
                                                                                              1.06)
        assert "(64 px in these 1024-px-wide micrographs)" in size_note(picker.params, (1024, 1024))  # never upsampled
    with Picker(general, threads=1, diameter=400) as picker:   # 100 px at width 1024: resampled to 32
        assert "would span 100 px" in size_note(picker.params, (4096, 4096))
        assert size_note(picker.params, (8192, 8192)) is None          # 50 px there: the fixed width suits it
    with Picker(make_onnx(tmp_path / "plain.onnx"), threads=1) as picker:   # a model that never rescales
        assert size_note(picker.params, (4096, 4096)) is None


def test_the_size_note_never_stops_a_run_over_a_stale_path(tmp_path, capsys):
    """A stale path before the first real micrograph: the bundled model's size note reads the first
    micrograph that exists, and the stale one is reported with the picks, as for any model."""
    import numpy as np

    from epick.runtime.cli import main
    from epick.runtime.io.micrograph import write_mrc

    if not bundled.bundled_models():
        pytest.skip("no bundled models in this checkout")
    write_mrc(tmp_path / "b.mrc", np.random.default_rng(0).normal(size=(512, 512)).astype(np.float32), pixel_size=1.5)
    out = tmp_path / "out"
    assert main(["pick", str(tmp_path / "a-missing.mrc"), str(tmp_path / "b.mrc"), "--out", str(out), "--quiet",
                 "--threads", "1"]) == 0
    assert "(64 px in these 512-px-wide micrographs, 96 A at 1.5 A/px)" in capsys.readouterr().err
    assert "a-missing.mrc" in (out / "failures.txt").read_text()
