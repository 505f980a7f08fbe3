"""`epick export MODEL`: lower a model file to ONNX, a TensorRT engine and/or a torch-GPU package.

Every artifact carries the metadata the runtime needs (see ``epick.runtime.artifact``), so
picking never needs the trainer's code.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from epick.runtime.cli_args import positive_float, positive_int
from epick.runtime.errors import ModelFileError

EXAMPLES = """
epick export ribo.epick --onnx ribo.onnx
epick export ribo.epick --tensorrt ribo.engine --fp16        # needs TensorRT 10 or 11 and a GPU
epick export ribo.epick --onnx ribo.onnx --torch-gpu ribo.pt2 --verify-on mic1.mrc
"""
WRITES = """
the files named by --onnx, --tensorrt (plus OUT.engine.timing) and --torch-gpu, each with its metadata
"""

log = logging.getLogger("epick.export")

ONNX_HEATMAP_TOL = 1e-4   # max |logit difference| ONNX Runtime vs torch (FP32)
# torch-GPU packages (FP16, or FP32 with cuDNN's TF32 convolutions) are judged on their picks
# (epick.export.parity.PickTolerance), not on logits
VERIFY_SHAPE = (1, 1, 256, 256)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `epick export`."""
    parser.add_argument("model", type=Path, help="model file (.epick) written by `epick train`")
    parser.add_argument("--onnx", type=Path, metavar="OUT.onnx", help="write an ONNX file (opset >= 17)")
    parser.add_argument("--tensorrt", type=Path, metavar="OUT.engine",
                        help="build a TensorRT 10/11 engine (+ OUT.engine.json); needs tensorrt and a GPU")
    parser.add_argument("--torch-gpu", type=Path, metavar="OUT.pt2",
                        help="write an AOTInductor package (+ OUT.pt2.json); needs torch with CUDA")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", dest="fp16", action="store_true", default=True,
                           help="FP16 engine / package (default)")
    precision.add_argument("--fp32", dest="fp16", action="store_false", help="FP32 engine / package")
    parser.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default 18; at least 17)")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxslim graph simplification")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the parity check of each artifact against the torch network")
    parser.add_argument("--verify-on", type=Path, nargs="+", metavar="MICROGRAPH",
                        help="micrographs (one shape) to verify on, besides a random input")
    parser.add_argument("--workspace-gb", type=positive_float, default=4.0, help="TensorRT workspace limit in GiB")
    parser.add_argument("--timing-cache", type=Path, help="TensorRT timing cache (default OUT.engine.timing)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild a TensorRT engine even when current")


def _verify_batches(args, meta: dict) -> tuple[list, list[float]]:
    """Random input plus, when given, the preprocessed ``--verify-on`` micrographs; and each batch's
    original px per network px (random input: a 4096-px micrograph at width 1024)."""
    from .parity import DEFAULT_SCALE, random_network_batch, real_network_batch

    batches, scales = [random_network_batch(VERIFY_SHAPE)], [DEFAULT_SCALE]
    if args.verify_on:
        batch, scale = real_network_batch(args.verify_on, meta.get("preprocess"), with_scale=True)
        batches.append(batch)
        scales.append(scale)
    return batches, scales


def _export_onnx(args, graph, meta: dict, out: Path, opset: int, reference=None) -> Path:
    """Write the ONNX file and (unless --no-verify) check it against torch: FP32 against ``graph``
    itself (logits and identical picks); a reduced-precision ``graph`` against the FP32
    ``reference`` (the same picks within epick.export.parity.PickTolerance)."""
    from .onnx_export import export_onnx
    from .parity import compare, onnx_runner, torch_runner

    from epick.runtime.io.atomic import atomic_path

    # written beside OUT and renamed only once verified: a rejected file never sits at OUT (and
    # an earlier good file there is kept)
    with atomic_path(out) as tmp:
        export_onnx(graph, tmp, meta, opset=opset, simplify=not args.no_simplify)
        if not args.no_verify and reference is None:
            report = compare(torch_runner(graph), onnx_runner(tmp), _verify_batches(args, meta)[0])
            print(f"ONNX parity: {report.summary()}")
            if not report.ok(ONNX_HEATMAP_TOL):
                raise ModelFileError(out, f"ONNX Runtime disagrees with torch ({report.summary()}; "
                                     f"{'; '.join(report.details)}); nothing was written",
                                     "report this with the model file")
        elif not args.no_verify:
            batches, scales = _verify_batches(args, meta)
            report = compare(torch_runner(reference), onnx_runner(tmp), batches, scales=scales)
            print(f"FP16 ONNX parity (ONNX Runtime CPU vs FP32 torch): {report.picks_summary()}")
            if not report.picks_ok():
                raise ModelFileError(out, "the FP16 ONNX file does not give the FP32 network's picks "
                                     f"({'; '.join(report.tolerance_details) or 'no reference picks'}); "
                                     "nothing was written", "use --fp32, or report this with the model file")
    print(f"wrote {out}")
    return out


