"""Draw docs/simulated_vs_real.png: a simulated beta-gal-like micrograph beside a real EMPIAR-10017
beta-galactosidase micrograph, at the same scale (1.77 A/px, 4096 x 4096), so a reader can judge
the simulator's realism.

    python benchmarks/figure_sim_vs_real.py [--real NAME.jpg] [--out docs/simulated_vs_real.png]

Top row: both whole micrographs, binned 6x. Bottom row: the central 768 x 768 px of the simulated
micrograph, raw and low-passed (the real JPEG was denoised before publication), and of the real
one (each resized to 440 px). All panels get the same display: 1-99 % percentile stretch.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL_PIXEL_SIZE_A = 1.77  # EMPIAR-10017 (Falcon, beta-galactosidase)


def shared_betagal_dir() -> Path:
    """The real beta-gal folder: $EPICK_SHARED_DATA/empiar10017_betagal or ../shared/data beside the checkout."""
    env = os.environ.get("EPICK_SHARED_DATA")
    return (Path(env) if env else REPO.parent / "shared" / "data") / "empiar10017_betagal"


def to_u8(img: np.ndarray) -> np.ndarray:
    """Percentile (1-99 %) stretch to 8 bits."""
    lo, hi = np.percentile(img, [1, 99])
    return (np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8)


def bin_image(img: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks (crops the remainder)."""
    ny, nx = (s // factor * factor for s in img.shape)
    return img[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor).mean((1, 3))


def main() -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", default="Falcon_2012_06_12-14_57_34_0.jpg")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "simulated_vs_real.png")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()

    from PIL import Image, ImageDraw

    from epick.runtime.io.atomic import atomic_path
    from epick.simulator import simulate_micrograph

    real_path = shared_betagal_dir() / args.real
    with Image.open(real_path) as im:
        real = np.asarray(im.convert("L"), dtype=np.float32)
    sim = simulate_micrograph(real.shape, "betagal", pixel_size=REAL_PIXEL_SIZE_A, seed=args.seed, density=0.45,
                              defocus_um=2.0)
    from scipy import ndimage

    crop, zoom_px = 768, 440
    y0, x0 = real.shape[0] // 2 - crop // 2, real.shape[1] // 2 - crop // 2
    wholes = [Image.fromarray(to_u8(bin_image(im, 6))) for im in (sim.image, real)]

    def zoom(im: np.ndarray) -> Image.Image:
        return Image.fromarray(to_u8(im[y0:y0 + crop, x0:x0 + crop])).resize((zoom_px, zoom_px), Image.LANCZOS)

    zooms = [zoom(sim.image), zoom(ndimage.gaussian_filter(sim.image, 3.0)), zoom(real)]
    w = wholes[0].width
    gap, label_h = 12, 28
    canvas = Image.new("L", (2 * w + gap, label_h + w + gap + label_h + zoom_px), 255)
    draw = ImageDraw.Draw(canvas)
    titles = (f"simulated (epick simulate, betagal-like, {REAL_PIXEL_SIZE_A} A/px, "
              f"{len(sim.truth)} particles, defocus {sim.params['defocus_um']:.1f} um), binned 6x",
              f"real: EMPIAR-10017 {real_path.stem} (denoised JPEG), binned 6x")
    for i, (whole, title) in enumerate(zip(wholes, titles)):
        x = i * (w + gap)
        draw.text((x + 4, 8), title, fill=0)
        canvas.paste(whole, (x, label_h))
    sub = ("simulated, centre 768 px", "simulated, low-pass sigma 3 px (like the denoised real)",
           "real, centre 768 px")
    step = (canvas.width - 3 * zoom_px) // 4
    for i, (z, title) in enumerate(zip(zooms, sub)):
        x = step + i * (zoom_px + step)
        draw.text((x, label_h + w + gap + 8), title, fill=0)
        canvas.paste(z, (x, label_h + w + gap + label_h))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        canvas.save(tmp, format="PNG", optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
