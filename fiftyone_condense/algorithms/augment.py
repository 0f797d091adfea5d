"""Training-time augmentation, written to match the reference code draw for draw.

* :class:`DSA` — Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021), as the
  reference ``DiffAugment`` (VICO-UoE/DatasetCondensation ``utils.py``) runs it.
* :class:`SoftAugment` and :func:`cutmix` — the soft-label protocol's transforms, as RDED's
  ``validation/`` code (LINs-lab/RDED) runs them.

"The same draws" is literal: for the same seeds these functions return the reference's
tensors (``tests/test_reference_parity.py``), so a result can be compared with the papers'.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import RandomResizedCrop

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSAParams:
    """The reference's ``ParamDiffAug`` defaults."""

    scale: float = 1.2
    rotate_degrees: float = 15.0
    crop_pad: float = 0.125
    cutout: float = 0.5
    flip: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


class _Draws:
    """The reference's random numbers: with a seed, every draw re-seeds with the next integer
    (``set_seed_DiffAug``) and, ``shared``, every image takes the first image's draw; without a
    seed, draws come from torch's global generators, one per image."""

    def __init__(self, seed: Optional[int], shared: bool = True):
        self.next_seed = seed
        self.siamese = seed is not None and shared

    def _generator(self, device: torch.device) -> Optional[torch.Generator]:
        if self.next_seed is None:
            return None
        generator = torch.Generator(device=device).manual_seed(self.next_seed)
        self.next_seed += 1
        return generator

    def _shared(self, values: torch.Tensor) -> torch.Tensor:
        """Siamese: every image takes the first image's draw (the reference's ``x[:] = x[0]``)."""
        return values[:1] if self.siamese else values

    def uniform(self, n: int, device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self._shared(torch.rand(n, generator=self._generator(device), device=device, dtype=dtype))

    def integers(self, low: int, high: int, n: int, device: torch.device) -> torch.Tensor:
        return self._shared(torch.randint(low, high, (n,), generator=self._generator(device), device=device))


class DSA:
    """``DSA()(images, seed=None) -> images``: one family drawn per call, as the reference's
    ``aug_mode='S'`` (colour is brightness, saturation and contrast together).

    With a ``seed`` the transform is Siamese: every image of the batch, and every batch
    augmented with the same seed, gets the same transform; this is how distribution matching
    augments real and synthetic images alike. Without one, each image draws its own (the
    evaluation protocol), from torch's global generator, so ``torch.manual_seed`` fixes it.
    Every operation is differentiable with respect to the pixels. :meth:`blocks` augments many
    blocks (one per class) with one seed each, applying each drawn family once for all of them.
    """

    def __init__(self, strategy: str = "_".join(FAMILIES), params: DSAParams = DSAParams()):
        self.families = tuple(strategy.split("_"))
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"Unknown DSA families {sorted(unknown)}; choose from {FAMILIES}")
        self.params = params

    def __call__(self, x: torch.Tensor, seed: Optional[int] = None) -> torch.Tensor:
        family, values = self._draw(x, x.shape[0], _Draws(seed), x.device)
        return getattr(self, f"_{family}")(x, values).contiguous()

    def blocks(self, x: torch.Tensor, sizes: Sequence[int], seeds: Sequence[Optional[int]],
               shared: bool = True, offsets: Optional[Sequence[tuple[int, int]]] = None) -> torch.Tensor:
        """``torch.cat([self(block, seed) for block, seed in zip(x.split(sizes), seeds)])``, with
        each family that was drawn applied once to all the blocks that drew it: a handful of
        batched operations per call instead of one set per block, and no host synchronisation.
        The values are drawn on the CPU (the same on every device) and move to ``x``'s device once
        per family; a single call on a GPU draws there, as the reference does. ``shared=False``:
        each image of a block draws its own values, from the block's seeded generators. ``offsets``
        ((first row, rows of the whole block) per block): the blocks are parts of larger ones, and
        get the values their rows have in the whole block."""
        cpu = torch.device("cpu")
        offsets = offsets or [(0, size) for size in sizes]
        drawn = []
        for size, seed, (first, total) in zip(sizes, seeds, offsets):
            family, values = self._draw(x, total, _Draws(seed, shared), cpu)
            drawn.append((family, {name: value[first:first + size] for name, value in values.items()}))
        return self.apply(torch.split(x, list(sizes)), drawn)

    def draw(self, x: torch.Tensor) -> tuple[str, dict[str, torch.Tensor]]:
        """The family and per-image values ``self(x)`` draws (unseeded: from torch's global
        generators, on ``x``'s device), without transforming: see :meth:`apply`."""
        return self._draw(x, x.shape[0], _Draws(None), x.device)

    def apply(self, blocks: Sequence[torch.Tensor],
              drawn: Sequence[tuple[str, dict[str, torch.Tensor]]]) -> torch.Tensor:
        """``torch.cat`` of each block transformed with its drawn family and values (from
        :meth:`draw` or a seeded draw), each family applied once to all the blocks that drew it."""
        members: dict[str, list[int]] = {}
        for index, (family, _) in enumerate(drawn):
            members.setdefault(family, []).append(index)
        out: list[torch.Tensor] = list(blocks)
        for family, indices in members.items():
            rows = torch.cat([blocks[i] for i in indices])
            values = {name: torch.cat([drawn[i][1][name] for i in indices]).to(rows.device, non_blocking=True)
                      for name in drawn[indices[0]][1]}
            augmented = getattr(self, f"_{family}")(rows, values)
            for i, part in zip(indices, torch.split(augmented, [len(blocks[i]) for i in indices])):
                out[i] = part
        return torch.cat(out).contiguous()

    # -- draws: per family, one value per image of each kind, in the reference's order
    def _draw(self, x: torch.Tensor, n: int, draws: _Draws, device: torch.device) -> tuple[str, dict[str, torch.Tensor]]:
        family = self.families[int(draws.integers(0, len(self.families), 1, torch.device("cpu"))[0])]
        values = getattr(self, f"_draw_{family}")(x, n, draws, device)
        return family, {name: value.expand(n) for name, value in values.items()}

    def _draw_color(self, x: torch.Tensor, n: int, draws: _Draws, device: torch.device) -> dict[str, torch.Tensor]:
        return {name: draws.uniform(n, device, x.dtype) for name in ("brightness", "saturation", "contrast")}

    def _draw_crop(self, x: torch.Tensor, n: int, draws: _Draws, device: torch.device) -> dict[str, torch.Tensor]:
        shift_rows, shift_cols = self._crop_shifts(x)
        return {"rows": draws.integers(-shift_rows, shift_rows + 1, n, device),
                "cols": draws.integers(-shift_cols, shift_cols + 1, n, device)}

    def _draw_cutout(self, x: torch.Tensor, n: int, draws: _Draws, device: torch.device) -> dict[str, torch.Tensor]:
        (height, width), (cut_rows, cut_cols) = x.shape[-2:], self._cutout_sides(x)
        return {"top": draws.integers(0, height + (1 - cut_rows % 2), n, device),
                "left": draws.integers(0, width + (1 - cut_cols % 2), n, device)}

    def _draw_flip(self, x: torch.Tensor, n: int, draws: _Draws, device: torch.device) -> dict[str, torch.Tensor]:
        return {"flip": draws.uniform(n, device)}

    def _draw_scale(self, x: torch.Tensor, n: int, draws: _Draws, device: torch.device) -> dict[str, torch.Tensor]:
        return {"sx": draws.uniform(n), "sy": draws.uniform(n)}  # on the CPU, as the reference

    def _draw_rotate(self, x: torch.Tensor, n: int, draws: _Draws, device: torch.device) -> dict[str, torch.Tensor]:
        return {"angle": draws.uniform(n)}  # on the CPU, as the reference

    def _crop_shifts(self, x: torch.Tensor) -> tuple[int, int]:
        height, width = x.shape[-2:]
        return int(height * self.params.crop_pad + 0.5), int(width * self.params.crop_pad + 0.5)

    def _cutout_sides(self, x: torch.Tensor) -> tuple[int, int]:
        height, width = x.shape[-2:]
        return int(height * self.params.cutout + 0.5), int(width * self.params.cutout + 0.5)

    # -- transforms, with one drawn value per image
    def _color(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        p = self.params
        x = x + (v["brightness"].view(-1, 1, 1, 1) - 0.5) * p.brightness
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (v["saturation"].view(-1, 1, 1, 1) * p.saturation) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (v["contrast"].view(-1, 1, 1, 1) + p.contrast) + mean

    def _crop(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        """Integer translation with zero fill, up to ``crop_pad`` of each side."""
        n, channels, height, width = x.shape
        # Index a one-pixel zero border, clamping out-of-range positions onto it.
        rows = (torch.arange(height, device=x.device) + v["rows"].view(-1, 1) + 1).clamp(0, height + 1)
        cols = (torch.arange(width, device=x.device) + v["cols"].view(-1, 1) + 1).clamp(0, width + 1)
        padded = F.pad(x, [1, 1, 1, 1])
        picked_rows = padded.gather(2, rows.view(n, 1, height, 1).expand(n, channels, height, width + 2))
        return picked_rows.gather(3, cols.view(n, 1, 1, width).expand(n, channels, height, width))

    def _cutout(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        """Zero a square of ``cutout`` × the side, centred at a random pixel (clipped at the edges)."""
        height, width = x.shape[-2:]
        cut_rows, cut_cols = self._cutout_sides(x)
        top = v["top"].view(-1, 1, 1) - cut_rows // 2
        left = v["left"].view(-1, 1, 1) - cut_cols // 2
        rows = torch.arange(height, device=x.device).view(1, -1, 1)
        cols = torch.arange(width, device=x.device).view(1, 1, -1)
        inside = (rows >= top) & (rows < top + cut_rows) & (cols >= left) & (cols < left + cut_cols)
        return x * (~inside).to(x.dtype).unsqueeze(1)

    def _flip(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.where(v["flip"].view(-1, 1, 1, 1) < self.params.flip, x.flip(3), x)

    def _scale(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        ratio = self.params.scale
        theta = torch.zeros(len(v["sx"]), 2, 3, device=v["sx"].device)  # where the values are: no host round trip
        theta[:, 0, 0] = v["sx"] * (ratio - 1.0 / ratio) + 1.0 / ratio
        theta[:, 1, 1] = v["sy"] * (ratio - 1.0 / ratio) + 1.0 / ratio
        return _warp(x, theta)

    def _rotate(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        angle = (v["angle"] - 0.5) * 2 * self.params.rotate_degrees / 180 * math.pi
        theta = torch.zeros(len(angle), 2, 3, device=angle.device)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), torch.sin(-angle)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
        return _warp(x, theta)


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Per-image (or one shared, broadcast) affine transforms, bilinear with zero fill, with
    ``align_corners=False`` as the reference's ``affine_grid``/``grid_sample`` defaults."""
    theta = theta.to(device=x.device, dtype=x.dtype, non_blocking=True).expand(x.shape[0], 2, 3)  # no host wait
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------- soft-label protocol (RDED)


def shuffle_strips(image: torch.Tensor, factor: int, rng: random.Random) -> torch.Tensor:
    """RDED's ``ShufflePatches`` on one (C, H, W) image: cut it into ``factor`` vertical strips
    and shuffle them, then the same with horizontal strips. As in RDED, pixels beyond
    ``factor · (side // factor)`` are dropped (the resized crop that follows restores the size)."""
    for dim in (2, 1):
        strip = image.shape[dim] // factor
        strips = [image.narrow(dim, i * strip, strip) for i in range(factor)]
        rng.shuffle(strips)
        image = torch.cat(strips, dim)
    return image


class SoftAugment:
    """RDED's training transform, image by image: ShufflePatches(``factor``) →
    RandomResizedCrop(image size, scale (1/``factor``, ``max_scale``), antialias) → horizontal flip.

    The strip order comes from a seeded :class:`random.Random` (RDED: Python's ``random``), the
    crop and flip from torch's global generator (as torchvision draws them).
    """

    def __init__(self, size: tuple[int, int], factor: int = 2, max_scale: float = 1.0, seed: int = 0):
        self.factor = factor
        self.crop = RandomResizedCrop(size, scale=(1.0 / factor, max_scale), antialias=True)
        self.rng = random.Random(seed)

    def augment_one(self, image: torch.Tensor) -> torch.Tensor:
        if self.factor > 1:
            image = shuffle_strips(image, self.factor, self.rng)
        image = self.crop(image)
        return image.flip(-1) if torch.rand(1) < 0.5 else image

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.augment_one(image) for image in x])


def cutmix(images: torch.Tensor, rng: np.random.RandomState, beta: float = 1.0) -> torch.Tensor:
    """RDED's CutMix: one box, of area 1 − λ with λ ~ Beta(β, β), pasted from a permutation of the batch.

    The permutation comes from torch's global generator, λ and the box from ``rng`` (RDED: numpy's
    global generator), in RDED's order; the box is clipped at the borders as RDED's ``rand_bbox``.
    """
    order = torch.randperm(images.shape[0]).to(images.device)
    lam = rng.beta(beta, beta)
    rows, cols = images.shape[2], images.shape[3]
    cut_rows, cut_cols = int(rows * np.sqrt(1.0 - lam)), int(cols * np.sqrt(1.0 - lam))
    centre_row, centre_col = rng.randint(rows), rng.randint(cols)
    top, bottom = np.clip(centre_row - cut_rows // 2, 0, rows), np.clip(centre_row + cut_rows // 2, 0, rows)
    left, right = np.clip(centre_col - cut_cols // 2, 0, cols), np.clip(centre_col + cut_cols // 2, 0, cols)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[order, :, top:bottom, left:right]
    return mixed
