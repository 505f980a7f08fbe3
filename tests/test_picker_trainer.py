"""The runtime's picks equal the trainer's own decoding of the same model (narrow network, simulated
micrograph): ONNX through the Picker, the model file through the Picker's torch backend, and the
trainer's ``predict_peaks`` mapped to original pixels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

N_PICKS = 60   # the threshold is put halfway between the 60th and 61st best peak of the trainer's decoding


@pytest.fixture(scope="module")
def model_and_onnx(narrow_export) -> tuple[Path, Path]:
    """The session's narrow model file (heatmap logits spread over about -8..+4) and its ONNX export."""
    return narrow_export.model, narrow_export.onnx


@pytest.fixture(scope="module")
def micrograph() -> np.ndarray:
    from epick.simulator import simulate_micrograph

    return simulate_micrograph((512, 640), seed=5).image


def _trainer_picks(model: Path, image: np.ndarray, threshold: float):
    from epick.runtime.preprocess import PreprocessParams, preprocess
    from epick.trainer.modelfile import load_model
    from epick.trainer.validate import predict_peaks

    network, meta = load_model(model)
    u8, transform = preprocess(image, PreprocessParams.from_dict(meta["preprocess"]))
    peaks = predict_peaks(network, u8, threshold=threshold)
    x, y = transform.to_original(peaks.x, peaks.y)
    return x, y, peaks.score


@pytest.mark.parametrize("artifact", ["onnx", "model"])
def test_runtime_picks_equal_trainer_decoding(model_and_onnx, micrograph, artifact):
    from epick.runtime import Picker

    model, onnx_path = model_and_onnx
    path = onnx_path if artifact == "onnx" else model
    ranked = np.sort(_trainer_picks(model, micrograph, 0.0)[2])[::-1]
    threshold = float((ranked[N_PICKS - 1] + ranked[N_PICKS]) / 2)
    with Picker(path, threshold=threshold, edge_margin=0.0) as picker:
        assert picker.backend_name == ("onnxruntime-cpu" if artifact == "onnx" else "torch-cpu")
        picks = picker.pick(micrograph)
    x, y, score = _trainer_picks(model, micrograph, threshold)
    assert len(x) == N_PICKS
    assert len(picks) == len(x)
    # the same picks; two scores equal to a few ulps may come in either order, so compare by position
    mine, theirs = np.lexsort((picks.x, picks.y)), np.lexsort((x, y))
    np.testing.assert_allclose(picks.x[mine], x[theirs], atol=1e-3)
    np.testing.assert_allclose(picks.y[mine], y[theirs], atol=1e-3)
    np.testing.assert_allclose(picks.score[mine], score[theirs], atol=1e-4)
    assert picks.diameter == 108.0   # the model's diameter (original pixels)
