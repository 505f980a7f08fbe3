"""epick-topaz: answers RELION 5 AutoPick's Topaz call (src/autopicker.cpp,
autoPickTopazOneMicrograph) and writes the table RELION and Topaz read."""
from __future__ import annotations

import numpy as np
import pytest

from _models import blob_micrograph, make_onnx
from epick.runtime.integrations.topaz import logit, main, probability
from epick.runtime.io.coordinates import read_picks
from epick.runtime.io.micrograph import write_mrc
from epick.runtime.picker import Picker


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_onnx(tmp_path_factory.mktemp("model") / "blob.onnx", target_width=256, diameter=40.0)


@pytest.fixture()
def proc(tmp_path):
    """What RELION hands over: JOBDIR/proc/rank0.mrc, the micrograph already binned by -x."""
    image, centres = blob_micrograph((512, 640), n=10, seed=4)
    path = tmp_path / "AutoPick/job007/proc/rank0.mrc"
    path.parent.mkdir(parents=True)
    write_mrc(path, image)
    return path, centres


def _relion_call(model, mic, out, *extra):
    # the argument order of RELION 5's generated script: extract -t -r -d -x [-m] -o MIC [topaz args]
    return ["extract", "-t", "-6", "-r", "10", "-d", "-1", "-x", "4", "-m", str(model), "-o", str(out), str(mic), *extra]


def test_relions_call_gives_full_size_coordinates_and_logit_scores(model, proc):
    mic, centres = proc
    out = mic.with_suffix(".txt")
    assert main(_relion_call(model, mic, out)) == 0
    header = out.read_text().splitlines()[0].split("\t")
    assert header == ["image_name", "x_coord", "y_coord", "score"]
    # RELION finds the columns by name in the header and multiplies nothing more (-x already applied)
    [picks] = read_picks(out)
    assert picks.micrograph == "rank0"
    # the same picks as epick's Picker on that image, coordinates times -x, scores as logits
    with Picker(model, "onnxruntime-cpu", threshold=probability(-6), min_distance=10) as picker:
        direct = picker.pick(mic)
    np.testing.assert_allclose(picks.x, direct.x * 4, atol=1e-6)
    np.testing.assert_allclose(picks.y, direct.y * 4, atol=1e-6)
    np.testing.assert_allclose(picks.score, logit(direct.score_or(1.0)), atol=1e-6)
    assert np.all(picks.score >= -6.0)               # -t is a logit threshold (p >= 0.0025 kept)
    full = centres * 4                              # the true centres on the full-size micrograph
    distance = np.hypot(picks.x[:, None] - full[:, 0], picks.y[:, None] - full[:, 1])
    assert np.all(distance.min(axis=0) < 4 * 8.0)   # every blob picked (this tiny test model is coarse)


def test_topaz_reads_the_table_itself(model, proc):
    files = pytest.importorskip("topaz.utils.files", reason="Topaz (topaz-em) is not installed")
    mic, _ = proc
    out = mic.with_suffix(".txt")
    assert main(_relion_call(model, mic, out)) == 0
    table = files.read_coordinates(str(out))
    assert list(table.columns) == ["image_name", "x_coord", "y_coord", "score"]
    assert set(table["image_name"]) == {"rank0"}
    [picks] = read_picks(out)
    np.testing.assert_allclose(table["x_coord"], picks.x)
    np.testing.assert_allclose(table["score"], picks.score)


def test_model_from_the_environment_and_topaz_names_refused(model, proc, monkeypatch, capsys):
    mic, _ = proc
    out = mic.with_suffix(".txt")
    call = _relion_call(model, mic, out)
    without_m = call[:call.index("-m")] + call[call.index("-m") + 2:]
    assert main(without_m) == 2
    assert "EPICK_TOPAZ_MODEL" in capsys.readouterr().err
    monkeypatch.setenv("EPICK_TOPAZ_MODEL", str(model))
    assert main(without_m) == 0 and out.is_file()
    assert main(call[:call.index("-m") + 1] + ["resnet16"] + call[call.index("-m") + 2:]) == 2
    assert "Topaz's own models" in capsys.readouterr().err


def test_logit_and_probability_are_inverse():
    p = np.array([0.0025, 0.3, 0.5, 0.97])
    np.testing.assert_allclose([probability(t) for t in logit(p)], p, rtol=1e-9)
    assert probability(-6) == pytest.approx(0.002473, rel=1e-3)
    assert np.isfinite(logit(np.array([0.0, 1.0]))).all()


def test_relions_topaz_train_call_says_what_to_do_instead(capsys):
    assert main(["train", "-n", "300", "-r", "4", "--train-images", "proc/", "--train-targets", "picks.txt"]) == 2
    assert "epick train" in capsys.readouterr().err
