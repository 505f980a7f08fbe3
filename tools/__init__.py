"""Build tooling (not installed with epick): scripts that rebuild shipped artefacts from scratch
with the public CLI. Run them from the repository root.

- ``demo_assets``: the demo model and demo micrographs in ``runtime/demo/`` (simulated).
- ``betagal``: a narrow model trained on 10 real EMPIAR-10017 micrographs, tested on the other 4.
- ``general_model``: the bundled general model (simulated and shipped real data).

Each is runnable as ``python -m tools.NAME --help``; ``steps`` holds what they share (running a
CLI command, writing 8-bit JPEG micrographs, pick + eval).
"""
