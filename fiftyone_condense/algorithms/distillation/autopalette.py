"""AutoPalette (KeViNYuAn0314/AutoPalette ``distill/dm_quant.py``): DM or Decomposed DM on images
a palette network reduces to K colours; the network also learns colour losses against Median-Cut
(:mod:`.losses`), and the images are stored with K colours.

The palette network and the quantisations are computed as ``color_cnn.py: ColorCNN`` and
``dm_quant.py`` compute them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import torch
import torch.nn as nn

from ..params import param
from ..progress import ProgressFn, silent
from . import losses
from .ddm import DDMSettings, StyleMatching
from .dm import MeanMatching
from .loop import Distiller, register
from .palette import median_cut
from .sampling import to_device

BUDGETS = ("paper", "bits", "count")
WARMUP_BATCH = 256  # the reference's batch_train
STYLE_WEIGHTS = ("moments_weight", "correlation_weight", "diversity_weight", "style_carry_over")


@dataclass(frozen=True)
class AutoPaletteSettings(DDMSettings):
    """``dm_quant.py`` with the authors' commands (lr_quant 0.05, conf_ratio 0); Decomposed DM's
    weights apply with ``task="ddm"``."""

    method: ClassVar[str] = "autopalette"
    conditions: ClassVar[dict] = {name: {"task": "ddm"} for name in STYLE_WEIGHTS}
    task: str = param("dm", "Distillation loss behind the palette", label="Task loss", choices=("dm", "ddm"))
    num_colors: int = param(64, "Colours per image", label="Colours (K)", min=2, max=256)
    budget: str = param("paper", "Images per class: paper = IPC × 2^(8 − ⌈log₂K⌉) (the reference's), bits = "
                        "IPC × 8 / ⌈log₂K⌉ (the bytes of IPC 8-bit images), count = IPC", label="Storage budget",
                        choices=BUDGETS)
    palette_lr: float = param(0.05, "Palette network learning rate (reference: 0.05)", label="Palette lr", min=0.0)
    # The reference's --use_warmup: epochs over the real images fitting the palette network alone
    # before distilling (off in the authors' CIFAR-10 runs, 2 in their Tiny-ImageNet and ImageNet ones).
    palette_warmup: int = param(0, "Epochs fitting the palette network to the real images first (the reference's "
                                "--use_warmup; off for CIFAR-10)", label="Palette warm-up epochs", min=0)
    confidence_weight: float = param(0.0, "The reference code's per-pixel confidence term (0 in the authors' runs)",
                                     label="Confidence weight", min=0.0)
    normalize_palette_task: bool = param(False, "Give the palette network the task gradient divided by the task "
                                         "value (ours)", label="Normalised palette task")
    # Independent DSA draws for real and synthetic images, as dm_quant.py (it draws them from the
    # global generator; ours from per-class seeded generators, so any split across processes agrees).
    siamese: bool = False
    palette_momentum: float = 0.5
    palette_weight_decay: float = 5e-4
    max_color_weight: float = 1.0
    balance_weight: float = 1.0
    alignment_weight: float = 3.0
    colour_batch: int = 64  # synthetic images the colour losses see per iteration
    pixel_sample: float = 0.3  # share of each image's pixels the alignment loss compares

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.pixel_sample <= 1 or self.colour_batch < 1:
            raise ValueError("0 < pixel_sample <= 1 and colour_batch >= 1 are required")

    def images_per_class(self, ipc: int) -> int:
        """The storage budget: ``paper``: IPC × 2^(8 − ⌈log₂K⌉), as the reference code; ``bits``:
        IPC × 8 / ⌈log₂K⌉, the bytes of IPC 8-bit images; ``count``: IPC."""
        bits = math.ceil(math.log2(self.num_colors))
        if self.budget == "count":
            return ipc
        return ipc * 2 ** (8 - bits) if self.budget == "paper" else ipc * 8 // bits

    def default_lr_img(self, images: int) -> float:
        """10 from IPC 50 (its paper's Table 9), that is from the images per class IPC 50 gives
        under the budget (it grows with IPC); else the reference's 1."""
        return 10.0 if images >= self.images_per_class(50) else super().default_lr_img(images)


class PaletteNetwork(nn.Module):
    """1×1 conv C→256, ReLU, 1×1 conv 256→K without bias, softmax over the K colours."""

    def __init__(self, channels: int, num_colors: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_colors, kernel_size=1, bias=False),
        )
        self.num_colors = num_colors

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Colour-assignment probabilities (N, K, H, W)."""
        return torch.softmax(self.net(images), dim=1)


def soft_quantize(images: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """Training-time quantisation: each colour is the probability-weighted mean of the image's
    pixels, and each pixel the probability-weighted mix of colours (differentiable)."""
    weights = probabilities.flatten(2)  # (N, K, HW)
    pixels = images.flatten(2)  # (N, C, HW)
    palette = (weights @ pixels.transpose(1, 2)) / (weights.sum(2, keepdim=True) + 1e-8)  # (N, K, C)
    return (palette.transpose(1, 2) @ weights).view_as(images)


def hard_quantize(images: torch.Tensor, probabilities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Final quantisation: each pixel takes its argmax colour, each colour the mean of its pixels.

    Returns (palettes (N, K, C), indices (N, H, W)); an image then has at most K colours, and
    an unused colour is zero (as the reference's).
    """
    indices = probabilities.argmax(1)
    onehot = torch.nn.functional.one_hot(indices.flatten(1), probabilities.shape[1]).to(images.dtype)  # (N, HW, K)
    pixels = images.flatten(2)  # (N, C, HW)
    palette = (pixels @ onehot) / (onehot.sum(1, keepdim=True) + 1e-8)  # (N, C, K)
    return palette.transpose(1, 2), indices


