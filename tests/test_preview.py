"""runtime/preview.draw_picks: colours and drawing several pick sets on one image."""
import numpy as np

from epick.runtime.picks import Picks
from epick.runtime.preprocess import preprocess
from epick.runtime.preview import PICK_COLOUR, draw_picks


def _image_and_transform():
    image = np.full((256, 256), 100.0, dtype=np.float32)
    image[::7, ::5] = 120.0  # not constant, so the levels are well defined
    return preprocess(image)


def test_two_pick_sets_in_two_colours_on_one_image():
    u8, transform = _image_and_transform()
    left = Picks("m", [60.0], [128.0], diameter=40.0)
    right = Picks("m", [190.0], [128.0], diameter=40.0)
    img = draw_picks(u8, left, transform)
    same = draw_picks(None, right, transform, colour=(255, 0, 0), base=img)
    assert same is img
    rgb = np.asarray(img)
    red = np.all(rgb == (255, 0, 0), axis=-1)
    green = np.all(rgb == PICK_COLOUR, axis=-1)
    assert green[:, :125].any() and not green[:, 130:].any()
    assert red[:, 130:].any() and not red[:, :125].any()
