"""Merging a warm and a cold edit of the same image (DC3's combine modes).

All modes take two (N, C, H, W) batches and a seeded generator and return one batch:

* ``gradient`` — a random straight split (vertical or horizontal, at 30–70 % of the side)
  with a soft linear ramp ``ramp`` of the side wide: one side is the warm edit, the other
  the cold one, blended only inside the ramp.
* ``random`` — a per-pixel coin flip between the edits.
* ``grid`` — the image cut into ``blocks × blocks`` cells, each cell from one edit.
* ``fourfold`` — a 2×2 mosaic of half-size views: warm and cold on the top row, cold and
  warm below (the reference code names this mode but never implemented it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

COMBINE_MODES = ("gradient", "random", "grid", "fourfold")


def gradient_mask(n: int, height: int, width: int, generator: torch.Generator, ramp: float = 0.2) -> torch.Tensor:
    """(N, 1, H, W) weights of the warm edit: 1 before the split, 0 after, linear in between."""
    vertical = torch.rand(n, generator=generator) < 0.5
    split = 0.3 + 0.4 * torch.rand(n, generator=generator)
    ys = (torch.arange(height) + 0.5) / height
    xs = (torch.arange(width) + 0.5) / width
    position = torch.where(vertical.view(n, 1, 1), xs.view(1, 1, width).expand(n, height, width),
                           ys.view(1, height, 1).expand(n, height, width))
    half = ramp / 2
    return ((split.view(n, 1, 1) + half - position) / ramp).clamp(0, 1).unsqueeze(1)


def random_mask(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, 1, height, width, generator=generator) < 0.5).float()


def grid_mask(n: int, height: int, width: int, generator: torch.Generator, blocks: int = 4) -> torch.Tensor:
    cells = (torch.rand(n, 1, blocks, blocks, generator=generator) < 0.5).float()
    return F.interpolate(cells, size=(height, width), mode="nearest")


def fourfold(warm: torch.Tensor, cold: torch.Tensor) -> torch.Tensor:
    height, width = warm.shape[-2:]
    top, left = height // 2, width // 2
    size = [(top, left), (top, width - left), (height - top, left), (height - top, width - left)]
    quads = [F.interpolate(image, size=s, mode="bilinear", align_corners=False, antialias=True)
             for image, s in zip((warm, cold, cold, warm), size)]
    return torch.cat([torch.cat(quads[:2], dim=3), torch.cat(quads[2:], dim=3)], dim=2)


def combine(warm: torch.Tensor, cold: torch.Tensor, mode: str, generator: torch.Generator,
            ramp: float = 0.2, blocks: int = 4) -> torch.Tensor:
    """Merge the warm and cold edits by ``mode`` (see the module doc)."""
    if warm.shape != cold.shape:
        raise ValueError(f"warm and cold edits differ in shape: {tuple(warm.shape)} vs {tuple(cold.shape)}")
    n, _, height, width = warm.shape
    if mode == "fourfold":
        return fourfold(warm, cold)
    if mode == "gradient":
        mask = gradient_mask(n, height, width, generator, ramp)
    elif mode == "random":
        mask = random_mask(n, height, width, generator)
    elif mode == "grid":
        mask = grid_mask(n, height, width, generator, blocks)
    else:
        raise ValueError(f"Unknown combine mode {mode!r}; choose one of {COMBINE_MODES}")
    mask = mask.to(warm.device, warm.dtype)
    return mask * warm + (1 - mask) * cold