@register
class AutoPalette(Distiller):
    """AutoPalette: the shared loop on soft-quantised images, with a palette network that the task
    loss and the colour losses train."""

    Settings = AutoPaletteSettings
    description = "AutoPalette: DM/DDM through a palette network; images stored with K colours"

    def __init__(self, *args, **kwargs):
        """As :class:`Distiller`, plus the palette network (seeded) and its optimiser."""
        super().__init__(*args, **kwargs)
        settings = self.settings
        torch.manual_seed(self.seed)
        self.palette = PaletteNetwork(self.shape[0], settings.num_colors).to(self.device)
        self.palette_optimizer = torch.optim.SGD(self.palette.parameters(), lr=settings.palette_lr,
                                                 momentum=settings.palette_momentum,
                                                 weight_decay=settings.palette_weight_decay)

    def make_matching(self) -> MeanMatching:
        return StyleMatching(self.settings) if self.settings.task == "ddm" else MeanMatching()

    def task_images(self, rows: slice = slice(None)) -> torch.Tensor:
        """Soft-quantised, as the reference, by a palette network that reads the normalised images."""
        return soft_quantize(self.synthetic[rows], self.palette(self.synthetic[rows]))

    def _update(self, task: torch.Tensor, iteration_seed: int) -> torch.Tensor:
        """As ``dm_quant.py``: the task loss (per class, divided by the number of classes) trains
        images and palette network; the colour losses then add to the palette network's gradient.
        With ``normalize_palette_task`` the palette network gets the task gradient divided by the
        task value instead (an option of ours)."""
        task = task / self.num_classes
        self.palette_optimizer.zero_grad(set_to_none=True)
        task.backward()
        self.parallel.sum_([self.synthetic.grad, *(parameter.grad for parameter in self.palette.parameters())])
        task = self._total(task)
        if self.settings.normalize_palette_task:
            scale = 1.0 / max(float(task), 1e-8)
            for parameter in self.palette.parameters():
                if parameter.grad is not None:
                    parameter.grad.mul_(scale)
        self.image_optimizer.step()
        generator = torch.Generator().manual_seed(iteration_seed)
        subset = to_device(torch.randperm(len(self.synthetic), generator=generator)[: self.settings.colour_batch], self.device)
        colour = self._colour_loss(self.synthetic.detach()[subset], np.random.RandomState(iteration_seed % 2**32))
        colour.backward()  # the same on every rank: computed on the same images, not summed
        self.palette_optimizer.step()
        return task + colour.detach()

    def _zero_loss(self) -> torch.Tensor:
        return super()._zero_loss() + sum(parameter.sum() for parameter in self.palette.parameters()) * 0.0

    def _colour_loss(self, images: torch.Tensor, rng: np.random.RandomState, confidence: bool = True) -> torch.Tensor:
        """The colour losses of the palette network on normalised, detached ``images``, against
        their Median-Cut quantisation (they train the palette network only)."""
        settings = self.settings
        probabilities = self.palette(images)
        target = median_cut(self.raw(images), settings.num_colors)[1]
        loss = (settings.max_color_weight * losses.max_color_loss(probabilities)
                + settings.balance_weight * losses.palette_balance_loss(probabilities)
                + settings.alignment_weight * losses.pixel_similarity_loss(probabilities, target, rng, settings.pixel_sample))
        return loss + settings.confidence_weight * losses.confidence_loss(probabilities) if confidence else loss

    def warm_up(self, progress: ProgressFn = silent) -> None:
        """The reference's optional warm-up: ``palette_warmup`` epochs over the real images in
        batches of 256, the palette network learning the colour losses alone (no confidence term)."""
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.RandomState(self.seed % 2**32)
        batches = [batch for _ in range(self.settings.palette_warmup)
                   for batch in torch.randperm(len(self.real), generator=generator).split(WARMUP_BATCH)]
        for step, batch in enumerate(batches):
            loss = self._colour_loss(to_device(self._normalised_real(batch), self.device), rng, confidence=False)
            self.palette_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.palette_optimizer.step()
            progress(0.0, f"palette warm-up {step + 1}/{len(batches)}")

    def state(self, iteration: int, history: list[float]) -> dict:
        return {**super().state(iteration, history), "palette": self.palette.state_dict(),
                "palette_optimizer": self.palette_optimizer.state_dict()}

    def load(self, state: dict) -> tuple[int, list[float]]:
        self.palette.load_state_dict(state["palette"])
        self.palette_optimizer.load_state_dict(state["palette_optimizer"])
        return super().load(state)

    def result(self) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Hard-quantised images in [0, 1], with their palettes (N, K, C) and colour indices (N, H, W)."""
        with torch.no_grad():
            palettes, indices = hard_quantize(self.synthetic, self.palette(self.synthetic))
            palettes = self.raw(palettes.transpose(1, 2).unsqueeze(-1)).squeeze(-1).transpose(1, 2).clamp(0, 1)
            images = torch.gather(palettes, 1, indices.flatten(1).unsqueeze(2).expand(-1, -1, palettes.shape[2]))
            images = images.transpose(1, 2).reshape(self.synthetic.shape)
            return images.cpu(), palettes.cpu(), indices.cpu()
