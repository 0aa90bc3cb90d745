import numpy as np
import pytest
import torch
from PIL import Image

from bundle.io import InputError, save_image
from bundle.transforms import LoadGreyd, RandMaskCorruptiond, SaveMaskd, corrupt_mask, list_images

from .conftest import lung_mask


def test_corrupt_mask_is_binary_seeded_and_changes_the_mask():
    m = torch.from_numpy(lung_mask(64)).float()[None]
    a = corrupt_mask(m, np.random.RandomState(3))
    b = corrupt_mask(m, np.random.RandomState(3))
    torch.testing.assert_close(a, b)
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0}
    changed = [(corrupt_mask(m, np.random.RandomState(s)) != m).sum().item() for s in range(10)]
    assert min(changed) > 0


def test_rand_mask_corruption_dict():
    m = torch.from_numpy(lung_mask(64)).float()[None]
    t = RandMaskCorruptiond("label", output_key="image", prob=1.0)
    t.set_random_state(0)
    d = t({"label": m})
    torch.testing.assert_close(d["label"], m)
    assert (d["image"] != m).any()
    keep = RandMaskCorruptiond("label", prob=0.0)({"label": m})
    torch.testing.assert_close(keep["image"], m)


def test_load_and_save(tmp_path):
    a = np.zeros((10, 14), np.uint8)
    a[2:5, 3:9] = 255
    Image.fromarray(a).save(tmp_path / "x.png")
    save_image(tmp_path / "y.nii.gz", a.astype(np.float32))
    files = list_images(tmp_path)
    assert [p.split("/")[-1] for p in files] == ["x.png", "y.nii.gz"]
    for f in files:
        d = LoadGreyd("image")({"image": f})
        assert d["image"].shape == (1, 10, 14) and d["image"].max() == 1.0 and d["image_path"] == f
        SaveMaskd("pred", str(tmp_path / "out"))({"pred": d["image"], "image_path": f})
    out = np.asarray(Image.open(tmp_path / "out" / "y.png"))
    np.testing.assert_array_equal(out, a)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png", "y.png"]


def test_list_images_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        list_images(tmp_path / "none")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no .png"):
        list_images(tmp_path)
