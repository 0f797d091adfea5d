"""Small image-tensor helpers shared by the algorithms: channel conversion and resizing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import CondensationError
from .loader import ImagesLike, LazyImages


def as_rgb(images: ImagesLike) -> ImagesLike:
    """Grey (N, 1, H, W) images repeated to three channels (lazily for lazy images); colour images unchanged."""
    if images.shape[1] != 1:
        return images
    if isinstance(images, LazyImages):
        return images.map(as_rgb, channels=3)
    return images.repeat(1, 3, 1, 1)


def with_channels(images: ImagesLike, channels: int) -> ImagesLike:
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
