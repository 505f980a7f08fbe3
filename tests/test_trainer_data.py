"""Training data: runtime preprocessing (same call), pairing by name, vesicles, fibers, exemplars."""
import numpy as np
import pytest

from epick.runtime.errors import CoordinateError
from epick.runtime.picks import Picks
from epick.runtime.preprocess import PreprocessParams
from epick.trainer import data as data_mod
from epick.trainer.data import Sample, fiber_points, load_dataset, make_batch, pair_micrographs, split_validation
from epick.trainer.exemplars import select_exemplars
from test_trainer_common import KINDS, write_dataset


def test_samples_use_the_runtime_preprocess_call(tmp_path, monkeypatch):
    import epick.runtime.preprocess as pre
    from epick.runtime.io.micrograph import read_micrograph

    mics, stars = write_dataset(tmp_path, "apo", 2, seed=1, shape=(200, 300))
    params = PreprocessParams(target_width=150)
    calls = []
    real = pre.preprocess
    monkeypatch.setattr(pre, "preprocess", lambda img, p=None: calls.append(p) or real(img, p))
    samples = load_dataset(mics, stars, params, dataset="d", diameter=KINDS["apo"], progress=False)
    assert calls == [params, params]
    for s in samples:
        u8, transform = real(read_micrograph(mics / f"{s.name}.mrc").data, params)
        assert np.array_equal(s.image, u8) and s.image.shape == (100, 150)
        assert s.diameter == pytest.approx(KINDS["apo"] / 2)  # 300 -> 150 px: scale 2
    # centres are mapped with the preprocessing Transform (half-pixel aware)
    star = Picks("x", [9.5], [19.5])
    pts, _ = data_mod.picks_to_network(star, transform, "particle", 14.0)
    assert pts[0] == pytest.approx([4.5, 9.5])


def test_train_filters_and_test_flips_are_stored_with_the_model_and_used_for_its_samples(tmp_path):
    pytest.importorskip("torch")
    from epick.runtime.cli import main
    from epick.runtime.io.micrograph import read_micrograph
    from epick.runtime.preprocess import preprocess
    from epick.trainer.modelfile import read_model_file
    from epick.trainer.train import TrainConfig

    mics, stars = write_dataset(tmp_path, "apo", 2, seed=2, shape=(160, 192))
    out = tmp_path / "lp.epick"
    assert main(["train", "--mode", "joint", "--data", str(mics), str(stars), "--diameter", str(KINDS["apo"]),
                 "-o", str(out), "--epochs", "1", "--width", "0.25", "--crop", "64", "--target-width", "96",
                 "--lowpass", "1.5", "--highpass", "12", "--test-flips", "2", "--quiet"]) == 0
    assert read_model_file(out).network.config.test_flips == 2
    params = PreprocessParams.from_dict(read_model_file(out).metadata["preprocess"])
    assert params == PreprocessParams(target_width=96, lowpass=1.5, highpass=12.0)
    [sample, _] = load_dataset(mics, stars, params, dataset="d", diameter=KINDS["apo"], progress=False)
    u8, _ = preprocess(read_micrograph(mics / f"{sample.name}.mrc").data, params)
    plain, _ = preprocess(read_micrograph(mics / f"{sample.name}.mrc").data, PreprocessParams(target_width=96))
    assert np.array_equal(sample.image, u8) and not np.array_equal(u8, plain)
    with pytest.raises(Exception, match="lowpass"):
        TrainConfig(lowpass=-1.0).new_preprocess()
    with pytest.raises(Exception, match="test-flips"):
        TrainConfig(test_flips=3)


def test_pairing_errors_name_the_file():
    mics = ["a/m1.mrc", "a/m2.mrc"]
    p1 = Picks("m1", [1.0], [2.0], source="c/m1.star")
    with pytest.raises(CoordinateError, match="m2"):
        pair_micrographs(mics, [p1])
    pairs = pair_micrographs(mics, [p1], allow_unlabelled=True)
    assert [(str(m), p is not None) for m, p in pairs] == [("a/m1.mrc", True), ("a/m2.mrc", False)]
    with pytest.raises(CoordinateError, match="c/zz.star"):
        pair_micrographs(mics, [p1, Picks("zz", [1.0], [1.0], source="c/zz.star")])


