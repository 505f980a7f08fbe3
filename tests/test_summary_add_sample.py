"""benchmarks/summary_add_sample.py: runs read from single and nested reports, forgetting recomputed,
the spread taken per continual method (exemplar share, scratch change)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import summary_add_sample as sas  # noqa: E402


def _report(model: str, seed, before_old: float, continual_old: float, finetune_old: float | None = None,
            scratch: str | None = None, passes: int | None = None) -> dict:
    def score(new, old):
        return {"new": {"ap": new}, "old_real": {"ap": old}, "old_sim": {"ap": 0.9}}

    rows = {"before": score(0.5, before_old), "continual": score(0.7, continual_old)}
    if finetune_old is not None:
        rows["finetune"] = score(0.75, finetune_old)
    params = {"model": model, "new": "empiar10947", "old": ["betagal"], "seed": seed}
    if scratch:
        params["scratch_change"] = scratch
    if passes is not None:
        params["exemplar_passes"] = passes
    return {"benchmark": "add_sample", "params": params, "results": {"score": {"rows": rows}}}


def test_forgetting_is_recomputed_and_spread_per_continual_method(tmp_path, capsys):
    one = tmp_path / "one.json"
    one.write_text(json.dumps(_report("A.epick", None, 0.80, 0.78, 0.60)))
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"benchmark": "add_sample_seeds", "runs": {
        "s1": _report("B.epick", 1, 0.70, 0.74),
        "s2": _report("B.epick", 2, 0.70, 0.40, scratch="a patched loss"),
        "s3": _report("B.epick", 0, 0.70, 0.69, 0.50, passes=0)}}))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"benchmark": "pick", "results": {}}))   # not an add-sample run: ignored

    rows = [sas.summarise(label, r) for p in (one, nested, other) for label, r in sas.runs_of(p)]
    assert [r["run"] for r in rows] == ["one", "nested:s1", "nested:s2", "nested:s3"]
    assert [r["method"] for r in rows] == ["one exemplar pass", "one exemplar pass", "scratch: a patched loss",
                                           "equal exemplar share"]
    assert rows[0]["seed"] == 0 and rows[0]["continual_forgetting"] == pytest.approx(0.02)
    assert rows[0]["finetune_forgetting"] == pytest.approx(0.20)
    assert rows[1]["continual_forgetting"] == pytest.approx(-0.04) and "finetune_forgetting" not in rows[1]

    spread = sas.spread(rows)
    assert spread["empiar10947 continual, one exemplar pass"] == pytest.approx(
        {"n": 2, "mean": -0.01, "min": -0.04, "max": 0.02, "new_mean": 0.7, "models": 2})
    assert spread["empiar10947 continual, scratch: a patched loss"]["mean"] == pytest.approx(0.30)
    assert spread["empiar10947 continual, equal exemplar share"]["n"] == 1
    # fine-tuning uses no exemplars: its runs are pooled whatever the continual runs' exemplar share
    assert spread["empiar10947 finetune, no exemplars"] == pytest.approx(
        {"n": 2, "mean": 0.20, "min": 0.20, "max": 0.20, "new_mean": 0.75, "models": 2})
    assert not any(k.startswith("empiar10947 finetune, one") for k in spread)

    assert sas.main([str(one), str(nested), str(other)]) == 0
    out = capsys.readouterr().out
    assert "| nested:s2 | empiar10947 | M2 | 2 | scratch: a patched loss |" in out
    assert "over 2 runs of 2 general models" in out


def test_files_without_add_sample_runs_are_an_error(tmp_path, capsys):
    path = tmp_path / "pick.json"
    path.write_text(json.dumps({"benchmark": "pick", "results": {}}))
    assert sas.main([str(path)]) == 1
    assert "no add-sample runs" in capsys.readouterr().err
