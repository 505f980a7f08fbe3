"""Build tools (``tools/``, not installed): README sections, 8-bit JPEG micrographs, the beta-gal
split, and the bundled demo assets they made."""
import sys
from pathlib import Path

import numpy as np
import pytest

from epick.runtime.errors import FileProblem

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tools/ sits beside the packages
from tools.betagal import split  # noqa: E402
from tools.steps import save_jpeg, write_section  # noqa: E402


def test_sections_are_replaced_in_place_and_others_kept(tmp_path):
    readme = tmp_path / "README.md"
    write_section(readme, "title", "# T")
    write_section(readme, "demo", "demo v1")
    write_section(readme, "betagal", "real v1")
    write_section(readme, "demo", "demo v2")
    text = readme.read_text()
    assert "demo v1" not in text and text.count("demo v2") == 1 and "real v1" in text
    assert text.index("# T") < text.index("demo v2") < text.index("real v1")  # demo keeps its place


def test_jpeg_keeps_pixel_positions_and_grey_order(tmp_path):
    from epick.runtime.io.micrograph import read_micrograph

    rng = np.random.default_rng(0)
    image = rng.normal(100, 5, (96, 160)).astype(np.float32)
    image[40:44, 120:124] = 200  # a bright square at x 120..123, y 40..43
    path = save_jpeg(image, tmp_path / "m.jpg", quality=92)
    back = read_micrograph(path).data
    assert back.shape == image.shape
    y, x = np.unravel_index(np.argmax(back), back.shape)
    assert 40 <= y <= 43 and 120 <= x <= 123
    assert np.corrcoef(back.ravel(), image.ravel())[0, 1] > 0.8


def test_betagal_split_links_ten_and_four(tmp_path, betagal_dir):
    train, test, names = split(betagal_dir, tmp_path / "work")
    assert len(list(train.glob("*.jpg"))) == 10 and len(list(train.glob("*.star"))) == 10
    assert sorted(p.stem for p in test.glob("*.jpg")) == sorted(names) and len(names) == 4
    assert not {p.stem for p in train.glob("*.jpg")} & set(names)
    assert all(p.is_symlink() for p in test.iterdir())  # linked, never copied
    with pytest.raises(FileProblem, match="empiar10017_betagal"):
        split(tmp_path / "empty", tmp_path / "w2")


DEMO = Path(__file__).resolve().parents[1] / "runtime" / "demo"


def _pick_and_score(model: Path, micrographs: list[Path], truth: list[Path], out: Path, threshold: float) -> dict:
    from epick.runtime.cli import main
    from epick.runtime.evaluate import evaluate
    from epick.runtime.io.coordinates import read_picks

    args = ["pick", *map(str, micrographs), "--model", str(model), "--out", str(out), "--threshold", str(threshold),
            "--quiet"]
    assert main(args) == 0
    picks = [read_picks(out / f"{m.stem}_autopick.star")[0] for m in micrographs]
    return evaluate(picks, [read_picks(t)[0] for t in truth])  # box size: the diameter in the truth files


def test_bundled_demo_model_picks_the_bundled_demo_micrographs(tmp_path):
    mics = sorted(DEMO.glob("betagal_0*.jpg"))
    assert len(mics) == 3 and all(m.stat().st_size < 700_000 for m in mics)
    model = DEMO / "demo_model.onnx"
    assert model.stat().st_size < 5.5e6
    scores = _pick_and_score(model, mics, [m.with_suffix(".star") for m in mics], tmp_path, 0.1)
    assert scores["ap"] > 0.8 and scores["ar"] > 0.85  # README: AP 0.896, AR 0.938


def test_bundled_betagal_model_picks_a_held_out_real_micrograph(tmp_path, betagal_dir):
    mic = betagal_dir / "Falcon_2012_06_12-16_26_22_0.jpg"  # one of the 4 test micrographs of the recipe
    model = DEMO / "betagal_model.onnx"
    assert model.stat().st_size < 5.5e6
    scores = _pick_and_score(model, [mic], [mic.with_suffix(".star")], tmp_path, 0.1)
    assert scores["ap"] > 0.7 and scores["recall"] > 0.85  # README: AP 0.866, recall 0.973 on this one
