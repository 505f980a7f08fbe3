"""Picks for the viewer tests: micrographs from the project's simulator, picked by the bundled demo
model (no torch needed)."""
from __future__ import annotations

from pathlib import Path

from epick.runtime.cli import main as cli_main
from epick.runtime.demo import bundled_model


def make_picked_job(root: Path, n: int = 2, size: int = 384) -> tuple[Path, Path]:
    """Simulate ``n`` ribosome micrographs (truth STAR beside them) and pick them with the bundled
    demo model at threshold 0.1 into star, box and csv; return (micrograph folder, picks folder)."""
    from epick.simulator import simulate_micrograph
    from epick.simulator.output import write_simulated

    sim, picks = root / "sim", root / "picks"
    for seed in range(n):
        write_simulated(simulate_micrograph((size, size), "ribosome", seed=seed, name=f"mic_{seed:03d}"), sim)
    rc = cli_main(["pick", str(sim), "--model", str(bundled_model()), "--out", str(picks),
                   "--format", "star,box,csv", "--threshold", "0.1", "--quiet"])
    assert rc == 0
    return sim, picks
