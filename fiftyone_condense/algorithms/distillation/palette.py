"""Median-Cut colour quantisation (as AutoPalette's ``dm_quant.py: get_index_map`` computes it) and
palette PNGs: the target of AutoPalette's alignment loss and of its colour-guided initialisation,
and how its K-colour images are stored."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .mediancut import median_cut_torch


def median_cut(images: torch.Tensor, num_colors: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Median-Cut (PIL's, computed in torch on the images' device) quantisation of [0, 1] images:
    (quantised images, colour indices (N, H, W)).

    As AutoPalette's ``get_index_map``, pixels become 8-bit by truncation (``ToPILImage``), and a
    grey image is quantised as RGB with three equal channels.
    """
    channels = images.shape[1]
    pixels = (images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
    pixels = pixels.expand(-1, -1, -1, 3) if channels == 1 else pixels
    palettes, indices = median_cut_torch(pixels.contiguous(), num_colors)
    colours = palettes.to(torch.float32) / 255.0
    quantised = torch.gather(colours, 1, indices.flatten(1).unsqueeze(2).expand(-1, -1, 3))
    quantised = quantised[..., :1] if channels == 1 else quantised
    return quantised.transpose(1, 2).reshape(images.shape).contiguous(), indices


def palette_png(palette: torch.Tensor, indices: torch.Tensor, channels: int) -> Image.Image:
    """A real paletted ("P" mode) PNG image with one palette entry per colour used."""
    used, compact = torch.unique(indices, return_inverse=True)
    colours = (palette[used].clamp(0, 1) * 255).round().byte()
    colours = colours.repeat(1, 3) if channels == 1 else colours
    image = Image.fromarray(compact.numpy().astype(np.uint8), mode="P")
    image.putpalette(colours.flatten().tolist())
    return image
