"""benchmarks/figure_add_sample.py: model arguments, one panel per model and micrograph, the sheet is written."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import figure_add_sample as fas  # noqa: E402


def test_model_arguments_keep_their_label_or_take_the_file_name():
    assert fas.parse_model("fine-tuned=/x/finetune.onnx") == ("fine-tuned", Path("/x/finetune.onnx"))
    assert fas.parse_model("/x/continual.onnx") == ("continual", Path("/x/continual.onnx"))


def test_sheet_is_written_with_undefined_precision(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    picked = {"ap": 0.5, "precision": 0.8, "recall": 0.4, "threshold": 0.3}
    silent = {"ap": 0.0, "precision": None, "recall": 0.0, "threshold": 0.3}   # no picks at all
    panels = [[(img, picked, (4, 1, 6)), (img, silent, (0, 0, 10))]]
    out = fas.draw(panels, ["continual", "fine-tuned"], ["mic"], tmp_path / "sheet.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob("*.tmp*"))
    assert Image.open(out).mode == "P"   # quantised to 256 colours


def test_panel_picks_a_real_micrograph_at_the_models_threshold(shared_data):
    from epick.runtime.artifact import read_onnx_metadata

    micrograph = sorted((Path(shared_data) / "empiar10947").glob("*.png"))[-1]
    model = fas.REPO / "runtime" / "models" / "general.onnx"
    img, row, (tp, fp, fn) = fas.panel(micrograph, model, 200, threads=1)
    assert img.width == 200 and img.height == 200                      # 1024 x 1024 network image, shrunk
    assert row["threshold"] == read_onnx_metadata(model)["model"]["threshold"]
    assert tp > 50 and tp + fn == row["n_truth"]
    assert row["n_picks"] == tp + fp
