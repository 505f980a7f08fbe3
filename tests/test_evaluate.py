"""Unit tests of epick.runtime.evaluate on hand-made Picks (centres in pixels, diameter in pixels)."""
from __future__ import annotations

import numpy as np
import pytest

from epick.runtime.errors import EpickError
from epick.runtime.evaluate import (average_precision, box_iou, complexity, evaluate, forgetting,
                                    match, micrograph_metrics)
from epick.runtime.picks import Picks

D = 100.0  # particle diameter in pixels


def grid_truth(name: str = "mic_001", n: int = 10) -> Picks:
    """n particles on a row, 3 diameters apart (no two can compete for one pick)."""
    x = 200.0 + 3 * D * np.arange(n)
    return Picks(name, x, np.full(n, 500.0), shape=(1000, 4000), diameter=D)


def picks_at(truth: Picks, dx: float = 0.0, dy: float = 0.0, score=None, name: str | None = None) -> Picks:
    return Picks(name or truth.micrograph, truth.x + dx, truth.y + dy, score=score)


def test_box_iou_closed_form_matches_rasterised_overlap():
    rng = np.random.default_rng(0)
    d = 40.0
    offsets = rng.uniform(-1.2 * d, 1.2 * d, size=(20, 2))
    # rasterise both squares on a 0.05 px grid and count overlapping cells
    step = 0.05
    grid = np.arange(-2 * d, 2 * d, step) + step / 2
    in_a = np.abs(grid) <= d / 2
    for dx, dy in offsets:
        in_bx = np.abs(grid - dx) <= d / 2
        in_by = np.abs(grid - dy) <= d / 2
        inter = np.count_nonzero(in_a & in_bx) * np.count_nonzero(in_a & in_by) * step**2
        iou = inter / (2 * d * d - inter)
        assert box_iou(np.array([dx]), np.array([dy]), d)[0] == pytest.approx(iou, abs=0.01)


def test_perfect_picks_give_ap_and_recall_one():
    truth = grid_truth()
    row = micrograph_metrics(picks_at(truth, score=np.linspace(1, 0.5, 10)), truth, D)
    assert (row["tp"], row["fp"], row["fn"]) == (10, 0, 0)
    assert row["precision"] == 1.0 and row["recall"] == 1.0 and row["f1"] == 1.0
    assert row["ap"] == pytest.approx(1.0)


def test_half_the_picks_give_recall_half():
    truth = grid_truth()
    picks = picks_at(truth).subset(np.arange(0, 10, 2))
    row = micrograph_metrics(picks, truth, D)
    assert row["recall"] == pytest.approx(0.5)
    assert row["precision"] == 1.0
    assert row["ap"] == pytest.approx(0.5)  # precision 1 up to recall 0.5, then nothing
    assert row["fn"] == 5


def test_shift_of_0_6_diameter_does_not_match():
    truth = grid_truth()
    assert box_iou(np.array([0.6 * D]), np.array([0.0]), D)[0] == pytest.approx(0.4 / 1.6)
    row = micrograph_metrics(picks_at(truth, dx=0.6 * D), truth, D)
    assert row["tp"] == 0 and row["fp"] == 10 and row["fn"] == 10
    assert row["ap"] == 0.0 and row["precision"] == 0.0


def test_shift_of_0_2_diameter_matches():
    truth = grid_truth()
    row = micrograph_metrics(picks_at(truth, dx=0.2 * D), truth, D)
    assert row["tp"] == 10 and row["recall"] == 1.0
    # the same offset along y too gives IoU 0.64 / 1.36 < 0.5: boxes, not circles
    row = micrograph_metrics(picks_at(truth, dx=0.2 * D, dy=0.2 * D), truth, D)
    assert row["tp"] == 0


def test_iou_exactly_one_half_matches():
    truth = grid_truth(n=1)
    m = match(picks_at(truth, dx=D / 3), truth, D)
    assert m.tp == 1


def test_radius_mode_uses_centre_distance():
    truth = grid_truth()
    shifted = picks_at(truth, dx=0.6 * D)
    assert micrograph_metrics(shifted, truth, radius=0.7 * D)["tp"] == 10
    assert micrograph_metrics(shifted, truth, radius=0.5 * D)["tp"] == 0


def test_duplicate_pick_is_one_tp_and_one_fp():
    truth = grid_truth(n=1)
    picks = Picks(truth.micrograph, [truth.x[0] + 3, truth.x[0] - 1], [truth.y[0], truth.y[0]],
                  score=[0.4, 0.9])
    m = match(picks, truth, D)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)
    assert m.pick_to_truth.tolist() == [-1, 0]  # the higher score wins, not the input order


