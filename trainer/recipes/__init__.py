"""Recipes: scripts that rebuild shipped artefacts from scratch with the public CLI.

- ``demo_assets``: the demo model and demo micrographs in ``epick/runtime/demo/`` (simulated).
- ``betagal``: a narrow model trained on 10 real EMPIAR-10017 micrographs, tested on the other 4.

Each is runnable as ``python -m epick.trainer.recipes.NAME OUT_DIR --help``; ``steps`` holds what
they share (running a CLI command, writing 8-bit JPEG micrographs, pick + eval).
"""
