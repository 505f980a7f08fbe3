#!/usr/bin/env bash
# epick's one-call GPU check: everything only a GPU shows about the GPU path, in ONE call of at most
# 8 minutes on a lent machine (no internet; torch with CUDA, numba/numba-cuda, cuda-python present;
# no TensorRT: its libraries exceed what a call can carry, so the TensorRT paths are checked by the
# CPU stand-in tests only).
#
# 1) On the development machine, from the repository root (network allowed), once:
#        bash benchmarks/device_check.sh --prepare
#    -> .whl/     wheels of the dependencies the GPU image lacks (PREPARE_WHEELS, Python PREPARE_PY)
#       .device/data/empiar10017_betagal/   4 real micrographs for the FP16 picks test (~8 MB)
#    Both are git-ignored, so they travel only when carried.
# 2) One call of the device tool:
#        run(command="bash benchmarks/device_check.sh", carry=[".whl", ".device"], timeout_s=560)
#    Everything lands in $OUT: summary.txt (read this first), env.txt, pytest-*.log (+ junit XML),
#    probe.log + device_probe.json, bench.log + bench_results.json. Give the machine back after.
#
# Steps in priority order; each gets min(its cap, what is left of DEVICE_CHECK_BUDGET, default 470 s),
# and a step that cannot get 20 s is skipped and listed as SKIP:
#   env; install (wheels into /tmp/site, epick editable, no deps); smoke (numba on the GPU, the
#   round-to-nearest intrinsics, torch<->numba on one stream); ptx (every kernel for sm_90 with the
#   real driver); gpu tests (tests/test_gpu_hardware.py: kernels == CPU at 4096^2 f32 / 5760x4092 u16 /
#   f16 / i8, device path == host path with a torch model on the shared stream, .pt2 CUDA graphs across
#   two shapes and a partial batch); the kernel and device-path tests with the simulator off; the FP16
#   .pt2 picks test on real micrographs; bench_gpu_pipeline (host vs device path, micrographs/s);
#   bench_peaks; perf probe (PCIe, pinned copies, DLA-34 alone eager vs CUDA graph).
# Dry run of the plumbing on a CPU machine (no figures):
#   DEVICE_CHECK_SIMULATOR=1 DEVICE_CHECK_SKIP_INSTALL=1 OUT=/tmp/dc bash benchmarks/device_check.sh
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
PY="${PY:-python3}"

