"""Install epick: one distribution whose top-level folders map to namespaced packages.

    runtime/      -> epick.runtime       (lean: numpy, numba, onnxruntime, I/O; never torch)
    trainer/      -> epick.trainer       (torch; extra [train])
    export/       -> epick.export        (onnx, TensorRT; extra [export])
    cuda_kernels/ -> epick.cuda_kernels  (numba.cuda; runs under NUMBA_ENABLE_CUDASIM=1 on a CPU)
    simulator/    -> epick.simulator     (`epick simulate`, no torch)
"""
from pathlib import Path

from setuptools import find_packages, setup

FOLDERS = {"runtime": "runtime", "trainer": "trainer", "export": "export",
           "cuda_kernels": "cuda_kernels", "simulator": "simulator"}

package_dir = {}
packages = []
for name, folder in FOLDERS.items():
    package_dir[f"epick.{name}"] = folder
    packages.append(f"epick.{name}")
    for sub in find_packages(where=folder):
        packages.append(f"epick.{name}.{sub}")
        package_dir[f"epick.{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

BASE = [
    "numpy>=1.24",
    "mrcfile>=1.5",
    "numba>=0.59",
    "onnxruntime>=1.17",
    "starfile>=0.5",
    "tifffile>=2023.1",
    "imagecodecs>=2023.1",
    "cryosparc-tools>=4.4",
    "pillow>=10",
    "tqdm>=4.66",
    "gemmi>=0.6",
    "scipy>=1.10",
    "safetensors>=0.4",   # `epick models MODEL.epick` reads the model file's header without torch
]
TRAIN = ["torch>=2.3"]
EXPORT = ["onnx>=1.16", "onnxscript>=0.1", "onnxslim>=0.1"]
GPU = ["cuda-python>=12", "numba-cuda>=0.4"]
CLUSTER = ["dask[distributed]>=2024.1", "dask-jobqueue>=0.8"]   # epick pick --cluster, Slurm
# playwright drives the system's Chromium in the browser tests of the viewer (no browser download)
DEV = TRAIN + EXPORT + CLUSTER + ["pytest>=7", "pytest-timeout>=2", "pytest-xdist>=3", "matplotlib>=3.7", "playwright>=1.40"]

setup(
    name="epick",
    version="0.1.0",
    description="EPicker-style continual-learning particle picker for cryo-EM, with a lean GPU runtime",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    package_dir=package_dir,
    packages=packages,
    package_data={"epick.runtime": ["demo/*", "models/*"], "epick.runtime.viewer": ["static/*"]},
    include_package_data=True,
    install_requires=BASE,
    extras_require={"train": TRAIN, "export": EXPORT, "gpu": GPU, "cluster": CLUSTER, "dev": DEV},
    entry_points={
        # backends the runtime finds without importing their packages (epick.runtime.backends)
        "epick.backends": ["model = epick.trainer.backend:TorchModelBackend"],
        "console_scripts": [
        "epick=epick.runtime.cli:main",
        "epick-relion=epick.runtime.integrations.relion:main",   # RELION 4/5 External job
        "epick-topaz=epick.runtime.integrations.topaz:main",     # RELION 5 AutoPick's Topaz executable
        "epick-cryosparc=epick.runtime.integrations.cryosparc_job:main",   # cryosparc-tools External job
    ]},
)
