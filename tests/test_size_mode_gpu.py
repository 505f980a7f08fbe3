"""The particle-size mode on the GPU preprocessing path: same network shape and same bytes as the
CPU path (under numba's CUDA simulator without a GPU; see tests/test_cuda_kernels.py)."""
from __future__ import annotations

import numpy as np
import pytest

from _cudasim import select_simulator_unless_gpu  # noqa: E402

select_simulator_unless_gpu()
from numba import cuda  # noqa: E402

if not cuda.is_available():
    pytest.skip("numba.cuda has neither a GPU nor the simulator in this process", allow_module_level=True)

from epick.cuda_kernels import GpuPreprocessor  # noqa: E402
from epick.runtime import preprocess as P  # noqa: E402


@pytest.mark.parametrize("shape,diameter", [((37, 53), 20.0), ((41, 47), 7.0), ((29, 31), 4.0)])
def test_size_mode_gpu_preprocessing_equals_cpu(shape, diameter):
    rng = np.random.default_rng(21)
    image = rng.normal(100.0, 12.0, shape).astype(np.float32)
    params = P.PreprocessParams(particle_px=6.0).with_diameter(diameter)
    gpu_u8, gpu_t = GpuPreprocessor(params).preprocess(image)
    cpu_u8, cpu_t = P.preprocess(image, params)
    assert cpu_t.network_shape == params.network_shape(shape)
    assert gpu_t == cpu_t and np.array_equal(gpu_u8, cpu_u8)
