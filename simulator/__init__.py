"""epick.simulator: cryo-EM micrographs with known truth (particles, vesicles, fibers); no torch.

    from epick.simulator import simulate_micrograph, list_particle_types
    sim = simulate_micrograph((512, 512), particle="ribosome", seed=1)
    sim.image  # float32 (ny, nx), electrons per pixel; sim.truth: epick.runtime.picks.Picks
"""
from .micrograph import SimulatedMicrograph, auto_pixel_size, simulate_micrograph
from .particles import get_particle_type, list_particle_types, particle_diameter_a
from .fibers import FIBER_TYPES

__all__ = ["simulate_micrograph", "SimulatedMicrograph", "list_particle_types", "particle_diameter_a",
           "get_particle_type", "auto_pixel_size", "FIBER_TYPES"]
