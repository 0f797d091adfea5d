"""Median-Cut colour quantisation (as AutoPalette's ``dm_quant.py: get_index_map`` computes it) and
palette PNGs: the target of AutoPalette's alignment loss and of its colour-guided initialisation,
and how its K-colour images are stored."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image


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