if [ "${1:-}" = "--prepare" ]; then
    set -e
    mkdir -p .whl .device/data/empiar10017_betagal
    PREPARE_PY="${PREPARE_PY:-3.12}"
    for pkg in ${PREPARE_WHEELS:-mrcfile==1.5.4 starfile==0.5.13 gemmi==0.7.5 onnxslim==0.1.98}; do
        $PY -m pip download -q --no-deps --only-binary=:all: --python-version "$PREPARE_PY" --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$pkg"
    done
    src="${EPICK_SHARED_DATA:-$REPO/../shared/data}/empiar10017_betagal"
    ls "$src"/*.jpg | sort | head -4 | xargs -I{} cp {} .device/data/empiar10017_betagal/
    du -sh .whl .device
    echo 'now: run(command="bash benchmarks/device_check.sh", carry=[".whl", ".device"], timeout_s=560)'
    exit 0
fi

OUT="${OUT:-$REPO/device_check_out}"
mkdir -p "$OUT"
BUDGET="${DEVICE_CHECK_BUDGET:-470}"
T0=$(date +%s)
SUMMARY="$OUT/summary.txt"; ENV="$OUT/env.txt"; PROBE="$OUT/probe.log"; BENCH="$OUT/bench.log"
: > "$SUMMARY"
SMALL=()
export PATH="/usr/local/nvidia/bin:/usr/local/cuda/bin:$PATH"
export NUMBA_ENABLE_CUDASIM=0            # the real GPU; tests/_cudasim.py leaves it alone when a GPU is present
if [ -n "${DEVICE_CHECK_SIMULATOR:-}" ]; then
    export NUMBA_ENABLE_CUDASIM=1 EPICK_GPU_TESTS_SMALL=1; SMALL=(--small)
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg OUT
[ -d .device/data ] && export EPICK_SHARED_DATA="$REPO/.device/data"
export TORCHINDUCTOR_CACHE_DIR=/tmp/epick_inductor NUMBA_CACHE_DIR=/tmp/epick_numba_cache

left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
# step NAME CAP LOG cmd... : run cmd under timeout min(CAP, budget left - 5), output appended to LOG
step() {
    local name=$1 cap=$2 log=$3; shift 3
    local rem lim start rc status
    rem=$(left); lim=$(( cap < rem - 5 ? cap : rem - 5 ))
    if [ "$lim" -lt 20 ]; then echo "SKIP    $name (budget: ${rem}s left)" | tee -a "$SUMMARY"; return 99; fi
    echo "===== $name (limit ${lim}s, t=$(( $(date +%s) - T0 ))s) =====" >> "$log"
    start=$(date +%s)
    timeout -k 10 "$lim" "$@" >> "$log" 2>&1; rc=$?
    status=PASS; [ $rc -ne 0 ] && status=FAIL; { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && status=TIMEOUT
    printf '%-7s %-26s rc=%-3s %4ss (limit %ss)\n' "$status" "$name" "$rc" "$(( $(date +%s) - start ))" "$lim" | tee -a "$SUMMARY"
    return $rc
}

{   echo "date: $(date -u)"; echo "repo: $(git rev-parse --short HEAD 2>/dev/null) ($(git status --short 2>/dev/null | wc -l) changed files)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,pcie.link.gen.current,pcie.link.width.current --format=csv 2>&1
    echo "python: $(command -v $PY) $($PY --version 2>&1)"; nproc; free -g | head -2
    $PY -m pip list 2>/dev/null | grep -iE '^(torch|numba|numba-cuda|cuda-bindings|cuda-python|llvmlite|numpy|onnx|onnxruntime|mrcfile|starfile|gemmi|tifffile|pytest|tensorrt) '
    echo "missing from the image: $(for m in mrcfile starfile gemmi onnxslim tifffile imagecodecs tqdm scipy onnx onnxruntime safetensors tensorrt; do $PY -c "import $m" 2>/dev/null || printf '%s ' $m; done)"
} > "$ENV" 2>&1

if [ -z "${DEVICE_CHECK_SKIP_INSTALL:-}" ]; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        step install_wheels 60 "$ENV" $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    step install_epick 90 "$ENV" $PY -m pip install -q --no-deps --no-build-isolation -e .
fi
if ! $PY -c "import epick.runtime, epick.cuda_kernels, epick.export" >> "$ENV" 2>&1; then
    # old setuptools without PEP 660 editable installs: the top-level folders are the subpackages
    mkdir -p /tmp/site/epick && printf "__path__ = ['%s']\n" "$REPO" > /tmp/site/epick/__init__.py
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    echo "NOTE    editable install not importable; using a path shim in /tmp/site" | tee -a "$SUMMARY"
fi

step smoke 60 "$PROBE" $PY benchmarks/device_probe.py smoke --out "$OUT" ${SMALL[@]+"${SMALL[@]}"}

PT=($PY -m pytest -p no:cacheprovider -q -rs -x)
$PY -c "import pytest_timeout" 2>/dev/null && PT+=(--timeout=300)
pt() {   # pt NAME CAP MARKS FILES...: one pytest run with its own log and junit XML
    local name=$1 cap=$2 marks=$3; shift 3
    step "$name" "$cap" "$OUT/pytest-$name.log" "${PT[@]}" -m "$marks" --junitxml="$OUT/pytest-$name.xml" "$@"
}
pt ptx             90 "slow or not slow" tests/test_cuda_ptx.py
pt gpu_hardware   200 "gpu" tests/test_gpu_hardware.py
pt kernels_real   120 "slow or not slow" tests/test_cuda_kernels.py tests/test_device_path.py tests/test_torch_cuda_backend.py
pt fp16_picks     150 "gpu" tests/test_export_torch_gpu.py

rm -rf bench_results
step bench_gpu_pipeline 150 "$BENCH" $PY benchmarks/bench_gpu_pipeline.py --no-compile --network full \
    --batches 1 8 --n 16 --repeats 2 --distinct 2 --readers 8 --inputs mrc-float32 array-uint16
step bench_peaks 60 "$BENCH" $PY benchmarks/bench_peaks.py --repeats 3
step perf 90 "$PROBE" $PY benchmarks/device_probe.py perf --out "$OUT" ${SMALL[@]+"${SMALL[@]}"}

$PY - "$OUT/bench_results.json" <<'PYEOF' >> "$SUMMARY" 2>&1
import glob, json, sys
files = sorted(glob.glob("bench_results/*.json"))
json.dump({f: json.load(open(f)) for f in files}, open(sys.argv[1], "w"), indent=1)
print(f"bench_results.json: {len(files)} report(s)")
PYEOF
{
    echo "---- pytest outcomes"; for f in "$OUT"/pytest-*.log; do [ -f "$f" ] && echo "$(basename "$f"): $(grep -E '(passed|failed|error|skipped)' "$f" | tail -1)"; done
    echo "---- failures"; grep -hE "^(FAILED|ERROR)" "$OUT"/pytest-*.log 2>/dev/null | head -20
    echo "---- probe"; grep -E "\.ok: False|\.error:|bit_exact|shares_memory|shared_stream|GBps|_ms|numba_device|nvvm|torch" "$PROBE" | cut -c1-300 | head -40
    echo "---- micrographs/s"; grep -A12 "micrographs/s" "$BENCH" 2>/dev/null | head -14
    echo "total $(( $(date +%s) - T0 ))s of budget ${BUDGET}s"
} >> "$SUMMARY" 2>&1
cat "$SUMMARY"
