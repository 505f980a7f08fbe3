"""`make demo` (python -m epick.runtime.demo): the bundled general model picks the bundled micrographs well."""
from __future__ import annotations

from epick.runtime import demo
from epick.runtime.io.coordinates import read_picks


def test_demo_picks_with_the_default_model_of_epick_pick():
    from epick.runtime.bundled import default_model

    assert demo.demo_model() == default_model().onnx                      # the general model, as `epick pick`
    assert demo.bundled_model().name == "demo_model.onnx"  # not the real-data betagal model beside it
    assert len(demo.bundled_micrographs()) == 3
    assert demo.truth_diameter(demo.bundled_micrographs()) > 0


def test_demo_picks_writes_outputs_and_scores(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "against the bundled truth" in out
    mics = demo.bundled_micrographs()
    scores = demo.score_against_truth(tmp_path, mics)
    assert scores["ap"] > 0.6 and scores["precision"] > 0.8
    for mic in mics:
        assert len(read_picks(tmp_path / f"{mic.stem}_autopick.star")[0]) > 50
        assert (tmp_path / f"{mic.stem}.box").is_file()
        assert (tmp_path / "preview" / f"{mic.stem}.png").is_file()
    assert (tmp_path / "autopick.star").is_file()
