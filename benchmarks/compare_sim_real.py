"""How simulated micrographs differ from the real ones, after epick's preprocessing: numbers + figure.

    python benchmarks/compare_sim_real.py [--limit 3] [--seeds 2] [--json OUT] [--figure docs/sim_vs_real_stats.png]

For each real set of the shared data (EMPIAR-10017 beta-gal JPEGs, d 108 px at 4096 px; EMPIAR-10947
PNGs, d 60 px at 1024 px) and for simulated micrographs made to match it in particle size at the
network's scale (beta-gal-like particles, 2048 px, d 54 px; apoferritin-like, crowded, 1024 px,
d 60 px) in several variants (``old``: the simulator's previous background defaults, ice gradient
0-12 nm and illumination unevenness 0.3-1.5 %; ``float``: today's defaults; ``denoised`` and
``stretched``: the 8-bit renderings of ``epick.simulator.render``), every image goes through
``epick.runtime.preprocess`` (the model's default, 1024 wide) and is measured:

- ``levels``: distinct grey levels of the preprocessed image (the network's input);
- ``bands``: fraction of the image's variance per band of spatial frequency in cycles per particle
  diameter (``<0.25`` = structure larger than 4 particles: gradients, carbon, contamination;
  ``1-2`` = particle-sized; ``>8`` = pixel noise), from the radially binned power spectrum;
- ``contrast``: median of the image minus the mean inside a disk of 0.3 diameters around every
  true centre, in units of the image's standard deviation (particles are dark, so > 0);
- ``profile``: the mean radial profile (z units) around the true centres, 0-1 diameter.
Writes JSON (machine, versions, every number) and a figure: power per band, raw grey-level
histograms, and mean particle crops, real beside each simulated variant.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_general as bg  # noqa: E402

BAND_EDGES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, np.inf)  # cycles per particle diameter
BAND_NAMES = ("<0.25", "0.25-0.5", "0.5-1", "1-2", "2-4", "4-8", ">8")
# simulated analogue of each real set: particle type, shape (ny, nx), diameter px, area fraction, min distance
ANALOGUES = {"betagal": ("betagal", (2048, 2048), 54.0, 0.35, 0.7),
             "empiar10947": ("apoferritin", (1024, 1024), 60.0, 0.6, 0.6)}
OLD_BACKGROUND = {"ice_gradient_nm": (0.0, 12.0), "unevenness": (0.003, 0.015)}  # before ab24f70
VARIANTS = ("old", "float", "denoised", "stretched")


def band_fractions(z: np.ndarray, diameter_net: float) -> list[float]:
    """Fraction of the variance of ``z`` per band of BAND_EDGES (cycles per particle diameter)."""
    power = np.abs(np.fft.rfft2(z)) ** 2
    power[:, 1:(z.shape[1] + 1) // 2] *= 2.0  # rfft holds one of each +-kx pair
    f = np.hypot(np.fft.rfftfreq(z.shape[1])[None, :], np.fft.fftfreq(z.shape[0])[:, None]) * diameter_net
    power[0, 0] = 0.0
    total = power.sum()
    return [float(power[(f >= a) & (f < b)].sum() / total) for a, b in zip(BAND_EDGES[:-1], BAND_EDGES[1:])]


def particle_profile(z: np.ndarray, xs: np.ndarray, ys: np.ndarray, diameter_net: float, n_bins: int = 10):
    """(contrast, radial profile, mean crop) of ``z`` around the centres (network pixels)."""
    h = int(np.ceil(diameter_net))
    keep = (xs >= h) & (xs < z.shape[1] - h) & (ys >= h) & (ys < z.shape[0] - h)
    crops = np.array([z[cy - h:cy + h + 1, cx - h:cx + h + 1]
                      for cx, cy in zip(np.round(xs[keep]).astype(int), np.round(ys[keep]).astype(int))])
    if not len(crops):
        return None, [None] * n_bins, None
    mean_crop = crops.mean(0)
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
    r = np.hypot(xx, yy) / diameter_net
    contrast = float(np.median(z) - crops[:, r <= 0.3].mean())
    profile = [float(mean_crop[(r >= a) & (r < a + 1.0 / n_bins)].mean()) for a in np.arange(n_bins) / n_bins]
    return contrast, profile, mean_crop


def measure(image: np.ndarray, truth_x, truth_y, diameter_px: float) -> dict:
    """The numbers of one micrograph after epick's preprocessing (see the module docstring)."""
    from epick.runtime.preprocess import preprocess

    u8, tr = preprocess(image)
    d_net = diameter_px / tr.scale_x
    x = u8.astype(np.float64)
    z = (x - x.mean()) / max(x.std(), 1e-12)
    xs, ys = tr.to_network(np.asarray(truth_x, float), np.asarray(truth_y, float))
    contrast, profile, crop = particle_profile(z, xs, ys, d_net)
    raw = np.asarray(image, np.float64)
    lo, med, hi = np.percentile(raw, [15.87, 50, 84.13])
    return {"levels": int(len(np.unique(u8))), "raw_levels_1_99": int(len(np.unique(raw[(raw >= np.percentile(raw, 1))
                                                                                         & (raw <= np.percentile(raw, 99))])))
            if raw.size else 0, "bands": band_fractions(z, d_net), "contrast": contrast, "profile": profile,
            "diameter_net_px": float(d_net), "_crop": crop, "_rawz": (raw - med) / max((hi - lo) / 2, 1e-12)}


