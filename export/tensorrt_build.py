"""Build a TensorRT engine from the exported ONNX file (optimisation profiles, timing cache).

Written against the public Python API shared by TensorRT 10 and 11 (``import tensorrt``; other majors
are refused); TensorRT cannot be installed on the development machines, so everything that needs it
imports it inside the function, and tests/_tensorrt_standin.py implements exactly the calls used here.

Precision: the network is STRONGLY TYPED (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: required
for typed precision on 10.x, accepted and always on in 11.x), so the engine computes in the types of
the ONNX file. An FP16 engine is built from an FP16 ONNX file (half weights, float32 ``image`` input
and outputs, casts inside: ``epick export --tensorrt --fp16`` writes one); the weakly typed
``BuilderFlag.FP16`` and ``Builder.platform_has_fast_fp16``, deprecated in 10.x and removed in 11,
are not used.

Profiles: one per common micrograph shape after preprocessing to width 1024 (4096x4096,
5760x4092, 4092x5760, 3838x3710, padded up to multiples of 32), each for batch 1..32, plus a
catch-all profile (any multiple of 32 up to ``MAX_SIDE``) so unusual shapes still run.
The sidecar ``OUT.engine.json`` carries the artifact metadata of the ONNX file plus
``"engine": {tensorrt_version, gpu_name, compute_capability, fp16, profiles, workspace_bytes}``;
``epick.runtime.artifact.check_engine_current`` refuses a stale engine with a clear message.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epick.runtime.errors import ModelFileError
from epick.runtime.io.atomic import atomic_write

from epick.runtime.backends.tensorrt import check_tensorrt_version

from epick.runtime.artifact import engine_mismatches, read_onnx_metadata, read_sidecar, sidecar_path

log = logging.getLogger("epick.export")

TARGET_WIDTH = 1024            # preprocessing width (PreprocessParams.target_width default)
MULTIPLE = 32                  # network input H and W are multiples of this
MAX_BATCH = 32
OPT_BATCH = 8
CATCH_ALL_MAX_SIDE = 2048      # network pixels: covers any micrograph downsampled to width 1024
COMMON_MICROGRAPHS = ((4096, 4096), (5760, 4092), (4092, 5760), (3838, 3710))  # (width, height) px
DEFAULT_WORKSPACE = 4 << 30    # bytes of scratch memory TensorRT may use while building and running


@dataclass(frozen=True)
class ShapeProfile:
    """One optimisation profile of the ``image`` input: min / opt / max shapes [N, 1, H, W]."""

    name: str
    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the sidecar."""
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Whether an input of ``shape`` [N, 1, H, W] lies inside this profile."""
        return all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))


def padded_network_shape(width: int, height: int, target_width: int = TARGET_WIDTH) -> tuple[int, int]:
    """(H, W) of the network input for a micrograph of ``width x height`` px: the preprocessing's
    ``network_shape`` (width ``target_width``, aspect kept), padded bottom/right to multiples of 32."""
    from epick.runtime.preprocess import network_shape

    h, w = network_shape((height, width), target_width)
    return int(math.ceil(h / MULTIPLE) * MULTIPLE), int(math.ceil(w / MULTIPLE) * MULTIPLE)


def default_profiles(target_width: int = TARGET_WIDTH, max_batch: int = MAX_BATCH) -> list[ShapeProfile]:
    """One fixed-shape profile per common micrograph shape (batch 1..max_batch) plus a catch-all."""
    profiles, seen = [], set()
    for width, height in COMMON_MICROGRAPHS:
        h, w = padded_network_shape(width, height, target_width)
        if (h, w) in seen:
            continue
        seen.add((h, w))
        opt_batch = min(OPT_BATCH, max_batch)
        profiles.append(ShapeProfile(f"{width}x{height}", (1, 1, h, w), (opt_batch, 1, h, w),
                                     (max_batch, 1, h, w)))
    side = max(CATCH_ALL_MAX_SIDE, 2 * target_width)
    profiles.append(ShapeProfile("any", (1, 1, MULTIPLE, MULTIPLE), (1, 1, target_width, target_width),
                                 (max(1, max_batch // 8), 1, side, side)))
    return profiles


def gpu_facts(device: int = 0) -> dict[str, str]:
    """GPU name and compute capability "major.minor" of CUDA device ``device`` (via cuda-python or torch)."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            cudart = None
    if cudart is not None:
        err, prop = cudart.cudaGetDeviceProperties(device)
        if int(err) == 0:
            name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
            return {"gpu_name": name.strip("\x00 "), "compute_capability": f"{prop.major}.{prop.minor}"}
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(device)
            return {"gpu_name": torch.cuda.get_device_name(device), "compute_capability": f"{major}.{minor}"}
    except ImportError:
        pass
    raise ModelFileError(f"cuda:{device}", "no CUDA GPU is visible, so no TensorRT engine can be built",
                         "build the engine on the machine that will run it")


