"""Parametric 3-D particle shapes as clouds of Gaussian pseudo-atoms.

Units: coordinates in Angstrom, centred on the particle's centre of mass; each point carries a
volume in cubic Angstrom (protein at 0.81 Da/A^3, so mass_Da = 0.81 * volume). A shape is a union
of primitives (ellipsoids, shells, rings); points are drawn uniformly inside it, so hollow shapes are
light and solid ones heavy, as real proteins of that envelope would be.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

PROTEIN_DA_PER_A3 = 0.81  # protein density, Dalton per cubic Angstrom

Mask = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Primitive:
    """A solid region: ``inside(points) -> bool`` plus a bounding radius (A) around the origin."""

    inside: Mask
    reach: float
    weight: float = 1.0  # relative density (1 = protein)


def rotation_matrix(axis: str, degrees: float) -> np.ndarray:
    """3x3 rotation about the x, y or z axis."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def ellipsoid(center, radii, rot: np.ndarray | None = None, weight: float = 1.0) -> Primitive:
    """Solid ellipsoid with semi-axes ``radii`` (A), optionally rotated (body frame -> world)."""
    c = np.asarray(center, float)
    r = np.asarray(radii, float)
    m = np.eye(3) if rot is None else np.asarray(rot, float)

    def inside(p: np.ndarray) -> np.ndarray:
        q = (p - c) @ m  # world -> body
        return np.sum((q / r) ** 2, axis=1) <= 1.0

    return Primitive(inside, float(np.linalg.norm(c) + r.max()), weight)


def shell(center, r_in: float, r_out: float, weight: float = 1.0) -> Primitive:
    """Spherical shell between radii ``r_in`` and ``r_out`` (A)."""
    c = np.asarray(center, float)

    def inside(p: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(p - c, axis=1)
        return (d >= r_in) & (d <= r_out)

    return Primitive(inside, float(np.linalg.norm(c) + r_out), weight)


def ring(z: float, r_in: float, r_out: float, half_height: float, weight: float = 1.0) -> Primitive:
    """Flat annulus around the z axis at height ``z`` (A)."""

    def inside(p: np.ndarray) -> np.ndarray:
        rho = np.hypot(p[:, 0], p[:, 1])
        return (rho >= r_in) & (rho <= r_out) & (np.abs(p[:, 2] - z) <= half_height)

    return Primitive(inside, float(np.hypot(r_out, abs(z) + half_height)), weight)


def cyclic_lobes(n: int, ring_radius: float, z: float, radii, phase_deg: float = 0.0,
                 tilt_deg: float = 0.0) -> list[Primitive]:
    """``n`` ellipsoidal lobes spaced around the z axis (a Cn ring), each optionally tilted."""
    out = []
    for k in range(n):
        ang = phase_deg + 360.0 * k / n
        rz = rotation_matrix("z", ang)
        centre = rz @ np.array([ring_radius, 0.0, z])
        rot = rz @ rotation_matrix("y", tilt_deg)
        out.append(ellipsoid(centre, radii, rot))
    return out


def icosahedron_vertices() -> np.ndarray:
    """The 12 unit vectors of an icosahedron's vertices."""
    g = (1 + 5 ** 0.5) / 2
    v = []
    for a in (-1, 1):
        for b in (-g, g):
            v += [(0, a, b), (a, b, 0), (b, 0, a)]
    v = np.array(v, float)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def icosahedron_face_centres() -> np.ndarray:
    """The 20 unit vectors through the faces of an icosahedron."""
    v = icosahedron_vertices()
    faces = []
    edge = np.min([np.linalg.norm(v[0] - w) for w in v[1:]])
    for i in range(12):
        for j in range(i + 1, 12):
            for k in range(j + 1, 12):
                if all(abs(np.linalg.norm(v[a] - v[b]) - edge) < 1e-6 for a, b in ((i, j), (j, k), (i, k))):
                    c = v[i] + v[j] + v[k]
                    faces.append(c / np.linalg.norm(c))
    return np.array(faces)


def octahedral_rotations() -> list[np.ndarray]:
    """The 24 proper rotations of the cube (octahedral group O) as 3x3 matrices."""
    mats = []
    import itertools

    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for row, (col, s) in enumerate(zip(perm, signs)):
                m[row, col] = s
            if np.linalg.det(m) > 0:
                mats.append(m)
    return mats


def fill(primitives: list[Primitive], rng: np.random.Generator, spacing: float = 6.0,
         max_points: int = 60000) -> tuple[np.ndarray, np.ndarray]:
    """Uniform pseudo-atoms inside the union of ``primitives``: (points (N,3) A, volume per point A^3).

    Points lie on a jittered cubic lattice of pitch ``spacing`` (A), coarsened if that would give
    more than ``max_points``; the union is centred on its centre of mass.
    """
    reach = max(p.reach for p in primitives)
    pitch = max(spacing, 2 * reach / 36.0, (2 * reach) / max_points ** (1 / 3))
    axis = np.arange(-reach, reach + pitch, pitch)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    grid = grid + rng.uniform(-pitch / 2, pitch / 2, grid.shape)
    density = np.zeros(len(grid))
    for prim in primitives:
        inside = prim.inside(grid)
        density[inside] = np.maximum(density[inside], prim.weight)
    keep = density > 0
    pts, w = grid[keep], density[keep] * pitch ** 3
    # gentle internal texture: a few random plane waves modulate the density by +-25 %
    k = rng.normal(size=(4, 3)) / 30.0
    tex = np.cos(pts @ k.T * 2 * np.pi + rng.uniform(0, 2 * np.pi, 4)).mean(axis=1)
    w = w * (1.0 + 0.5 * tex)
    com = (pts * w[:, None]).sum(0) / w.sum()
    return (pts - com).astype(np.float64), w.astype(np.float64)
