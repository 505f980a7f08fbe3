"""`epick view` in a real browser: headless Debian Chromium driven by Playwright loads the page, the
slider moves, the drawn count and the Apply output follow. Skips (with the reason) where Chromium
or Playwright is missing; `.ci/run` installs Chromium so CI runs these."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from epick.runtime.io.coordinates import read_picks
from epick.runtime.viewer.api import ViewerApi
from epick.runtime.viewer.server import Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is missing (pip install 'epick[dev]')")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as play:
        chromium = play.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def job(viewer_job):
    return viewer_job


@pytest.fixture()
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def scores_of(picks_dir: Path, key: str) -> np.ndarray:
    return read_picks(picks_dir / f"{key}_autopick.star")[0].score_or(1.0)


def test_slider_changes_the_drawn_count_and_apply_writes_at_that_threshold(page, job, tmp_path):
    sim, picks = job
    api = ViewerApi.open(picks, truth=sim)
    with Server(api.app(), "127.0.0.1", 0) as server:
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        start = float(page.text_content("#thvalue"))
        first = scores_of(picks, "mic_000")
        assert int(page.text_content("#drawn")) == int(np.sum(first >= start - 1e-9)) == first.size
        page.focus("#threshold")
        for _ in range(30):                    # the keyboard moves a range input one step (0.01) a press
            page.keyboard.press("ArrowRight")
        t = round(start + 0.30, 2)
        page.wait_for_function(f"document.getElementById('thvalue').textContent === '{t:.2f}'")
        expected = int(np.sum(first >= t - 1e-9))
        assert expected < first.size
        assert int(page.text_content("#drawn")) == expected
        # the list follows (after a short debounce) and the next micrograph draws its own count
        page.wait_for_function(f"document.querySelector('#list tbody tr').children[1].textContent === '{expected}'")
        page.keyboard.press("Escape")
        page.click("#list tbody tr:nth-child(2)")
        second = scores_of(picks, "mic_001")
        page.wait_for_function("document.getElementById('title').textContent === 'mic_001'")
        page.wait_for_function(f"document.getElementById('drawn').textContent === '{int(np.sum(second >= t - 1e-9))}'")
        # Apply writes the picks at the chosen threshold and shows the equivalent command
        out = tmp_path / "chosen"
        page.fill("#out", str(out))
        page.click("#apply")
        page.wait_for_selector("#applied[data-kept]", timeout=20_000)
        kept = int(page.get_attribute("#applied", "data-kept"))
        assert kept == expected + int(np.sum(second >= t - 1e-9))
        text = page.text_content("#applied")
        assert "epick filter" in text and f"--threshold {t:g}" in text and str(out) in text
        written = read_picks(out / "mic_000_autopick.star")[0]
        assert len(written) == expected and np.all(written.score_or(1.0) >= t - 1e-9)
        # with the truth, the overlay says how many were missed
        assert "missed" in page.text_content("#counts")


def test_live_page_shows_the_latest_micrographs_and_failures(page, job):
    from epick.runtime.io.micrograph import read_micrograph
    from epick.runtime.picker import PickResult
    from epick.runtime.preprocess import preprocess
    from epick.runtime.viewer.live import LiveState

    sim, picks = job
    live = LiveState(sim, picks, diameter=30)
    for key in ("mic_000", "mic_001"):
        image, transform = preprocess(read_micrograph(sim / f"{key}.mrc").data)
        found = read_picks(picks / f"{key}_autopick.star")[0]
        live.record(PickResult(source=sim / f"{key}.mrc", name=f"{key}.mrc", picks=found, image=image,
                               transform=transform))
    live.record(PickResult(source=sim / "x.mrc", name="x.mrc", error="truncated MRC (12 of 640 rows)"))
    with Server(live.app(), "127.0.0.1", 0) as server:
        page.goto(server.url)
        page.wait_for_selector("body[data-picked='2']", timeout=20_000)
        page.wait_for_function("[...document.querySelectorAll('#thumbs img')].every((i) => i.complete && i.naturalWidth > 0)")
        counts = [int(x) for x in page.eval_on_selector_all("#thumbs [data-picks]", "els => els.map(e => e.dataset.picks)")]
        assert counts == [len(read_picks(picks / f"{k}_autopick.star")[0]) for k in ("mic_001", "mic_000")]
        assert "truncated MRC" in page.text_content("#failures") and page.text_content("#c-failed") == "1"
