"""Small image-tensor helpers shared by the algorithms: channel conversion and resizing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import CondensationError


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    """Grey (N, 1, H, W) images repeated to three channels; colour images unchanged."""
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


def with_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Images with ``channels`` channels: grey repeated to RGB when RGB is wanted."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1 and channels == 3:
        return as_rgb(images)
    raise CondensationError(f"Cannot compare images of {images.shape[1]} channels with images of {channels} channels")


def resized(images: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Images interpolated (antialiased) to ``size`` and clamped to [0, 1]; unchanged when already that size."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode=mode, align_corners=False, antialias=True).clamp(0, 1)
