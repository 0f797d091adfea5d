"""Decomposed DM (SaharR1372/DM_Style_matching): DM, plus style matching of the feature maps after
each normalisation layer (channel moments and Gram matrices of class-mean maps), plus intra-class
diversity of the synthetic embeddings; the formulas are in :mod:`.losses`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn as nn

from ..params import param
from . import losses
from .dm import MeanMatching
from .loop import Distiller, register
from .sampling import SyntheticBlocks
from .settings import DistillSettings


@dataclass(frozen=True)
class DDMSettings(DistillSettings):
    """Decomposed DM's weights (its README commands' values) and its k."""

    method: ClassVar[str] = "ddm"
    moments_weight: float = param(1e4, "Channel mean/std matching (reference: 1e4)", label="Moments weight", min=0.0)
    correlation_weight: float = param(1e4, "Gram matching (reference: 1e4)", label="Correlation weight", min=0.0)
    diversity_weight: float = param(10.0, "kNN intra-class KL (reference: 10)", label="Diversity weight", min=0.0)
    style_carry_over: bool = param(
        True, "As the authors' code, which never resets its style loss between classes: each class's style term "
        "also counts in every later class's, divided by the number of style layers each time (1.3-1.4x the style "
        "weight at 4-10 classes). Off: each class's term counts once", label="Carry style loss over classes")
    neighbours: int = 2  # the reference's k

    def __post_init__(self):
        super().__post_init__()
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, got {self.neighbours}")


class StyleRecorder:
    """Forward hooks that keep the outputs of a network's ``style_layers()``."""

    def __init__(self, network: nn.Module):
        layers = network.style_layers()
        if not layers:
            raise ValueError(f"{type(network).__name__} has no style layers for Decomposed DM")
        self.handles = [layer.register_forward_hook(self._hook) for layer in layers]
        self.maps: list[torch.Tensor] = []

    def _hook(self, module, inputs, output) -> None:
        self.maps.append(output)

    def take(self) -> list[torch.Tensor]:
        """The maps kept since the last call, in layer order per forward."""
        maps, self.maps = self.maps, []
        return maps

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


class StyleMatching(MeanMatching):
    """Decomposed DM's loss: DM's, plus the weighted moments and correlation distances of each
    style layer's class-mean maps (averaged over the layers), plus the weighted diversity."""

    def __init__(self, settings: DDMSettings):
        self.settings = settings
        self.carry: Optional[torch.Tensor] = None  # the carried-over class weights: the blocks are fixed for a run

    def recorder(self, net: nn.Module) -> StyleRecorder:
        return StyleRecorder(net)

    def features(self, embedding: torch.Tensor, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """The embedding, each style layer's map, then each layer's Gram matrix."""
        maps = [m.float() for m in maps]
        return [embedding, *maps, *(losses.gram(m) for m in maps)]

    def loss(self, real: list[torch.Tensor], synthetic: list[torch.Tensor], blocks: SyntheticBlocks) -> torch.Tensor:
        layers = (len(synthetic) - 1) // 2
        present, settings = blocks.present, self.settings
        moments = sum(losses.moments_distance(real_map[present], blocks.means(syn_map))
                      for real_map, syn_map in zip(real[1:1 + layers], synthetic[1:1 + layers])) / layers
        correlation = sum(losses.gram_distance(real_gram[present], blocks.means(syn_gram))
                          for real_gram, syn_gram in zip(real[1 + layers:], synthetic[1 + layers:])) / layers
        diversity = sum(losses.diversity_loss(block, settings.neighbours)
                        for block in torch.split(synthetic[0], blocks.counts))
        style = settings.moments_weight * moments + settings.correlation_weight * correlation
        if settings.style_carry_over:
            if self.carry is None:
                self.carry = self.carried_over(blocks, layers).to(style.device)
            style = style * self.carry
        return super().loss(real, synthetic, blocks) + style.sum() + settings.diversity_weight * diversity

    @staticmethod
    def carried_over(blocks: SyntheticBlocks, layers: int) -> torch.Tensor:
        """Each matched class's weight under the authors' carried-over style loss: its position among
        every class with synthetic images (any process's), in class order."""
        classes = torch.nonzero(blocks.class_counts > 0).flatten()
        positions = torch.searchsorted(classes, blocks.present.to(classes.device))
        return losses.carried_over_weights(positions, len(classes), layers)


@register
class DecomposedDM(Distiller):
    """Decomposed DM: the shared loop with :class:`StyleMatching`."""

    Settings = DDMSettings
    description = "Decomposed DM: DM + feature-map style matching + intra-class diversity"

    def make_matching(self) -> StyleMatching:
        return StyleMatching(self.settings)
