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

from .mediancut import median_cut_torch


def median_cut(images: torch.Tensor, num_colors: int, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Median-Cut (PIL's) quantisation of [0, 1] images: (quantised images, colour indices (N, H, W)).

    As AutoPalette's ``get_index_map``, pixels become 8-bit by truncation (``ToPILImage``), and a
    grey image is quantised as RGB with three equal channels. On an accelerator it is computed
    there (:func:`.mediancut.median_cut_torch`, PIL's result exactly, no copy to the host); on a
    CPU PIL itself is faster (its C loop against some 160 small tensor operations per split: 2-5×
    measured, ``benchmarks/median_cut_speed.py``), on a pool of threads. ``backend`` ("pil",
    "torch") forces either.
    """
    channels = images.shape[1]
    pixels = (images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
    pixels = pixels.expand(-1, -1, -1, 3) if channels == 1 else pixels
    if backend == "pil" or (backend == "auto" and images.device.type == "cpu"):
        found = list(_quantize_pool().map(lambda image: _pil_median_cut(image, num_colors), pixels.cpu().numpy()))
        palettes, indices = (torch.stack(part).to(images.device) for part in zip(*found))
    else:
        palettes, indices = median_cut_torch(pixels.contiguous(), num_colors)
    colours = palettes.to(torch.float32) / 255.0
    quantised = torch.gather(colours, 1, indices.flatten(1).unsqueeze(2).expand(-1, -1, 3))
    quantised = quantised[..., :1] if channels == 1 else quantised
    return quantised.transpose(1, 2).reshape(images.shape).contiguous(), indices


def _pil_median_cut(pixels: np.ndarray, num_colors: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PIL's palette (K, 3) uint8, zero-padded, and colour indices (H, W) of one (H, W, 3) image."""
    paletted = Image.fromarray(pixels).quantize(colors=num_colors, method=Image.Quantize.MEDIANCUT)
    colours = np.asarray(paletted.getpalette()[: 3 * num_colors], dtype=np.uint8).reshape(-1, 3)
    colours = np.pad(colours, ((0, num_colors - len(colours)), (0, 0)))
    return torch.from_numpy(colours), torch.from_numpy(np.asarray(paletted, dtype=np.int64))


@functools.lru_cache(maxsize=1)
def _quantize_pool() -> ThreadPoolExecutor:
    """Threads for PIL's quantiser, which releases the GIL (64 images: 44 ms serial, 24 ms on 2
    threads, measured on 2 cores)."""
    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))


def palette_png(palette: torch.Tensor, indices: torch.Tensor, channels: int) -> Image.Image:
    """A real paletted ("P" mode) PNG image with one palette entry per colour used."""
    used, compact = torch.unique(indices, return_inverse=True)
    colours = (palette[used].clamp(0, 1) * 255).round().byte()
    colours = colours.repeat(1, 3) if channels == 1 else colours
    image = Image.fromarray(compact.numpy().astype(np.uint8), mode="P")
    image.putpalette(colours.flatten().tolist())
    return image
