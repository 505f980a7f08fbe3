"""Lipid vesicles: bilayer shells, drawn as the exact projection of two spherical head-group shells.

Radius = distance from the centre to the middle of the bilayer (the truth radius). Units: A for
physics, px for placement.
"""
from __future__ import annotations

import numpy as np

LEAFLET_OFFSET_A = 19.0  # head-group layer centre from the bilayer mid-plane
HEADGROUP_THICKNESS_A = 9.0
HEADGROUP_CONTRAST = 0.9  # head-group density relative to protein (tails ~ ice: left out)


def shell_chord(r: np.ndarray, r_in: float, r_out: float) -> np.ndarray:
    """Path length through a spherical shell (radii r_in..r_out) at projected distance ``r`` from its centre."""
    outer = np.sqrt(np.clip(r_out * r_out - r * r, 0, None))
    inner = np.sqrt(np.clip(r_in * r_in - r * r, 0, None))
    return 2 * (outer - inner)


def vesicle_projection(radius_a: float, pixel_size: float) -> np.ndarray:
    """Projected protein-equivalent thickness (A) of a bilayer vesicle, odd box centred on the centre pixel."""
    reach = radius_a + LEAFLET_OFFSET_A + HEADGROUP_THICKNESS_A
    half = int(np.ceil(reach / pixel_size)) + 2
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    # average 2x2 sub-pixel samples so thin shells are not aliased
    img = np.zeros(yy.shape, dtype=np.float64)
    for dy in (-0.25, 0.25):
        for dx in (-0.25, 0.25):
            r = np.hypot(xx + dx, yy + dy) * pixel_size
            for sign in (-1, 1):
                mid = radius_a + sign * LEAFLET_OFFSET_A
                img += shell_chord(r, mid - HEADGROUP_THICKNESS_A / 2, mid + HEADGROUP_THICKNESS_A / 2)
    return (img / 4 * HEADGROUP_CONTRAST).astype(np.float32)
