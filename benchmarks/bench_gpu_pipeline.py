"""End-to-end GPU picking: host path vs device path (epick.runtime.device_path), micrographs/s per GPU.

    python benchmarks/bench_gpu_pipeline.py [--model M.pt2|M.engine|M.epick] [--batches 1 4 8 16]
        [--n 32] [--repeats 3] [--readers 4] [--network full|narrow] [--no-compile]

Needs a CUDA GPU seen by torch AND by numba.cuda (numba-cuda + cuda-bindings); exits with status 2
and says what is missing otherwise. Without --model a network with random weights (speed only) is
saved as a model file and compiled into a torch-GPU package (``epick export --torch-gpu``,
AOTInductor, FP16; minutes); when that fails, or with --no-compile, the model file runs eagerly
through torch on CUDA. Inputs: 4096 x 4096 micrographs from the project's simulator, as float32
MRC files (read from disk by the reader threads) and as in-memory uint16 arrays.

Cases (seconds per micrograph; the JSON notes hold micrographs/s):
  <input> B=<b> host|device stream     Picker.pick_many over --n inputs, wall time / n
  <input> B=<b> device stage <s>       GPU time per micrograph from CUDA events on the pipeline's
                                       stream: upload (pinned H2D), preprocess (kernels, including
                                       the waits for the robust-range histograms), infer, peaks
  <input> B=<b> device batch wall      DevicePipeline.run on prepared items (no reading), wall / b
  <input> B=<b> host stage <s>         host path: read (MRC only), preprocess (CPU), infer (backend
                                       with host arrays: H2D + network + D2H), decode (CPU peaks)
Writes bench_results/gpu_pipeline-<stamp>.json via _report.Report (machine, versions, raw timings).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, timed  # noqa: E402

SIDE = 4096


def gpu_problem() -> str | None:
    """Why this benchmark cannot run here (None when torch and numba.cuda both see a real GPU)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install 'epick[train]' with a CUDA build of torch)"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    try:
        from epick.runtime.device_path import real_gpu_available

        if not real_gpu_available():
            return ("numba.cuda sees no real GPU (simulator on, or numba-cuda / cuda-bindings missing: "
                    "pip install numba-cuda cuda-bindings)")
    except Exception as exc:  # a broken CUDA toolkit surfaces here
        return f"numba.cuda cannot start ({type(exc).__name__}: {exc})"
    return None


def make_model(folder: Path, network: str, compile_package: bool) -> tuple[Path, str]:
    """A random-weight model: (torch-GPU package, "torch-cuda"), else (model file, "torch")."""
    import torch

    from epick.runtime.cli import main
    from epick.trainer.modelfile import build_metadata, save_model
    from epick.trainer.network import NetworkConfig, build_detector

    torch.manual_seed(0)
    config = NetworkConfig.narrow() if network == "narrow" else NetworkConfig()
    meta = build_metadata(config, object_type="particle", preprocess={"target_width": 1024},
                          particle_diameter=108.0, diameter_network=27.0, history=[])
    model = save_model(folder / f"{network}.epick", build_detector(config).eval(), meta)
    if compile_package:
        package = folder / f"{network}.pt2"
        start = time.perf_counter()
        try:
            status = main(["export", str(model), "--torch-gpu", str(package), "--no-verify"])
        except Exception as exc:  # AOTInductor needs a compiler toolchain: fall back to eager
            print(f"torch-GPU package failed ({type(exc).__name__}: {exc}); running the model file eagerly")
            status = 1
        if status == 0 and package.is_file():
            print(f"compiled {package.name} in {time.perf_counter() - start:.0f} s")
            return package, "torch-cuda"
    return model, "torch"


def make_inputs(folder: Path, n: int, distinct: int) -> tuple[list[Path], list[np.ndarray]]:
    """``n`` float32 MRC files and ``n`` uint16 arrays of 4096 x 4096, cycling ``distinct`` simulations."""
    from epick.runtime.io.micrograph import write_mrc
    from epick.simulator import simulate_micrograph

    images = [simulate_micrograph((SIDE, SIDE), seed=s).image.astype(np.float32) for s in range(distinct)]
    paths = [write_mrc(folder / f"mic{i:03d}.mrc", images[i % distinct], pixel_size=1.0) for i in range(n)]
    u16 = []
    for image in images:
        unit = (image - image.min()) / max(float(np.ptp(image)), 1e-12)
        u16.append(np.round(1000 + unit * 60000).astype(np.uint16))
    return paths, [u16[i % distinct] for i in range(n)]


def bench_stream(report: Report, picker_for, sources: list, kind: str, batch: int, repeats: int) -> None:
    """pick_many throughput on both paths (warm-up pass first: graphs, compilation, buffers)."""
    for path_name, on_device in (("host", False), ("device", True)):
        picker = picker_for(batch, on_device)
        for _ in picker.pick_many(sources[:batch]):
            pass
        for _ in range(repeats):
            start = time.perf_counter()
            results = list(picker.pick_many(sources))
            wall = time.perf_counter() - start
            bad = [r.error for r in results if not r.ok]
            if bad:
                raise SystemExit(f"{kind} {path_name} B={batch}: {len(bad)} failures, first: {bad[0]}")
            report.add(f"{kind} B={batch} {path_name} stream", wall / len(sources),
                       micrographs_per_s=len(sources) / wall)
        del picker   # not close(): the pickers share one backend


