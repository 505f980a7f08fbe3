"""Preview PNGs: the network image (what the model saw) with the picks drawn on it (Pillow).

Picks are in ORIGINAL pixels; they are mapped to the network image with ``Transform.to_network``.
Particles: circles of the particle diameter; vesicles: circles of their radius; fibers: one
coloured polyline per tube with its points.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io.atomic import atomic_path
from .picks import Picks

_TUBE_COLOURS = [(255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 120), (255, 120, 255), (255, 255, 255)]


PICK_COLOUR = (0, 255, 0)


def draw_picks(image_u8: np.ndarray | None, picks: Picks, transform, *, diameter: float | None = None,
               colour: tuple[int, int, int] = PICK_COLOUR, base=None):
    """An RGB ``PIL.Image`` of ``image_u8`` (network image) with ``picks`` (original pixels) drawn.

    ``colour`` (RGB) is used for particle and vesicle circles; ``base``: an RGB ``PIL.Image`` made
    by an earlier call to draw on in place (then ``image_u8`` is ignored), to draw several sets of
    picks in different colours.
    """
    from PIL import Image, ImageDraw

    img = base if base is not None else (
        Image.fromarray(np.ascontiguousarray(image_u8, dtype=np.uint8), mode="L").convert("RGB"))
    draw = ImageDraw.Draw(img)
    xs, ys = transform.to_network(picks.x, picks.y)
    scale = 1.0 / max(transform.scale_x, 1e-9)                 # network pixels per original pixel
    width = max(1, round(img.width / 512))
    if picks.tube_id is not None:
        for k, tube in enumerate(np.unique(picks.tube_id)):
            sel = picks.tube_id == tube
            colour = _TUBE_COLOURS[k % len(_TUBE_COLOURS)]
            points = list(zip(xs[sel].tolist(), ys[sel].tolist()))
            if len(points) > 1:
                draw.line(points, fill=colour, width=width)
            for px, py in points:
                draw.ellipse([px - 2 * width, py - 2 * width, px + 2 * width, py + 2 * width], fill=colour)
        return img
    diameter = diameter or picks.diameter
    if picks.radius is not None:
        radii = picks.radius * scale
    else:
        radii = np.full(len(picks), (diameter * scale / 2.0) if diameter else 6.0)
    for px, py, r in zip(xs.tolist(), ys.tolist(), radii.tolist()):
        draw.ellipse([px - r, py - r, px + r, py + r], outline=tuple(colour), width=width)
    return img


def write_preview(path: str | Path, image_u8: np.ndarray, picks: Picks, transform, *,
                  diameter: float | None = None) -> Path:
    """Write a PNG of the network image with the picks drawn, atomically; return its path."""
    path = Path(path)
    img = draw_picks(image_u8, picks, transform, diameter=diameter)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
