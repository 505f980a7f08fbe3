"""Every numba.cuda kernel compiles to PTX for sm_90 (H100/H200) without a GPU.

The CUDA simulator runs kernels as Python and never types them; NVVM does. This caught the builtin
``min``/``max`` failing to type in numba's bundled numba.cuda (now ``_device.dmin``/``dmax``). The
compilation runs in a child process (tests/_ptx_compile.py) because the kernel tests switch this
process to the simulator. Needs NVVM (the CUDA toolkit's libnvvm, e.g. /usr/local/cuda, or the
nvidia-cuda-nvcc wheel); skipped with the reason where it is missing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _compile(*flags: str) -> dict:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    done = subprocess.run([sys.executable, str(HERE / "_ptx_compile.py"), "--cc", "9.0", *flags],
                          capture_output=True, text=True, env=env, timeout=900, cwd=HERE.parent)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        if "NVVM" in done.stderr or "libnvvm" in done.stderr:
            pytest.skip(f"NVVM (CUDA toolkit) not found: {done.stderr.strip().splitlines()[-1]}")
        raise AssertionError(f"the PTX compiler printed no result:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1])
    nvvm_missing = [e for e in result.get("failed", {}).values() if "NVVM" in e or "libnvvm" in e]
    if nvvm_missing and len(nvvm_missing) == len(result["failed"]) and not result.get("compiled"):
        pytest.skip(f"NVVM (CUDA toolkit) not found: {nvvm_missing[0][:200]}")
    return result


def test_every_kernel_compiles_to_ptx_for_sm90():
    result = _compile("--quick")
    assert not result["missing"], f"kernels without a signature in tests/_ptx_compile.py: {result['missing']}"
    assert not result["failed"], json.dumps(result["failed"], indent=1)
    assert len(result["compiled"]) >= 12 and result["cc"] == [9, 0]


@pytest.mark.slow
def test_every_kernel_compiles_to_ptx_for_every_input_dtype():
    result = _compile("--all-dtypes")
    assert not result["failed"] and not result["missing"], json.dumps(result, indent=1)
