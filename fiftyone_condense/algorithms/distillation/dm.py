"""DM, distribution matching (VICO-UoE/DatasetCondensation ``main_DM.py``): per class, the squared
distance between the mean embeddings of real and synthetic images under a fresh random ConvNet
each iteration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from .loop import Distiller, register
from .sampling import SyntheticBlocks
from .settings import DistillSettings


@dataclass(frozen=True)
class DMSettings(DistillSettings):
    """DM takes the shared settings alone."""

    method: ClassVar[str] = "dm"


class MeanMatching:
    """DM's loss: the squared distance of class-mean embeddings, summed over the classes."""

    def recorder(self, net: nn.Module) -> None:
        """DM needs no feature maps."""
        return None

    def features(self, embedding: torch.Tensor, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        return [embedding]

    def loss(self, real: list[torch.Tensor], synthetic: list[torch.Tensor], blocks: SyntheticBlocks) -> torch.Tensor:
        """``real``: class means of the real features; ``synthetic``: the synthetic images' features."""
        return (real[0][blocks.present] - blocks.means(synthetic[0])).square().sum()


@register
class DM(Distiller):
    """DM: the shared loop matching class-mean embeddings."""

    Settings = DMSettings
    description = "Distribution matching: class-mean embeddings of fresh random ConvNets"

    def make_matching(self) -> MeanMatching:
        return MeanMatching()
