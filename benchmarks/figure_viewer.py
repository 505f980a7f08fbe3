"""Screenshots of `epick view` and of the live page of `epick pick --watch --dashboard` for the README.

    python benchmarks/figure_viewer.py [--out-dir docs]

Viewer (``docs/viewer.png``): the 4 EMPIAR-10017 micrographs the bundled
``runtime/demo/betagal_model.onnx`` was NOT trained on (from ``$EPICK_SHARED_DATA`` or
``../shared/data``), picked at threshold 0.1 into star + box, shown with their truth and the
slider at the model's default 0.3, on Falcon_2012_06_12-16_59_12_0 (the micrograph of
docs/picks_betagal.png).
Live page (``docs/live.png``): `epick pick --watch --dashboard` with the same model while the 14
real micrographs arrive one every 0.6 s (faster than a 2-core CPU picks them, so the page shows
files waiting) plus one truncated JPEG (a failure with its reason).
Headless Debian Chromium driven by Playwright; PNGs reduced to a palette of the page's colours and 32 greys (< 300 KB each).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "runtime" / "demo" / "betagal_model.onnx"
HELD_OUT = ["Falcon_2012_06_12-15_46_37_0", "Falcon_2012_06_12-15_53_09_0", "Falcon_2012_06_12-16_26_22_0",
            "Falcon_2012_06_12-16_59_12_0"]
SHOWN = "Falcon_2012_06_12-16_59_12_0"
# PNG palette: the colours of style.css / common.js (picks, scores, panels, text) and GREYS grey levels
PAGE_COLOURS = ["#00c8ff", "#ff3c3c", "#ffdc00", "#5aa9ff", "#14161a", "#1c1f24", "#2c3038", "#e6e8eb",
                "#9aa3ad", "#27405e", "#181b20", "#111317", "#fee050", "#00ff00", "#06121f", "#ff6b6b",
                "#ffb347", "#4575b4", "#74add1", "#66cc8c", "#ff6e3c", "#262a31"]
GREYS = 32
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def betagal_dir() -> Path:
    """The EMPIAR-10017 folder of the shared data ($EPICK_SHARED_DATA or ../shared/data)."""
    return Path(os.environ.get("EPICK_SHARED_DATA", REPO.parent / "shared" / "data")) / "empiar10017_betagal"


def save_small_png(png: bytes, path: Path) -> None:
    """Write a screenshot as a palette PNG: PAGE_COLOURS exactly (so thin pick circles keep their
    colour) plus grey levels for the micrograph."""
    import io

    from PIL import Image

    greys = [(v, v, v) for v in range(0, 256, 256 // GREYS)]
    colours = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in PAGE_COLOURS] + greys
    palette = Image.new("P", (1, 1))
    palette.putpalette([v for c in colours for v in c] + [0, 0, 0] * (256 - len(colours)))
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(palette=palette, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def shoot_viewer(browser, work: Path, out: Path) -> None:
    """Pick the held-out micrographs, serve `epick view` on them with the truth, screenshot."""
    from epick.runtime.cli import main as cli_main
    from epick.runtime.viewer.api import ViewerApi
    from epick.runtime.viewer.server import Server

    data = betagal_dir()
    picks = work / "picks"
    rc = cli_main(["pick", *[str(data / f"{n}.jpg") for n in HELD_OUT], "--model", str(MODEL), "--out", str(picks),
                   "--format", "star,box", "--threshold", "0.1", "--quiet"])
    assert rc == 0
    truth = work / "truth"
    truth.mkdir()
    for name in HELD_OUT:
        shutil.copy(data / f"{name}.star", truth)
    api = ViewerApi.open(picks, micrographs=data, truth=truth)
    with Server(api.app(), "127.0.0.1", 0) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        page.click(f"#list tbody tr[data-key='{SHOWN}']")
        page.wait_for_function(f"document.getElementById('title').textContent.startsWith('{SHOWN}')")
        page.eval_on_selector("#threshold", "el => { el.value = '0.3'; el.dispatchEvent(new Event('input')); }")
        page.fill("#out", str(Path("AutoPick/job006_t0.30")))
        time.sleep(1.5)                       # the image and the debounced list
        save_small_png(page.screenshot(), out)
        page.close()


def shoot_live(browser, work: Path, out: Path) -> None:
    """Run `epick pick --watch --dashboard` while micrographs arrive; screenshot the live page."""
    from epick.runtime import watch
    from epick.runtime.commands import pick as pick_cmd

    data = betagal_dir()
    incoming, picks = work / "incoming", work / "live_picks"
    incoming.mkdir()
    watch.CORRUPT_AFTER_S = 1.0               # report the truncated file within seconds
    parser = argparse.ArgumentParser(allow_abbrev=False)
    pick_cmd.add_arguments(parser)
    args = parser.parse_args(["--watch", str(incoming), "--model", str(MODEL), "--out", str(picks), "--poll", "0.5",
                              "--quiet", "--dashboard", "0"])
    stop = threading.Event()
    url: list[str] = []

    class Tee:                                # find the page's address in what `epick pick` prints
        def write(self, text):
            found = re.search(r"live page on (http://\S+)", text)
            if found:
                url.append(found.group(1))
            return sys.__stderr__.write(text)

        def flush(self):
            sys.__stderr__.flush()

    sys.stderr = Tee()
    thread = threading.Thread(target=pick_cmd.run, args=(args,), kwargs={"stop": stop})
    thread.start()
    try:
        while not url:
            time.sleep(0.1)
        page = browser.new_page(viewport={"width": 1280, "height": 724})   # cards, chart, one row of micrographs
        page.goto(url[0])
        names = sorted(p.stem for p in data.glob("*.jpg"))
        for i, name in enumerate(names):
            shutil.copy(data / f"{name}.jpg", incoming)
            if i == 5:
                (incoming / "Falcon_2012_06_12-17_02_40_0.jpg").write_bytes((data / f"{name}.jpg").read_bytes()[:200_000])
            time.sleep(0.6)
        page.wait_for_function("Number(document.body.dataset.picked || 0) >= 8", timeout=300_000)
        time.sleep(2.5)
        save_small_png(page.screenshot(), out)
        page.close()
    finally:
        stop.set()
        thread.join()
        sys.stderr = sys.__stderr__


def main(argv: list[str] | None = None) -> int:
    """Take both screenshots."""
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as play:
        browser = play.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        shoot_viewer(browser, Path(tmp), args.out_dir / "viewer.png")
        shoot_live(browser, Path(tmp), args.out_dir / "live.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