def test_pick_takes_best_unmatched_candidate():
    # two truths 0.3 d apart; the first pick sits on truth 1, the second nearer truth 1 than 0
    truth = Picks("m", [0.0, 0.3 * D], [0.0, 0.0])
    picks = Picks("m", [0.3 * D, 0.2 * D], [0.0, 0.0], score=[0.9, 0.8])
    m = match(picks, truth, D)
    assert m.pick_to_truth.tolist() == [1, 0]


def _brute_force_greedy(picks: Picks, truth: Picks, d: float) -> list[int]:
    """Reference: full IoU matrix, picks by descending score, best unmatched truth."""
    iou = box_iou(picks.x[:, None] - truth.x[None, :], picks.y[:, None] - truth.y[None, :], d)
    taken = np.zeros(len(truth), bool)
    out = [-1] * len(picks)
    for p in np.argsort(-picks.score_or(1.0), kind="stable"):
        cand = np.where(~taken & (iou[p] >= 0.5))[0]
        if cand.size:
            t = cand[np.argmax(iou[p, cand])]
            taken[t] = True
            out[p] = int(t)
    return out


def test_kd_tree_matching_equals_brute_force_on_crowded_random_picks():
    rng = np.random.default_rng(1)
    truth = Picks("m", rng.uniform(0, 800, 300), rng.uniform(0, 800, 300))
    picks = Picks("m", rng.uniform(0, 800, 400), rng.uniform(0, 800, 400), score=rng.uniform(size=400))
    m = match(picks, truth, 60.0)
    assert m.tp > 50  # crowded enough that many picks compete
    assert m.pick_to_truth.tolist() == _brute_force_greedy(picks, truth, 60.0)


def test_false_positives_ranked_first_lower_ap():
    truth = grid_truth(n=4)
    fp_xy = (3000.0, 900.0)
    x = np.append(truth.x, fp_xy[0])
    y = np.append(truth.y, fp_xy[1])
    fp_last = Picks("mic_001", x, y, score=[0.9, 0.8, 0.7, 0.6, 0.1])
    fp_first = Picks("mic_001", x, y, score=[0.9, 0.8, 0.7, 0.6, 0.95])
    ap_last = micrograph_metrics(fp_last, truth, D)["ap"]
    ap_first = micrograph_metrics(fp_first, truth, D)["ap"]
    assert ap_last == pytest.approx(1.0)
    # FP first: precision after each TP is 1/2, 2/3, 3/4, 4/5; interpolation lifts all to 4/5
    assert ap_first == pytest.approx(0.8)
    # precision and recall at the end do not depend on the order
    assert micrograph_metrics(fp_first, truth, D)["precision"] == pytest.approx(0.8)


def test_tied_scores_are_one_threshold():
    # 2 TP and 2 FP all with score 1: one point on the curve (P = 0.5, R = 1) -> AP 0.5, any order
    assert average_precision(np.ones(4), np.array([1, 0, 1, 0], bool), 2) == pytest.approx(0.5)
    assert average_precision(np.ones(4), np.array([0, 0, 1, 1], bool), 2) == pytest.approx(0.5)


def test_empty_micrographs():
    truth = grid_truth()
    none = Picks.empty("mic_001")
    no_truth = Picks.empty("mic_001")
    both = micrograph_metrics(none, no_truth, D)
    assert both["tp"] == both["fp"] == both["fn"] == 0
    assert both["precision"] is None and both["recall"] is None and both["ap"] is None
    only_picks = micrograph_metrics(picks_at(truth), no_truth, D)
    assert only_picks["precision"] == 0.0 and only_picks["fp"] == 10
    assert only_picks["recall"] is None and only_picks["ap"] is None
    only_truth = micrograph_metrics(none, truth, D)
    assert only_truth["recall"] == 0.0 and only_truth["ap"] == 0.0 and only_truth["fn"] == 10
    assert only_truth["precision"] is None


def test_dataset_pools_counts_and_averages_ap_ar():
    t1, t2 = grid_truth("a", 10), grid_truth("b", 4)
    t_empty, t_noise = Picks.empty("c"), Picks.empty("d")
    picks = [picks_at(t1, name="a_autopick.star"),  # perfect: AP 1, R 1
             picks_at(t2, name="b.star").subset(np.array([0])),  # R 0.25, AP 0.25
             Picks.empty("c"),  # nothing at all: skipped from means
             Picks("d", [10.0, 20.0], [10.0, 900.0])]  # 2 FP, no truth: excluded from means
    result = evaluate(picks, [t1, t2, t_empty, t_noise], D)
    assert result["n_micrographs"] == 4
    assert (result["tp"], result["fp"], result["fn"]) == (11, 2, 3)
    assert result["precision"] == pytest.approx(11 / 13)
    assert result["recall"] == pytest.approx(11 / 14)
    assert result["f1"] == pytest.approx(22 / (22 + 2 + 3))
    assert result["ap"] == pytest.approx((1.0 + 0.25) / 2)
    assert result["ar"] == pytest.approx((1.0 + 0.25) / 2)
    assert result["complexity"] == pytest.approx(100 / 10 ** 1.25)
    assert [r["micrograph"] for r in result["micrographs"]] == ["a", "b", "c", "d"]