def import_tensorrt():
    """The ``tensorrt`` module (10.x or 11.x), or ModelFileError saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ModelFileError("tensorrt", "TensorRT's Python package is not installed",
                             "pip install 'tensorrt>=10,<12' on the GPU machine, or use --onnx / --torch-gpu") from exc
    check_tensorrt_version(trt.__version__)
    return trt


def onnx_is_fp16(onnx_path: str | Path) -> bool:
    """True when the ONNX file's floating-point weights are half precision (an FP16 network)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    kinds = {init.data_type for init in model.graph.initializer}
    return onnx.TensorProto.FLOAT16 in kinds and onnx.TensorProto.FLOAT not in kinds


def _load_timing_cache(config, path: Path | None):
    """Attach a timing cache to ``config``: from ``path`` when it exists, else a new empty one."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("timing cache %s does not match this TensorRT/GPU; starting an empty one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=True)
    return cache


def _parse_onnx(trt, builder, logger, onnx_path: Path):
    """A strongly typed TensorRT network definition parsed from ``onnx_path`` (errors listed in
    ModelFileError). Explicit batch is the only mode in 10 and 11; strong typing is opt-in in 10
    and always on in 11 (the flag is accepted there)."""
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(onnx_path, f"TensorRT cannot parse this ONNX file ({errors})",
                             "re-export it with `epick export MODEL --onnx OUT.onnx`")
    return network, parser


def build_engine(onnx_path: str | Path, engine_path: str | Path, *, fp16: bool | None = None,
                 profiles: list[ShapeProfile] | None = None, workspace_bytes: int = DEFAULT_WORKSPACE,
                 timing_cache: str | Path | None = None, device: int = 0) -> Path:
    """Build an engine from an epick ONNX file; write ``engine_path`` and its sidecar atomically.

    The precision is the ONNX file's (strong typing); ``fp16`` True/False checks that it is the one
    wanted (ModelFileError naming the export command otherwise), None takes it as it is.
    """
    trt = import_tensorrt()
    onnx_path = Path(onnx_path)
    engine_path = Path(engine_path)
    half = onnx_is_fp16(onnx_path)
    if fp16 is not None and bool(fp16) != half:
        raise ModelFileError(onnx_path, f"this ONNX file is {'FP16' if half else 'FP32'} and TensorRT builds "
                             f"strongly typed networks in the file's precision, so it cannot give an "
                             f"{'FP16' if fp16 else 'FP32'} engine",
                             f"let epick export write the {'FP16' if fp16 else 'FP32'} ONNX: epick export MODEL "
                             f"--tensorrt {engine_path.name} {'--fp16' if fp16 else '--fp32'}")
    meta = read_onnx_metadata(onnx_path)
    target_width = int(meta.get("preprocess", {}).get("target_width", TARGET_WIDTH))
    profiles = profiles or default_profiles(target_width)
    cache_path = Path(timing_cache) if timing_cache else engine_path.with_name(engine_path.name + ".timing")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse_onnx(trt, builder, logger, onnx_path)  # parser must outlive the build
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    input_name = network.get_input(0).name
    for prof in profiles:
        if not all(lo <= mid <= hi for lo, mid, hi in zip(prof.min, prof.opt, prof.max)):
            raise ValueError(f"invalid optimisation profile {prof}: need min <= opt <= max")
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, prof.min, prof.opt, prof.max)
        config.add_optimization_profile(profile)
    cache = _load_timing_cache(config, cache_path)

    log.info("building TensorRT %s engine from %s (%d profiles, strongly typed, %s)", trt.__version__,
             onnx_path, len(profiles), "FP16" if half else "FP32")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelFileError(onnx_path, "TensorRT failed to build an engine (see its log above)",
                             "check GPU memory and --workspace; try fewer profiles")
    with atomic_write(engine_path, "wb") as handle:
        handle.write(memoryview(serialized))
    with atomic_write(cache_path, "wb") as handle:
        handle.write(memoryview(cache.serialize()))

    side = dict(meta)
    side["engine"] = {"tensorrt_version": trt.__version__, **gpu_facts(device), "fp16": half,
                      "strongly_typed": True,
                      "input": input_name, "profiles": [p.to_dict() for p in profiles],
                      "workspace_bytes": int(workspace_bytes), "onnx": onnx_path.name}
    with atomic_write(sidecar_path(engine_path)) as handle:
        json.dump(side, handle, indent=2, sort_keys=True)
    log.info("wrote %s, %s and timing cache %s", engine_path, sidecar_path(engine_path).name, cache_path.name)
    return engine_path


def engine_is_current(engine_path: str | Path, model_hash: str | None = None, device: int = 0,
                      fp16: bool | None = None) -> list[str]:
    """Reasons why ``engine_path`` must be rebuilt on this machine (empty: it is current).

    A missing engine or sidecar is a reason too, and (``fp16`` given) another precision;
    TensorRT must be importable.
    """
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return [f"{engine_path} does not exist"]
    try:
        sidecar = read_sidecar(engine_path)
    except ModelFileError as exc:
        return [str(exc)]
    trt = import_tensorrt()
    facts = gpu_facts(device)
    reasons = engine_mismatches(sidecar, trt_version=trt.__version__, gpu_name=facts["gpu_name"],
                                compute_capability=facts["compute_capability"], model_hash=model_hash)
    built = sidecar.get("engine", {})
    if fp16 is not None and bool(built.get("fp16")) != bool(fp16):
        reasons.append(f"built {'FP16' if built.get('fp16') else 'FP32'}, {'FP16' if fp16 else 'FP32'} was asked for")
    if not built.get("strongly_typed"):
        reasons.append("built as a weakly typed network (before TensorRT 11 support)")
    return reasons


def ensure_engine(onnx_path: str | Path, engine_path: str | Path, *, rebuild: bool = True, **build_kw) -> Path:
    """Return a current engine for ``onnx_path``: reuse ``engine_path``, else rebuild it (or refuse).

    With ``rebuild=False`` a stale engine is refused with ModelFileError naming every mismatch.
    """
    model_hash = read_onnx_metadata(onnx_path)["model_hash"]
    reasons = engine_is_current(engine_path, model_hash=model_hash, device=build_kw.get("device", 0),
                                fp16=build_kw.get("fp16"))
    if not reasons:
        return Path(engine_path)
    if not rebuild:
        raise ModelFileError(engine_path, "stale TensorRT engine: " + "; ".join(reasons),
                             f"rebuild it: epick export MODEL --tensorrt {Path(engine_path).name} --fp16")
    log.info("rebuilding %s: %s", engine_path, "; ".join(reasons))
    return build_engine(onnx_path, engine_path, **build_kw)
