"""AutoPalette's palette network and Median-Cut colour quantisation (as ``color_cnn.py: ColorCNN``
and ``dm_quant.py: get_index_map`` of the reference code compute them)."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn as nn
from PIL import Image


class PaletteNetwork(nn.Module):
    """1×1 conv C→256, ReLU, 1×1 conv 256→K without bias, softmax over the K colours."""

    def __init__(self, channels: int, num_colors: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_colors, kernel_size=1, bias=False),
        )
        self.num_colors = num_colors

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Colour-assignment probabilities (N, K, H, W)."""
        return torch.softmax(self.net(images), dim=1)


def soft_quantize(images: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """Training-time quantisation: each colour is the probability-weighted mean of the image's
    pixels, and each pixel the probability-weighted mix of colours (differentiable)."""
    weights = probabilities.flatten(2)  # (N, K, HW)
    pixels = images.flatten(2)  # (N, C, HW)
    palette = (weights @ pixels.transpose(1, 2)) / (weights.sum(2, keepdim=True) + 1e-8)  # (N, K, C)
    return (palette.transpose(1, 2) @ weights).view_as(images)


def hard_quantize(images: torch.Tensor, probabilities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Final quantisation: each pixel takes its argmax colour, each colour the mean of its pixels.

    Returns (palettes (N, K, C), indices (N, H, W)); an image then has at most K colours, and
    an unused colour is zero (as the reference's).
    """
    indices = probabilities.argmax(1)
    onehot = torch.nn.functional.one_hot(indices.flatten(1), probabilities.shape[1]).to(images.dtype)  # (N, HW, K)
    pixels = images.flatten(2)  # (N, C, HW)
    palette = (pixels @ onehot) / (onehot.sum(1, keepdim=True) + 1e-8)  # (N, C, K)
    return palette.transpose(1, 2), indices


def median_cut(images: torch.Tensor, num_colors: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Median-Cut (PIL) quantisation of [0, 1] images: (quantised images, colour indices (N, H, W)).

    As AutoPalette's ``get_index_map``, pixels become 8-bit by truncation (``ToPILImage``), and a
    grey image is quantised as RGB with three equal channels.
    """
    pixels = (images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    results = list(_quantize_pool().map(lambda image: _median_cut_one(image, num_colors), pixels))
    return torch.stack([quantised for quantised, _ in results]), torch.stack([index for _, index in results])


def _median_cut_one(pixels: np.ndarray, num_colors: int) -> tuple[torch.Tensor, torch.Tensor]:
    channels = pixels.shape[2]
    rgb = Image.fromarray(np.repeat(pixels, 3, axis=2) if channels == 1 else pixels)
    paletted = rgb.quantize(colors=num_colors, method=Image.Quantize.MEDIANCUT)
    index = np.asarray(paletted, dtype=np.int64)
    colours = np.asarray(paletted.getpalette()[: 3 * num_colors], dtype=np.float32).reshape(-1, 3)
    colours = np.pad(colours, ((0, num_colors - len(colours)), (0, 0)))
    result = colours[index] / 255.0
    result = result[..., :1] if channels == 1 else result
    return torch.from_numpy(result).permute(2, 0, 1), torch.from_numpy(index)


@functools.lru_cache(maxsize=1)
def _quantize_pool() -> ThreadPoolExecutor:
    """Threads for PIL's quantiser, which releases the GIL: AutoPalette quantises its colour batch
    every iteration (64 images: 44 ms serial, 24 ms on 2 threads, measured on 2 cores)."""
    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))


def palette_png(palette: torch.Tensor, indices: torch.Tensor, channels: int) -> Image.Image:
    """A real paletted ("P" mode) PNG image with one palette entry per colour used."""
    used, compact = torch.unique(indices, return_inverse=True)
    colours = (palette[used].clamp(0, 1) * 255).round().byte()
    colours = colours.repeat(1, 3) if channels == 1 else colours
    image = Image.fromarray(compact.numpy().astype(np.uint8), mode="P")
    image.putpalette(colours.flatten().tolist())
    return image
