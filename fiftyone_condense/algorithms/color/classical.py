"""The classical backend: warm and cold edits by a deterministic hue and temperature shift.

Warm: the hue turns towards red/yellow and the white balance warms (red up, blue down);
cold: the reverse. Strengths are drawn per image from the seeded generator, so a seed
fixes the output exactly.
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF


def shift_temperature(images: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Scale red by (1 + a) and blue by (1 − a) per image; ``amount`` is (N,)."""
    gains = torch.stack([1 + amount, torch.ones_like(amount), 1 - amount], dim=1).view(-1, 3, 1, 1)
    return (images * gains.to(images)).clamp(0, 1)


def shift_hue(images: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each image by ``hue`` (fractions of a turn, in [-0.5, 0.5])."""
    return torch.stack([TF.adjust_hue(image, float(h)) for image, h in zip(images, hue)])


def warm_and_cold(images: torch.Tensor, generator: torch.Generator,
                  temperature: float = 0.25, hue: float = 0.06) -> tuple[torch.Tensor, torch.Tensor]:
    """(warm, cold) edits of RGB ``images`` in [0, 1]."""
    n = images.shape[0]
    strength = 0.5 + 0.5 * torch.rand(2, n, generator=generator)  # 50–100 % of the maximum shift
    warm = shift_temperature(shift_hue(images, -hue * strength[0]), temperature * strength[0])
    cold = shift_temperature(shift_hue(images, hue * strength[1]), -temperature * strength[1])
    return warm, cold
