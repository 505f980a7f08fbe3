"""The general model's recipe (tools/general_model.py, tools/general_data.py): held-out real
micrographs never reach training, left-out sets are left out, simulated sets are what their
recipe says, and the sim cache gives back what was simulated."""
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tools/ sits beside the packages
from tools import general_data, general_model  # noqa: E402

from epick.runtime.preprocess import PreprocessParams  # noqa: E402

SMALL = 256  # simulated micrographs of this size keep the test cheap


@pytest.fixture(autouse=True)
def _shared(shared_data, monkeypatch):
    monkeypatch.setenv("EPICK_SHARED_DATA", str(shared_data))


def test_held_out_micrographs_are_never_in_a_training_set(tmp_path, monkeypatch):
    small = {k: replace(v, size=SMALL) for k, v in general_data.RECIPES.items()}
    monkeypatch.setattr(general_data, "RECIPES", small)
    held = general_model.held_out_names("empiar10947")
    assert len(held) == general_model.N_HELD_OUT["empiar10947"] and held == sorted(held)
    record = {"sim": {"lookalike": 2}, "sim_seed": 3, "real_sets": ["empiar10947"]}
    samples = general_model.training_samples(tmp_path, record, PreprocessParams())
    names = {s.name for s in samples}
    real = [s for s in samples if s.dataset == "empiar10947"]
    assert len(real) == 10 - len(held) and not names & set(held)
    assert not any(s.dataset == "betagal" for s in samples)          # a set not named is left out
    assert [s.dataset for s in samples].count("sim") == 2
    # the cache gives back exactly what was simulated
    again = general_model.training_samples(tmp_path, record, PreprocessParams())
    for a, b in zip(samples, again):
        assert a.name == b.name and a.diameter == pytest.approx(b.diameter)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.points, b.points)


class _Captured(Exception):
    """Raised by the stand-in trainer once it has seen what the stage would train on."""


def test_ceiling_stage_trains_on_every_micrograph_of_its_set_with_no_validation(tmp_path, monkeypatch):
    import epick.trainer.train as train

    seen = {}

    def capture(samples, config, out, **_):
        seen.update(samples=samples, config=config, out=out)
        raise _Captured

    monkeypatch.setattr(train, "train_samples", capture)
    with pytest.raises(_Captured):
        general_model.main(["ceiling", "--work", str(tmp_path), "--real", "empiar10947", "--tag=-t"])
    names = {s.name for s in seen["samples"]}
    assert len(names) == 10 and set(general_model.held_out_names("empiar10947")) <= names   # held-out ones too
    assert {s.dataset for s in seen["samples"]} == {"empiar10947"}                            # no simulation
    assert seen["config"].val_fraction == 0.0                                                 # last epoch kept
    assert seen["out"].name == "ceiling-empiar10947-t.epick"
    wrong = (["ceiling"], ["shipped", "--real", "betagal"], ["ceiling", "--real", "betagal", "--leave-out", "betagal"])
    for argv in wrong:
        with pytest.raises(SystemExit) as exc:
            general_model.main(argv + ["--work", str(tmp_path)])
        assert exc.value.code == 2


def test_simulated_sets_follow_their_recipe():
    faint = replace(general_data.FAINT, size=SMALL)
    samples = general_data.simulated_samples(3, PreprocessParams(), seed=1, recipe=faint, progress=False)
    lo, hi = faint.diameter_px
    for s in samples:
        assert lo * 0.999 <= s.diameter <= hi * 1.001 and len(s.points) > 0
    look = replace(general_data.LOOKALIKE, size=SMALL)
    a = general_data.simulated_samples(2, PreprocessParams(), seed=1, recipe=look, progress=False)
    b = general_data.simulated_samples(2, PreprocessParams(), seed=1, recipe=look, progress=False)
    assert [s.diameter for s in a] == pytest.approx([31.6, 31.6], rel=1e-3)
    np.testing.assert_array_equal(a[1].image, b[1].image)               # deterministic for the seed


