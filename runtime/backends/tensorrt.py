"""TensorRT backend (TensorRT 10 and 11 public Python API, buffers and stream through cuda-python
``cuda.bindings``). Other majors are refused with the fix (``check_tensorrt_version``).

An engine only runs on the TensorRT version and GPU it was built for. The export step writes a
sidecar ``<engine>.json`` (TensorRT version, GPU name, compute capability, model hash, model
metadata); a stale engine is refused with the command that rebuilds it, or rebuilt by a
``builder`` the caller passes (the runtime never imports the export step). ``tensorrt`` and
``cuda`` are imported only here.
"""
from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from ..artifact import engine_mismatches, read_sidecar
from ..errors import ModelFileError
from .base import Backend, DeviceArrayView, check_input_batch, device_batch_pointer
from .metadata import ArtifactMetadata

log = logging.getLogger("epick.runtime")

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
SUPPORTED_TENSORRT_MAJORS = (10, 11)   # the public API epick is written against (tests: a stand-in of both)
_MAX_CACHED_SHAPES = 4   # input shapes whose pinned/device buffers stay allocated


def check_tensorrt_version(version: str, source: str | Path = "tensorrt") -> int:
    """The major version of TensorRT ``version``; ModelFileError unless it is 10 or 11."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        major = -1
    if major not in SUPPORTED_TENSORRT_MAJORS:
        raise ModelFileError(source, f"TensorRT {version} is not supported: epick uses the public API of "
                             f"TensorRT {' and '.join(map(str, SUPPORTED_TENSORRT_MAJORS))}",
                             "pip install 'tensorrt>=10,<12' on the GPU machine (and rebuild the engine: "
                             "epick export MODEL --tensorrt OUT.engine), or pick with the ONNX file")
    return major


def tensorrt_available() -> bool:
    """True when ``tensorrt`` and ``cuda.bindings`` import and a CUDA device is visible."""
    try:
        import tensorrt  # noqa: F401

        return current_gpu() is not None
    except Exception:  # ImportError, or a driver problem surfacing at import
        return False


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:  # cuda-python < 12.6 layout
        from cuda import cudart  # type: ignore[no-redef]
    return cudart


def _check(result):
    """Unpack a cuda-python ``(err, *values)`` tuple, raising on an error code."""
    cudart = _cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA runtime error {err}")
    return values[0] if len(values) == 1 else (values or None)


def current_gpu() -> dict | None:
    """Name and compute capability of CUDA device 0, or None when there is no usable GPU."""
    try:
        cudart = _cudart()
        if _check(cudart.cudaGetDeviceCount()) < 1:
            return None
        prop = _check(cudart.cudaGetDeviceProperties(0))
    except Exception:
        return None
    name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
    return {"gpu_name": name, "compute_capability": f"{prop.major}.{prop.minor}"}


def engine_problem(engine: Path, trt_version: str, gpu: dict | None) -> tuple[dict | None, str | None]:
    """(sidecar, why the engine cannot run here) -- the reason is None when it can run."""
    try:
        sidecar = read_sidecar(engine)
    except ModelFileError as exc:
        return None, exc.problem
    if gpu is None:
        return sidecar, "no CUDA GPU is visible"
    reasons = engine_mismatches(sidecar, trt_version=trt_version, gpu_name=gpu["gpu_name"],
                                compute_capability=gpu["compute_capability"])
    return sidecar, "; ".join(reasons) or None


def rebuild_command(engine: Path, sidecar: dict | None) -> str:
    """The `epick export` command that rebuilds ``engine`` on this machine (from its model file)."""
    model_hash = (sidecar or {}).get("model_hash")
    model = "MODEL.epick" + (f" (the model file with hash {model_hash})" if model_hash else "")
    return f"epick export {model} --tensorrt {engine} --rebuild"


def _source_onnx(engine: Path, sidecar: dict) -> Path:
    """The ONNX file the engine was built from (the sidecar names it; default: beside the engine)."""
    onnx_path = Path(str(sidecar.get("engine", {}).get("onnx", engine.with_suffix(".onnx"))))
    return onnx_path if onnx_path.is_absolute() else engine.parent / onnx_path


class _DeviceBuffer:
    """One device allocation (no host side): outputs of the GPU picking path."""

    def __init__(self, nbytes: int):
        self.nbytes = max(int(nbytes), 1)
        self.device_ptr = _check(_cudart().cudaMalloc(self.nbytes))

    def free(self) -> None:
        _cudart().cudaFree(self.device_ptr)


class _Buffer:
    """One pinned host array and one device allocation of the same size."""

    def __init__(self, nbytes: int, dtype: np.dtype):
        cudart = _cudart()
        self.nbytes = max(int(nbytes), 1)
        self.host_ptr = _check(cudart.cudaMallocHost(self.nbytes))
        self.device_ptr = _check(cudart.cudaMalloc(self.nbytes))
        raw = (ctypes.c_byte * self.nbytes).from_address(int(self.host_ptr))
        self.host = np.frombuffer(raw, dtype=dtype)

    def free(self) -> None:
        cudart = _cudart()
        cudart.cudaFree(self.device_ptr)
        cudart.cudaFreeHost(self.host_ptr)


class TensorRTBackend(Backend):
    """Runs a serialized TensorRT engine. Not thread-safe: one execution context, one stream.

    Input batches larger than the engine profile's maximum batch are split; host buffers are pinned
    and reused per input shape, so steady-state picking allocates nothing. ``infer_device`` runs on
    a device batch (the GPU picking path) when the engine's inputs and outputs are float32.
    """

    thread_safe = False

    def __init__(self, path: str | Path, *, builder: Callable[[Path, Path], object] | None = None):
        """Open the engine ``path``. A stale engine (other TensorRT, GPU) is refused with the command
        that rebuilds it, unless ``builder(onnx_path, engine_path)`` is given (e.g. the export step's
        ``tensorrt_build.build_engine``): then it is rebuilt from its ONNX source once and re-checked."""
        import tensorrt as trt

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(path, "TensorRT engine not found", "check the --model path")
        check_tensorrt_version(trt.__version__, path)
        sidecar, problem = engine_problem(path, trt.__version__, current_gpu())
        if problem and builder is not None and sidecar is not None and _source_onnx(path, sidecar).is_file():
            log.warning("rebuilding stale TensorRT engine %s (%s)", path, problem)
            builder(_source_onnx(path, sidecar), path)
            sidecar, problem = engine_problem(path, trt.__version__, current_gpu())
        if problem:
            raise ModelFileError(path, f"this TensorRT engine cannot run here: {problem}",
                                 f"rebuild it on this machine: {rebuild_command(path, sidecar)} "
                                 "(or pick with the ONNX file: --model MODEL.onnx)")
        super().__init__(path, ArtifactMetadata.from_blob(sidecar, path))
        self.name = "tensorrt"
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelFileError(path, "TensorRT could not deserialize this engine (damaged, or built elsewhere)",
                                 "rebuild it: epick export MODEL --tensorrt OUT.engine")
        self.context = self.engine.create_execution_context()
        self.stream = _check(_cudart().cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_name = next(n for n in names if is_input[n])
        self.output_names = [n for n in names if not is_input[n]]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.profiles = [tuple(tuple(int(v) for v in dims) for dims in
                               self.engine.get_tensor_profile_shape(self.input_name, i))
                         for i in range(self.engine.num_optimization_profiles)]
        self.max_batch = max(p[2][0] for p in self.profiles)
        self._profile = 0
        self._buffers: dict[tuple, dict[str, _Buffer]] = {}
        self._shapes: dict[tuple, dict[str, tuple]] = {}
        self._device_out: dict[tuple, dict[str, _DeviceBuffer]] = {}
        self.device_io = all(self.dtypes[n] == np.float32 for n in names)

    def _buffers_for(self, shape: tuple) -> dict[str, _Buffer]:
        if shape not in self._buffers:
            while len(self._buffers) >= _MAX_CACHED_SHAPES:   # keep device memory bounded
                old = next(iter(self._buffers))
                for buf in self._buffers.pop(old).values():
                    buf.free()
                self._shapes.pop(old, None)
            self.context.set_input_shape(self.input_name, shape)
            shapes = {self.input_name: shape}
            for name in self.output_names:
                shapes[name] = tuple(self.context.get_tensor_shape(name))
            self._buffers[shape] = {n: _Buffer(int(np.prod(s)) * self.dtypes[n].itemsize, self.dtypes[n])
                                    for n, s in shapes.items()}
            self._shapes[shape] = shapes
        return self._buffers[shape]

    def profile_for(self, shape: tuple) -> tuple[int, int]:
        """(optimisation profile index, largest batch) of the first profile accepting [*, 1, H, W]."""
        for index, (lo, _, hi) in enumerate(self.profiles):
            if all(a <= s <= b for a, s, b in zip(lo[1:], shape[1:], hi[1:])):
                return index, hi[0]
        raise ModelFileError(self.path, f"no optimisation profile of this engine accepts input {shape[1:]}",
                             "rebuild the engine with a profile covering this micrograph size "
                             "(epick export MODEL --tensorrt OUT.engine), or pick with the ONNX file")

    def _run_chunk(self, images: np.ndarray, profile: int) -> dict[str, np.ndarray]:
        cudart = _cudart()
        shape = tuple(images.shape)
        self._use_profile(profile, self.stream)
        buffers = self._buffers_for(shape)
        shapes = self._shapes[shape]
        self.context.set_input_shape(self.input_name, shape)
        inp = buffers[self.input_name]
        inp.host[: images.size] = images.astype(self.dtypes[self.input_name], copy=False).reshape(-1)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(inp.device_ptr, inp.host_ptr, inp.nbytes, h2d, self.stream))
        for name, buf in buffers.items():
            self.context.set_tensor_address(name, int(buf.device_ptr))
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError(f"{self.path}: TensorRT execution failed for input shape {shape}")
        for name in self.output_names:
            buf = buffers[name]
            _check(cudart.cudaMemcpyAsync(buf.host_ptr, buf.device_ptr, buf.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return {name: buffers[name].host[: int(np.prod(shapes[name]))].reshape(shapes[name]).astype(np.float32)
                for name in self.output_names}

    def _use_profile(self, profile: int, stream) -> None:
        if profile != self._profile:
            self.context.set_optimization_profile_async(profile, stream)
            self._profile = profile
            for old in list(self._buffers):      # output shapes depend on the active profile
                for buf in self._buffers.pop(old).values():
                    buf.free()
            self._shapes.clear()

    def _device_outputs_for(self, shape: tuple, per_image: dict[str, tuple]) -> dict[str, _DeviceBuffer]:
        """Whole-batch device output buffers for input ``shape`` (kept for a few shapes)."""
        if shape not in self._device_out:
            while len(self._device_out) >= _MAX_CACHED_SHAPES:
                for buf in self._device_out.pop(next(iter(self._device_out))).values():
                    buf.free()
            self._device_out[shape] = {n: _DeviceBuffer(shape[0] * int(np.prod(s)) * 4) for n, s in per_image.items()}
        return self._device_out[shape]

    def infer_device(self, images, stream: int | None = None) -> dict:
        """Device float32 [N, 1, H, W] batch -> device outputs by name (``DeviceArrayView`` of buffers
        reused per shape), in chunks of at most the profile's batch; see ``Backend.infer_device``."""
        if not self.device_io:
            raise ModelFileError(self.path, "this engine's inputs/outputs are not float32, so it cannot run "
                                 "on the GPU picking path", "rebuild it with float32 I/O (epick export --tensorrt)")
        ptr, shape = device_batch_pointer(images, self.path)
        run_on = int(stream) if stream is not None else int(self.stream)
        profile, step = self.profile_for(shape)
        self._use_profile(profile, run_on)
        per_image: dict[str, tuple] = {}
        for start in range(0, shape[0], step):
            chunk = (min(step, shape[0] - start),) + shape[1:]
            self.context.set_input_shape(self.input_name, chunk)
            if not per_image:
                per_image = {n: tuple(self.context.get_tensor_shape(n))[1:] for n in self.output_names}
                outputs = self._device_outputs_for(shape, per_image)
            in_bytes = int(np.prod(shape[1:])) * 4
            self.context.set_tensor_address(self.input_name, ptr + start * in_bytes)
            for name, buf in outputs.items():
                self.context.set_tensor_address(name, int(buf.device_ptr) + start * int(np.prod(per_image[name])) * 4)
            if not self.context.execute_async_v3(run_on):
                raise RuntimeError(f"{self.path}: TensorRT execution failed for input shape {chunk}")
        if stream is None:
            _check(_cudart().cudaStreamSynchronize(self.stream))
        return {n: DeviceArrayView(int(buf.device_ptr), (shape[0],) + per_image[n], np.float32, owner=buf)
                for n, buf in outputs.items()}

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the engine on a float32 [N, 1, H, W] batch, in chunks of at most ``max_batch``."""
        images = check_input_batch(images, self.path)
        profile, step = self.profile_for(images.shape)
        parts = [self._run_chunk(images[i: i + step], profile) for i in range(0, len(images), step)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def close(self) -> None:
        """Free pinned host buffers, device buffers and the stream."""
        for buffers in self._buffers.values():
            for buf in buffers.values():
                buf.free()
        self._buffers.clear()
        for buffers in self._device_out.values():
            for buf in buffers.values():
                buf.free()
        self._device_out.clear()
        if getattr(self, "stream", None) is not None:
            _cudart().cudaStreamDestroy(self.stream)
            self.stream = None
