"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021), written here.

The DSA paper's families and parameters: colour (brightness ±0.5, saturation ×[0, 2],
contrast ×[0.5, 1.5]), crop (integer translation up to 12.5 % with zero fill), cutout (a
zero square half the image side), horizontal flip, scale (×[1/1.2, 1.2] per axis) and
rotation (±15°). As in the reference (``aug_mode='S'``) one family is drawn per call.

Given a ``seed`` the draw is *Siamese*: every image of the batch, and every other batch
augmented with the same seed, gets the same transform; this is how distribution matching
augments real and synthetic batches alike. Without a seed each image draws its own.
Every operation is differentiable with respect to the pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSAParams:
    scale: float = 1.2
    rotate_degrees: float = 15.0
    crop_pad: float = 0.125
    cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


class DSA:
    """Callable augmentation: ``DSA()(images, seed=None) -> images``."""

    def __init__(self, strategy: str = "_".join(FAMILIES), single: bool = True, params: DSAParams = DSAParams()):
        self.families = tuple(strategy.split("_"))
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"Unknown DSA families {sorted(unknown)}; choose from {FAMILIES}")
        self.single = single
        self.params = params

    def __call__(self, x: torch.Tensor, seed: Optional[int] = None) -> torch.Tensor:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        draws = 1 if seed is not None else x.shape[0]
        if self.single:
            chosen = [self.families[int(torch.randint(len(self.families), (1,), generator=generator))]]
        else:
            chosen = list(self.families)
        for family in chosen:
            x = getattr(self, f"_{family}")(x, generator, draws)
        return x

    @staticmethod
    def _uniform(generator: torch.Generator, draws: int, like: torch.Tensor, *shape: int) -> torch.Tensor:
        return torch.rand((draws, *shape), generator=generator).to(device=like.device, dtype=like.dtype)

    def _color(self, x: torch.Tensor, generator: torch.Generator, draws: int) -> torch.Tensor:
        p = self.params
        x = x + (self._uniform(generator, draws, x, 1, 1, 1) - 0.5) * p.brightness
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (self._uniform(generator, draws, x, 1, 1, 1) * p.saturation) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (self._uniform(generator, draws, x, 1, 1, 1) + p.contrast) + mean

    def _crop(self, x: torch.Tensor, generator: torch.Generator, draws: int) -> torch.Tensor:
        height, width = x.shape[-2:]
        shift_y, shift_x = int(height * self.params.crop_pad + 0.5), int(width * self.params.crop_pad + 0.5)
        ty = torch.randint(-shift_y, shift_y + 1, (draws,), generator=generator)
        tx = torch.randint(-shift_x, shift_x + 1, (draws,), generator=generator)
        theta = torch.zeros(draws, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        # With align_corners=True a shift of k pixels is 2k/(size-1) in grid units: exact integer moves.
        theta[:, 0, 2] = -2.0 * tx / max(width - 1, 1)
        theta[:, 1, 2] = -2.0 * ty / max(height - 1, 1)
        return _warp(x, theta)

    def _cutout(self, x: torch.Tensor, generator: torch.Generator, draws: int) -> torch.Tensor:
        height, width = x.shape[-2:]
        cut_h, cut_w = int(height * self.params.cutout + 0.5), int(width * self.params.cutout + 0.5)
        cy = torch.randint(0, height + (1 - cut_h % 2), (draws, 1, 1), generator=generator)
        cx = torch.randint(0, width + (1 - cut_w % 2), (draws, 1, 1), generator=generator)
        top, left = cy - cut_h // 2, cx - cut_w // 2
        rows = torch.arange(height).view(1, -1, 1)
        cols = torch.arange(width).view(1, 1, -1)
        inside = (rows >= top) & (rows < top + cut_h) & (cols >= left) & (cols < left + cut_w)
        keep = (~inside).to(device=x.device, dtype=x.dtype).unsqueeze(1)
        return x * keep

    def _flip(self, x: torch.Tensor, generator: torch.Generator, draws: int) -> torch.Tensor:
        flip = self._uniform(generator, draws, x, 1, 1, 1) < 0.5
        return torch.where(flip, x.flip(3), x)

    def _scale(self, x: torch.Tensor, generator: torch.Generator, draws: int) -> torch.Tensor:
        ratio = self.params.scale
        factors = torch.rand(draws, 2, generator=generator) * (ratio - 1.0 / ratio) + 1.0 / ratio
        theta = torch.zeros(draws, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = factors[:, 0], factors[:, 1]
        return _warp(x, theta)

    def _rotate(self, x: torch.Tensor, generator: torch.Generator, draws: int) -> torch.Tensor:
        angle = (torch.rand(draws, generator=generator) - 0.5) * 2 * math.radians(self.params.rotate_degrees)
        theta = torch.zeros(draws, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), torch.sin(-angle)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
        return _warp(x, theta)


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Apply per-sample (or one shared, broadcast) affine transforms with zero fill."""
    theta = theta.to(device=x.device, dtype=x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True, padding_mode="zeros")


def shuffle_patches(x: torch.Tensor, factor: int = 2, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Cut each image into ``factor × factor`` patches and put them back in a random order (RDED)."""
    n, c, height, width = x.shape
    ph, pw = height // factor, width // factor
    core = x[..., : ph * factor, : pw * factor]
    patches = core.reshape(n, c, factor, ph, factor, pw).permute(0, 2, 4, 1, 3, 5).reshape(n, factor * factor, c, ph, pw)
    order = torch.argsort(torch.rand(n, factor * factor, generator=generator), dim=1).to(x.device)
    patches = patches[torch.arange(n, device=x.device).unsqueeze(1), order]
    shuffled = patches.reshape(n, factor, factor, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, ph * factor, pw * factor)
    out = x.clone()
    out[..., : ph * factor, : pw * factor] = shuffled
    return out


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float] = (0.5, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per image, a random crop of ``scale`` of the area and ``ratio`` aspect, resized back (bilinear)."""
    n = x.shape[0]
    area = torch.empty(n).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_ratio)
    crop_w = torch.sqrt(area * aspect).clamp(max=1.0)
    crop_h = torch.sqrt(area / aspect).clamp(max=1.0)
    centre_x = (torch.rand(n, generator=generator) * 2 - 1) * (1 - crop_w)
    centre_y = (torch.rand(n, generator=generator) * 2 - 1) * (1 - crop_h)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = crop_w, crop_h
    theta[:, 0, 2], theta[:, 1, 2] = centre_x, centre_y
    return _warp(x, theta)


class SoftAugment:
    """The soft protocol's augmentation: random-resized crop, horizontal flip, patch shuffle."""

    def __init__(self, factor: int = 2, scale: tuple[float, float] = (0.5, 1.0), seed: int = 0):
        self.factor = factor
        self.scale = scale
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = random_resized_crop(x, self.scale, generator=self.generator)
        flip = (torch.rand(x.shape[0], generator=self.generator) < 0.5).to(x.device).view(-1, 1, 1, 1)
        x = torch.where(flip, x.flip(3), x)
        return shuffle_patches(x, self.factor, self.generator) if self.factor > 1 else x
