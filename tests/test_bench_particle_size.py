"""benchmarks/bench_particle_size.py: particle sizes in network pixels become the right original
diameters, and a tiny run scores a model by size through the runtime and writes the JSON."""
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_particle_size as bps  # noqa: E402


def test_network_sizes_map_to_original_diameters_as_the_fixed_width_mode_resamples():
    assert bps.original_diameter(32, 2048) == 64   # 2048 px wide -> 1024: half the size at the network
    assert bps.original_diameter(32, 4096) == 128
    assert bps.original_diameter(32, 512) == 32    # narrower than 1024: never enlarged
    for shape in (512, 2048, 4096):                  # and back
        assert bps.network_size(bps.original_diameter(40, shape), shape) == 40


def test_simulated_particles_have_the_asked_size():
    args = bps.parse_args(["--n", "2", "--shape", "1024", "--seed", "5"])
    sims = bps.simulate_size(40, args)
    assert len(sims) == 2 and sims[0].image.shape == (1024, 1024)
    for sim in sims:
        assert sim.params["diameter_px"] == pytest.approx(40, rel=0.02) and len(sim.truth) > 10


def test_tiny_run_scores_each_size_and_writes_the_json(tmp_path, capsys):
    demo = Path(__file__).resolve().parents[1] / "runtime" / "demo" / "demo_model.onnx"
    out = tmp_path / "res"
    assert bps.main(["--model", f"demo={demo}", "--sizes", "32", "--n", "1", "--shape", "1024",
                     "--threads", "1", "--out", str(out)]) == 0
    (result,) = out.glob("particle_size-*.json")
    record = json.loads(result.read_text())
    case = record["results"]["demo 32 px"]
    assert case["n_truth"] > 10 and case["n_picks"] > 0
    assert 0.3 < case["ap"] <= 1.0   # the demo model was trained on particles of ~32 px at this scale
    assert "demo" in capsys.readouterr().out


def test_real_tiles_cut_the_held_out_micrographs_and_keep_every_particle(shared_data, monkeypatch):
    monkeypatch.setenv("EPICK_SHARED_DATA", str(shared_data))
    from epick.runtime.io.coordinates import read_picks

    tiles = bps.real_tiles(2048)   # puts the repository (tools/) on the path
    from tools.general_model import held_out_names

    assert len(tiles) == 4 * len(held_out_names("betagal"))   # 4096-px micrographs: 2 x 2 tiles each
    total = sum(len(read_picks(shared_data / "empiar10017_betagal" / f"{s}.star")[0])
                for s in held_out_names("betagal"))
    assert sum(len(xy) for _, xy, _ in tiles) == total
    for image, xy, diameter in tiles:
        assert image.shape == (2048, 2048) and diameter == pytest.approx(108, abs=1)
        assert xy.min() >= 0 and xy.max() < 2048
