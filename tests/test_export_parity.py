"""FP16 parity is judged on the picks a user gets (positions within 1 original px, scores within
0.02, the same picks above the threshold), not on logits; the rule on hand-made picks, then on an
FP16 run of the narrow network (emulated on the CPU with half weights) on real micrographs."""
from __future__ import annotations

import numpy as np
import pytest

from epick.export.parity import PickTolerance, match_picks
from epick.runtime.peaks import NetworkPeaks


def peaks(xy, scores) -> NetworkPeaks:
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return NetworkPeaks(xy[:, 0].copy(), xy[:, 1].copy(), np.asarray(scores, dtype=np.float64))


REF = peaks([(10.0, 10.0), (40.0, 12.5), (70.25, 33.0)], [0.9, 0.6, 0.45])


def test_picks_within_one_original_pixel_and_score_tolerance_agree():
    # scale 4: 0.2 network px = 0.8 original px; scores within 0.02; candidates in another order
    moved = peaks([(70.25, 33.2), (10.2, 10.0), (40.0, 12.5)], [0.44, 0.91, 0.6])
    agreement = match_picks(REF, moved, threshold=0.3, scale=4.0)
    assert agreement.ok and agreement.paired == 3
    assert agreement.worst_position_px == pytest.approx(0.8) and agreement.worst_score == pytest.approx(0.01)


def test_position_is_judged_at_the_original_scale():
    moved = peaks([(10.3, 10.0), (40.0, 12.5), (70.25, 33.0)], [0.9, 0.6, 0.45])
    assert match_picks(REF, moved, threshold=0.3, scale=3.0).ok          # 0.9 original px
    far = match_picks(REF, moved, threshold=0.3, scale=4.0)              # 1.2 original px
    assert not far.ok and "no partner within 1 original px" in " ".join(far.problems)


def test_score_beyond_tolerance_fails_and_tolerance_is_stated():
    changed = peaks(np.c_[REF.x, REF.y], [0.9, 0.63, 0.45])
    agreement = match_picks(REF, changed, threshold=0.3)
    assert not agreement.ok and "score by more than 0.02" in agreement.problems[0]
    assert match_picks(REF, changed, threshold=0.3, tolerance=PickTolerance(score=0.05)).ok
    assert PickTolerance().describe() == "positions within 1 original px, scores within 0.02"


def test_a_pick_lost_above_threshold_fails_but_borderline_picks_are_only_counted():
    lost = peaks([(10.0, 10.0), (70.25, 33.0)], [0.9, 0.45])
    agreement = match_picks(REF, lost, threshold=0.3)
    assert not agreement.ok and "1 reference picks have no partner" in agreement.problems[0]
    # a pick scored 0.31 in the reference and 0.295 (under the threshold, gone) in the candidate
    ref = peaks([(10.0, 10.0), (50.0, 50.0)], [0.9, 0.31])
    agreement = match_picks(ref, peaks([(10.0, 10.0)], [0.9]), threshold=0.3)
    assert agreement.ok and agreement.borderline == 1
    extra = match_picks(peaks([(10.0, 10.0)], [0.9]), ref, threshold=0.3)   # and the other way round
    assert extra.ok and extra.borderline == 1


def test_a_maximum_decided_by_precision_is_a_near_tie():
    """FP16 made two neighbours equal (8.4375) where FP32 had 8.4371 > 8.4347: the candidate keeps
    both cells (a tie); the extra pick is a near tie when the FP32 margin (0.0024) is within the
    largest logit difference of the two outputs, and a failure when it is not."""
    heat = np.full((5, 5), -3.0)
    heat[2, 1:4] = [8.4371, 8.4347, 8.1431]
    ref = NetworkPeaks(np.array([1.5]), np.array([9.5]), np.array([0.9998]), None, np.array([11]))
    new = NetworkPeaks(np.array([1.5, 5.5]), np.array([9.5, 9.5]), np.array([0.9998, 0.9998]), None,
                       np.array([11, 12]))
    agreement = match_picks(ref, new, threshold=0.3, reference_logits=heat, logit_error=0.0122)
    assert agreement.ok and agreement.near_ties == 1 and agreement.paired == 1
    assert not match_picks(ref, new, threshold=0.3, reference_logits=heat, logit_error=0.001).ok


def test_no_picks_on_either_side_agree_and_one_sided_fail():
    empty = peaks(np.zeros((0, 2)), [])
    assert match_picks(empty, empty, threshold=0.3).ok
    assert not match_picks(empty, REF, threshold=0.3).ok


def test_fp16_detector_gives_the_fp32_picks_on_real_micrographs(betagal_dir):
    """A blob detector (tests/_models.py: dark round blobs -> high logits, the real particles here)
    in half precision on the CPU against FP32 on a real beta-gal micrograph at width 1024: logits
    move by about 1e-2 (beyond the old 1e-2 logit verdict), the picks are the same within the
    tolerance, and FP16 ties are reported as near ties."""
    torch = pytest.importorskip("torch")
    from _models import _blob_module

    from epick.export.graph import ContractGraph
    from epick.export.parity import compare, real_network_batch, torch_runner
    from epick.export.torch_gpu import contract_graph_for

    network = _blob_module(False).eval()
    batch, scale = real_network_batch(sorted(betagal_dir.glob("*.jpg"))[:1], {"target_width": 1024}, with_scale=True)
    assert scale == 4.0
    report = compare(torch_runner(ContractGraph(network)), torch_runner(contract_graph_for(network, "cpu", True)),
                     [batch], scales=[scale], threshold=0.3)
    assert report.max_abs_diff["heatmap"] > 1e-3 and not report.picks_identical   # a real FP16 run
    assert report.picks_ok(), report.picks_summary() + "; " + "; ".join(report.tolerance_details)
    assert sum(report.picks_reference) > 500 and report.near_ties > 0


@pytest.mark.slow
def test_emulated_fp16_network_gives_the_fp32_picks_on_real_micrographs(tmp_path, betagal_dir):
    """The narrow DLA network (random weights, spread logits) in half precision on the CPU (slow:
    ~6 s of half convolutions) against FP32 on two real beta-gal micrographs at width 256."""
    torch = pytest.importorskip("torch")
    from _models import make_model_file

    from epick.export.model_source import load_for_export
    from epick.export.parity import compare, real_network_batch, torch_runner
    from epick.export.torch_gpu import contract_graph_for

    torch.set_num_threads(1)
    graph, _ = load_for_export(make_model_file(tmp_path / "narrow.epick"))
    half = contract_graph_for(graph.network, "cpu", fp16=True)
    batch, scale = real_network_batch(sorted(betagal_dir.glob("*.jpg"))[:2], {"target_width": 256}, with_scale=True)
    assert scale == 16.0
    report = compare(torch_runner(graph), torch_runner(half), [batch], scales=[scale], threshold=0.3)
    assert report.max_abs_diff["heatmap"] > 1e-3          # a real FP16 run, not the FP32 network again
    assert report.picks_ok(), report.picks_summary() + "; " + "; ".join(report.tolerance_details)
    assert sum(report.picks_reference) >= 20 and report.worst_position_px <= 1.0
