"""Facts and timings only a GPU machine gives, for the one-call device check (device_check.sh).

    python benchmarks/device_probe.py smoke|perf [--out DIR] [--small]

smoke: numba.cuda on the real GPU (device, NVVM and runtime versions), a kernel with the kernels'
non-fused round-to-nearest intrinsics bit-exact with NumPy, torch <-> numba zero-copy on one stream.
perf: host copy into pinned memory, host-to-device copies (pinned vs pageable), read_micrograph of
a 4096^2 float32 MRC, and the DLA-34 (full and narrow) alone at 1024^2 in FP16, eager and as a CUDA
graph, batch 1/8/16. Each step adds its findings to DIR/device_probe.json (one object per step) and
prints them; a sub-check that raises is recorded and the others still run. ``--small`` shrinks every
size (a dry run under NUMBA_ENABLE_CUDASIM=1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

SMALL = False
RESULT: dict = {}


def note(key, value):
    RESULT[key] = value
    print(f"  {key}: {value}", flush=True)


def guarded(fn):
    """Run one sub-check; an exception is recorded, never fatal to the others."""
    def run():
        print(f"-- {fn.__name__}", flush=True)
        start = time.perf_counter()
        try:
            fn()
            note(f"{fn.__name__}.ok", True)
        except Exception as exc:  # recorded for the summary, then the next sub-check runs
            note(f"{fn.__name__}.ok", False)
            note(f"{fn.__name__}.error", f"{type(exc).__name__}: {exc}"[:2000])
            traceback.print_exc()
        note(f"{fn.__name__}.seconds", round(time.perf_counter() - start, 2))
    return run


def cuda_timer(fn, repeats=5):
    """Median wall seconds of fn() followed by a device synchronisation (one warm-up call)."""
    from numba import cuda

    fn()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@guarded
def smoke_numba():
    from numba import cuda, float32
    from numba.core import config

    import epick.cuda_kernels._device as dev

    note("numba_cudasim", bool(config.ENABLE_CUDASIM))
    note("epick_simulated", dev.SIMULATED)
    note("numba_cuda_module", getattr(cuda, "__file__", "?"))
    if not config.ENABLE_CUDASIM:
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else device.name
        note("numba_device", f"{name} cc={device.compute_capability} SMs={device.MULTIPROCESSOR_COUNT}")
        try:
            from numba.cuda.cudadrv import nvvm
            note("nvvm_version", str(nvvm.NVVM().get_version()))
        except Exception as exc:
            note("nvvm_version", f"? {exc}")

    # globals, not closure variables: the simulator swaps a kernel's module globals for its fake cuda
    scope = {"cuda": cuda, "dev": dev, "float32": float32}
    exec("def fma_free(a, b, out):\n"
         "    i = cuda.grid(1)\n"
         "    if i < out.size:\n"
         "        out[i] = dev.add32(dev.mul32(a[i], b[i]), float32(1.0))\n", scope)
    fma_free = cuda.jit(scope["fma_free"])
    rng = np.random.default_rng(0)
    a, b = rng.random(1000).astype(np.float32), rng.random(1000).astype(np.float32)
    out = cuda.device_array(1000, np.float32)
    fma_free[4, 256](cuda.to_device(a), cuda.to_device(b), out)
    note("round_to_nearest_intrinsics_bit_exact", bool(np.array_equal(out.copy_to_host(), a * b + np.float32(1.0))))


@guarded
def smoke_torch_interop():
    import torch
    from numba import cuda

    from epick.runtime.device_path import stream_handle

    note("torch", f"{torch.__version__} cuda={torch.version.cuda} available={torch.cuda.is_available()}")
    if not torch.cuda.is_available():
        return
    note("torch_gpu", torch.cuda.get_device_name(0))
    stream = cuda.stream()
    x = cuda.to_device(np.arange(12, dtype=np.float32).reshape(3, 4))
    t = torch.as_tensor(x, device="cuda")
    note("torch_view_of_numba_shares_memory", t.data_ptr() == x.device_ctypes_pointer.value)
    with torch.cuda.stream(torch.cuda.ExternalStream(stream_handle(stream))):
        y = t * 2
    back = cuda.as_cuda_array(y).copy_to_host(stream=stream)
    stream.synchronize()
    note("numba_view_of_torch_on_shared_stream_ok", bool(np.array_equal(back, np.arange(12).reshape(3, 4) * 2)))


@guarded
def perf_transfers():
    from numba import cuda

    from epick.runtime.io.micrograph import read_micrograph, write_mrc

    mib = 4 if SMALL else 64
    host = np.random.default_rng(0).random(mib * 2**20 // 4).astype(np.float32)
    pinned = cuda.pinned_array(host.shape, np.float32)
    device = cuda.device_array(host.shape, np.float32)
    stream = cuda.stream()
    start = time.perf_counter()
    for _ in range(5):
        np.copyto(pinned, host)
    per = (time.perf_counter() - start) / 5
    note("host_copy_into_pinned_ms", round(per * 1e3, 2))
    for name, src in (("pinned", pinned), ("pageable", host)):
        secs = cuda_timer(lambda: (device.copy_to_device(src, stream=stream), stream.synchronize()), 3 if SMALL else 10)
        note(f"h2d_{name}_GBps", round(host.nbytes / secs / 1e9, 2))
    with tempfile.TemporaryDirectory() as tmp:
        side = 512 if SMALL else 4096
        path = write_mrc(Path(tmp) / "m.mrc", np.random.default_rng(1).normal(0, 1, (side, side)).astype(np.float32))
        read_micrograph(path)
        start = time.perf_counter()
        for _ in range(3):
            read_micrograph(path)
        note("read_micrograph_page_cache_ms", round((time.perf_counter() - start) / 3 * 1e3, 1))


@guarded
def perf_network():
    import torch

    from epick.trainer.network import NetworkConfig, build_detector

    if not torch.cuda.is_available():
        note("network", "skipped (no torch CUDA)")
        return
    torch.backends.cudnn.benchmark = True
    side = 128 if SMALL else 1024
    for width, config in (("full", NetworkConfig()), ("narrow", NetworkConfig.narrow())):
        net = build_detector(config).eval().cuda().half().to(memory_format=torch.channels_last)
        for batch in (1, 8, 16):
            x = torch.rand(batch, 1, side, side, device="cuda", dtype=torch.half).to(memory_format=torch.channels_last)
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            with torch.inference_mode():
                for _ in range(3):
                    net(x)
                start.record()
                for _ in range(10):
                    net(x)
                stop.record()
                stop.synchronize()
                eager_ms = start.elapsed_time(stop) / 10
                side_stream = torch.cuda.Stream()
                side_stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side_stream):
                    net(x)
                torch.cuda.current_stream().wait_stream(side_stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    net(x)
                start.record()
                for _ in range(10):
                    graph.replay()
                stop.record()
                stop.synchronize()
                graph_ms = start.elapsed_time(stop) / 10
            note(f"net[{width} fp16 {side}^2 B={batch}]", {"eager_ms_per_image": round(eager_ms / batch, 3),
                                                           "graph_ms_per_image": round(graph_ms / batch, 3)})
        del net
        torch.cuda.empty_cache()


STEPS = {"smoke": [smoke_numba, smoke_torch_interop], "perf": [perf_transfers, perf_network]}


def main() -> int:
    global SMALL
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_results")))
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()
    SMALL = args.small
    for fn in STEPS[args.step]:
        fn()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "device_probe.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[args.step] = RESULT
    path.write_text(json.dumps(data, indent=1, default=str))
    failed = [k for k, v in RESULT.items() if k.endswith(".ok") and v is False]
    print(f"== device_probe {args.step}: {'FAILED ' + ', '.join(failed) if failed else 'all sub-checks ran'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
