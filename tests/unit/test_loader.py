"""fiftyone_condense.algorithms.loader on real files: every conversion to a working format checked pixel by pixel
against torchvision or PIL doing the same thing, the byte-bounded LRU cache, and lazy images."""

import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from fiftyone_condense.algorithms import loader
from fiftyone_condense.algorithms.loader import (
    ImageCache, ImageFiles, ImageFormat, LazyImages, decode, materialised, subset,
)

RNG = np.random.default_rng(5)


def save(folder, name: str, image: Image.Image, **options) -> str:
    path = str(folder / name)
    image.save(path, **options)
    return path


def noise(height: int, width: int, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def chw(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(2, 0, 1) if pixels.ndim == 3 else torch.from_numpy(pixels)[None]


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("height, width, size", [
    (40, 60, 24), (50, 77, 24), (77, 50, 24), (33, 100, 32), (121, 47, 32), (45, 46, 45), (20, 30, 48), (64, 64, 17),
])
@pytest.mark.parametrize("channels", [1, 3])
def test_crop_is_torchvisions_resize_then_centre_crop(tmp_path, height, width, size, channels):
    """Short side to ``size`` (long side truncated, as torchvision computes it), then the centre."""
    pixels = noise(height, width, channels)
    path = save(tmp_path, "photo.png", Image.fromarray(pixels))
    expected = v2.CenterCrop(size)(v2.Resize(size, antialias=True)(chw(pixels)))
    assert np.array_equal(decode(path, ImageFormat(size, channels)), expected.numpy())


@pytest.mark.parametrize("height, width, target", [(60, 90, (20, 40)), (90, 60, (20, 40)), (50, 50, (30, 12)),
                                                   (41, 97, (64, 48))])
def test_a_non_square_crop_covers_the_target_then_takes_the_centre(tmp_path, height, width, target):
    pixels = noise(height, width)
    path = save(tmp_path, "photo.png", Image.fromarray(pixels))
    target_h, target_w = target
    if target_h / height >= target_w / width:  # the height sets the scale
        cover = (target_h, int(target_h * width / height))
    else:
        cover = (int(target_w * height / width), target_w)
    assert cover[0] >= target_h and cover[1] >= target_w and (cover[0] == target_h or cover[1] == target_w)
    expected = TF.center_crop(TF.resize(chw(pixels), list(cover), antialias=True), list(target))
    out = decode(path, ImageFormat(target, 3))
    assert out.shape == (3, *target) and np.array_equal(out, expected.numpy())


@pytest.mark.parametrize("height, width", [(40, 100), (100, 40), (33, 57)])
def test_letterbox_fits_the_long_side_centres_and_pads_with_the_background(tmp_path, height, width):
    pixels = noise(height, width)
    path = save(tmp_path, "photo.png", Image.fromarray(pixels))
    target = (48, 40)
    scale = min(target[0] / height, target[1] / width)
    inner_h, inner_w = round(height * scale), round(width * scale)
    top, left = (target[0] - inner_h) // 2, (target[1] - inner_w) // 2
    out = decode(path, ImageFormat(target, 3, resize="letterbox", background=(10, 200, 30)))
    assert out.shape == (3, *target)
    inside = np.zeros(target, dtype=bool)
    inside[top:top + inner_h, left:left + inner_w] = True
    expected = TF.resize(chw(pixels), [inner_h, inner_w], antialias=True).numpy()
    assert np.array_equal(out[:, top:top + inner_h, left:left + inner_w], expected)
    assert (out[:, ~inside].T == (10, 200, 30)).all() and (~inside).sum() > 0


def test_grey_letterbox_padding_is_the_grey_of_the_background_as_transparent_pixels_are(tmp_path):
    """(64, 6, 253) is a colour where the luma formula rounded and PIL's integer conversion differ."""
    rgba = np.zeros((20, 40, 4), dtype=np.uint8)
    rgba[..., :3] = 128
    rgba[:, :10, 3] = 0  # a transparent left quarter
    rgba[:, 10:, 3] = 255
    path = save(tmp_path, "alpha.png", Image.fromarray(rgba, "RGBA"))
    background = (64, 6, 253)
    grey = Image.new("RGB", (1, 1), background).convert("L").getpixel((0, 0))
    out = decode(path, ImageFormat((40, 40), 1, resize="letterbox", background=background))[0]
    assert out[:10].tolist() == out[30:].tolist() == [[grey] * 40] * 10  # the padding above and below
    assert (out[10:30, :10] == grey).all() and (out[10:30, 10:] == 128).all()  # transparent / opaque


def test_an_image_already_at_the_working_size_is_not_resampled(tmp_path):
    pixels = noise(21, 34)
    path = save(tmp_path, "photo.png", Image.fromarray(pixels))
    for resize in ("crop", "letterbox"):
        assert np.array_equal(decode(path, ImageFormat((21, 34), 3, resize=resize)), chw(pixels).numpy())


# --------------------------------------------------------------------------- pixel conversions


def test_16_bit_is_scaled_to_8_bits_65535_to_255(tmp_path):
    values = np.array([[0, 257, 1000, 32767], [32768, 60000, 65534, 65535]], dtype=np.uint16)
    path = save(tmp_path, "deep.png", Image.fromarray(values))
    assert Image.open(path).mode == "I;16"
    out = decode(path, ImageFormat((2, 4), 1))[0]
    assert out.tolist() == np.rint(values / 257.0).astype(int).tolist()
    assert out[0, 0] == 0 and out[-1, -1] == 255
    assert (decode(path, ImageFormat((2, 4), 3)) == out).all()  # grey 16-bit repeated to RGB


def test_16_bit_values_all_above_255_are_not_clipped_to_white(tmp_path):
    values = RNG.integers(300, 60_000, size=(30, 50)).astype(np.uint16)
    path = save(tmp_path, "deep.png", Image.fromarray(values))
    out = decode(path, ImageFormat((30, 50), 1))[0].astype(int)
    assert Image.open(path).mode == "I;16" and values.min() > 255
    assert out.min() < 10 and out.max() < 240 and np.abs(out - values / 257.0).max() <= 0.5


def test_32_bit_integer_and_float_images(tmp_path):
    small = np.array([[0, 100, 255]], dtype=np.int32)  # mode I already in 8-bit range: kept
    wide = np.array([[0, 32896, 65535]], dtype=np.int32)  # mode I over the 16-bit range: scaled
    unit = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)  # mode F in [0, 1]: scaled
    for name, array, expected in [("small.tif", small, [0, 100, 255]), ("wide.tif", wide, [0, 128, 255]),
                                  ("unit.tif", unit, [0, 128, 255])]:
        path = save(tmp_path, name, Image.fromarray(array))
        assert Image.open(path).mode in ("I", "F")
        assert decode(path, ImageFormat((1, 3), 1))[0, 0].tolist() == expected


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pil_displays_it(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(tmp_path, "photo.jpg", Image.fromarray(noise(12, 30)), exif=exif, quality=95)
    with Image.open(path) as image:
        displayed = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    assert displayed.shape[:2] == ((12, 30) if orientation <= 4 else (30, 12))
    out = decode(path, ImageFormat(displayed.shape[:2], 3))  # the displayed shape: no resampling
    assert np.array_equal(out, chw(displayed).numpy())


def test_alpha_is_composited_on_the_background(tmp_path):
    rgba = np.zeros((3, 3, 4), dtype=np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[0, 0, 3], rgba[1, 1, 3], rgba[2, 2, 3] = 0, 255, 128
    path = save(tmp_path, "alpha.png", Image.fromarray(rgba, "RGBA"))
    out = decode(path, ImageFormat(3, 3, background=(255, 0, 0)))
    assert out[:, 0, 0].tolist() == [255, 0, 0]  # a fully transparent pixel comes out red
    assert out[:, 1, 1].tolist() == [10, 20, 30]
    pil = Image.alpha_composite(Image.new("RGBA", (3, 3), (255, 0, 0, 255)), Image.fromarray(rgba, "RGBA"))
    assert np.array_equal(out, chw(np.asarray(pil.convert("RGB"))).numpy())  # half-transparent: as PIL blends
    assert decode(path, ImageFormat(3, 3))[:, 0, 0].tolist() == [255, 255, 255]  # white by default


def test_grey_with_alpha_and_palette_transparency_are_composited_too(tmp_path):
    la = np.stack([np.full((2, 2), 50, np.uint8), np.array([[0, 255], [255, 0]], np.uint8)], axis=-1)
    la_path = save(tmp_path, "la.png", Image.fromarray(la, "LA"))
    assert decode(la_path, ImageFormat(2, 3, background=(0, 0, 255)))[:, :, 0].T.tolist() == [[0, 0, 255], [50, 50, 50]]
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 255, 0, 9, 9, 9] + [0] * 762)
    palette.putdata([0, 1])
    p_path = save(tmp_path, "p.png", palette, transparency=0)  # index 0 (green) is transparent
    assert decode(p_path, ImageFormat((1, 2), 3, background=(255, 0, 0)))[:, 0].T.tolist() == [[255, 0, 0], [9, 9, 9]]


def test_grey_becomes_rgb_and_rgb_becomes_pils_grey(tmp_path):
    grey = noise(6, 7, 1)
    colour = noise(6, 7, 3)
    grey_path = save(tmp_path, "grey.png", Image.fromarray(grey))
    colour_path = save(tmp_path, "colour.png", Image.fromarray(colour))
    assert np.array_equal(decode(grey_path, ImageFormat((6, 7), 3)), np.stack([grey] * 3))
    assert np.array_equal(decode(colour_path, ImageFormat((6, 7), 1))[0], np.asarray(Image.fromarray(colour).convert("L")))
    assert decode(colour_path, ImageFormat((6, 7), 3)).dtype == np.uint8


# --------------------------------------------------------------------------- the cache


def test_the_cache_never_holds_more_than_its_bytes():
    cache = ImageCache(capacity=1000)
    for i in range(200):
        cache.put((i,), 0, np.zeros(int(RNG.integers(1, 400)), np.uint8))
        assert cache.nbytes <= 1000
        assert cache.nbytes == sum(entry[1].nbytes for entry in cache._entries.values())
    cache.put(("too big",), 0, np.zeros(1001, np.uint8))
    assert cache.get(("too big",), 0) is None and cache.nbytes <= 1000
    assert cache.resize(300).nbytes <= 300


def test_the_least_recently_used_entry_goes_first():
    cache = ImageCache(capacity=300)
    for key in "abc":
        cache.put((key,), 1, np.zeros(100, np.uint8))
    assert cache.get(("a",), 1) is not None  # "a" is now the most recently used
    cache.put(("d",), 1, np.zeros(100, np.uint8))
    assert cache.get(("b",), 1) is None and all(cache.get((k,), 1) is not None for k in "acd")
    cache.put(("a",), 1, np.zeros(150, np.uint8))  # replacing an entry counts its new size once
    assert cache.nbytes <= 300 and cache.get(("a",), 1).nbytes == 150
    cache.resize(150)  # shrinking drops the least recently used first
    assert list(cache._entries) == [("a",)]


def test_a_cache_of_zero_bytes_keeps_nothing():
    cache = ImageCache(capacity=0)
    cache.put(("a",), 1, np.zeros(1, np.uint8))
    assert cache.nbytes == 0 and cache.get(("a",), 1) is None and not cache._entries


def test_clearing_the_cache_keeps_its_capacity():
    cache = ImageCache(capacity=500)
    cache.put(("a",), 1, np.zeros(100, np.uint8))
    cache.clear()
    assert cache.nbytes == 0 and cache.capacity == 500
    cache.put(("b",), 1, np.zeros(100, np.uint8))
    assert cache.get(("b",), 1) is not None


def test_an_entry_is_dropped_when_its_file_changes_on_disk(tmp_path):
    path = save(tmp_path, "x.png", Image.fromarray(np.zeros((4, 4), np.uint8)))
    cache = ImageCache(1 << 20)
    files = ImageFiles([path], ImageFormat(4, 1), cache)
    assert files.read(np.array([0])).max() == 0 and cache.nbytes == 16
    assert files.read(np.array([0])).max() == 0  # a hit
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(path)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later modification time
    assert files.read(np.array([0])).max() == 9 and cache.nbytes == 16  # re-read, replacing the stale entry


def test_one_file_at_two_formats_is_two_entries(tmp_path):
    path = save(tmp_path, "x.png", Image.fromarray(noise(8, 8)))
    cache = ImageCache(1 << 20)
    ImageFiles([path], ImageFormat(8, 3), cache).read(np.array([0]))
    ImageFiles([path], ImageFormat(4, 1), cache).read(np.array([0]))
    assert cache.nbytes == 3 * 64 + 16 and len(cache._entries) == 2


def test_the_process_wide_cache_takes_the_bound_each_call_passes():
    shared = loader._SHARED_CACHE
    try:
        assert loader.image_cache(1234) is shared and shared.capacity == 1234
        shared.put(("k",), 0, np.zeros(1000, np.uint8))
        assert loader.cached_bytes() == 1000
        loader.image_cache(999)
        assert loader.cached_bytes() == 0  # shrunk to the new bound
        assert loader.image_cache(0).capacity == 0
    finally:
        loader.image_cache(None)
    assert shared.capacity == loader.default_cache_bytes()


def test_the_default_bound_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("FIFTYONE_CONDENSE_CACHE_BYTES", "4096")
    assert loader.default_cache_bytes() == 4096
    monkeypatch.delenv("FIFTYONE_CONDENSE_CACHE_BYTES")
    assert loader.default_cache_bytes() == loader.DEFAULT_CACHE_BYTES


# --------------------------------------------------------------------------- files and lazy images


@pytest.fixture
def ten(tmp_path) -> list:
    """Ten grey files of different sizes; file i is uniformly 20·i."""
    return [save(tmp_path, f"{i}.png", Image.fromarray(np.full((5 + i, 9 - i % 3), 20 * i, np.uint8)))
            for i in range(10)]


def test_lazy_images_index_like_a_tensor(ten):
    cache = ImageCache(1 << 20)
    images = LazyImages(ImageFiles(ten, ImageFormat((4, 6), 1), cache))
    whole = torch.stack([torch.full((1, 4, 6), 20 * i / 255.0) for i in range(10)])
    assert images.shape == whole.shape and images.dtype == torch.float32 and len(images) == 10
    assert images.nbytes() == whole.numel() * 4 and cache.nbytes == 0  # nothing read yet
    for index in ([3, 1], np.array([9, 0, 9]), torch.tensor([2, 5]), slice(1, 8, 3), slice(-2, None),
                  np.arange(10) % 3 == 0, torch.tensor([True] * 5 + [False] * 5), -1, 4):
        expected = whole[index] if not isinstance(index, int) else whole[[index]]  # an int: a batch of one row
        assert torch.allclose(images[index], expected), index
    assert torch.equal(images.tensor(), whole) and torch.equal(torch.cat(list(images.batches(4))), whole)


def test_lazy_images_read_only_the_rows_asked_for(ten, monkeypatch):
    opened = []
    real_decode = loader.decode
    monkeypatch.setattr(loader, "decode", lambda path, fmt: opened.append(os.path.basename(path)) or real_decode(path, fmt))
    images = LazyImages(ImageFiles(ten, ImageFormat(4, 1), ImageCache(1 << 20)))
    images[[7, 2]]
    assert sorted(opened) == ["2.png", "7.png"]
    images[[2, 7, 3]]
    assert sorted(opened) == ["2.png", "3.png", "7.png"]  # 2 and 7 came from the cache


def test_subsets_and_maps_compose(ten):
    images = LazyImages(ImageFiles(ten, ImageFormat(4, 1), ImageCache(0)))
    part = images.subset([8, 6, 4, 2]).subset(slice(1, 3))  # rows 6 and 4
    assert len(part) == 2 and torch.allclose(part[:][:, 0, 0, 0], torch.tensor([120, 80]) / 255.0)
    rgb = part.map(lambda x: x.repeat(1, 3, 1, 1), channels=3).map(lambda x: x * 2)
    assert rgb.shape == (2, 3, 4, 4) and images.shape == (10, 1, 4, 4)  # the original is unchanged
    assert torch.allclose(rgb[[0]], torch.full((1, 3, 4, 4), 240 / 255.0))
    assert torch.equal(subset(images, [6, 4])[:], part[:]) and isinstance(subset(images, [1]), LazyImages)
    assert torch.equal(subset(images.tensor(), [6, 4]), part[:])
    assert rgb.to("cpu")[[1]].device.type == "cpu"


def test_small_sets_are_materialised_large_ones_stay_lazy(ten):
    images = LazyImages(ImageFiles(ten, ImageFormat(4, 1), ImageCache(0)))
    assert isinstance(materialised(images, max_bytes=images.nbytes()), torch.Tensor)
    assert materialised(images, max_bytes=images.nbytes() - 1) is images


def test_slow_files_decode_in_threads_in_order(ten, monkeypatch):
    monkeypatch.setattr(loader, "SLOW_DECODE_S", 0.0)  # every file counts as slow: threads after the first 8
    files = ImageFiles(ten * 3, ImageFormat(4, 1), ImageCache(0))
    pixels = files.read(np.arange(30)[::-1])
    assert files.slow_files and pixels[:, 0, 0, 0].tolist() == [20 * (i % 10) for i in range(30)][::-1]


def test_no_rows_is_an_empty_batch_of_the_working_shape(ten):
    assert ImageFiles(ten, ImageFormat((3, 5), 3), ImageCache(0)).read(np.array([], np.int64)).shape == (0, 3, 3, 5)
