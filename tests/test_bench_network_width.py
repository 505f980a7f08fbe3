"""benchmarks/bench_network_width.py and figure_network_width.py: a model picked at other network
widths through the runtime, scored with its confident-pick counts; the large-particle figure's tile."""
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_network_width as bnw  # noqa: E402
import figure_network_width as fnw  # noqa: E402


def test_tiny_run_scores_each_width_and_writes_the_json(tmp_path, capsys):
    demo = Path(__file__).resolve().parents[1] / "runtime" / "demo" / "demo_model.onnx"
    out = tmp_path / "res"
    assert bnw.main(["--model", str(demo), "--sizes", "32", "--n", "1", "--shape", "1024", "--widths", "1024", "512",
                     "--real-tiles", "--threads", "1", "--out", str(out)]) == 0
    (result,) = out.glob("network_width-*.json")
    results = json.loads(result.read_text())["results"]
    at = {w: results[f"simulated 32 px at width {w}"] for w in (1024, 512)}
    # the demo model learnt particles of ~32 px: at half the width they span 16 and it finds fewer
    assert at[1024]["ap"] > 0.3 and at[1024]["ap"] > at[512]["ap"]
    assert at[1024]["confident_0.5"] >= at[1024]["confident_0.6"] >= 0
    assert at[1024]["confident_0.5"] > at[512]["confident_0.5"]
    assert "simulated 32 px" in capsys.readouterr().out


def test_the_figure_tile_holds_its_labels_and_the_diameter_lifts_ap(shared_data, monkeypatch):
    monkeypatch.setenv("EPICK_SHARED_DATA", str(shared_data))
    data, truth, diameter = fnw.tile_and_truth(1024)
    assert data.shape == (1024, 1024) and diameter == pytest.approx(108, abs=1) and len(truth) > 20
    assert truth.x.min() >= diameter / 2 and truth.x.max() < 1024 - diameter / 2
    model = fnw.REPO / "runtime" / "models" / "general.onnx"
    rows = {given: fnw.panel(model, data, truth, diameter, given, 120, threads=1)[1] for given in (None, diameter)}
    assert rows[diameter]["ap"] > rows[None]["ap"] + 0.3   # 108 px at width 1024: resampled to 32 with the diameter