def test_packed_recipe_labels_the_spacing_and_packs_the_cores_that_far_apart():
    from scipy.spatial import cKDTree

    packed = replace(general_data.PACKED, size=384)
    samples = general_data.simulated_samples(3, PreprocessParams(), seed=2, recipe=packed, progress=False)
    (d_lo, d_hi), (s_lo, s_hi) = packed.diameter_px, packed.min_distance
    for s in samples:
        label_px = s.diameter * s.scale                                    # px of the simulated micrograph
        assert d_lo * s_lo * 0.999 <= label_px <= d_hi * s_hi * 1.001
        nearest = cKDTree(s.points).query(s.points, k=2)[0][:, 1]           # network px, like s.diameter
        assert nearest.min() >= 0.98 * s.diameter                           # no two labelled disks overlap
        assert np.median(nearest) <= 1.3 * s.diameter                       # and they are packed
    # the other recipes keep the simulator's spacing and label the particle itself
    look = replace(general_data.LOOKALIKE, size=SMALL)
    assert general_data.simulated_samples(1, PreprocessParams(), seed=1, recipe=look,
                                          progress=False)[0].diameter == pytest.approx(31.6, rel=1e-3)


def test_render_8bit_uses_the_recipe_grey_levels():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(128, 128)).astype(np.float32)
    out = general_data.render_8bit(image, rng, 30.0, lowpass=(0.0, 0.0), levels=(16,))
    assert len(np.unique(out)) <= 16 and out.min() >= 0 and out.max() <= 255


def _fine_fraction(sample) -> float:
    """Share of the image's variance above 4 cycles per particle diameter."""
    z = sample.image.astype(np.float64) - sample.image.mean()
    power = np.abs(np.fft.rfft2(z)) ** 2
    fy = np.fft.fftfreq(z.shape[0])[:, None]
    fx = np.fft.rfftfreq(z.shape[1])[None, :]
    cycles_per_diameter = np.hypot(fx, fy) * sample.diameter
    return float(power[cycles_per_diameter > 4].sum() / power.sum())


def test_denoised_recipe_removes_the_fine_structure_its_raw_twin_has():
    denoised = replace(general_data.DENOISED, size=SMALL)
    raw = replace(denoised, render_fraction=0.0)
    prep = PreprocessParams()
    (s,) = general_data.simulated_samples(1, prep, seed=2, recipe=denoised, progress=False)
    (t,) = general_data.simulated_samples(1, prep, seed=2, recipe=raw, progress=False)
    assert np.array_equal(s.points, t.points)                         # same micrograph, only the rendering differs
    assert _fine_fraction(s) < 0.03 and 2 * _fine_fraction(s) < _fine_fraction(t)


def test_atomic_recipe_projects_the_shared_atomic_models(shared_data, monkeypatch):
    from epick.simulator.particles import atomic_models_dir

    monkeypatch.delenv("EPICK_SHARED_DATA", raising=False)
    monkeypatch.delenv("EPICK_ATOMIC_MODELS", raising=False)
    monkeypatch.setattr(general_data, "shared_data", lambda: Path(shared_data))
    atomic = replace(general_data.ATOMIC, size=SMALL, types=("pdb-6z6u",), diameter_px=(40.0, 40.0))
    samples = general_data.simulated_samples(1, PreprocessParams(), seed=0, recipe=atomic, progress=False)
    assert len(samples[0].points) > 0
    assert atomic_models_dir() is None                                 # found for the call only


def test_default_threshold_is_the_best_mean_f1_on_a_fine_grid(monkeypatch):
    from types import SimpleNamespace

    def fake_scores(network, samples, thresholds):
        peak = {"sim": 0.26, "betagal": 0.32}[samples[0].dataset]
        return {"by_threshold": {f"{t:g}": {"f1": 1.0 - (t - peak) ** 2} for t in thresholds}}

    monkeypatch.setattr(general_data, "score_samples", fake_scores)
    samples = [SimpleNamespace(dataset="sim"), SimpleNamespace(dataset="betagal")]
    threshold, how = general_model.choose_threshold(None, samples)
    assert threshold == pytest.approx(0.29)                          # between the two, not on a 0.05 step
    assert how["datasets"] == ["betagal", "sim"] and len(how["mean_f1"]) == 91