def bench_device_stages(report: Report, picker, sources: list, kind: str, batch: int, repeats: int) -> None:
    """DevicePipeline stages with CUDA events, on items already read (reading is a host stage)."""
    from epick.runtime.device_path import DevicePipeline
    from epick.runtime.io.micrograph import read_micrograph

    pipe = DevicePipeline(picker.backend, picker.params, threshold=picker.threshold, top_k=picker.top_k,
                          min_side=picker.min_side, profile=True)
    raws = [read_micrograph(s).data if isinstance(s, Path) else s for s in sources[:batch]]
    items = [pipe.prepare(raw, i, f"m{i}", None, 0.0) for i, raw in enumerate(raws)]
    pipe.run(items)                                   # warm-up
    for _ in range(repeats):
        pipe.timer.totals.clear()
        with timed() as t:
            pipe.run(items)
        report.add(f"{kind} B={batch} device batch wall", t.seconds / batch)
        for stage, ms in pipe.timer.totals.items():
            report.add(f"{kind} B={batch} device stage {stage}", ms / 1e3 / batch)
    pipe.close()


def bench_host_stages(report: Report, picker, sources: list, kind: str, batch: int, repeats: int) -> None:
    """The host pipeline stage by stage: read, CPU preprocess, backend.infer on host arrays, CPU peaks."""
    from epick.runtime.host_path import HostPipeline
    from epick.runtime.preprocess import network_input

    host = HostPipeline(picker.backend, picker.params, threshold=picker.threshold, top_k=picker.top_k,
                        min_side=picker.min_side)
    for _ in range(repeats):
        with timed() as t_prep:
            items = [picker._prepare(s) for s in sources[:batch]]
        reads = sum(it.read_s for it in items)
        if kind == "mrc-float32":
            report.add(f"{kind} B={batch} host stage read+preprocess", reads / batch)
        else:
            report.add(f"{kind} B={batch} host stage preprocess", t_prep.seconds / batch)
        images = network_input(np.stack([it.u8 for it in items])[:, None])
        with timed() as t:
            outputs = host.infer(images)
        report.add(f"{kind} B={batch} host stage infer", t.seconds / batch)
        with timed() as t:
            for i, item in enumerate(items):
                picker._picks(host.find_peaks(outputs, i, item.name), item)
        report.add(f"{kind} B={batch} host stage decode", t.seconds / batch)


def main() -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help=".pt2, .engine, .onnx or .epick (default: random weights)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--network", choices=("full", "narrow"), default="full",
                        help="architecture of the default random-weight model")
    parser.add_argument("--no-compile", action="store_true", help="default model: skip the AOTInductor package")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--n", type=int, default=32, help="inputs streamed per throughput case")
    parser.add_argument("--distinct", type=int, default=4, help="distinct simulated micrographs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--readers", type=int, default=4, help="reader threads of pick_many")
    parser.add_argument("--inputs", nargs="+", choices=("mrc-float32", "array-uint16"),
                        default=["mrc-float32", "array-uint16"])
    args = parser.parse_args()

    problem = gpu_problem()
    if problem:
        print(f"bench_gpu_pipeline needs a CUDA GPU: {problem}.", file=sys.stderr)
        return 2

    import torch

    from epick.runtime import Picker
    from epick.runtime.backends import open_backend

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.model:
            model, backend_name = args.model, args.backend
        else:
            model, backend_name = make_model(folder, args.network, not args.no_compile)
        print(f"simulating {args.distinct} micrographs of {SIDE} x {SIDE} ...")
        paths, arrays = make_inputs(folder, args.n, args.distinct)
        backend = open_backend(model, backend_name)
        if not backend.device_io:
            print(f"backend {backend.name} has no device-side inference; the device path cannot run", file=sys.stderr)
            return 2

        def picker_for(batch: int, on_device: bool) -> Picker:
            return Picker(backend, batch_size=batch, readers=args.readers, device_path=on_device)

        report = Report("gpu_pipeline", params={
            "model": str(args.model or f"random-weight {args.network} network"), "backend": backend.name,
            "n": args.n, "batches": args.batches, "readers": args.readers, "repeats": args.repeats,
            "micrograph": f"{SIDE}x{SIDE} simulated", "gpu": torch.cuda.get_device_name(0),
            "torch_cuda": torch.version.cuda},
            packages=("numpy", "numba", "numba-cuda", "cuda-bindings", "torch", "tensorrt", "epick"))
        sources_by_kind = {"mrc-float32": paths, "array-uint16": arrays}
        for kind in args.inputs:
            sources = sources_by_kind[kind]
            for batch in args.batches:
                print(f"{kind} batch {batch} ...", flush=True)
                bench_stream(report, picker_for, sources, kind, batch, args.repeats)
                bench_device_stages(report, picker_for(batch, False), sources, kind, batch, args.repeats)
                bench_host_stages(report, picker_for(batch, False), sources, kind, batch, args.repeats)
        report.finish()
        rows = [(case.rsplit(" ", 1)[0], s["median_s"]) for case, s in report.summary().items()
                if case.endswith(" stream")]
        print("\nmicrographs/s per GPU (median):")
        for case, seconds in rows:
            print(f"  {case:<32} {1.0 / seconds:8.1f}")
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
