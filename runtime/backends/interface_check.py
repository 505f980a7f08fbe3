"""Checks that a loaded model honours the network contract, done once when it is loaded.

- :func:`check_metadata_values`: the metadata's numbers are of the right type and within bounds
  (diameter a positive finite number of original pixels, threshold in [0, 1], stride 4), so a
  damaged or hand-edited file is refused with its name instead of failing later (or allocating
  gigabytes: preprocessing and architecture sizes are bounded where they are parsed).
- :func:`check_interface`: one small probe inference (a blank image of the smallest accepted
  size) checks the input (one channel, any height and width that are multiples of 32), the
  outputs (``heatmap`` 1 channel, ``offset`` 2, ``size`` 2 for vesicles) and the output stride
  against the metadata (a stride-8 network labelled 4 picked only the top-left quarter).
- :func:`check_finite`: a micrograph whose network outputs hold NaN or Inf is a failure that says
  so, not a micrograph with zero picks.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ModelFileError

MAX_DIAMETER_PX = 100_000.0   # original pixels; larger than any micrograph epick reads
_REEXPORT = "re-export it from the model file with this epick version: epick export MODEL ..."
_CHANNELS = {"heatmap": 1, "offset": 2, "size": 2}


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a finite number (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def check_metadata_values(blob: Mapping[str, Any], source: str | Path) -> None:
    """Refuse metadata values of the wrong type or out of bounds, naming ``source``."""
    diameter = blob.get("particle_diameter")
    if diameter is not None:
        number = _number(diameter)
        if number is None or not 0 < number <= MAX_DIAMETER_PX:
            raise ModelFileError(source, f"records a particle diameter of {diameter!r}, not a positive number "
                                 f"of pixels up to {MAX_DIAMETER_PX:g}", _REEXPORT + " --diameter PX")
    stride = blob.get("output_stride")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride not in (1, 2, 4, 8, 16, 32):
        raise ModelFileError(source, f"records an output stride of {stride!r}", _REEXPORT)
    model = blob.get("model")
    threshold = model.get("threshold") if isinstance(model, Mapping) else None
    if threshold is not None and (_number(threshold) is None or not 0 <= float(threshold) <= 1):
        raise ModelFileError(source, f"records a score threshold of {threshold!r}, not a number in [0, 1]",
                             _REEXPORT)
    if not isinstance(blob.get("preprocess") or {}, Mapping):
        raise ModelFileError(source, "records preprocessing settings that are not a JSON object", _REEXPORT)


def probe_side(min_side: int = 0) -> int:
    """Height and width of the probe image: the smallest multiple of 32 the artifact accepts, >= 64."""
    return max(64, -(-int(min_side or 0) // 32) * 32)


def check_interface(backend, *, object_type: str, stride: int, min_side: int = 0) -> None:
    """Run one blank probe image through ``backend`` and check every output's shape against the
    contract: [1, C, H/stride, W/stride] with C = 1 (heatmap), 2 (offset), 2 (size, vesicles)."""
    side = probe_side(min_side)
    height, width = side, side + 32        # unequal sides: a transposed output is seen too
    _check_declared_input(backend)
    try:
        outputs = backend.infer(np.zeros((1, 1, height, width), dtype=np.float32))
    except ModelFileError:
        raise
    except Exception as exc:
        raise ModelFileError(backend.path, f"does not accept a [1, 1, {height}, {width}] network input "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                             "epick needs one input channel and free height and width; " + _REEXPORT) from exc
    wanted = ["heatmap", "offset"] + (["size"] if object_type == "vesicle" else [])
    missing = [name for name in wanted if name not in outputs]
    if missing:
        raise ModelFileError(backend.path, f"has no {' or '.join(missing)} output (a {object_type} model "
                             f"needs {', '.join(wanted)}; it gives {', '.join(sorted(outputs))})", _REEXPORT)
    expect_hw = (height // stride, width // stride)
    for name in wanted:
        shape = tuple(np.shape(outputs[name]))
        if len(shape) != 4 or shape[0] != 1 or shape[1] != _CHANNELS[name]:
            raise ModelFileError(backend.path, f"output {name!r} has shape {list(shape)} for a 1-image batch; "
                                 f"the contract is [1, {_CHANNELS[name]}, H/{stride}, W/{stride}]", _REEXPORT)
        if shape[2:] != expect_hw:
            actual = height / shape[2] if shape[2] else float("nan")
            raise ModelFileError(backend.path, f"output {name!r} is {shape[2]} x {shape[3]} for a {height} x "
                                 f"{width} input: output stride {actual:g}, but its metadata says {stride}",
                                 "export the model again so that network and metadata agree")


def _check_declared_input(backend) -> None:
    """ONNX Runtime sessions declare their input: one channel, height and width not fixed."""
    session = getattr(backend, "session", None)
    if session is None or not hasattr(session, "get_inputs"):
        return
    shape = list(session.get_inputs()[0].shape)
    if len(shape) != 4:
        raise ModelFileError(backend.path, f"its network input has {len(shape)} dimensions ({shape}); the "
                             "contract is [N, 1, H, W]", _REEXPORT)
    if isinstance(shape[1], int) and shape[1] != 1:
        raise ModelFileError(backend.path, f"its network input has {shape[1]} channels; epick feeds one "
                             "(grey) channel", _REEXPORT)
    fixed = [s for s in shape[2:] if isinstance(s, int) and s > 0]
    if fixed:
        raise ModelFileError(backend.path, f"its network input has a fixed size {shape}; micrographs of "
                             "other shapes cannot be picked", "export it with free height and width: " + _REEXPORT)


def check_finite(outputs: Mapping[str, np.ndarray], i: int, source: str | Path) -> None:
    """Raise ModelFileError when image ``i``'s network outputs hold NaN or Inf."""
    for name, value in outputs.items():
        # a float64 sum of float32 values cannot overflow: it is finite exactly when every value is
        if not np.isfinite(np.add.reduce(value[i], axis=None, dtype=np.float64)):
            bad = int(np.size(value[i]) - np.count_nonzero(np.isfinite(value[i])))
            raise ModelFileError(source, f"the network gave {bad} NaN/Inf values in its {name!r} output for "
                                 "this micrograph", "the model is damaged or diverged in training; retrain or "
                                 "re-export it")
