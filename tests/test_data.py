import numpy as np
import pytest
import torch

from bundle.data import (
    PairDataset,
    RandomPairDataset,
    all_ordered_pairs,
    load_split,
    random_pairs,
    sample_pairs,
    split_ids,
)
from bundle.io import InputError

from .conftest import needs_shared


def test_split_and_cache(toy_data):
    assert split_ids("TOY", "train", toy_data) == [f"img{k:03d}" for k in range(5)]
    d = load_split("TOY", "test", toy_data)
    assert d.images.shape == (5, 1, 64, 64) and d.masks.shape == (5, 1, 64, 64)
    assert 0 <= d.images.min() and d.images.max() <= 1
    assert set(torch.unique(d.masks).tolist()) == {0.0, 1.0}
    assert load_split("TOY", "test", toy_data) is d  # cached


def test_resized_split(toy_data):
    d = load_split("TOY", "test", toy_data, size=32)
    full = load_split("TOY", "test", toy_data)
    assert d.images.shape == (5, 1, 32, 32)
    # area interpolation: a 32-pixel is the mean of its 2x2 block
    torch.testing.assert_close(d.images[0, 0, 3, 4], full.images[0, 0, 6:8, 8:10].mean())
    assert set(torch.unique(d.masks).tolist()) == {0.0, 1.0}


def test_bad_data_dir_and_names(tmp_path, toy_data):
    with pytest.raises(InputError, match="not found"):
        split_ids("TOY", "test", tmp_path / "nope")
    with pytest.raises(InputError, match="no dataset 'XYZ'"):
        split_ids("XYZ", "test", toy_data)
    with pytest.raises(InputError, match="no split"):
        split_ids("TOY", "val", toy_data)


def test_pairs():
    p = all_ordered_pairs(40)
    assert len(p) == 1560 and len(set(p)) == 1560 and all(m != f for m, f in p)
    r = random_pairs(7, 500, seed=3)
    assert r == random_pairs(7, 500, seed=3) and r != random_pairs(7, 500, seed=4)
    assert all(m != f for m, f in r) and {m for m, _ in r} == set(range(7)) and {f for _, f in r} == set(range(7))
    s = sample_pairs(10, 20, seed=1)
    assert len(s) == 20 == len(set(s)) and s == sample_pairs(10, 20, seed=1) and set(s) <= set(all_ordered_pairs(10))
    assert sample_pairs(4, None) == all_ordered_pairs(4)


def test_pair_dataset_items(toy_data):
    d = load_split("TOY", "test", toy_data)
    ds = PairDataset(d, [(1, 3)])
    it = ds[0]
    assert it["moving_id"] == "img001" and it["fixed_id"] == "img003"
    torch.testing.assert_close(it["image"][0], d.images[1, 0])
    torch.testing.assert_close(it["image"][1], d.images[3, 0])
    torch.testing.assert_close(it["fixed_mask"], d.masks[3])
    rd = RandomPairDataset(d, 12, seed=0)
    first = list(rd.pairs)
    rd.set_epoch(1)
    assert len(rd) == 12 and rd.pairs != first
    rd.set_epoch(0)
    assert rd.pairs == first


@needs_shared
def test_real_jsrt_test_split():
    d = load_split("JSRT", "test")
    assert len(d) == 40 and d.images.shape[-2:] == (256, 256)
    assert len(all_ordered_pairs(len(d))) == 1560
    # masks line up with the (dark) lungs: a transposed or flipped mask would break this
    lung = (d.images * d.masks).flatten(1).sum(1) / d.masks.flatten(1).sum(1)
    rest = (d.images * (1 - d.masks)).flatten(1).sum(1) / (1 - d.masks).flatten(1).sum(1)
    assert (lung < rest).float().mean() >= 0.9
    flipped = (d.images * d.masks.transpose(-1, -2).flip(-1)).flatten(1).sum(1) / d.masks.flatten(1).sum(1)
    assert lung.mean() < flipped.mean()
    small = load_split("JSRT", "test", size=64)
    assert small.images.shape == (40, 1, 64, 64)
    assert np.isclose(small.images.mean().item(), d.images.mean().item(), atol=1e-4)
