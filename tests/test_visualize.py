"""bundle.visualize pictures: exact pixel layouts on small synthetic images."""
import numpy as np
import torch

from bundle.visualize import checkerboard


def test_checkerboard_tiles_alternate_as_the_index_grid_formula():
    """The parity form (no (H, W) index grids) gives the same tiles as ((y * t // h) + (x * t // w)) % 2 == 0,
    for sides that are not multiples of the tile count; tile (0, 0) is the first image."""
    h, w, tiles = 37, 53, 8
    a, b = torch.ones(h, w), torch.zeros(h, w)
    out = checkerboard(a, b, tiles)
    yy, xx = np.mgrid[0:h, 0:w]
    sel = ((yy * tiles // h) + (xx * tiles // w)) % 2 == 0
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0] == 255, sel)
    assert out[0, 0, 0] == 255 and out[0, w - 1, 0] == 0  # 8 tiles across: the last one is the second image's
