"""Compile every numba.cuda kernel of epick to PTX for a compute capability, without a GPU.

Run as a script in a process where numba.cuda is the REAL target (NUMBA_ENABLE_CUDASIM=0; the
kernel tests switch the simulator on for their whole process, so test_cuda_ptx.py starts this one):

    NUMBA_ENABLE_CUDASIM=0 python tests/_ptx_compile.py [--cc 9.0] [--all-dtypes]

Prints one JSON object: {"compiled": [...], "failed": {kernel: error}, "missing": [...], "nvvm": ...}.
Typing errors (wrong argument types, unsupported operations, a libdevice intrinsic with the wrong
signature) surface here; the simulator runs kernels as Python and never types them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

# what each kernel is launched with (epick.cuda_kernels.*_gpu and epick.runtime.device_path):
# numba device arrays are C-contiguous; Python floats are float64, Python ints int64
INPUT_DTYPES = ("float32", "float16", "int8", "uint8", "int16", "uint16")


def signatures(all_dtypes: bool) -> dict[str, list[tuple]]:
    from numba import types as t

    def arr(dtype, ndim):
        return t.Array(getattr(t, dtype), ndim, "C")

    raw = INPUT_DTYPES if all_dtypes else ("float32", "uint16", "float16", "int8")
    f32_2, u8_2 = arr("float32", 2), arr("uint8", 2)
    return {
        "preprocess_kernels.k_cast_f32": [(arr(d, 2), f32_2) for d in raw],
        "preprocess_kernels.k_resample_cols": [(arr(d, 2), arr("int32", 1), f32_2, f32_2) for d in raw],
        "preprocess_kernels.k_resample_rows": [(arr(d, 2), arr("int32", 1), f32_2, f32_2) for d in raw],
        "preprocess_kernels.k_subtract": [(f32_2, f32_2, f32_2)],
        "preprocess_kernels.k_finite_min_max": [(arr("float32", 1), arr("float32", 1), arr("int64", 1))],
        "preprocess_kernels.k_histogram": [(arr("float32", 1), t.float64, t.float64, t.float64,
                                            arr("int64", 1), arr("int64", 1))],
        "preprocess_kernels.k_to_levels": [(f32_2, t.float64, t.float64, u8_2)],
        "preprocess_kernels.k_fill": [(arr("int64", 1), t.int64), (arr("int32", 1), t.int64)],
        "preprocess_kernels.k_min_max_reset": [(arr("float32", 1), arr("int64", 1))],
        "preprocess_kernels.k_range_start": [(arr("float32", 1), arr("int64", 1), t.float64, t.float64, t.float64,
                                              arr("float64", 1), arr("int64", 1), arr("int64", 1), arr("int64", 1))],
        "preprocess_kernels.k_histogram_dev": [(arr("float32", 1), arr("float64", 1), arr("int64", 1),
                                                arr("int64", 1))],
        "preprocess_kernels.k_range_step": [(arr("float64", 1), arr("int64", 1), arr("int64", 1), arr("int64", 1),
                                             t.int64, t.float64)],
        "preprocess_kernels.k_to_levels_dev": [(f32_2, arr("float64", 1), u8_2)],
        "preprocess_kernels.k_histogram_256": [(u8_2, arr("int64", 1))],
        "preprocess_kernels.k_equalise_lut": [(arr("int64", 1), t.int64, arr("uint8", 1), arr("uint8", 1))],
        "preprocess_kernels.k_apply_lut": [(u8_2, arr("uint8", 1), u8_2)],
        "preprocess_kernels.k_network_input": [(u8_2, arr("uint8", 1), t.int64, f32_2)],
        "peaks_kernels.k_candidates": [(arr("float32", 3), t.float64, arr("int32", 1), arr("int32", 2),
                                        arr("float32", 2))],
        "peaks_kernels.k_rank_decode": [(arr("int32", 1), arr("int32", 2), arr("float32", 2), arr("float32", 4),
                                         arr("float32", 4), t.int64, t.int64, arr("int32", 2), arr("float32", 2),
                                         arr("float64", 2), arr("float64", 2), arr("float32", 3))],
    }


def all_kernels() -> list[str]:
    """Every @cuda.jit kernel (not device function) defined in the epick.cuda_kernels modules."""
    import importlib

    from numba.cuda.dispatcher import CUDADispatcher

    names = []
    for module_name in ("preprocess_kernels", "peaks_kernels"):
        module = importlib.import_module(f"epick.cuda_kernels.{module_name}")
        for name, value in vars(module).items():
            if isinstance(value, CUDADispatcher) and not value.targetoptions.get("device", False) \
                    and getattr(value.py_func, "__module__", "") == module.__name__:
                names.append(f"{module_name}.{name}")
    return sorted(names)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cc", default="9.0", help="compute capability major.minor (default 9.0: H100/H200)")
    parser.add_argument("--all-dtypes", action="store_true", help="every input dtype (default: four)")
    parser.add_argument("--quick", action="store_true", help="one signature per kernel (float32 input)")
    args = parser.parse_args()
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        print(json.dumps({"error": "NUMBA_ENABLE_CUDASIM is on: PTX needs the real CUDA target"}))
        return 2
    import importlib
    import types

    from numba import cuda

    cc = tuple(int(v) for v in args.cc.split("."))
    # numba's bundled numba.cuda compiles a device function (called from a kernel) for the compute
    # capability of the CURRENT device, which needs a driver; without one, that query answers ``cc``
    # (the kernel's own PTX is compiled for ``cc`` by compile_ptx either way)
    from numba.cuda import dispatcher as _dispatcher
    if hasattr(_dispatcher, "get_current_device"):
        try:
            _dispatcher.get_current_device()
        except Exception:
            _dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    table = signatures(args.all_dtypes)
    if args.quick:
        table = {key: sigs[:1] for key, sigs in table.items()}
    compiled, failed = [], {}
    start = time.perf_counter()
    for key, sigs in table.items():
        module_name, name = key.split(".")
        kernel = getattr(importlib.import_module(f"epick.cuda_kernels.{module_name}"), name)
        for sig in sigs:
            label = f"{key}{tuple(str(a) for a in sig)}"
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
                if f".target sm_{cc[0]}{cc[1]}" not in ptx:
                    raise RuntimeError("PTX does not target the asked compute capability")
                compiled.append(label)
            except Exception as exc:  # report every failure, not only the first
                failed[label] = f"{type(exc).__name__}: {exc}"[:1500]
    missing = sorted(set(all_kernels()) - set(table))
    print(json.dumps({"compiled": compiled, "failed": failed, "missing": missing, "cc": list(cc),
                      "seconds": round(time.perf_counter() - start, 1)}))
    return 0 if not failed and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