def test_evaluate_takes_diameter_from_truth_and_reports_unpaired():
    t1 = grid_truth("a")
    result = evaluate([picks_at(t1, dx=0.2 * D), Picks.empty("zzz")], [t1, grid_truth("b")])
    assert result["diameter"] == D and result["recall"] == 1.0
    assert result["unpaired_picks"] == ["zzz"] and result["unpaired_truth"] == ["b"]


def test_evaluate_without_any_diameter_is_an_error():
    t1 = Picks("a", [1.0], [1.0])
    with pytest.raises(EpickError, match="--diameter"):
        evaluate([t1], [t1])
    assert evaluate([t1], [t1], radius=5)["recall"] == 1.0


def test_no_pairing_names_the_micrographs():
    with pytest.raises(EpickError) as err:
        evaluate([Picks.empty("foo_autopick")], [grid_truth("bar")], D)
    assert "foo" in str(err.value) and "bar" in str(err.value)


def test_duplicate_micrograph_is_an_error():
    t = grid_truth("a")
    with pytest.raises(EpickError, match="twice"):
        evaluate([t, picks_at(t, name="a.star")], [t], D)


def test_complexity_bounds():
    assert complexity(1.0, 1.0) == pytest.approx(1.0)
    assert complexity(0.0, 0.0) == pytest.approx(100.0)
    assert complexity(0.5, 0.5) == pytest.approx(10.0)


def test_forgetting_is_mean_drop_over_old_datasets():
    before = {"ribo": {"ap": 0.9, "ar": 0.95}, "apof": {"ap": 0.8, "ar": 0.9}}
    after = {"ribo": {"ap": 0.6, "ar": 0.65}, "apof": {"ap": 0.8, "ar": 0.8}, "betagal": {"ap": 0.9, "ar": 0.9}}
    f = forgetting(before, after)
    assert f["ap"] == pytest.approx(0.15)
    assert f["ar"] == pytest.approx(0.2)
    assert f["n_datasets"] == 2
    with pytest.raises(ValueError, match="ribo"):
        forgetting(before, {"apof": after["apof"]})


def test_best_f1_is_the_pooled_f1_of_the_best_score_threshold():
    from epick.runtime.evaluate import best_f1

    # by score: TP 0.9, FP 0.8, TP 0.7 of 3 truth -> F1 0.5, 0.4, 0.667: the best keeps all three
    best = best_f1([np.array([0.9, 0.8, 0.7])], [np.array([True, False, True])], 3)
    assert best == pytest.approx({"best_f1": 2 / 3, "best_threshold": 0.7, "precision_at_best": 2 / 3,
                                  "recall_at_best": 2 / 3})
    # pooled over micrographs, equal scores are one threshold: 0.8 keeps both 0.8 picks (TP, FP)
    best = best_f1([np.array([0.9, 0.1]), np.array([0.8, 0.8])], [np.array([True, False]), np.array([True, False])], 2)
    assert best["best_threshold"] == 0.8 and best["best_f1"] == pytest.approx(4 / 5)
    assert best_f1([], [], 3)["best_f1"] is None and best_f1([np.array([0.5])], [np.array([False])], 0)["best_f1"] is None


def test_evaluate_best_f1_agrees_with_evaluating_the_picks_kept_at_its_threshold():
    rng = np.random.default_rng(3)
    truth, picks = [], []
    for k in range(3):
        t = grid_truth(f"mic_{k}", n=12)
        shift = rng.normal(0, 0.15 * D, (2, 12))
        extra = rng.uniform(0, 4000, (2, 8))   # false picks between the particles
        x, y = np.r_[t.x + shift[0], extra[0]], np.r_[t.y + shift[1], np.full(8, 800.0)]
        truth.append(t)
        picks.append(Picks(t.micrograph, x, y, score=rng.uniform(0.05, 1.0, x.size)))
    result = evaluate(picks, truth, D)
    thr = result["best_threshold"]
    assert result["lowest_score"] == pytest.approx(min(p.score.min() for p in picks))
    kept = evaluate([p.subset(p.score >= thr) for p in picks], truth, D)
    assert result["best_f1"] == pytest.approx(kept["f1"])   # greedy matching: each cut is a prefix
    assert result["best_f1"] >= result["f1"]
    for lower in np.unique(np.concatenate([p.score for p in picks])):   # no cut does better
        assert evaluate([p.subset(p.score >= lower) for p in picks], truth, D)["f1"] <= result["best_f1"] + 1e-12
    # picks without scores (manual picks, .box): no threshold to choose
    plain = evaluate([Picks(p.micrograph, p.x, p.y) for p in picks], truth, D)
    assert plain["best_f1"] is None and plain["best_threshold"] is None and plain["lowest_score"] is None