def _export_torch_gpu(args, graph, meta: dict) -> Path:
    """Write the AOTInductor package and (unless --no-verify) check it against FP32 torch."""
    from .parity import compare, torch_runner
    from .torch_gpu import export_torch_gpu, load_torch_gpu

    out = export_torch_gpu(graph.network, args.torch_gpu, meta, device="cuda", fp16=args.fp16)
    if not args.no_verify:
        import numpy as np
        import torch

        runner, _ = load_torch_gpu(out)
        graph32 = graph.to("cuda")

        def run_package(images: np.ndarray) -> dict[str, np.ndarray]:
            with torch.no_grad():
                values = runner(torch.from_numpy(images).to("cuda"))
            return {n: v.float().cpu().numpy() for n, v in zip(graph.names, values)}

        batches, scales = _verify_batches(args, meta)
        report = compare(torch_runner(graph32, "cuda"), run_package, batches, scales=scales)
        graph.to("cpu")
        print(f"torch-GPU parity ({'FP16' if args.fp16 else 'FP32'} vs FP32): {report.picks_summary()}")
        if not report.picks_ok():
            why = "; ".join(report.tolerance_details) or "no reference picks to compare"
            from epick.runtime.artifact import sidecar_path

            for rejected in (out, sidecar_path(out)):   # a rejected package is not left behind
                rejected.unlink(missing_ok=True)
            raise ModelFileError(out, f"the package does not give the FP32 network's picks ({why}); "
                                 "it was removed", "try --fp32, or report this with the model file")
    print(f"wrote {out} and {out.name}.json")
    return out


def _export_tensorrt(args, graph, meta: dict, opset: int) -> Path:
    """Build the TensorRT engine (unless current and no --rebuild) from an ONNX file of the asked
    precision: the network is strongly typed, so --fp16 builds from an FP16 ONNX file (half weights,
    float32 input and outputs) exported here; --fp32 from the --onnx file or a fresh FP32 one."""
    from .tensorrt_build import build_engine, engine_is_current
    from .torch_gpu import contract_graph_for

    out = Path(args.tensorrt)
    reasons = engine_is_current(out, model_hash=meta["model_hash"], fp16=args.fp16)
    if not reasons and not args.rebuild:
        print(f"TensorRT engine {out} is current (use --rebuild to build it again)")
        return out
    if not args.rebuild:
        log.info("building %s: %s", out, "; ".join(reasons))
    kw = dict(fp16=args.fp16, workspace_bytes=int(args.workspace_gb * (1 << 30)), timing_cache=args.timing_cache)
    with tempfile.TemporaryDirectory(prefix="epick-trt-") as tmp:
        if args.fp16:
            half = contract_graph_for(graph.network, "cpu", fp16=True)
            onnx_path = _export_onnx(args, half, meta, Path(tmp) / f"{out.stem}.fp16.onnx", opset, reference=graph)
        else:
            onnx_path = args.onnx or _export_onnx(args, graph, meta, Path(tmp) / f"{out.stem}.onnx", opset)
        build_engine(onnx_path, out, **kw)
    print(f"TensorRT engine: {out} (+ {out.name}.json)")
    return out


def run(args: argparse.Namespace) -> int:
    """Export the model file to every artifact asked for."""
    from .model_source import load_for_export
    from .onnx_export import DEFAULT_OPSET, MIN_OPSET

    if not (args.onnx or args.tensorrt or args.torch_gpu):
        raise ModelFileError(args.model, "no artifact was asked for",
                             "add --onnx OUT.onnx, --tensorrt OUT.engine and/or --torch-gpu OUT.pt2")
    opset = args.opset or DEFAULT_OPSET
    if opset < MIN_OPSET:
        raise ModelFileError(args.model, f"opset {opset} is too old", f"use --opset {MIN_OPSET} or newer")
    if args.tensorrt:  # fail before the slow ONNX export when TensorRT is missing
        from .tensorrt_build import import_tensorrt

        import_tensorrt()
    graph, meta = load_for_export(args.model, opset)
    print(f"{args.model}: {meta['object_type']} model, outputs {', '.join(meta['outputs'])}, {meta['model_hash']}")
    if args.onnx:
        _export_onnx(args, graph, meta, args.onnx, opset)
    if args.tensorrt:
        _export_tensorrt(args, graph, meta, opset)
    if args.torch_gpu:
        _export_torch_gpu(args, graph, meta)
    return 0
