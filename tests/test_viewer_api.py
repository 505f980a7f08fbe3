"""`epick view`'s JSON API through a real server on an ephemeral port, and `epick filter`, on picks
made by the bundled demo model on micrographs from the project's simulator."""
from __future__ import annotations

import hashlib
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from epick.runtime.cli import main as cli_main
from epick.runtime.evaluate import match
from epick.runtime.io.coordinates import read_picks
from epick.runtime.viewer.api import ViewerApi
from epick.runtime.viewer.server import Server


@pytest.fixture(scope="module")
def job(viewer_job):
    return viewer_job


@pytest.fixture(scope="module")
def server(job):
    sim, picks = job
    api = ViewerApi.open(picks, truth=sim)          # micrographs found through autopick.star
    with Server(api.app(), "127.0.0.1", 0) as srv:
        yield srv


def get(server: Server, path: str, host: str | None = None):
    request = urllib.request.Request(server.url.rstrip("/") + path)
    if host:
        request.add_header("Host", host)
    with urllib.request.urlopen(request, timeout=30) as reply:
        body = reply.read()
        return reply.headers.get("Content-Type"), (json.loads(body) if "json" in reply.headers["Content-Type"] else body)


def post(server: Server, path: str, value, content_type: str = "application/json"):
    data = json.dumps(value).encode() if content_type == "application/json" else value
    request = urllib.request.Request(server.url.rstrip("/") + path, data=data, method="POST",
                                     headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.loads(reply.read())


def error_of(call) -> tuple[int, str]:
    with pytest.raises(urllib.error.HTTPError) as info:
        call()
    return info.value.code, json.loads(info.value.read())["error"]


def star_scores(picks_dir: Path, key: str) -> np.ndarray:
    return read_picks(picks_dir / f"{key}_autopick.star")[0].score_or(1.0)


def test_list_counts_picks_at_the_threshold(server, job):
    _, picks = job
    info = get(server, "/api/job")[1]
    assert info["n_micrographs"] == 2 and info["formats"] == ["box", "csv", "star"]
    assert info["has_truth"] and info["n_truth"] > 0 and info["object_type"] == "particle"
    all_scores = np.concatenate([star_scores(picks, k) for k in ("mic_000", "mic_001")])
    assert sum(info["histogram"]["counts"]) == all_scores.size == info["n_picks"]
    assert info["threshold"] <= all_scores.min()
    for t in (0.1, 0.25, 0.4):
        rows = get(server, f"/api/micrographs?threshold={t}")[1]
        assert [r["key"] for r in rows] == ["mic_000", "mic_001"]
        for row in rows:
            assert row["n"] == int(np.sum(star_scores(picks, row["key"]) >= t))
            assert row["total"] == star_scores(picks, row["key"]).size and row["image"]
        # the histogram gives the same count above a threshold on a bin edge
        assert sum(info["histogram"]["counts"][round(t * 100):]) == sum(r["n"] for r in rows)


def test_picks_above_a_threshold_match_like_a_match_of_those_picks_alone(server, job):
    sim, picks = job
    truth = read_picks(sim / "mic_001.star")[0]
    all_picks = read_picks(picks / "mic_001_autopick.star")[0]
    reply = get(server, "/api/picks/mic_001?threshold=0")[1]
    assert reply["shape"] == [384, 384] and len(reply["truth"]["x"]) == len(truth)
    for t in (0.15, 0.3, 0.45):
        got = get(server, f"/api/picks/mic_001?threshold={t}")[1]
        above = all_picks.subset(all_picks.score_or(1.0) >= t)
        assert np.all(np.asarray(got["picks"]["score"]) >= t - 1e-4) and len(got["picks"]["x"]) == len(above)
        np.testing.assert_allclose(got["picks"]["x"], above.x, atol=0.01)
        alone = match(above, truth, truth.diameter)
        assert got["picks"]["tp"] == (alone.pick_to_truth >= 0).tolist()
        # a truth is missed at t when its matched pick scores below t
        missed = np.asarray(got["truth"]["matched_score"]) < t - 1e-6
        assert missed.tolist() == (alone.truth_to_pick < 0).tolist()


def test_image_is_a_small_jpeg_of_the_micrograph(server):
    from PIL import Image

    kind, body = get(server, "/api/image/mic_000?width=256")
    assert kind == "image/jpeg" and body[:2] == b"\xff\xd8" and len(body) < 300_000
    image = Image.open(io.BytesIO(body))
    assert image.size == (256, 256) and image.mode == "L"
    assert np.asarray(image).std() > 10          # not a blank frame


def test_errors_unknown_micrograph_bad_post_foreign_host(server):
    assert error_of(lambda: get(server, "/api/picks/nope"))[0] == 404
    assert error_of(lambda: get(server, "/api/job", host="evil.example:80"))[0] == 421
    code, message = error_of(lambda: post(server, "/api/apply", b"threshold=0.3", "application/x-www-form-urlencoded"))
    assert code == 415 and "application/json" in message
    for bad in (1.5, 0):
        code, message = error_of(lambda: post(server, "/api/apply", {"threshold": bad}))
        assert code == 400 and "(0, 1]" in message


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_apply_writes_the_job_formats_above_the_threshold_and_prints_the_command(server, job, tmp_path, capsys):
    sim, picks = job
    before = _digests(picks)
    out = tmp_path / "kept"
    reply = post(server, "/api/apply", {"threshold": 0.3, "out": str(out)})
    assert _digests(picks) == before                           # the original picks are untouched
    assert reply["out"] == str(out) and reply["command"].startswith("epick filter ")
    names = {p.name for p in out.iterdir()}
    assert {"mic_000_autopick.star", "mic_000.box", "mic_000.csv", "autopick.star", "epick_filter.json"} <= names
    for key in ("mic_000", "mic_001"):
        kept = read_picks(out / f"{key}_autopick.star")[0]
        assert np.all(kept.score_or(1.0) >= 0.3) and len(kept) == int(np.sum(star_scores(picks, key) >= 0.3))
        assert len(read_picks(out / f"{key}.box", diameter=30)[0]) == len(kept)
        assert len(read_picks(out / f"{key}.csv")[0]) == len(kept)
    assert reply["picks_kept"] == sum(len(read_picks(out / f"mic_00{i}_autopick.star")[0]) for i in range(2))
    index = read_picks(out / "autopick.star")                    # the index lists the new files
    assert sorted(p.key for p in index) == ["mic_000", "mic_001"]
    # the printed command makes the same files
    again = tmp_path / "again"
    argv = reply["command"].split()[1:]
    argv[argv.index("--out") + 1] = str(again)
    assert cli_main(argv) == 0
    assert "kept" in capsys.readouterr().out
    same = {n: d for n, d in _digests(out).items() if n not in ("autopick.star", "epick_filter.json")}
    assert same == {n: d for n, d in _digests(again).items() if n in same}
    # a second apply to the same copy is allowed; the picks folder itself and foreign folders are not
    assert post(server, "/api/apply", {"threshold": 0.4, "out": str(out)})["picks_kept"] < reply["picks_kept"]
    assert error_of(lambda: post(server, "/api/apply", {"threshold": 0.3, "out": str(picks)}))[0] == 400
    assert "not empty" in error_of(lambda: post(server, "/api/apply", {"threshold": 0.3, "out": str(sim)}))[1]


def test_page_and_static_files_are_served(server):
    kind, body = get(server, "/")
    assert kind.startswith("text/html") and b"viewer.js" in body
    assert get(server, "/static/viewer.js")[0].startswith("text/javascript")
    assert error_of(lambda: get(server, "/static/../api.py"))[0] == 404


def test_filter_refuses_picks_without_scores(tmp_path, job):
    _, picks = job
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    for path in picks.glob("*.box"):
        boxes.joinpath(path.name).write_bytes(path.read_bytes())
    assert cli_main(["filter", str(boxes), "--threshold", "0.3", "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["vesicle", "fiber"])
def test_vesicles_carry_radii_and_fibers_tubes(tmp_path, kind):
    from epick.runtime.io.coordinates import write_picks
    from epick.simulator import simulate_micrograph
    from epick.simulator.output import write_simulated

    sim = simulate_micrograph((256, 256), seed=3, object=kind, name=f"{kind}_0", n_particles=3)
    write_simulated(sim, tmp_path / "truth")
    truth = sim.truth
    scored = truth.subset(np.arange(len(truth)))
    scored.score = np.linspace(0.9, 0.2, len(truth))      # stand-in scores on the true objects
    write_picks(scored, tmp_path / "picks" / f"{kind}_0_autopick.star", "star")
    api = ViewerApi.open(tmp_path / "picks", truth=tmp_path / "truth", diameter=12)
    got = api.picks_at(f"{kind}_0", 0.5)
    keep = scored.score >= 0.5
    assert got["object_type"] == kind and api.job_info()["object_type"] == kind
    assert len(got["picks"]["x"]) == int(keep.sum()) and all(got["picks"]["tp"])
    if kind == "vesicle":
        np.testing.assert_allclose(got["picks"]["radius"], truth.radius[keep], atol=0.01)
    else:
        assert got["picks"]["tube_id"] == truth.tube_id[keep].tolist()


def test_only_this_machine_may_apply():
    from epick.runtime.viewer.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("192.168.1.20") and not is_loopback("10.0.0.1") and not is_loopback("garbage")


def test_epick_view_command_serves_until_stopped(job, capsys):
    import argparse
    import re
    import threading
    import time

    from epick.runtime.commands import view

    sim, picks = job
    parser = argparse.ArgumentParser()
    view.add_arguments(parser)
    args = parser.parse_args([str(picks), "--micrographs", str(sim), "--port", "0"])
    assert args.host == "127.0.0.1"                        # this machine only unless asked
    stop = threading.Event()
    codes = []
    thread = threading.Thread(target=lambda: codes.append(view.run(args, stop=stop)))
    thread.start()
    try:
        url, deadline = None, time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            found = re.search(r"open (http://127\.0\.0\.1:\d+/)", capsys.readouterr().out)
            url = found.group(1) if found else None
            time.sleep(0.05)
        with urllib.request.urlopen(url + "api/job", timeout=30) as reply:
            assert json.loads(reply.read())["n_micrographs"] == 2
    finally:
        stop.set()
        thread.join(timeout=30)
    assert codes == [0]


def test_a_relion_job_folder_is_read_through_its_index_and_copied_with_its_layout(job, tmp_path, monkeypatch):
    from epick.runtime.io.coordinates import write_autopick_index
    from epick.runtime.pickjob import PickJob

    sim, picks = job
    monkeypatch.chdir(tmp_path)                       # a RELION project: paths relative to it
    jobdir = Path("External/job012")
    (jobdir / "Movies").mkdir(parents=True)
    entries = []
    for key in ("mic_000", "mic_001"):
        shutil_copy(picks / f"{key}_autopick.star", jobdir / "Movies")
        entries.append((str(sim / f"{key}.mrc"), f"External/job012/Movies/{key}_autopick.star"))
    write_autopick_index(jobdir, entries)
    loaded = PickJob.load(jobdir)
    assert sorted(loaded.picks) == ["mic_000", "mic_001"] and len(loaded.files) == 2
    assert loaded.micrograph_paths()["mic_001"] == sim / "mic_001.mrc"
    done = loaded.write_filtered(0.3, "External/job012_t0.30")
    copy = Path("External/job012_t0.30/Movies/mic_000_autopick.star")
    assert copy.is_file() and len(read_picks(copy)[0]) == int(np.sum(star_scores(picks, "mic_000") >= 0.3))
    again = PickJob.load("External/job012_t0.30")     # the new index lists the new files
    assert {k: len(p) for k, p in again.picks.items()} == {k: len(p) for k, p in PickJob.load(
        "External/job012_t0.30/Movies").picks.items()}
    assert done.picks_kept == sum(len(p) for p in again.picks.values())


def shutil_copy(src: Path, folder: Path) -> None:
    folder.joinpath(src.name).write_bytes(src.read_bytes())
