"""Switch numba.cuda to its CPU simulator in this process unless a real GPU is present.

numba reads NUMBA_ENABLE_CUDASIM when numba.cuda is first imported, so kernel test modules import
this helper before ``from numba import cuda``. It stays on for the rest of the pytest process,
which is harmless: nothing else in the test suite uses numba.cuda for real on a CPU machine.
"""
from __future__ import annotations

import os
import shutil
import sys


def select_simulator_unless_gpu() -> None:
    """Turn on the CUDA simulator when there is no GPU and numba.cuda is not imported yet."""
    if "numba.cuda" in sys.modules or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return
    if os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi"):
        return
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    from numba.core import config

    config.reload_config()
