"""The torch Median-Cut (``mediancut.median_cut_torch``) against PIL's ``quantize(MEDIANCUT)``:
palette and index map exactly equal, image by image, on Fashion-MNIST, colour photos, noise and
images with fewer colours than K; and palette.py's ``median_cut`` unchanged by the switch to it."""

from __future__ import annotations

import ast
import inspect
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fiftyone_condense.algorithms import idx
from fiftyone_condense.algorithms.distillation import mediancut, palette
from fiftyone_condense.algorithms.distillation.mediancut import median_cut_torch

K_VALUES = [2, 4, 16, 64, 256]
PHOTOS = ("astronaut", "coffee", "chelsea")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The cut runs many small operations: intra-op threads only add waits (and on a busy machine
    make timings erratic)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pil_median_cut(image: np.ndarray, num_colors: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's quantisation of one (H, W, 3) uint8 image: palette (K, 3) zero-padded, indices (H, W)."""
    paletted = Image.fromarray(image).quantize(colors=num_colors, method=Image.Quantize.MEDIANCUT)
    colours = np.asarray(paletted.getpalette()[: 3 * num_colors], dtype=np.uint8).reshape(-1, 3)
    padded = np.zeros((num_colors, 3), dtype=np.uint8)
    padded[: len(colours)] = colours
    return padded, np.asarray(paletted, dtype=np.int64)


def assert_matches_pil(images: np.ndarray, num_colors: int) -> None:
    palettes, indices = median_cut_torch(torch.from_numpy(images), num_colors)
    assert palettes.shape == (len(images), num_colors, 3) and palettes.dtype == torch.uint8
    assert indices.shape == images.shape[:3] and indices.dtype == torch.int64
    for number, image in enumerate(images):
        expected_palette, expected_indices = pil_median_cut(image, num_colors)
        where = f"image {number}, K={num_colors}"
        assert np.array_equal(palettes[number].numpy(), expected_palette), f"palette of {where}"
        assert np.array_equal(indices[number].numpy(), expected_indices), f"indices of {where}"


@pytest.fixture(scope="module")
def fashion() -> np.ndarray:
    """64 Fashion-MNIST training images as RGB with three equal channels (as palette.py quantises
    grey images), 8-bit by truncation."""
    if not all((idx.FASHION_MNIST_DIR / name).exists() for name in idx.FASHION_MNIST_FILES["train"]):
        pytest.skip(f"Fashion-MNIST is not in {idx.FASHION_MNIST_DIR}")
    images = idx.fashion_mnist_tensors("train")[0][:64]
    pixels = (images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
    return pixels.expand(-1, -1, -1, 3).contiguous().numpy()


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    data = pytest.importorskip("skimage.data")
    return {name: getattr(data, name)() for name in PHOTOS}


def resized(photos: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Each photo resized (whole), and a window of twice the size resized, to size × size by PIL."""
    images = []
    for photo in photos.values():
        images.append(np.asarray(Image.fromarray(photo).resize((size, size), Image.Resampling.BICUBIC)))
        window = photo[100:100 + 2 * size, 150:150 + 2 * size]
        images.append(np.asarray(Image.fromarray(window).resize((size, size), Image.Resampling.BILINEAR)))
    return np.stack(images)


@pytest.mark.parametrize("num_colors", K_VALUES)
def test_fashion_mnist_matches_pil(fashion, num_colors):
    assert_matches_pil(fashion, num_colors)


@pytest.mark.parametrize("num_colors", K_VALUES)
@pytest.mark.parametrize("size", [32, 64])
def test_resized_photos_match_pil(photos, size, num_colors):
    assert_matches_pil(resized(photos, size), num_colors)


@pytest.mark.parametrize("num_colors", [4, 64, 256])
def test_full_resolution_crops_match_pil(photos, num_colors):
    """Windows of the photos at full resolution, not square (rows and columns kept apart)."""
    assert_matches_pil(np.stack([photo[60:156, 200:328] for photo in photos.values()]), num_colors)


@pytest.mark.parametrize("num_colors", K_VALUES)
def test_noise_matches_pil(num_colors):
    noise = np.random.default_rng(0).integers(0, 256, (8, 20, 24, 3), dtype=np.uint8)
    assert_matches_pil(noise, num_colors)


@pytest.mark.parametrize("levels", [2, 3, 5])
def test_few_channel_values_match_pil(levels):
    """Colours from a few values per channel: many boxes of equal pixel counts (the heap's order on
    ties decides which is split first) and many equidistant palette entries."""
    values = np.random.default_rng(levels).integers(0, levels, (16, 12, 12, 3)) * (255 // (levels - 1))
    for num_colors in (3, 5, 16, 64):
        assert_matches_pil(values.astype(np.uint8), num_colors)


def test_more_than_65536_colours_match_pil():
    """PIL histograms an image of more than 65536 distinct colours on colours shifted by a bit."""
    noise = np.random.default_rng(1).integers(0, 256, (1, 300, 300, 3), dtype=np.uint8)
    assert len(np.unique(noise.reshape(-1, 3), axis=0)) > 65536
    assert_matches_pil(noise, 64)


def test_fewer_colours_than_k_and_a_single_colour():
    """Images of 1, 3 and 7 colours in one batch with noise: as many palette entries as colours,
    zero rows after them; K = 1 gives the mean colour."""
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (4, 10, 10, 3), dtype=np.uint8)
    images[0] = [12, 200, 99]
    images[1] = [250, 1, 1]
    images[1, :5] = [0, 0, 255]
    images[1, 7:, 3:] = [30, 30, 30]
    seven = rng.integers(0, 256, (7, 3), dtype=np.uint8)
    images[2] = seven[rng.integers(0, 7, (10, 10))]
    for num_colors in (1, 2, 3, 4, 16, 256):
        assert_matches_pil(images, num_colors)
    palettes, indices = median_cut_torch(torch.from_numpy(images), 16)
    assert palettes[0, 1:].eq(0).all() and indices[0].eq(0).all()
    assert palettes[1, 3:].eq(0).all() and indices[1].max() == 2
    assert palettes[2, 7:].eq(0).all() and indices[2].max() == 6


def test_single_colour_images():
    image = np.full((2, 5, 7, 3), 77, dtype=np.uint8)
    image[1] = [0, 255, 3]
    for num_colors in (1, 8, 256):
        assert_matches_pil(image, num_colors)


def test_module_imports_no_pil_nor_fiftyone():
    """mediancut.py works on tensors: besides the standard library it imports torch (numpy at most)."""
    tree = ast.parse(inspect.getsource(mediancut))
    nodes = list(ast.walk(tree))
    imported = {alias.name.split(".")[0] for node in nodes if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in nodes if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - set(sys.stdlib_module_names) <= {"torch", "numpy"}


def pil_palette_median_cut(images: torch.Tensor, num_colors: int) -> tuple[torch.Tensor, torch.Tensor]:
    """palette.py's ``median_cut`` as it was (PIL, image by image)."""
    pixels = (images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    quantised, indices = [], []
    for image in pixels:
        channels = image.shape[2]
        rgb = Image.fromarray(np.repeat(image, 3, axis=2) if channels == 1 else image)
        paletted = rgb.quantize(colors=num_colors, method=Image.Quantize.MEDIANCUT)
        index = np.asarray(paletted, dtype=np.int64)
        colours = np.asarray(paletted.getpalette()[: 3 * num_colors], dtype=np.float32).reshape(-1, 3)
        colours = np.pad(colours, ((0, num_colors - len(colours)), (0, 0)))
        result = colours[index] / 255.0
        result = result[..., :1] if channels == 1 else result
        quantised.append(torch.from_numpy(result).permute(2, 0, 1))
        indices.append(torch.from_numpy(index))
    return torch.stack(quantised), torch.stack(indices)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_colors", [2, 8, 64])
def test_palette_median_cut_is_unchanged(channels, num_colors):
    """[0, 1] floats (with values outside, clamped), grey and colour, some with few colours."""
    torch.manual_seed(channels * 100 + num_colors)
    images = torch.rand(6, channels, 14, 18) * 1.2 - 0.1
    images[1] = (images[1] * 3).round() / 3  # a handful of colours
    images[2] = 0.5
    quantised, indices = palette.median_cut(images, num_colors, backend="torch")  # what an accelerator runs
    expected_quantised, expected_indices = pil_palette_median_cut(images, num_colors)
    assert all(torch.equal(a, b) for a, b in zip(palette.median_cut(images, num_colors), (quantised, indices)))
    assert quantised.dtype == expected_quantised.dtype and quantised.shape == expected_quantised.shape
    assert torch.equal(quantised, expected_quantised) and torch.equal(indices, expected_indices)


def test_palette_median_cut_on_fashion_mnist_is_unchanged(fashion):
    images = torch.from_numpy(fashion[:16, :, :, :1]).permute(0, 3, 1, 2).float() / 255
    quantised, indices = palette.median_cut(images, 64, backend="torch")
    expected_quantised, expected_indices = pil_palette_median_cut(images, 64)
    assert torch.equal(quantised, expected_quantised) and torch.equal(indices, expected_indices)
