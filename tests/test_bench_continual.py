"""benchmarks/bench_continual.py: step bookkeeping (forgetting, summary), the common-pixel-size data,
and (slow) a tiny end-to-end run that writes the JSON and the figure."""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_continual as bc  # noqa: E402
from _report import Report  # noqa: E402


def _metrics(**ap_ar):
    return {name: {"ap": ap, "ar": ar, "complexity": 100 / 10 ** (ap + ar)} for name, (ap, ar) in ap_ar.items()}


def test_steps_give_forgetting_against_the_previous_step_and_a_summary(capsys):
    report, records, fit = Report("t"), {}, SimpleNamespace(best_epoch=3, best_ap=0.7)
    bc.record_step(report, records, "finetune", 1, 2.0, _metrics(a=(0.8, 0.9)), fit)
    bc.record_step(report, records, "finetune", 2, 3.0, _metrics(a=(0.5, 0.6), b=(0.9, 0.95)), fit,
                   complexity_new=_metrics(b=(0.2, 0.3))["b"])
    bc.record_step(report, records, "finetune", 3, 4.0, _metrics(a=(0.4, 0.6), b=(0.7, 0.85), c=(0.9, 0.9)), fit)
    steps = records["finetune"]
    assert steps[0]["forgetting"] is None  # nothing old at step 1
    assert steps[1]["forgetting"]["ap"] == pytest.approx(0.3)
    assert steps[1]["forgetting"]["ar"] == pytest.approx(0.3)
    assert steps[2]["forgetting"]["ap"] == pytest.approx((0.1 + 0.2) / 2)  # a and b, not the new c
    assert steps[2]["forgetting"]["n_datasets"] == 2
    summary = bc.summarise(records, ["a", "b", "c"])["finetune"]
    assert summary["forgetting_ap"] == pytest.approx((0.3 + 0.15) / 2)
    assert summary["first_dataset_ap"] == {1: 0.8, 2: 0.5, 3: 0.4}
    assert summary["mean_seen_ap"][3] == pytest.approx((0.4 + 0.7 + 0.9) / 3)
    assert summary["train_seconds"] == pytest.approx(9.0) and summary["last_step_seconds"] == 4.0
    table = bc.accuracy_table(records, ["a", "b", "c"])
    assert "0.500/0.60" in table and "0.300" in table and f"{100 / 10 ** 0.5:.1f}" in table
    cases = report.summary()
    assert list(cases) == ["finetune step 1", "finetune step 2", "finetune step 3"]
    assert cases["finetune step 2"]["raw_s"] == [3.0] and cases["finetune step 2"]["metrics"]["b"]["ap"] == 0.9


def test_common_pixel_size_makes_particle_sizes_follow_physical_diameters(tmp_path):
    args = bc.parse_args(["--shape", "128", "--n-train", "1", "--n-test", "1", "--pixel-size", "4",
                          "--data-dir", str(tmp_path), "--datasets", "3"])
    names = bc.dataset_names(args)
    assert names == ["ribosome", "proteasome", "apoferritin"]
    folder, _, reused = bc.ensure_suite(args, names[:2])
    assert not reused
    manifests = [json.loads((folder / n / "manifest.json").read_text()) for n in names[:2]]
    for m in manifests:
        assert m["pixel_size_a"] == pytest.approx(4.0)
        assert m["diameter_px"] == pytest.approx(m["diameter_a"] / 4.0, rel=1e-3)
        assert (folder / m["dataset"] / "test").is_dir() and len(m["micrographs"]) == 2
    assert manifests[0]["diameter_px"] > 1.3 * manifests[1]["diameter_px"]  # ribosome vs proteasome
    assert bc.ensure_suite(args, names[:2])[2]  # second call reuses the data


@pytest.mark.slow
def test_tiny_run_writes_every_method_and_the_figure(tmp_path):
    pytest.importorskip("matplotlib")
    out, fig = tmp_path / "res", tmp_path / "fig.png"
    code = bc.main(["--datasets", "2", "--shape", "256", "--n-train", "3", "--n-test", "1", "--epochs", "1",
                    "--target-width", "128", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                    "--figure", str(fig), "--exemplar-passes", "2"])
    assert code == 0
    (result,) = out.glob("continual-*.json")
    record = json.loads(result.read_text())
    summary = record["params"]["summary"]
    assert record["params"]["train_config"]["exemplar_passes"] == 2   # the option reaches the trainer
    assert set(summary) == {"joint", "finetune", "continual"}
    for method in ("finetune", "continual", "joint"):
        assert summary[method]["final_step"] == 2 and set(summary[method]["final_ap"]) == {"ribosome", "proteasome"}
    assert record["results"]["continual step 2"]["complexity_new"]["complexity"] >= 1.0
    assert fig.stat().st_size > 10_000
