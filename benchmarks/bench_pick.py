"""Picking speed on the real beta-gal micrographs (4096 x 4096 JPEG): stages and streaming throughput.

    python benchmarks/bench_pick.py [--model M.onnx] [--backend auto] [--n 8] [--repeats 3]

Without --model, the narrow test network (untrained weights: speed only) is exported to ONNX in a
temporary folder. Cases (seconds per micrograph unless named otherwise):
  read, preprocess, infer (batch 1), decode  -- one micrograph at a time, stage by stage
  stream batch B readers R                   -- Picker.pick_many over all N files, wall time / N
Writes bench_results/pick-<stamp>.json via _report.Report (machine, versions, raw timings, medians).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, timed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "empiar10017_betagal"


def narrow_onnx(folder: Path) -> Path:
    """Export the narrow network (random weights) to ONNX through `epick export`."""
    import torch

    from epick.runtime.cli import main
    from epick.trainer.modelfile import build_metadata, save_model
    from epick.trainer.network import NetworkConfig, build_detector

    torch.manual_seed(0)
    config = NetworkConfig.narrow()
    meta = build_metadata(config, object_type="particle", preprocess={"target_width": 1024},
                          particle_diameter=108.0, diameter_network=27.0, history=[])
    model = save_model(folder / "narrow.epick", build_detector(config).eval(), meta)
    out = folder / "narrow.onnx"
    if main(["export", str(model), "--onnx", str(out), "--no-verify"]) != 0:
        raise SystemExit("export failed")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=8, help="micrographs streamed per throughput case")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()

    from epick.runtime import Picker
    from epick.runtime.preprocess import network_input

    paths = sorted(args.data.glob("*.jpg"))[: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or narrow_onnx(Path(tmp))
        picker = Picker(model, args.backend, threads=args.threads)
        report = Report("pick", params={"model": str(model), "backend": picker.backend_name, "n": len(paths),
                                        "micrograph": "4096x4096 8-bit JPEG", "threads": args.threads})
        from epick.runtime.host_path import HostPipeline
        from epick.runtime.io.micrograph import read_micrograph
        from epick.runtime.preprocess import pad_to_multiple, preprocess

        picker.pick(paths[0])                                           # warm-up: numba compile, session
        for _ in range(args.repeats):
            for path in paths[:3]:
                with timed() as t:
                    mic = read_micrograph(path)
                report.add("read", t.seconds)
                with timed() as t:
                    u8, transform = preprocess(mic.data, picker.params)
                    u8 = pad_to_multiple(u8, 32)
                report.add("preprocess", t.seconds)
                batch = network_input(u8[None, None])
                host = HostPipeline(picker.backend, picker.params, threshold=picker.threshold, top_k=picker.top_k)
                with timed() as t:
                    outputs = host.infer(batch)
                report.add(f"infer batch 1 ({u8.shape[1]}x{u8.shape[0]})", t.seconds)
                from epick.runtime.pipeline import Prepared

                item = Prepared(path, path.name, u8, transform, None)
                with timed() as t:
                    picks = picker._picks(host.find_peaks(outputs, 0, item.name), item)
                report.add("decode (peaks + objects)", t.seconds, picks=len(picks))
        for batch_size, readers in ((1, 1), (1, 2), (4, 2)):
            for _ in range(args.repeats):
                start = time.perf_counter()
                n = sum(1 for r in picker.pick_many(paths, batch_size=batch_size, readers=readers) if r.ok)
                wall = time.perf_counter() - start
                report.add(f"stream batch {batch_size} readers {readers} (per micrograph)", wall / max(n, 1),
                           micrographs_per_s=round(n / wall, 3))
        report.finish()


if __name__ == "__main__":
    main()
