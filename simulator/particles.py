"""The particle library: named types, each a 3-D cloud of pseudo-atoms (A) with a diameter.

Two sources:
- parametric shapes (``shapes.py``) that mimic the paper's datasets (ribosome-like, proteasome-like
  barrel, apoferritin-like shell, elongated toxin-like, icosahedral virus-like, beta-gal-like
  tetramer, a ~150 kDa blob, ...), 8 nm to 40 nm across;
- atomic models from the PDB (read with gemmi) in the folder ``atomic_models_dir()`` names, atoms weighted by
  their mass and coarse-grained onto a 3 A lattice.

Every cloud is centred on its centre of mass, which is the particle's centre in the truth files.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import shapes as S

ATOMIC_MODEL_PITCH_A = 3.0  # atomic models are coarse-grained onto this lattice (A)


@dataclass(frozen=True)
class ParticleType:
    """One kind of particle: a name, how to build its cloud, and how it looks."""

    name: str
    description: str
    build: Callable[[], tuple[np.ndarray, np.ndarray]]  # -> (points (N,3) A, volume per point A^3)
    blob_sigma_a: float  # width of each pseudo-atom (A): smooth parametric shapes use ~6 A
    source: str = "parametric"

    @property
    def cloud(self) -> tuple[np.ndarray, np.ndarray]:
        """(points A, volumes A^3), built once per process."""
        return _cloud(self.name)

    @property
    def diameter_a(self) -> float:
        """Particle diameter in Angstrom: twice the 99.5th percentile of the radius of its mass."""
        return _diameter(self.name)

    @property
    def mass_kda(self) -> float:
        """Mass in kDa (protein density 0.81 Da/A^3)."""
        return float(self.cloud[1].sum() * S.PROTEIN_DA_PER_A3 / 1000.0)


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(abs(hash_name(name)))


def hash_name(name: str) -> int:
    """A stable (process-independent) integer for a name, for seeding per-type randomness."""
    h = 1469598103934665603
    for ch in name.encode():
        h = ((h ^ ch) * 1099511628211) % (1 << 63)
    return h


# ---------------------------------------------------------------- parametric builders (A)
def _ribosome() -> list[S.Primitive]:
    rng = _rng("ribosome-lumps")
    prims = [S.ellipsoid((0, 0, -30), (118, 105, 88)),
             S.ellipsoid((15, 10, 75), (105, 70, 50), S.rotation_matrix("x", 15)),
             S.ellipsoid((-85, 40, 20), (30, 22, 55), S.rotation_matrix("y", 30))]  # stalk
    for _ in range(30):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        prims.append(S.ellipsoid(d * np.array([112, 98, 95]) + (0, 0, -10), rng.uniform(14, 26, 3)))
    return prims


def _proteasome() -> list[S.Primitive]:
    prims = []
    for z, ph in ((-60, 0), (-20, 25), (20, 0), (60, 25)):
        prims += S.cyclic_lobes(7, 42, z, (22, 18, 20), ph)
    return prims


def _apoferritin() -> list[S.Primitive]:
    base = np.array([30.0, 45.0, 22.0])
    base *= 52.0 / np.linalg.norm(base)
    return [S.ellipsoid(m @ base, (16, 16, 16)) for m in S.octahedral_rotations()] + [S.shell((0, 0, 0), 44, 60)]


def _toxin() -> list[S.Primitive]:
    return [S.ellipsoid((0, 0, -30), (32, 30, 110)),
            S.ellipsoid((10, 0, 95), (55, 42, 40)),
            S.ellipsoid((40, 25, 40), (18, 18, 55), S.rotation_matrix("y", 40)),
            S.ellipsoid((-25, -10, -135), (28, 28, 28))]


def _virus() -> list[S.Primitive]:
    prims = [S.shell((0, 0, 0), 160, 185)]
    prims += [S.ellipsoid(v * 188, (26, 26, 20)) for v in S.icosahedron_vertices()]
    prims += [S.ellipsoid(f * 186, (20, 20, 16)) for f in S.icosahedron_face_centres()]
    prims.append(S.ellipsoid((0, 0, 0), (150, 150, 150), weight=0.45))  # packaged genome
    return prims


def _betagal() -> list[S.Primitive]:
    p = np.array([42.0, 30.0, 16.0])
    prims = []
    for axis in (None, "x", "y", "z"):
        m = np.eye(3) if axis is None else S.rotation_matrix(axis, 180)
        prims.append(S.ellipsoid(m @ p, (58, 36, 32), m @ S.rotation_matrix("z", 20)))
    return prims


def _small() -> list[S.Primitive]:
    return [S.ellipsoid((0, 0, 0), (44, 34, 29)), S.ellipsoid((22, 12, 10), (18, 16, 14))]


def _chaperonin() -> list[S.Primitive]:
    return S.cyclic_lobes(7, 50, -38, (24, 20, 36), 0, 10) + S.cyclic_lobes(7, 50, 38, (24, 20, 36), 25, -10)


def _spike() -> list[S.Primitive]:
    prims = S.cyclic_lobes(3, 28, 30, (28, 24, 62), 0, 12)
    prims += [S.ellipsoid((0, 0, -60), (22, 22, 40)), S.ellipsoid((0, 0, 95), (30, 30, 18))]
    return prims


def _dumbbell() -> list[S.Primitive]:
    return [S.ellipsoid((0, 0, -75), (48, 44, 44)), S.ellipsoid((0, 0, 75), (36, 34, 34)),
            S.ellipsoid((0, 0, 0), (14, 14, 70))]


def _ring() -> list[S.Primitive]:
    return S.cyclic_lobes(12, 62, 0, (20, 15, 24), 0) + [S.ring(0, 45, 58, 10)]


def _cage() -> list[S.Primitive]:
    # 24-mer cubic cage (pyruvate-dehydrogenase-E2-like core, ~24 nm): lobes on the cube's edges
    base = np.array([95.0, 95.0, 30.0])
    return [S.ellipsoid(m @ base, (22, 22, 30), m) for m in S.octahedral_rotations()]


def _prolate() -> list[S.Primitive]:
    return [S.ellipsoid((0, 0, 0), (45, 45, 110))]


def _trimer_l() -> list[S.Primitive]:
    # an L-shaped asymmetric assembly of three unequal domains
    return [S.ellipsoid((0, 0, 0), (55, 45, 40)), S.ellipsoid((85, 0, 10), (45, 32, 30)),
            S.ellipsoid((0, 80, -15), (35, 45, 28))]


def _nanodisc() -> list[S.Primitive]:
    # a membrane protein in a lipid nanodisc: a flat, lighter lipid disc (density 0.45 of protein),
    # its scaffold belt, the transmembrane bundle through it and a soluble domain above
    return [S.ellipsoid((0, 0, 0), (62, 62, 21), weight=0.45), S.ring(0, 56, 66, 9),
            S.ellipsoid((0, 0, 0), (24, 22, 26)), S.ellipsoid((5, 0, 52), (38, 32, 30))]


def _antibody() -> list[S.Primitive]:
    # IgG-like Y: two Fab arms and the Fc stem (~15 nm across)
    return [S.ellipsoid((-42, 0, 30), (20, 14, 38), S.rotation_matrix("y", -50)),
            S.ellipsoid((42, 0, 30), (20, 14, 38), S.rotation_matrix("y", 50)),
            S.ellipsoid((0, 0, -38), (22, 15, 36))]


_PARAMETRIC: dict[str, tuple[str, Callable[[], list[S.Primitive]]]] = {
    "ribosome": ("ribosome-like: two unequal lumpy subunits and a stalk (~26 nm)", _ribosome),
    "proteasome": ("proteasome-like barrel: four stacked heptameric rings (~17 nm)", _proteasome),
    "apoferritin": ("apoferritin-like shell: 24 subunits on an octahedral shell (~13 nm)", _apoferritin),
    "toxin": ("elongated toxin-like: long rod with head and arm (~30 nm long)", _toxin),
    "virus": ("icosahedral virus-like capsid with genome (~40 nm)", _virus),
    "betagal": ("beta-galactosidase-like D2 tetramer (~18 nm)", _betagal),
    "small": ("small ~150 kDa globular blob (~9 nm)", _small),
    "chaperonin": ("GroEL-like double heptameric ring (~15 nm)", _chaperonin),
    "spike": ("trimeric glycoprotein spike on a stalk (~21 nm tall)", _spike),
    "dumbbell": ("elongated dimer: two unequal domains on a linker (~25 nm)", _dumbbell),
    "ring": ("flat dodecameric ring (~16 nm)", _ring),
    "cage": ("24-mer cubic cage, E2-core-like (~25 nm)", _cage),
    "prolate": ("smooth prolate ellipsoid (~22 nm long)", _prolate),
    "lshape": ("L-shaped asymmetric three-domain assembly (~19 nm)", _trimer_l),
    "nanodisc": ("membrane protein in a lipid nanodisc, soluble domain above (~15 nm)", _nanodisc),
    "antibody": ("IgG-like Y of two Fab arms and an Fc stem (~18 nm)", _antibody),
}

# atomic models in the atomic-models folder (see atomic_models_dir): type name -> (file, description)
_ATOMIC: dict[str, tuple[str, str]] = {
    "pdb-6z6u": ("6z6u.pdb.gz", "human apoferritin, PDB 6Z6U (~12 nm)"),
    "pdb-4v1w": ("4v1w.cif.gz", "horse spleen apoferritin, PDB 4V1W (~12 nm)"),
    "pdb-4v5d": ("4v5d.cif.gz", "Thermus thermophilus 70S ribosome, PDB 4V5D (~25 nm)"),
    "pdb-3jb9": ("3jb9.cif.gz", "yeast spliceosome, PDB 3JB9 (large, irregular)"),
    "pdb-6qt9": ("6qt9.cif.gz", "SH1 virus capsid asymmetric unit, PDB 6QT9"),
}


ATOMIC_MODELS_ENV = "EPICK_ATOMIC_MODELS"
ATOMIC_MODELS_HELP = (f"give the folder holding {', '.join(f for f, _ in _ATOMIC.values())}: "
                      f"epick simulate --atomic-models DIR, or set {ATOMIC_MODELS_ENV}=DIR")
_explicit_dir: Path | None = None


def set_atomic_models_dir(path: str | Path | None) -> None:
    """Use the PDB models in ``path`` (None: back to the environment variable)."""
    global _explicit_dir
    _explicit_dir = None if path is None else Path(path)


def atomic_models_dir() -> Path | None:
    """Folder of the PDB models: ``set_atomic_models_dir`` (``--atomic-models``), else
    ``$EPICK_ATOMIC_MODELS``, else ``$EPICK_SHARED_DATA/atomic_models``; None when none is given."""
    if _explicit_dir is not None:
        return _explicit_dir
    if os.environ.get(ATOMIC_MODELS_ENV):
        return Path(os.environ[ATOMIC_MODELS_ENV])
    if os.environ.get("EPICK_SHARED_DATA"):
        return Path(os.environ["EPICK_SHARED_DATA"]) / "atomic_models"
    return None


def _atomic_model(fname: str) -> tuple[np.ndarray, np.ndarray]:
    from epick.runtime.errors import FileProblem

    folder = atomic_models_dir()
    if folder is None:
        raise FileProblem(fname, "no folder of atomic models was given", ATOMIC_MODELS_HELP)
    return load_atomic_model(folder / fname)


def load_atomic_model(path: str | Path, pitch_a: float = ATOMIC_MODEL_PITCH_A) -> tuple[np.ndarray, np.ndarray]:
    """Read a PDB/mmCIF file with gemmi: (points A, volumes A^3) of its atoms on a ``pitch_a`` lattice.

    Each atom contributes its mass (Da) / 0.81 Da/A^3 of volume; hydrogens and waters are dropped.
    """
    import gemmi

    from epick.runtime.errors import FileProblem

    path = Path(path)
    if not path.is_file():
        raise FileProblem(path, "atomic model not found", ATOMIC_MODELS_HELP)
    st = gemmi.read_structure(str(path))
    st.remove_hydrogens()
    st.remove_waters()
    xyz, mass = [], []
    for chain in st[0]:
        for res in chain:
            for atom in res:
                p = atom.pos
                xyz.append((p.x, p.y, p.z))
                mass.append(atom.element.weight * atom.occ)
    if not xyz:
        raise FileProblem(path, "atomic model has no atoms", "use a PDB or mmCIF file with coordinates")
    pts = np.asarray(xyz, float)
    vol = np.asarray(mass, float) / S.PROTEIN_DA_PER_A3
    idx = np.floor(pts / pitch_a).astype(np.int64)
    keys, inverse = np.unique(idx, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    w = np.bincount(inverse, weights=vol)
    centre = np.stack([np.bincount(inverse, weights=pts[:, k] * vol) for k in range(3)], 1) / w[:, None]
    com = (centre * w[:, None]).sum(0) / w.sum()
    return centre - com, w


def _make_types() -> dict[str, ParticleType]:
    types: dict[str, ParticleType] = {}
    for name, (desc, prims) in _PARAMETRIC.items():
        types[name] = ParticleType(
            name, desc, functools.partial(lambda n, p: S.fill(p(), _rng(n)), name, prims), 6.0)
    for name, (fname, desc) in _ATOMIC.items():
        types[name] = ParticleType(
            name, desc, functools.partial(_atomic_model, fname),
            2.0, source=f"atomic:{fname}")
    return types


PARTICLE_TYPES: dict[str, ParticleType] = _make_types()


@functools.lru_cache(maxsize=None)
def _cloud(name: str) -> tuple[np.ndarray, np.ndarray]:
    pts, w = PARTICLE_TYPES[name].build()
    pts.setflags(write=False)
    w.setflags(write=False)
    return pts, w


@functools.lru_cache(maxsize=None)
def _diameter(name: str) -> float:
    pts, w = _cloud(name)
    r = np.linalg.norm(pts, axis=1)
    order = np.argsort(r)
    cum = np.cumsum(w[order]) / w.sum()
    r995 = r[order][np.searchsorted(cum, 0.995)]
    return float(2 * r995 + 2 * PARTICLE_TYPES[name].blob_sigma_a)


def get_particle_type(name: str) -> ParticleType:
    """The particle type called ``name``; raises ValueError listing the known names."""
    try:
        return PARTICLE_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown particle type {name!r}; known: {', '.join(PARTICLE_TYPES)}") from None


def list_particle_types(include_atomic: bool = True) -> list[str]:
    """Names of the particle types (parametric first, then atomic models)."""
    return [n for n, t in PARTICLE_TYPES.items() if include_atomic or t.source == "parametric"]


def particle_diameter_a(name: str) -> float:
    """Diameter of particle type ``name`` in Angstrom."""
    return get_particle_type(name).diameter_a
