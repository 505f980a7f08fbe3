"""Stand-ins for ``tensorrt`` (10.x or 11.x) and ``cuda.bindings.runtime``: exactly the public calls
epick's builder (export/tensorrt_build.py) and backend (runtime/backends/tensorrt.py) use, with the
names and signatures of the TensorRT Python API reference and the 10.x -> 11.x migration guide.

Version differences kept (docs.nvidia.com/deeplearning/tensorrt, "Removed Python APIs" of 11.x):
``BuilderFlag.FP16`` (and the other precision flags) and ``Builder.platform_has_fast_fp16`` exist in
10.x (deprecated) and are gone in 11.x; ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` is opt-in in
10.x and accepted but always on in 11.x. Anything else epick calls that is not here raises
AttributeError, so a renamed or removed call fails a test.

The "GPU" is host memory: ``cudaMalloc`` returns the address of a ctypes buffer, copies are
``memmove``, and an engine's ``execute_async_v3`` computes a fixed stride-4 network on the host
(``standin_network``) from the tensors at the addresses it was given.
"""
from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import json
import sys
import types

import numpy as np


def standin_network(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a stand-in engine computes for [N, 1, H, W]: 4x4 mean * 8 - 2 (heatmap logits) and the
    mean and 1 - mean (offset), float32."""
    n, _, h, w = images.shape
    pooled = images.reshape(n, 1, h // 4, 4, w // 4, 4).mean(axis=(3, 5), dtype=np.float64).astype(np.float32)
    heat = pooled * np.float32(8.0) - np.float32(2.0)
    return heat, np.concatenate([pooled, np.float32(1.0) - pooled], axis=1)


# ------------------------------------------------------------------------------- cuda.bindings.runtime
class _CudaRuntime(types.ModuleType):
    """``cuda.bindings.runtime``: the calls epick makes, each returning ``(cudaError_t, *values)``."""

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorInvalidValue = 1

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self, gpu_name: str, capability: tuple[int, int]):
        super().__init__("cuda.bindings.runtime")
        self.gpu_name, self.capability = gpu_name, capability
        self.live: dict[int, ctypes.Array] = {}
        self.streams: set[int] = set()

    def _alloc(self, nbytes):
        buf = ctypes.create_string_buffer(int(nbytes))
        self.live[ctypes.addressof(buf)] = buf
        return self.cudaError_t.cudaSuccess, ctypes.addressof(buf)

    def cudaMalloc(self, nbytes):
        return self._alloc(nbytes)

    def cudaMallocHost(self, nbytes):
        return self._alloc(nbytes)

    def _free(self, ptr):
        ok = self.live.pop(int(ptr), None) is not None
        return (self.cudaError_t.cudaSuccess if ok else self.cudaError_t.cudaErrorInvalidValue,)

    def cudaFree(self, ptr):
        return self._free(ptr)

    def cudaFreeHost(self, ptr):
        return self._free(ptr)

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):
        assert int(stream) in self.streams, "copy on a stream that does not exist"
        ctypes.memmove(int(dst), int(src), int(count))
        return (self.cudaError_t.cudaSuccess,)

    def cudaStreamCreate(self):
        handle = 0x5000 + len(self.streams) + 1
        self.streams.add(handle)
        return self.cudaError_t.cudaSuccess, handle

    def cudaStreamSynchronize(self, stream):
        return (self.cudaError_t.cudaSuccess,)

    def cudaStreamDestroy(self, stream):
        self.streams.discard(int(stream))
        return (self.cudaError_t.cudaSuccess,)

    def cudaGetDeviceCount(self):
        return self.cudaError_t.cudaSuccess, 1

    def cudaGetDeviceProperties(self, device):
        prop = types.SimpleNamespace(name=self.gpu_name.encode() + b"\x00" * 8, major=self.capability[0],
                                     minor=self.capability[1])
        return self.cudaError_t.cudaSuccess, prop


# ------------------------------------------------------------------------------------------- tensorrt
def make_tensorrt(version: str = "10.13.0") -> types.ModuleType:
    """A ``tensorrt`` module of ``version`` (major 10 or 11 API; other majors: the 11 API)."""
    head = version.split(".")[0]
    major = int(head) if head.isdigit() else 11
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    calls: list[tuple] = []
    trt.calls = calls   # what epick asked of it, for the tests

    class DataType(enum.IntEnum):
        FLOAT = 0
        HALF = 1
        INT8 = 2
        INT32 = 3
        BOOL = 4

    trt.DataType = DataType
    trt.float32, trt.float16, trt.int8, trt.int32, trt.bool = (DataType.FLOAT, DataType.HALF, DataType.INT8,
                                                              DataType.INT32, DataType.BOOL)
    _np = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
           DataType.INT32: np.int32, DataType.BOOL: np.bool_}
    trt.nptype = lambda dtype: _np[DataType(dtype)]

    class TensorIOMode(enum.IntEnum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    trt.TensorIOMode = TensorIOMode

    class MemoryPoolType(enum.IntEnum):
        WORKSPACE = 0

    trt.MemoryPoolType = MemoryPoolType
    flags = {"STRONGLY_TYPED": 1} if major >= 11 else {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", flags)
    builder_flags = {"DEBUG": 2, "TF32": 6, "REFIT": 4}
    if major < 11:
        builder_flags.update(FP16=0, INT8=1, OBEY_PRECISION_CONSTRAINTS=9)
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", builder_flags)

    class Logger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self, min_severity=1):
            self.min_severity = min_severity

    trt.Logger = Logger

    class ITensor:
        def __init__(self, name, dtype, shape):
            self.name, self.dtype, self.shape = name, dtype, shape

    class INetworkDefinition:
        def __init__(self, flags):
            self.flags = flags
            self._inputs: list[ITensor] = []
            self._outputs: list[ITensor] = []
            self.half_weights = False

        @property
        def num_inputs(self):
            return len(self._inputs)

        @property
        def num_outputs(self):
            return len(self._outputs)

        def get_input(self, index):
            return self._inputs[index]

        def get_output(self, index):
            return self._outputs[index]

        @property
        def strongly_typed(self):
            strong = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            return major >= 11 or bool(self.flags & strong)

    class OnnxParser:
        """Reads the ONNX file's inputs, outputs and weight types (what TensorRT's parser would type)."""

        def __init__(self, network, logger):
            self.network, self._errors = network, []

        def parse_from_file(self, path):
            import onnx

            calls.append(("parse_from_file", str(path)))
            try:
                model = onnx.load(str(path), load_external_data=False)
            except Exception as exc:
                self._errors.append(f"cannot read {path}: {exc}")
                return False
            to_trt = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF}
            for value, into in ((model.graph.input, self.network._inputs), (model.graph.output, self.network._outputs)):
                for v in value:
                    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim)
                    into.append(ITensor(v.name, to_trt[v.type.tensor_type.elem_type], dims))
            self.network.half_weights = any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
            return True

        @property
        def num_errors(self):
            return len(self._errors)

        def get_error(self, index):
            return self._errors[index]

    trt.OnnxParser = OnnxParser

    class IOptimizationProfile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, min, opt, max):  # noqa: A002 - TensorRT's keyword names
            self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

    class IHostMemory(bytes):
        """Serialized bytes (the buffer protocol of TensorRT's IHostMemory)."""

    class ITimingCache:
        def __init__(self, data):
            self.data = bytes(data)

        def serialize(self):
            return IHostMemory(self.data or b"timing-cache")

    class IBuilderConfig:
        def __init__(self):
            self.pool_limits, self.profiles, self.flags, self.cache = {}, [], set(), None

        def set_memory_pool_limit(self, pool, size):
            self.pool_limits[MemoryPoolType(pool)] = int(size)

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def set_flag(self, flag):
            self.flags.add(trt.BuilderFlag(flag))

        def create_timing_cache(self, data):
            return ITimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            calls.append(("create_network", int(flags)))
            return INetworkDefinition(int(flags))

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            calls.append(("build_serialized_network", sorted(f.name for f in config.flags)))
            inp = network.get_input(0)
            plan = {"input": inp.name, "outputs": [t.name for t in network._outputs],
                    "dtypes": {t.name: int(t.dtype) for t in network._inputs + network._outputs},
                    "profiles": [p.shapes[inp.name] for p in config.profiles],
                    "half": network.half_weights and network.strongly_typed}
            return IHostMemory(b"standin-plan" + json.dumps(plan).encode())

    if major < 11:
        Builder.platform_has_fast_fp16 = property(lambda self: True)
    trt.Builder = Builder

    class IExecutionContext:
        def __init__(self, engine):
            self.engine, self.shapes, self.addresses, self.profile = engine, {}, {}, 0

        def set_optimization_profile_async(self, profile_index, stream_handle):
            assert 0 <= profile_index < self.engine.num_optimization_profiles
            self.profile = profile_index
            return True

        def set_input_shape(self, name, shape):
            lo, _, hi = self.engine.get_tensor_profile_shape(name, self.profile)
            shape = tuple(int(s) for s in shape)
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                return False
            self.shapes[name] = shape
            return True

        def get_tensor_shape(self, name):
            n, _, h, w = self.shapes[self.engine.plan["input"]]
            return (n, 1 if name == "heatmap" else 2, h // 4, w // 4)

        def set_tensor_address(self, name, memory):
            self.addresses[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle):
            name = self.engine.plan["input"]
            shape = self.shapes[name]
            raw = (ctypes.c_float * int(np.prod(shape))).from_address(self.addresses[name])
            heat, off = standin_network(np.frombuffer(raw, np.float32).reshape(shape))
            for out_name, value in (("heatmap", heat), ("offset", off)):
                ctypes.memmove(self.addresses[out_name], value.ctypes.data, value.nbytes)
            calls.append(("execute_async_v3", shape))
            return True

    class ICudaEngine:
        def __init__(self, plan):
            self.plan = plan

        @property
        def num_io_tensors(self):
            return 1 + len(self.plan["outputs"])

        def get_tensor_name(self, index):
            return ([self.plan["input"]] + self.plan["outputs"])[index]

        def get_tensor_mode(self, name):
            return TensorIOMode.INPUT if name == self.plan["input"] else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return DataType(self.plan["dtypes"][name])

        @property
        def num_optimization_profiles(self):
            return len(self.plan["profiles"])

        def get_tensor_profile_shape(self, name, profile_index):
            return [tuple(s) for s in self.plan["profiles"][profile_index]]

        def create_execution_context(self):
            return IExecutionContext(self)

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, serialized_engine):
            data = bytes(serialized_engine)
            if not data.startswith(b"standin-plan"):
                return None
            return ICudaEngine(json.loads(data[len(b"standin-plan"):]))

    trt.Runtime = Runtime
    return trt


def install(monkeypatch, version: str = "10.13.0", gpu_name: str = "NVIDIA H200",
            capability: tuple[int, int] = (9, 0)):
    """Put the stand-ins in ``sys.modules`` (``tensorrt``, ``cuda``, ``cuda.bindings``,
    ``cuda.bindings.runtime``) for one test; returns ``(tensorrt, cudart)``."""
    trt = make_tensorrt(version)
    cudart = _CudaRuntime(gpu_name, capability)
    cuda_pkg, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    cuda_pkg.__path__, bindings.__path__ = [], []
    cuda_pkg.bindings, bindings.runtime = bindings, cudart
    for name, module in (("tensorrt", trt), ("cuda", cuda_pkg), ("cuda.bindings", bindings),
                         ("cuda.bindings.runtime", cudart)):
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)   # find_spec() probes (torch) see it
        monkeypatch.setitem(sys.modules, name, module)
    return trt, cudart
