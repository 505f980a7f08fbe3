"""The particle-size mode (issue 16): micrographs resampled so the particle diameter spans
``particle_px`` network pixels; stored with the model, used the same way by trainer and picker;
``epick pick --diameter / --diameter-a``, or an estimate when neither is given."""

import numpy as np
import pytest

from epick.runtime.errors import EpickError
from epick.runtime.preprocess import PreprocessParams, preprocess
from _models import blob_micrograph, make_onnx

SIZE = {"target_width": 1024, "particle_px": 24.0}


def test_size_mode_puts_the_diameter_on_particle_px_pixels_and_round_trips():
    params = PreprocessParams(particle_px=24.0)
    assert params.size_mode and not PreprocessParams().size_mode
    with pytest.raises(ValueError, match="diameter"):
        params.network_shape((4096, 4096))
    with pytest.raises(ValueError, match="--diameter"):
        params.with_diameter(None)
    # EMPIAR-10017 beta-gal: 4096 px wide, 108 px particles -> 910 network px, 108 / 4.5 = 24 px
    assert params.with_diameter(108.0).network_shape((4096, 4096)) == (910, 910)
    assert params.with_diameter(60.0).network_shape((1024, 1024)) == (410, 410)
    assert params.with_diameter(10.0).network_shape((100, 200)) == (100, 200)   # never upsampled
    assert PreprocessParams.from_dict(params.to_dict()) == params
    assert PreprocessParams.from_dict({"target_width": 512}) == PreprocessParams(target_width=512)  # old models
    image, truth = blob_micrograph((300, 400), n=5, sigma=6.0, seed=1)
    u8, tr = preprocess(image, params.with_diameter(48.0))
    assert u8.shape == (150, 200) and tr.scale_x == pytest.approx(2.0)
    assert PreprocessParams(target_width=777).with_diameter(None).target_width == 777   # fixed width: no-op


def test_picker_scales_by_the_diameter_and_refuses_to_guess_silently(tmp_path):
    from epick.runtime import Picker

    model = make_onnx(tmp_path / "size.onnx", extra_meta={"preprocess": SIZE})
    image, truth = blob_micrograph((512, 640), n=10, sigma=6.0, seed=2)
    with Picker(model, "onnxruntime-cpu", threads=1) as picker:
        assert picker.needs_diameter and picker.diameter is None   # no default from the model
        with pytest.raises(EpickError, match="--diameter"):
            picker.pick(image)
        picker.set_diameter(48.0)
        assert not picker.needs_diameter and picker.diameter == 48.0
        prepared = picker._prepare(image)
        assert prepared.transform.network_shape == (256, 320)   # 640 * 24 / 48
        picks = picker.pick(image)
        assert picks.diameter == 48.0 and len(picks) > 0
    with Picker(model, "onnxruntime-cpu", threads=1, diameter=24.0) as picker:
        assert picker._prepare(image).transform.network_shape == (512, 640)
    fixed = make_onnx(tmp_path / "fixed.onnx", diameter=30.0)
    with Picker(fixed, "onnxruntime-cpu", threads=1) as picker:   # fixed width: the model's diameter
        assert not picker.needs_diameter and picker.diameter == 30.0


def test_scale_search_finds_the_blob_size_the_detector_prefers(tmp_path):
    """The blob detector's logits peak on dark blobs of about 4 network px sd; blobs of sd s original
    px are seen best when the scale puts s on ~4 px, i.e. at a diameter d = s * particle_px / 4."""
    from epick.runtime import Picker
    from epick.runtime.scale_search import candidate_diameters, peak_density

    assert peak_density(np.array([0.9, 0.5, 0.2]), (48, 48), 24.0) == pytest.approx(1.4 / 4)
    ds = candidate_diameters(4096, 24.0)
    assert ds[0] == pytest.approx(4096 * 24 / 2560) and ds[-1] <= 4096 * 24 / 160 + 1e-6
    model = make_onnx(tmp_path / "size.onnx", extra_meta={"preprocess": SIZE})
    image, _ = blob_micrograph((768, 768), n=14, sigma=8.0, seed=3, margin=60)
    with Picker(model, "onnxruntime-cpu", threads=1) as picker:
        found = picker.estimate_diameter([image])
    assert len(found.rows) >= 5 and found.diameter == max(found.rows, key=lambda r: r["score"])["diameter"]
    assert 8.0 * 24 / 4 / 2 < found.diameter < 8.0 * 24 / 4 * 2


def test_pick_cli_diameter_in_angstrom_and_estimate(tmp_path, capsys):
    from epick.runtime.cli import main
    from epick.runtime.io.micrograph import write_mrc

    model = make_onnx(tmp_path / "size.onnx", extra_meta={"preprocess": SIZE})
    image, _ = blob_micrograph((512, 512), n=10, sigma=8.0, seed=4)
    mic = tmp_path / "mics" / "m1.mrc"
    mic.parent.mkdir()
    write_mrc(mic, image, pixel_size=2.0)
    assert main(["pick", str(mic), "--model", str(model), "--out", str(tmp_path / "a"), "--diameter-a", "96",
                 "--format", "star,box", "--quiet", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "= 48.0 px at 2 A/px" in err
    assert main(["pick", str(mic), "--model", str(model), "--out", str(tmp_path / "b"), "--quiet",
                 "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "estimated particle diameter" in err
    with pytest.raises(SystemExit) as stopped:   # the size is given once: a usage error
        main(["pick", str(mic), "--model", str(model), "--out", str(tmp_path / "c"), "--diameter", "40",
              "--diameter-a", "96"])
    assert stopped.value.code == 2 and "not allowed with argument --diameter" in capsys.readouterr().err
    png = tmp_path / "mics" / "m2.png"
    from PIL import Image
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(png)
    assert main(["pick", str(png), "--model", str(model), "--out", str(tmp_path / "d"), "--diameter-a", "96"]) == 2
    assert "records none" in capsys.readouterr().err
