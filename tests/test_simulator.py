"""The simulator: truth lines up with signal, seeds fix the bytes, CTF zeros sit where the defocus
puts them, vesicle radii and fiber polylines match what is drawn."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from epick.simulator import list_particle_types, particle_diameter_a, simulate_micrograph
from epick.simulator.imaging import CTFParams, ctf_zeros_per_a, radial_profile


def _crops(image: np.ndarray, xs, ys, half: int) -> np.ndarray:
    out = [image[int(y) - half:int(y) + half + 1, int(x) - half:int(x) + half + 1]
           for x, y in zip(xs, ys)
           if half <= x < image.shape[1] - half and half <= y < image.shape[0] - half]
    return np.stack(out)


def test_library_has_many_particle_types_from_8_to_40_nm():
    names = list_particle_types(include_atomic=False)
    assert len(names) >= 12
    diam = np.array([particle_diameter_a(n) for n in names])
    assert diam.min() < 110 and diam.max() > 350
    assert np.all((diam > 70) & (diam < 450))


@pytest.mark.parametrize("kind", ["ribosome", "apoferritin", "small"])
def test_truth_lines_up_with_signal(kind):
    # carbon and ice blobs off: their edges would dominate random crops (junk stays in)
    sim = simulate_micrograph((512, 512), kind, seed=11, carbon=0.0, contamination=0)
    truth = sim.truth
    d = truth.diameter
    # band-pass: drop pixel noise (sigma 1.5 px) and the slow background (ice gradient, carbon, sigma d)
    img = ndimage.gaussian_filter(sim.image, 1.5) - ndimage.gaussian_filter(sim.image, d)
    assert len(truth) >= 10 and truth.shape == (512, 512)
    half = int(0.8 * d)
    avg_truth = _crops(img, truth.x, truth.y, half).mean(0)
    rng = np.random.default_rng(0)
    rx, ry = rng.integers(half, 512 - half, (2, 400))
    rand = _crops(img, rx, ry, half)
    # structure inside the particle's disk of the average: RMS about its mean (CTF makes it light
    # and dark rings, so RMS rather than a sign)
    h = avg_truth.shape[0] // 2
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
    disk = np.hypot(xx, yy) <= 0.6 * d

    def rms(a: np.ndarray) -> float:
        return float(np.std(a[disk]))

    n = len(truth)
    null = np.array([rms(rand[rng.choice(len(rand), n, replace=False)].mean(0)) for _ in range(20)])
    assert rms(avg_truth) > 2 * null.max()
    assert rms(avg_truth) > 2.5 * null.mean()


def test_same_seed_same_bytes_other_seed_differs():
    a = simulate_micrograph((256, 320), "betagal", seed=3)
    b = simulate_micrograph((256, 320), "betagal", seed=3)
    c = simulate_micrograph((256, 320), "betagal", seed=4)
    assert a.image.dtype == np.float32 and a.image.shape == (256, 320)
    assert a.image.tobytes() == b.image.tobytes()
    assert np.array_equal(a.truth.x, b.truth.x) and a.params == b.params
    assert a.image.tobytes() != c.image.tobytes()


@pytest.mark.parametrize("defocus_um", [1.0, 2.5])
def test_ctf_zeros_fall_where_defocus_predicts(defocus_um):
    px = 2.0
    sim = simulate_micrograph((512, 512), "small", n_particles=0, pixel_size=px, seed=2, clean=True,
                              defocus_um=defocus_um, astigmatism_um=0.0, bfactor_a2=20.0,
                              ice_noise=20.0, dose=200.0)
    img = sim.image - sim.image.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(img))) ** 2
    k, prof = radial_profile(power, px, nbins=256)
    ctf = CTFParams(defocus_u_a=defocus_um * 1e4, defocus_v_a=defocus_um * 1e4, bfactor_a2=20.0)
    zeros = [z for z in ctf_zeros_per_a(defocus_um * 1e4, ctf, n=4) if z < 0.4 / px]
    assert len(zeros) >= 2
    dk = k[1] - k[0]
    all_zeros = ctf_zeros_per_a(defocus_um * 1e4, ctf, n=len(zeros) + 1)
    for i, z in enumerate(zeros):
        gap = min(np.diff(all_zeros)[i], z - (all_zeros[i - 1] if i else 0.0))
        window = (k > z - 0.4 * gap) & (k < z + 0.4 * gap)
        found = k[window][np.argmin(prof[window])]
        assert abs(found - z) <= 1.5 * dk, (z, found)
        # a real minimum: far below the Thon ring maxima on either side
        assert prof[window].min() < 0.1 * prof[window].max()


def test_vesicle_radii_match_what_is_drawn():
    sim = simulate_micrograph((512, 512), object="vesicle", seed=5, keep_potential=True, clean=True,
                              density=0.15)
    t, pot = sim.truth, sim.potential
    assert t.radius is not None and len(t) >= 2
    px = sim.params["pixel_size_a"]
    assert np.all((t.radius * px >= 200 - 1e-6) & (t.radius * px <= 1000 + 1e-6))
    checked = 0
    for i in range(len(t)):
        others = [j for j in range(len(t)) if j != i]
        dist = np.hypot(t.x[others] - t.x[i], t.y[others] - t.y[i])
        r = t.radius[i]
        if np.any(dist < r + t.radius[others] + 4):
            continue  # overlapping: profile not clean
        if min(t.x[i], t.y[i], 511 - t.x[i], 511 - t.y[i]) < r + 3:
            continue
        yy, xx = np.indices(pot.shape)
        rr = np.hypot(xx - t.x[i], yy - t.y[i])
        bins = np.arange(0, int(r) + 4)
        prof = np.array([pot[(rr >= b) & (rr < b + 1)].mean() for b in bins])
        peak = bins[np.argmax(prof)] + 0.5
        assert abs(peak - r) <= 19.0 / px + 1.5
        checked += 1
    assert checked >= 1


def test_fiber_polylines_follow_the_drawn_filaments():
    sim = simulate_micrograph((512, 512), object="fiber", seed=9, keep_potential=True, clean=True,
                              n_particles=3)
    t, pot = sim.truth, sim.potential
    assert t.tube_id is not None and len(set(t.tube_id.tolist())) >= 2
    spacing = sim.params["spacing_px"]
    on = pot[np.round(t.y).astype(int), np.round(t.x).astype(int)]
    # a cylinder's projection at its axis is its diameter (A), modulated by the helical repeat
    from epick.simulator import FIBER_TYPES
    ft = FIBER_TYPES[sim.params["particle"]]
    axis_a = t.diameter * sim.params["pixel_size_a"] * (1 - ft.modulation)
    assert np.all(on > 0.8 * axis_a)
    radius = t.diameter / 2
    for tid in set(t.tube_id.tolist()):
        sel = t.tube_id == tid
        x, y = t.x[sel], t.y[sel]
        steps = np.hypot(np.diff(x), np.diff(y))
        assert np.all(np.abs(steps - spacing) < 0.1 * spacing + 0.5)
        # off the line (perpendicular, 2 radii away) the density is far lower unless another fiber is there
        tx, ty = np.gradient(x), np.gradient(y)
        n = np.hypot(tx, ty)
        ox = np.round(x - 2.5 * radius * ty / n).astype(int)
        oy = np.round(y + 2.5 * radius * tx / n).astype(int)
        ok = (ox >= 0) & (ox < 512) & (oy >= 0) & (oy < 512)
        off = pot[oy[ok], ox[ok]]
        assert np.median(off) < 0.2 * np.median(on[sel])


def test_particles_avoid_carbon_and_contamination():
    sim = simulate_micrograph((512, 512), "small", seed=1, carbon=0.3, contamination=2, keep_potential=True)
    assert sim.params["carbon_fraction"] > 0.05 and sim.params["contamination_blobs"] == 2
    xs, ys = sim.truth.x.astype(int), sim.truth.y.astype(int)
    assert len(xs) >= 5 and sim.excluded.mean() > 0.05
    assert not sim.excluded[ys, xs].any()
    # carbon and ice blobs are thicker: fewer electrons arrive there than in the open hole
    smooth = ndimage.gaussian_filter(sim.image, 5)
    assert np.median(smooth[sim.excluded]) < 0.97 * np.median(smooth[~sim.excluded])


def test_atomic_model_particles_from_pdb(shared_data):
    """PDB 6Z6U (human apoferritin, ~12 nm) read with gemmi becomes a particle type with its true size."""
    from epick.simulator.particles import get_particle_type

    ptype = get_particle_type("pdb-6z6u")
    assert 110 < ptype.diameter_a < 150
    assert 350 < ptype.mass_kda < 520  # 24 x ~19 kDa
    sim = simulate_micrograph((384, 384), "pdb-6z6u", seed=2, carbon=0.0, contamination=0,
                              keep_potential=True)
    assert sim.params["particle_source"].startswith("atomic:")
    t = sim.truth
    assert len(t) >= 5
    # the drawn density peaks at the truth centres: a shell's projection is thickest near its rim,
    # so check the whole disk: within d/2 of each centre the thickness is far above zero
    pot = sim.potential
    for x, y in zip(t.x.astype(int), t.y.astype(int)):
        assert pot[y - 2:y + 3, x - 2:x + 3].mean() > 0.2 * pot.max()


def test_unknown_particle_type_names_the_known_ones():
    with pytest.raises(ValueError, match="ribosome"):
        simulate_micrograph((64, 64), "no-such-particle")


def test_detector_mtf_damps_high_frequencies():
    kwargs = dict(n_particles=0, pixel_size=2.0, seed=3, clean=True, ice_noise=0.0, dose=50.0)
    ratios = {}
    for mtf in (False, True):
        img = simulate_micrograph((256, 256), "small", mtf=mtf, **kwargs).image
        power = np.abs(np.fft.fftshift(np.fft.fft2(img - img.mean()))) ** 2
        k, prof = radial_profile(power, 1.0, nbins=64)  # k in cycles/px
        ratios[mtf] = prof[(k > 0.4) & (k < 0.5)].mean() / prof[(k > 0.02) & (k < 0.1)].mean()
    assert 0.8 < ratios[False] < 1.25  # shot noise alone is white
    assert 0.15 < ratios[True] < 0.6  # sinc^2 at 0.4-0.5 cycles/px is about 0.3-0.4


def test_junk_is_visible_but_not_in_the_truth():
    sim = simulate_micrograph((512, 512), "betagal", seed=6, junk_fraction=0.4, carbon=0.0, contamination=0,
                              keep_potential=True)
    junk = np.array(sim.params["junk_xy"]).reshape(-1, 2)
    t, d = sim.truth, sim.truth.diameter
    assert sim.params["junk"] == len(junk) >= 3
    # never at a truth position, and no truth density under it ...
    dist = np.hypot(junk[:, None, 0] - t.x[None], junk[:, None, 1] - t.y[None]).min(1)
    assert np.all(dist >= 1.3 * d - 1)
    assert np.all(sim.potential[junk[:, 1], junk[:, 0]] == 0)
    # ... yet the image shows something there: band-passed signal energy well above random places
    img = ndimage.gaussian_filter(sim.image, 2) - ndimage.gaussian_filter(sim.image, d)
    energy = ndimage.uniform_filter(img * img, int(d))
    rng = np.random.default_rng(1)
    rx, ry = rng.integers(0, 512, (2, 500))
    assert np.median(energy[junk[:, 1], junk[:, 0]]) > 1.5 * np.median(energy[ry, rx])