def simulate_variant(name: str, variant: str, seed: int):
    """One simulated analogue of real set ``name``: (image, truth, params)."""
    from epick.simulator import particle_diameter_a, simulate_micrograph
    from epick.simulator.render import render

    kind, shape, d, density, min_dist = ANALOGUES[name]
    px = particle_diameter_a(kind) / d
    rng = np.random.default_rng([seed, 99])
    extra = {}
    if variant == "old":
        extra = {k: float(rng.uniform(*v)) for k, v in OLD_BACKGROUND.items()}
    sim = simulate_micrograph(shape, kind, pixel_size=px, seed=seed, density=density, min_distance_frac=min_dist,
                              **extra)
    image = sim.image if variant in ("old", "float") else render(sim.image, variant, rng, px).astype(np.float32)
    return image, sim.truth, sim.params


def summarise(rows: list[dict]) -> dict:
    """Mean of each number over a group's micrographs."""
    out = {"n": len(rows)}
    for key in ("levels", "raw_levels_1_99", "contrast"):
        vals = [r[key] for r in rows if r[key] is not None]
        out[key] = float(np.mean(vals)) if vals else None
    out["bands"] = np.mean([r["bands"] for r in rows], 0).tolist()
    out["profile"] = np.mean([r["profile"] for r in rows], 0).tolist()
    return out


def figure(groups: dict, out: Path) -> None:
    """Bands, raw histograms and mean crops, one row per real set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from epick.runtime.io.atomic import atomic_path

    sets = list(groups)
    labels = ["real", *VARIANTS]
    fig, axes = plt.subplots(len(sets), 2 + len(labels), figsize=(2.9 * (2 + len(labels)), 3.1 * len(sets)),
                             squeeze=False)
    colours = dict(zip(labels, ("black", "tab:red", "tab:blue", "tab:green", "tab:orange")))
    for i, name in enumerate(sets):
        ax = axes[i, 0]
        for lab in labels:
            ax.plot(range(len(BAND_NAMES)), groups[name][lab]["summary"]["bands"], "o-", color=colours[lab],
                    label=lab, lw=2 if lab == "real" else 1)
        ax.set_xticks(range(len(BAND_NAMES)), BAND_NAMES, rotation=45, fontsize=7)
        ax.set_yscale("log")
        ax.set_title(f"{name}: variance per band\n(cycles per particle diameter)", fontsize=8)
        ax.legend(fontsize=6)
        ax = axes[i, 1]
        for lab in labels:
            rawz = groups[name][lab]["_rawz"]
            ax.hist(np.clip(rawz.ravel()[::7], -4, 4), bins=160, histtype="step", density=True, color=colours[lab],
                    label=lab)
        ax.set_title("input grey levels (robust z), before preprocessing", fontsize=8)
        ax.set_yscale("log")
        for j, lab in enumerate(labels):
            ax = axes[i, 2 + j] if 2 + j < axes.shape[1] else None
            if ax is None:
                break
            crop = groups[name][lab]["_crop"]
            s = groups[name][lab]["summary"]
            ax.imshow(crop, cmap="gray")
            ax.set_title(f"{lab}: mean particle crop\ncontrast {s['contrast']:.2f}, {s['levels']:.0f} levels",
                         fontsize=8)
            ax.set_axis_off()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=3, help="real micrographs per set (default 3)")
    parser.add_argument("--seeds", type=int, default=2, help="simulated micrographs per variant (default 2)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--figure", type=Path, default=bg.REPO / "docs" / "sim_vs_real_stats.png")
    args = parser.parse_args(argv)
    from epick.runtime.io.micrograph import read_micrograph

    record = bg.new_record("sim_vs_real", {"sets": list(bg.REAL_SETS), "limit": args.limit, "seeds": args.seeds,
                                           "analogues": {k: list(map(str, v)) for k, v in ANALOGUES.items()},
                                           "old_background": OLD_BACKGROUND, "bands": BAND_NAMES})
    groups = {}
    for name, real in bg.REAL_SETS.items():
        groups[name] = {}
        rows = [measure(read_micrograph(m).data, t.x, t.y, real.diameter_px)
                for m, t in bg.load_set(real, limit=args.limit)]
        groups[name]["real"] = rows
        for variant in VARIANTS:
            t0 = time.perf_counter()
            groups[name][variant] = []
            for seed in range(1, args.seeds + 1):
                image, truth, params = simulate_variant(name, variant, seed)
                groups[name][variant].append(measure(image, truth.x, truth.y, ANALOGUES[name][2]))
            print(f"{name} {variant}: {time.perf_counter() - t0:.1f} s", flush=True)
    table = [("set", "images", "levels", "contrast", *BAND_NAMES)]
    for name, by in groups.items():
        for lab, rows in by.items():
            s = summarise(rows)
            by[lab] = {"summary": s, "_crop": rows[0]["_crop"], "_rawz": rows[0]["_rawz"],
                       "micrographs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]}
            table.append((name, lab, f"{s['levels']:.0f}", f"{s['contrast']:.2f}",
                          *(f"{100 * b:.1f}%" for b in s["bands"])))
            record["rows"].append({"set": name, "images": lab, **s, "micrographs": by[lab]["micrographs"]})
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    figure(groups, args.figure)
    print(f"wrote {args.figure}")
    print(f"wrote {bg.write_json(record, args.json, 'sim_vs_real')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
