"""Colour statistics of an image set: DC3's colour-homogenisation view, and two summaries.

* ``kde`` — per-channel Gaussian kernel density of the pixel values on [0, 1] (the
  paper's figure of normalised RGB values), on a fixed grid so sets can be overlaid;
* ``colorfulness`` — Hasler & Süsstrunk (2003): with rg = R − G and yb = (R + G)/2 − B,
  ``sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²)`` per image (pixels in 0–255), averaged;
* ``unique_colors`` — distinct RGB triplets per image, averaged.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import gaussian_kde

CHANNEL_NAMES = {1: ("gray",), 3: ("red", "green", "blue")}


def colorfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler–Süsstrunk colourfulness of each (C, H, W) image in [0, 1]; 0 for grey images."""
    if images.shape[1] == 1:
        return torch.zeros(images.shape[0])
    pixels = images.double() * 255.0
    red, green, blue = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    rg, yb = (red - green).flatten(1), (0.5 * (red + green) - blue).flatten(1)
    spread = torch.sqrt(rg.var(1, unbiased=False) + yb.var(1, unbiased=False))
    centre = torch.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)
    return (spread + 0.3 * centre).float()


def unique_colors(images: torch.Tensor) -> torch.Tensor:
    """Number of distinct 8-bit colours in each image."""
    quantised = (images.clamp(0, 1) * 255).round().long()
    codes = quantised[:, 0] if images.shape[1] == 1 else (quantised[:, 0] << 16) | (quantised[:, 1] << 8) | quantised[:, 2]
    return torch.tensor([len(torch.unique(code)) for code in codes.flatten(1)])


def channel_kde(images: torch.Tensor, points: int = 64, max_pixels: int = 100_000, seed: int = 0) -> dict:
    """Density of each channel's values on ``points`` grid positions in [0, 1]."""
    grid = np.linspace(0.0, 1.0, points)
    rng = np.random.default_rng(seed)
    density = {}
    names = CHANNEL_NAMES.get(images.shape[1], tuple(f"c{i}" for i in range(images.shape[1])))
    for channel, name in enumerate(names):
        values = images[:, channel].flatten().double().numpy()
        if len(values) > max_pixels:
            values = rng.choice(values, max_pixels, replace=False)
        if np.ptp(values) < 1e-9:  # a constant channel has no density to estimate: a spike
            spike = np.zeros(points)
            spike[int(np.argmin(np.abs(grid - values[0])))] = points - 1
            density[name] = spike.tolist()
        else:
            density[name] = gaussian_kde(values)(grid).tolist()
    return {"grid": grid.tolist(), "density": density}


def color_stats(images: torch.Tensor, points: int = 64, seed: int = 0) -> dict:
    """KDE, colourfulness and unique-colour counts of float images (N, C, H, W) in [0, 1]."""
    fullness = colorfulness(images)
    counts = unique_colors(images)
    return {
        "num_images": int(images.shape[0]),
        "channels": int(images.shape[1]),
        "kde": channel_kde(images, points, seed=seed),
        "colorfulness": {"mean": float(fullness.mean()), "std": float(fullness.std(unbiased=False)),
                         "per_image": fullness.tolist()},
        "unique_colors": {"mean": float(counts.float().mean()), "per_image": counts.tolist()},
    }
