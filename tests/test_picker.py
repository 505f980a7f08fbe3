"""Picker: picks land on objects, batching changes nothing, bad files never stop a batch, refusals."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from _models import blob_micrograph, make_onnx
from epick.runtime import Picker
from epick.runtime.errors import ModelFileError
from epick.runtime.io.micrograph import write_mrc


@pytest.fixture(scope="module")
def blob_onnx(tmp_path_factory) -> Path:
    return make_onnx(tmp_path_factory.mktemp("m") / "blob.onnx", target_width=256)


@pytest.fixture(scope="module")
def picker(blob_onnx) -> Picker:
    with Picker(blob_onnx, threshold=0.5) as p:
        yield p


def _nearest(picks, centres) -> np.ndarray:
    d = np.hypot(picks.x[:, None] - centres[None, :, 0], picks.y[:, None] - centres[None, :, 1])
    return d.min(axis=0)


def test_picks_land_on_blobs_in_original_pixels(picker):
    image, centres = blob_micrograph((512, 640), n=12, seed=1)
    picks = picker.pick(image)
    assert picks.shape == (512, 640)
    assert picks.diameter == 24.0
    # every blob found within a few original pixels (the tiny model's offset is a constant 0.5 cell)
    assert np.all(_nearest(picks, centres) < 8.0)
    assert np.all((picks.score >= 0.5) & (picks.score <= 1.0))
    assert picker.backend_name == "onnxruntime-cpu"


def test_path_and_array_give_the_same_picks(picker, tmp_path):
    image, _ = blob_micrograph(seed=2)
    write_mrc(tmp_path / "a.mrc", image, pixel_size=1.5)
    from_path = picker.pick(tmp_path / "a.mrc")
    from_array = picker.pick(image)
    np.testing.assert_array_equal(from_path.x, from_array.x)
    np.testing.assert_array_equal(from_path.y, from_array.y)
    assert from_path.micrograph == "a.mrc" and from_path.pixel_size == pytest.approx(1.5)


def test_pick_many_equals_pick_and_groups_shapes(picker, tmp_path):
    shapes = [(512, 640), (384, 512), (512, 640), (384, 512), (512, 640)]
    paths = []
    for i, shape in enumerate(shapes):
        image, _ = blob_micrograph(shape, n=8, seed=10 + i)
        paths.append(write_mrc(tmp_path / f"m{i}.mrc", image))
    results = {r.name: r for r in picker.pick_many(paths, batch_size=2)}
    assert sorted(results) == sorted(p.name for p in paths)
    for path in paths:
        alone = picker.pick(path)
        got = results[path.name].picks
        np.testing.assert_allclose(got.x, alone.x)
        np.testing.assert_allclose(got.y, alone.y)
        np.testing.assert_allclose(got.score, alone.score, rtol=1e-6)


def test_corrupt_file_inside_a_batch_does_not_stop_it(picker, tmp_path):
    good = []
    for i in range(3):
        image, _ = blob_micrograph(seed=20 + i)
        good.append(write_mrc(tmp_path / f"good{i}.mrc", image))
    (tmp_path / "garbage.mrc").write_bytes(b"not an mrc file " * 200)
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "wrong.png").write_bytes(good[0].read_bytes())          # MRC bytes named .png
    truncated = tmp_path / "truncated.mrc"
    truncated.write_bytes(good[1].read_bytes()[:5000])
    bad = ["garbage.mrc", "empty.tif", "wrong.png", "truncated.mrc"]
    order = [good[0], tmp_path / bad[0], good[1], tmp_path / bad[1], tmp_path / bad[2], good[2], truncated]
    results = {r.name: r for r in picker.pick_many(order, batch_size=4)}
    assert len(results) == len(order)
    for path in good:
        assert results[path.name].ok and len(results[path.name].picks) > 0
    for name in bad:
        assert not results[name].ok, name
        assert results[name].error
    assert "empty" in results["empty.tif"].error
    assert "truncated" in results["truncated.mrc"].error


def test_failing_inference_fails_only_the_bad_item(blob_onnx):
    """A batch whose inference raises is retried item by item; only the culprit fails."""
    picker = Picker(blob_onnx)
    real = picker.backend.infer

    def flaky(images):
        if np.any(images[:, 0, 0, 0] > 2.0):     # the marked image poisons any batch holding it
            raise RuntimeError("device error")
        return real(images)

    picker.backend.infer = flaky
    items = [picker._prepare(blob_micrograph(seed=s)[0]) for s in range(3)]
    items[1].u8 = items[1].u8.copy()
    items[1].u8[0, 0] = 255
    picker.backend.infer = lambda images: flaky(np.where(images >= 1.0, 3.0, images))
    results = picker._run_batch(items)
    assert [r.ok for r in results] == [True, False, True]
    assert "device error" in results[1].error


def test_object_type_mismatch_is_refused(blob_onnx):
    with pytest.raises(ModelFileError, match="particles, but vesicles were requested"):
        Picker(blob_onnx, object_type="vesicle")
    Picker(blob_onnx, object_type="particle").close()


def test_vesicle_and_fiber_models_give_radius_and_tubes(tmp_path):
    image, centres = blob_micrograph((512, 640), n=10, seed=3)
    ves = Picker(make_onnx(tmp_path / "v.onnx", object_type="vesicle", target_width=256), threshold=0.5)
    picks = ves.pick(image)
    assert picks.radius is not None and len(picks) > 0
    # size head says 12 network pixels across; network image 205 x 256 for 512 x 640
    sx, sy = 640 / 256, 512 / 205
    np.testing.assert_allclose(picks.radius, 12 * (sx + sy) / 2 / 2)
    fib = Picker(make_onnx(tmp_path / "f.onnx", object_type="fiber", target_width=256), threshold=0.5)
    picks = fib.pick(image)
    assert picks.tube_id is not None and len(picks) > 0
    assert picks.tube_id.min() == 1


def test_backend_choice_and_refusals(blob_onnx, tmp_path):
    from epick.runtime.backends import open_backend

    assert open_backend(blob_onnx, "auto").name == "onnxruntime-cpu"
    assert open_backend(blob_onnx, "onnxruntime-cpu").name == "onnxruntime-cpu"
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ModelFileError, match="CUDA provider"):
            open_backend(blob_onnx, "onnxruntime-cuda")
    with pytest.raises(ModelFileError, match="unknown backend"):
        open_backend(blob_onnx, "magic")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ModelFileError, match="cannot load"):
        open_backend(broken)
    with pytest.raises(ModelFileError, match="cannot run on backend"):
        open_backend(blob_onnx, "torch-cuda")


def test_onnx_without_epick_metadata_is_refused(tmp_path):
    import onnx

    path = make_onnx(tmp_path / "plain.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.raises(ModelFileError, match="no epick metadata"):
        Picker(path)


def test_stop_ends_after_current_batch(picker, tmp_path):
    paths = []
    for i in range(12):
        image, _ = blob_micrograph((256, 256), n=4, seed=40 + i, margin=30)
        paths.append(write_mrc(tmp_path / f"s{i:02d}.mrc", image))
    stop = threading.Event()
    got = []
    for result in picker.pick_many(paths, batch_size=2, stop=stop):
        got.append(result)
        stop.set()
    assert 1 <= len(got) <= 2     # the batch in flight is finished, nothing after it


def test_pick_many_pulls_input_lazily_and_boundedly(picker):
    """Memory stays flat: the readers never run far ahead of the consumer."""
    pulled = []
    image = blob_micrograph((256, 256), n=3, seed=5, margin=30)[0]

    def endless():
        for i in range(10_000):
            pulled.append(i)
            yield image

    stream = picker.pick_many(endless(), batch_size=2, readers=2)
    first = [next(stream) for _ in range(3)]
    import time

    time.sleep(0.5)                        # give the readers time to run ahead if they could
    assert all(r.ok for r in first)
    ahead = len(pulled) - 3
    assert ahead <= 2 * 2 + 2 + 2 * 2 + 2   # queue depth + readers + waiting batch + batch in hand
    stream.close()


def test_picker_is_thread_safe(picker):
    images = [blob_micrograph(seed=60 + i)[0] for i in range(4)]
    expected = [picker.pick(im).x for im in images]
    out: dict[int, np.ndarray] = {}

    def work(i):
        out[i] = picker.pick(images[i]).x

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_array_equal(out[i], expected[i])


def test_options_object_equals_keywords_and_the_surface_is_small(blob_onnx):
    from epick.runtime.picker import PickOptions

    image = blob_micrograph(seed=3)[0]
    with Picker(blob_onnx, options=PickOptions(threshold=0.5, edge_margin=0.0)) as a, \
            Picker(blob_onnx, threshold=0.5, edge_margin=0.0) as b, \
            Picker(blob_onnx, options=PickOptions(threshold=0.9), threshold=0.5, edge_margin=0.0) as c:
        assert a.options == b.options == c.options        # keywords override the options object
        assert a.threshold == 0.5 and a.options.diameter == 24.0   # the model's diameter filled in
        picks = [p.pick(image) for p in (a, b, c)]
    assert len(picks[0]) > 0
    for other in picks[1:]:
        np.testing.assert_array_equal(other.x, picks[0].x)
    with pytest.raises(TypeError, match="treshold"):
        Picker(blob_onnx, treshold=0.5)
    public = {n for n in dir(Picker) if not n.startswith("_")}
    assert {"pick", "pick_many", "close"} <= public
    methods = {n for n in public if not isinstance(getattr(Picker, n), property)}
    assert methods == {"pick", "pick_many", "close", "set_diameter", "estimate_diameter"}, methods  # + size mode
    with pytest.raises(AttributeError):
        a.threshold = 0.1     # read-only
