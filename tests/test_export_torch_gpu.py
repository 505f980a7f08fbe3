"""torch-GPU artifact: torch.export program with dynamic shapes (CPU, FP32), the AOTInductor package
(slow, CPU), and the FP16 CUDA package against FP32 torch on real micrographs (GPU only)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from epick.runtime import artifact as am  # noqa: E402
from epick.export.model_source import load_for_export  # noqa: E402
from epick.export.parity import compare, random_network_batch, real_network_batch, torch_runner  # noqa: E402
from epick.export.torch_gpu import export_program, export_torch_gpu, load_torch_gpu  # noqa: E402

from _models import make_model_file  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and torch with CUDA")


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    """(ContractGraph, artifact metadata) of a narrow model file."""
    return load_for_export(make_model_file(tmp_path_factory.mktemp("tgpu") / "narrow.epick"))


def _runner(callable_, names, device="cpu"):
    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = callable_(torch.from_numpy(images).to(device))
        return {n: v.float().cpu().numpy() for n, v in zip(names, out)}
    return run


def test_exported_program_runs_any_batch_and_multiple_of_32(narrow):
    graph, _ = narrow
    program = export_program(graph.network, device="cpu", fp16=False)
    module = program.module()
    for shape in [(1, 1, 64, 96), (3, 1, 128, 64)]:
        report = compare(torch_runner(graph), _runner(module, graph.names), [random_network_batch(shape)])
        assert report.max_abs_diff["heatmap"] <= 1e-5 and report.picks_identical, report.summary()


def test_cuda_export_without_gpu_is_refused(narrow, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    graph, meta = narrow
    with pytest.raises(am.ModelFileError, match="CUDA"):
        export_torch_gpu(graph.network, tmp_path / "m.pt2", meta, device="cuda")
    assert not (tmp_path / "m.pt2").exists()


@pytest.mark.slow
def test_aoti_package_on_cpu_round_trip(narrow, tmp_path):
    graph, meta = narrow
    out = export_torch_gpu(graph.network, tmp_path / "m.pt2", meta, device="cpu", fp16=False)
    runner, sidecar = load_torch_gpu(out)
    assert sidecar["model_hash"] == meta["model_hash"] and sidecar["torch_gpu"]["dtype"] == "float32"
    report = compare(torch_runner(graph), _runner(runner, graph.names),
                     [random_network_batch((2, 1, 96, 64)), random_network_batch((1, 1, 128, 160))])
    assert report.max_abs_diff["heatmap"] <= 1e-4 and report.picks_identical, report.summary()


@pytest.mark.gpu
@needs_cuda
def test_fp16_cuda_package_gives_the_fp32_picks_on_real_micrographs(narrow, tmp_path, betagal_dir):
    """The FP16 package against FP32 torch on 4 real beta-gal micrographs, judged on the picks
    (epick.export.parity.PickTolerance: 1 original px, scores within 0.02), not on logits."""
    graph, meta = narrow
    out = export_torch_gpu(graph.network, tmp_path / "m.pt2", meta, device="cuda", fp16=True)
    runner, sidecar = load_torch_gpu(out, run_single_threaded=True)
    assert sidecar["torch_gpu"]["dtype"] == "float16" and sidecar["torch_gpu"]["compute_capability"]
    micrographs = sorted(betagal_dir.glob("*.jpg"))[:4]
    batches, scales = zip(*(real_network_batch(micrographs[i:i + 2], with_scale=True) for i in (0, 2)))
    graph32 = graph.to("cuda")
    try:
        report = compare(torch_runner(graph32, "cuda"), _runner(runner, graph.names, "cuda"), batches,
                         scales=scales, threshold=0.3)
    finally:
        graph.to("cpu")
    print(report.picks_summary())
    assert report.max_abs_diff["heatmap"] < 0.25, report.summary()       # FP16 ran, and ran sanely
    assert report.picks_ok(), "; ".join(report.tolerance_details) or report.picks_summary()
