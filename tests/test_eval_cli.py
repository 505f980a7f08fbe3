"""`epick eval` end to end: real beta-gal STAR files and small written coordinate files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from epick.runtime.cli import main
from epick.runtime.io.coordinates import read_picks, write_picks
from epick.runtime.picks import Picks


def run_eval(*argv: str) -> int:
    return main(["eval", *map(str, argv)])


def test_ground_truth_against_itself_gives_ap_one(betagal_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "metrics.json"
    assert run_eval("--picks", betagal_dir, "--truth", betagal_dir, "--json", out) == 0
    result = json.loads(out.read_text())
    n_truth = sum(r["n_truth"] for r in result["micrographs"])
    assert result["n_micrographs"] == 14 and n_truth > 5000
    assert result["ap"] == pytest.approx(1.0)
    assert result["ar"] == pytest.approx(1.0)
    assert result["precision"] == 1.0 and result["recall"] == 1.0 and result["f1"] == 1.0
    assert result["diameter"] == pytest.approx(108.0)  # read from the STAR comment
    assert result["complexity"] == pytest.approx(1.0)
    printed = capsys.readouterr().out
    assert "total (14)" in printed and "Falcon_2012_06_12-14_57_34_0" in printed


def test_a_fifth_of_the_particles_removed_gives_recall_0_8(betagal_dir: Path, tmp_path: Path):
    picks_dir = tmp_path / "picks"
    n_kept = n_all = 0
    for star in sorted(betagal_dir.glob("*.star")):
        (truth,) = read_picks(star)
        keep = np.arange(len(truth)) % 5 != 0
        n_kept += int(keep.sum())
        n_all += len(truth)
        write_picks([truth.subset(keep)], picks_dir / f"{truth.key}_autopick.star", "star")
    out = tmp_path / "metrics.json"
    assert run_eval("--picks", picks_dir, "--truth", betagal_dir, "--json", out, "--quiet") == 0
    result = json.loads(out.read_text())
    assert result["n_micrographs"] == 14
    assert result["recall"] == pytest.approx(n_kept / n_all)
    assert result["ar"] == pytest.approx(0.8, abs=0.01)
    assert result["recall"] == pytest.approx(0.8, abs=0.01)
    assert result["precision"] == 1.0
    assert result["ap"] == pytest.approx(result["ar"])  # every pick correct: AP equals recall


def _write(path: Path, name: str, x, y, score=None) -> Path:
    return write_picks([Picks(name, np.asarray(x, float), np.asarray(y, float), score=score)], path, "star")


def test_diameter_and_radius_options_change_the_match(tmp_path: Path):
    truth = _write(tmp_path / "t" / "mic.star", "mic", [100.0, 400.0], [100.0, 100.0])
    picks = _write(tmp_path / "p" / "mic.star", "mic", [130.0, 400.0], [100.0, 100.0])
    out = tmp_path / "m.json"
    # offset 30 px: with a 100 px box IoU = 0.7 / 1.3 (match); with a 60 px box 0.5 / 1.5 (no match)
    assert run_eval("--picks", picks, "--truth", truth, "--diameter", 100, "--json", out) == 0
    assert json.loads(out.read_text())["tp"] == 2
    assert run_eval("--picks", picks, "--truth", truth, "--diameter", 60, "--json", out) == 0
    assert json.loads(out.read_text())["tp"] == 1
    assert run_eval("--picks", picks, "--truth", truth, "--radius", 35, "--json", out) == 0
    result = json.loads(out.read_text())
    assert result["tp"] == 2 and result["radius"] == 35.0
    assert {"precision", "recall", "f1", "ap", "ar", "complexity", "n_micrographs", "diameter",
            "micrographs"} <= set(result)


def test_no_pairing_micrographs_is_a_one_line_error(tmp_path: Path, capsys):
    truth = _write(tmp_path / "t" / "alpha.star", "alpha", [100.0], [100.0])
    picks = _write(tmp_path / "p" / "beta.star", "beta", [100.0], [100.0])
    assert run_eval("--picks", picks, "--truth", truth, "--diameter", 50) == 2
    err = capsys.readouterr().err
    assert "alpha" in err and "beta" in err and "Traceback" not in err


def test_missing_path_and_missing_diameter_are_errors(tmp_path: Path, capsys):
    truth = _write(tmp_path / "t" / "mic.star", "mic", [100.0], [100.0])
    assert run_eval("--picks", tmp_path / "nowhere", "--truth", truth, "--diameter", 50) == 2
    assert "nowhere" in capsys.readouterr().err
    assert run_eval("--picks", truth, "--truth", truth) == 2
    assert "--diameter" in capsys.readouterr().err


def test_folder_with_relion_index_counts_each_micrograph_once(tmp_path: Path):
    from epick.runtime.io.coordinates import write_autopick_index

    truth = _write(tmp_path / "t" / "mic.star", "mic", [100.0, 400.0], [100.0, 100.0])
    job = tmp_path / "job"
    picks = _write(job / "mic_autopick.star", "mic", [100.0], [100.0])
    write_autopick_index(job, [("mic.mrc", picks)])
    out = tmp_path / "m.json"
    assert run_eval("--picks", job, "--truth", truth, "--diameter", 50, "--json", out) == 0
    result = json.loads(out.read_text())
    assert result["n_micrographs"] == 1 and result["recall"] == 0.5
    # naming the index reads through it to the same file
    assert run_eval("--picks", job / "autopick.star", "--truth", truth, "--diameter", 50, "--json", out) == 0
    assert json.loads(out.read_text())["recall"] == 0.5


def test_unpaired_micrographs_are_left_out_with_a_warning(tmp_path: Path, capsys):
    _write(tmp_path / "t" / "a.star", "a", [100.0], [100.0])
    _write(tmp_path / "t" / "b.star", "b", [100.0], [100.0])
    picks = _write(tmp_path / "p" / "a_autopick.star", "a", [100.0], [100.0])
    out = tmp_path / "m.json"
    assert run_eval("--picks", picks, "--truth", tmp_path / "t", "--diameter", 50, "--json", out) == 0
    assert "1 micrograph(s) of the truth have no partner" in capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["n_micrographs"] == 1 and result["unpaired_truth"] == ["b"]


def test_scored_picks_get_the_best_f1_threshold_and_a_note_when_cut(betagal_dir: Path, tmp_path: Path, capsys):
    """Real beta-gal truth; picks = every particle (scores 0.3-1) plus twice as many false picks (0.3-0.6),
    the ranking cut at 0.3 with a third of the particles below it: the note says AP counts only
    the ranking above the cut, and the filter command it gives keeps the best F1's picks."""
    rng = np.random.default_rng(0)
    picks_dir = tmp_path / "picks"
    stars = sorted(betagal_dir.glob("*.star"))[:3]
    for star in stars:
        (truth,) = read_picks(star)
        score = np.where(np.arange(len(truth)) % 3 == 0, 0.2, rng.uniform(0.3, 1.0, len(truth)))
        n_false = 2 * len(truth)
        x = np.r_[truth.x, rng.uniform(5000, 9000, n_false)]   # false picks beyond the labelled area
        y = np.r_[truth.y, rng.uniform(0, 4096, n_false)]
        picks = Picks(truth.micrograph, x, y, score=np.r_[score, rng.uniform(0.3, 0.6, n_false)])
        write_picks([picks.subset(picks.score >= 0.3)], picks_dir / f"{truth.key}_autopick.star", "star")
    out = tmp_path / "metrics.json"
    assert run_eval("--picks", picks_dir, "--truth", *stars, "--json", out) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["lowest_score"] >= 0.3 and result["recall"] < 0.7
    assert result["best_f1"] > result["f1"] + 0.005 and result["best_threshold"] > 0.5
    assert f"best F1 {result['best_f1']:.3f} at score >= {result['best_threshold']:.3g}" in printed
    assert "so AP and AR count only the ranking above that cut" in printed
    hint = next(line for line in printed.splitlines() if "epick filter" in line)
    threshold = float(hint.split("--threshold ")[1].split()[0])
    kept = tmp_path / "kept"
    assert main(["filter", str(picks_dir), "--threshold", str(threshold), "--out", str(kept)]) == 0
    assert run_eval("--picks", kept, "--truth", *stars, "--json", out, "--quiet") == 0
    assert json.loads(out.read_text())["f1"] == pytest.approx(result["best_f1"], abs=0.002)
    assert "note:" not in capsys.readouterr().out   # --quiet prints only the total line
