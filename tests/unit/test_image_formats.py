"""Decoding any image file to one working format, and the bounded cache the loader reads through."""

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from fiftyone_condense.errors import CondensationError
from fiftyone_condense.loader import ImageCache, ImageFiles, ImageFormat, LazyImages, decode

RNG = np.random.default_rng(0)


def save(tmp_path, name: str, pixels: np.ndarray, mode=None, **options) -> str:
    path = str(tmp_path / name)
    Image.fromarray(pixels, mode=mode).save(path, **options)
    return path


def test_crop_resizes_the_short_side_and_centre_crops_as_torchvision_does(tmp_path):
    pixels = RNG.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    path = save(tmp_path, "wide.png", pixels)
    expected = v2.CenterCrop(24)(v2.Resize(24, antialias=True)(torch.from_numpy(pixels).permute(2, 0, 1)))
    assert np.array_equal(decode(path, ImageFormat(24, 3)), expected.numpy())


def test_letterbox_fits_the_long_side_and_pads_with_the_background(tmp_path):
    path = save(tmp_path, "wide.png", np.full((40, 80, 3), 7, dtype=np.uint8))
    out = decode(path, ImageFormat(32, 3, resize="letterbox", background=(200, 10, 20)))
    assert out.shape == (3, 32, 32)
    assert (out[:, 8:24] == 7).all()  # the 16 × 32 image in the middle
    assert (out[:, :8].reshape(3, -1).T == (200, 10, 20)).all() and (out[:, 24:].reshape(3, -1).T == (200, 10, 20)).all()


def test_16_bit_images_are_scaled_to_8_bits_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000], [30000, 60000, 65535]], dtype=np.uint16)
    path = str(tmp_path / "deep.png")
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    assert decode(path, ImageFormat((2, 3), 1))[0].tolist() == np.rint(values / 257.0).astype(int).tolist()


def test_transparent_pixels_are_composited_on_the_background(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[0, 0, 3], rgba[1, 1, 3], rgba[2, 2, 3] = 0, 255, 128
    path = save(tmp_path, "alpha.png", rgba, mode="RGBA")
    out = decode(path, ImageFormat(4, 3, background=(255, 0, 0)))
    assert out[:, 0, 0].tolist() == [255, 0, 0]  # fully transparent: the background
    assert out[:, 1, 1].tolist() == [10, 20, 30]  # opaque: the pixel
    assert out[:, 2, 2].tolist() == [132, 10, 15]  # half: 10·128/255 + 255·127/255 ≈ 132
    assert decode(path, ImageFormat(4, 3))[:, 0, 0].tolist() == [255, 255, 255]  # white by default


def test_grey_and_colour_convert_either_way(tmp_path):
    grey = save(tmp_path, "grey.png", np.full((5, 5), 90, dtype=np.uint8))
    colour = save(tmp_path, "colour.png", np.full((5, 5, 3), (255, 0, 0), dtype=np.uint8))
    assert (decode(grey, ImageFormat(5, 3)) == 90).all()
    assert (decode(colour, ImageFormat(5, 1)) == 76).all()  # ITU-R 601 luma of pure red


def test_exif_orientation_is_applied(tmp_path):
    path = str(tmp_path / "rotated.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed rotated 90° clockwise
    Image.fromarray(np.zeros((10, 30, 3), dtype=np.uint8)).save(path, exif=exif)
    assert decode(path, ImageFormat((30, 10), 3)).shape == (3, 30, 10)  # already the displayed shape: no resize


def test_the_cache_keeps_at_most_its_bytes_least_recently_used_out_first():
    cache = ImageCache(capacity=250)
    for key in "abc":
        cache.put((key,), 1, np.zeros(100, np.uint8))
    assert cache.nbytes == 200 and cache.get(("a",), 1) is None  # "a" made room for "c"
    cache.get(("b",), 1)
    cache.put(("d",), 1, np.zeros(100, np.uint8))
    assert cache.get(("b",), 1) is not None and cache.get(("c",), 1) is None
    assert cache.get(("b",), 2) is None  # another modification time: not trusted
    cache.put(("big",), 1, np.zeros(300, np.uint8))
    assert cache.get(("big",), 1) is None and cache.resize(0).nbytes == 0


def test_a_file_changed_on_disk_is_read_again(tmp_path):
    path = save(tmp_path, "x.png", np.zeros((4, 4), dtype=np.uint8))
    files = ImageFiles([path], ImageFormat(4, 1), ImageCache(1 << 20))
    assert files.read(np.array([0])).max() == 0
    save(tmp_path, "x.png", np.full((4, 4), 9, dtype=np.uint8))
    os.utime(path, ns=(1, 10**18))
    assert files.read(np.array([0])).max() == 9


def test_lazy_images_index_subset_and_map_like_a_tensor_reading_only_the_rows_asked_for(tmp_path):
    paths = [save(tmp_path, f"{i}.png", np.full((6, 6), 10 * i, dtype=np.uint8)) for i in range(5)]
    cache = ImageCache(1 << 20)
    images = LazyImages(ImageFiles(paths, ImageFormat(6, 1), cache))
    assert images.shape == (5, 1, 6, 6) and len(images) == 5 and cache.nbytes == 0
    assert torch.allclose(images[torch.tensor([4, 1])][:, 0, 0, 0], torch.tensor([40, 10]) / 255.0)
    assert cache.nbytes == 2 * 36
    doubled = images.subset([1, 2, 3]).map(lambda x: x * 2)
    assert torch.allclose(doubled[1:][:, 0, 0, 0], torch.tensor([40, 60]) / 255.0)
    assert torch.equal(images.tensor(), torch.cat(list(images.batches(2))))


def test_missing_and_undecodable_files_are_refused_with_their_names(tmp_path):
    good = save(tmp_path, "good.png", np.zeros((4, 4), dtype=np.uint8))
    broken = tmp_path / "broken.png"
    broken.write_bytes(Image.open(good).tobytes()[:5] + b"not a png")
    files = ImageFiles([good, str(broken), str(tmp_path / "gone.png")], ImageFormat(4, 1), ImageCache(0))
    with pytest.raises(CondensationError, match="1 image files cannot be decoded.*broken.png"):
        files.read(np.array([0, 1]))
    with pytest.raises(CondensationError, match="1 image files are missing.*gone.png"):
        files.read(np.array([0, 2]))


@pytest.mark.parametrize("bad", [dict(size=0), dict(channels=2), dict(resize="stretch"), dict(background=(0, 0))])
def test_an_impossible_format_is_refused(bad):
    with pytest.raises(CondensationError):
        ImageFormat(**{"size": 8, "channels": 1, **bad})
