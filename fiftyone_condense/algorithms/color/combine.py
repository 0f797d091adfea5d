"""Merging a warm and a cold edit of the same image: DC3's combine modes.

The result is ``(1 − m)·warm + m·cold`` with ``m`` the weight of the cold edit, drawn as the
reference's ``Utils.combine_images`` draws it (at the edit size, 256 px by default):

* ``gradient`` — split at the centre, along the rows or the columns (``random.choice``), warm
  before the split and cold after, with a linear ramp of ``ramp`` (20) pixels across the split;
* ``random`` — a coin flip for every pixel *and channel* (numpy's ``rand(H, W, 3) < 0.5``);
* ``grid`` — cells of ``cell`` (8) pixels, row by row, each cold when ``random.random() < 0.5``;
* ``fourfold`` — ours (the reference names ``fourfold_view`` but stops with an error): a 2×2
  mosaic of half-size views, warm and cold on the top row, cold and warm below.

Per image the draws come in the reference's order: a warm style, a cold style, then the mask,
from a :class:`random.Random` and a :class:`numpy.random.RandomState` (the reference's Python
``random`` and numpy generators), so a seed gives the reference's styles and masks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .prompts import COLD_STYLES, WARM_STYLES

COMBINE_MODES = ("gradient", "random", "grid", "fourfold")


def gradient_mask(height: int, width: int, along_rows: bool, ramp: int = 20) -> torch.Tensor:
    """(1, H, W) cold weight: 0 before the centre, a ``linspace(0, 1, ramp)`` across it, then 1."""
    side = height if along_rows else width
    ramp = min(ramp, side)
    before = side // 2 - ramp // 2
    profile = torch.cat([torch.zeros(before), torch.linspace(0, 1, ramp, dtype=torch.float64).float(),
                         torch.ones(side - before - ramp)])
    mask = profile.view(-1, 1).expand(height, width) if along_rows else profile.view(1, -1).expand(height, width)
    return mask.unsqueeze(0)


def random_mask(height: int, width: int, rng: np.random.RandomState) -> torch.Tensor:
    """(3, H, W) cold weight, drawn per pixel and channel."""
    return torch.from_numpy((rng.rand(height, width, 3) < 0.5).astype(np.float32)).permute(2, 0, 1)


def grid_mask(height: int, width: int, rng: random.Random, cell: int = 8) -> torch.Tensor:
    """(1, H, W) cold weight: ``cell``-pixel squares, row-major, each cold with probability ½."""
    mask = torch.zeros(1, height, width)
    for top in range(0, height, cell):
        for left in range(0, width, cell):
            if rng.random() < 0.5:
                mask[:, top:top + cell, left:left + cell] = 1.0
    return mask


@dataclass
class EditPlan:
    """Per image: the warm and the cold style, and the cold weight (None for ``fourfold``)."""

    warm: list[str]
    cold: list[str]
    masks: Optional[list[torch.Tensor]]


def plan_edits(n: int, mode: str, size: tuple[int, int], seed: int, ramp: int = 20, cell: int = 8) -> EditPlan:
    """Styles and masks of ``n`` images of ``size`` (the edit size), drawn in the reference's order."""
    if mode not in COMBINE_MODES:
        raise ValueError(f"Unknown combine mode {mode!r}; choose one of {COMBINE_MODES}")
    rng, np_rng = random.Random(seed), np.random.RandomState(seed % 2**32)
    height, width = size
    warm, cold, masks = [], [], []
    for _ in range(n):
        warm.append(rng.sample(WARM_STYLES, 1)[0])
        cold.append(rng.sample(COLD_STYLES, 1)[0])
        if mode == "gradient":
            masks.append(gradient_mask(height, width, rng.choice(["horizontal", "vertical"]) == "vertical", ramp))
        elif mode == "random":
            masks.append(random_mask(height, width, np_rng))
        elif mode == "grid":
            masks.append(grid_mask(height, width, rng, cell))
    return EditPlan(warm, cold, masks if mode != "fourfold" else None)


def fourfold(warm: torch.Tensor, cold: torch.Tensor) -> torch.Tensor:
    height, width = warm.shape[-2:]
    top, left = height // 2, width // 2
    size = [(top, left), (top, width - left), (height - top, left), (height - top, width - left)]
    quads = [F.interpolate(image, size=s, mode="bilinear", align_corners=False, antialias=True)
             for image, s in zip((warm, cold, cold, warm), size)]
    return torch.cat([torch.cat(quads[:2], dim=3), torch.cat(quads[2:], dim=3)], dim=2)


def combine(warm: torch.Tensor, cold: torch.Tensor, plan: EditPlan) -> torch.Tensor:
    """Merge the warm and cold edits (N, 3, H, W) as ``plan`` says (see the module doc)."""
    if warm.shape != cold.shape:
        raise ValueError(f"warm and cold edits differ in shape: {tuple(warm.shape)} vs {tuple(cold.shape)}")
    if plan.masks is None:
        return fourfold(warm, cold)
    mask = torch.stack([m.expand(warm.shape[1], -1, -1) for m in plan.masks]).to(warm.device, warm.dtype)
    return (1 - mask) * warm + mask * cold
