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


# ------------------------------------------------------------------------------------------- intensity
def test_equalize_histogram_is_the_fraction_of_darker_pixels():
    from bundle.transforms import equalize_histogram

    x = torch.tensor([[[[0.0, 0.0, 5.0, 7.0], [7.0, 7.0, 9.0, 100.0]]]])  # 8 pixels
    e = equalize_histogram(x)
    want = torch.tensor([[[[0, 0, 2, 3], [3, 3, 6, 7]]]]) / 8  # #{darker} / N; ties equal; darkest -> 0
    assert torch.equal(e, want)


def test_equalize_histogram_ignores_monotonic_intensity_changes():
    from bundle.transforms import equalize_histogram

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 1, 20, 30), generator=g).float()
    ref = equalize_histogram(x / 255)
    assert torch.equal(equalize_histogram(x * 257), ref)  # 16-bit range
    assert torch.equal(equalize_histogram(x ** 2 + 3), ref)  # any increasing map
    assert not torch.equal(equalize_histogram(255 - x), ref)  # an inverted image is another image
    # each image on its own: a brighter copy of the batch changes nothing
    assert torch.equal(equalize_histogram(torch.cat([x[:1], x[1:] * 2])), equalize_histogram(x))


def test_normalize_intensity_modes():
    from bundle.transforms import normalize_intensity

    x = torch.rand(2, 1, 16, 16) * 0.3 + 0.5
    assert normalize_intensity(x, "unit") is x
    z = normalize_intensity(x, "zscore")
    assert torch.allclose(z.mean(dim=(2, 3)), torch.zeros(2, 1), atol=1e-5)
    assert torch.allclose(z.std(dim=(2, 3)), torch.ones(2, 1), atol=1e-5)
    with pytest.raises(ValueError, match="intensity must be one of"):
        normalize_intensity(x, "clahe")


def test_segmentation_net_keeps_its_intensity_mode_in_the_weights():
    from bundle.networks import LungSegNet

    a = LungSegNet(work_size=32, intensity="equalize")
    b = LungSegNet(work_size=32)  # zscore by default
    assert b.intensity == "zscore"
    b.load_state_dict(a.state_dict())
    assert b.intensity == "equalize"
    x = torch.rand(1, 1, 40, 40)
    assert torch.allclose(a.eval()(x), b.eval()(x))
    # weights saved before the option existed load as zscore
    old = {k: v for k, v in LungSegNet(work_size=32).state_dict().items() if k != "intensity_code"}
    c = LungSegNet(work_size=32, intensity="equalize")
    c.load_state_dict(old)
    assert c.intensity == "zscore"
    # an equalising network gives the same masks for a contrast-changed image (gamma 0.5)
    assert torch.allclose(a(x), a(x ** 0.5), atol=1e-5)


def test_equalize_counting_path_matches_sorting_exactly_and_other_values_fall_back():
    from bundle.transforms import _equalize_8bit, equalize_histogram

    def by_sorting(images):
        flat = images.float().flatten(2)
        srt = flat.sort(dim=2).values.contiguous()
        return (torch.searchsorted(srt, flat.contiguous()).float() / flat.shape[2]).view_as(images)

    g = torch.Generator().manual_seed(0)
    grey = torch.randint(0, 256, (3, 1, 40, 48), generator=g).float() / 255  # 8-bit images as loaded
    grey[1] = grey[1].clamp(0.2, 0.6)  # clipped ranges: many ties
    assert _equalize_8bit(grey.flatten(2)) is not None
    assert torch.equal(equalize_histogram(grey), by_sorting(grey))
    sixteen = torch.randint(0, 65536, (2, 1, 40, 48), generator=g).float() / 65535
    assert _equalize_8bit(sixteen.flatten(2)) is None  # not k / 255: the sorting path
    assert torch.equal(equalize_histogram(sixteen), by_sorting(sixteen))
    assert _equalize_8bit((grey * 2).flatten(2)) is None  # k / 255 above 1