def test_two_micrographs_of_one_name_are_refused_not_dropped():
    p1 = Picks("m1", [1.0], [2.0], source="c/m1.star")
    with pytest.raises(CoordinateError, match=r"a/m1.jpg.*same name.*a/m1.mrc"):
        pair_micrographs(["a/m1.mrc", "a/m1.jpg"], [p1])
    with pytest.raises(CoordinateError, match="b/m1.mrc"):
        pair_micrographs(["a/m1.mrc", "b/m1.mrc"], [p1])
    assert len(pair_micrographs(["a/m1.mrc", "a/m1.mrc"], [p1])) == 1   # the same file twice is one micrograph


def test_fiber_points_are_sampled_along_polylines():
    fib = Picks("f", [0, 10, 10], [0, 0, 10], tube_id=[1, 1, 1])
    x, y = fiber_points(fib, 2.5)
    assert len(x) == 9  # 20 px of polyline every 2.5 px
    assert np.allclose(np.hypot(np.diff(x), np.diff(y)), 2.5)


def test_vesicle_sizes_are_diameters_in_network_pixels():
    from epick.runtime.preprocess import Transform

    t = Transform.between((400, 400), (200, 200))
    ves = Picks("v", [100.0], [50.0], radius=[20.0])
    pts, sizes = data_mod.picks_to_network(ves, t, "vesicle", None)
    assert sizes[0] == pytest.approx([20.0, 20.0])  # 2 * 20 px / scale 2
    with pytest.raises(CoordinateError, match="radius"):
        data_mod.picks_to_network(Picks("v", [1.0], [1.0]), t, "vesicle", None)


def _sample(name, n, rng, texture=30):
    img = rng.normal(128, texture, (128, 128)).clip(0, 255).astype(np.uint8)
    return Sample(name, "d", img, rng.uniform(5, 120, (n, 2)), diameter=8.0)


def test_exemplars_pick_the_representative_micrograph_and_about_200_objects():
    rng = np.random.default_rng(0)
    samples = [_sample("a_sparse", 20, rng), _sample("b_typical", 150, rng), _sample("c_typical", 160, rng),
               _sample("d_dense", 400, rng), _sample("e_noisy", 150, rng, texture=90)]
    ex = select_exemplars(samples, target=200)
    assert ex[0].name in ("b_typical", "c_typical")  # median density and texture, not the first file
    assert 150 <= sum(e.count for e in ex) and len(ex) <= 2 and all(e.exemplar for e in ex)
    assert not any(s.exemplar for s in samples)  # the training samples are left alone
    small = select_exemplars([_sample("big", 600, rng)], target=200)[0]
    assert 200 <= small.count < 600 and small.image.shape[0] % 32 == 0
    assert small.diameter == 8.0 and small.dataset == "d"  # a cropped exemplar keeps its particle size


def test_validation_split_and_batches():
    rng = np.random.default_rng(1)
    samples = [_sample(f"m{i}", 10, rng) for i in range(10)]
    train, val = split_validation(samples, 0.2, seed=3)
    assert len(val) == 2 and len(train) == 8 and not {s.name for s in val} & {s.name for s in train}
    assert [s.name for s in split_validation(samples, 0.2, seed=3)[1]] == [s.name for s in val]
    batch = make_batch(train[:3], (64, 64), 8.0, np.random.default_rng(0))
    assert batch.image.shape == (3, 1, 64, 64) and batch.image.dtype == np.float32 and batch.image.max() <= 1.0
    assert batch.heatmap.shape == (3, 1, 16, 16) and batch.offset.shape == (3, 2, 16, 16)
    assert batch.mask.sum() == (batch.heatmap == 1).sum()
