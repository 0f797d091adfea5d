"""AutoPalette's expert networks and the soft labels its evaluation trains on.

AutoPalette's DM variant (KeViNYuAn0314/AutoPalette ``distill/dm_quant.py``) evaluates a condensed
set on soft labels: the logits of expert networks that its ``buffer/buffer_FTD.py`` trained on the
source split (its replay buffer), turned into targets by ``SoftCrossEntropy`` (the softmax of the
logits). The experts train as there: ConvNet from scratch, DSA, SGD at ``lr_teacher`` 0.01 without
momentum or weight decay, at a constant rate, each step taken by GSAM (surrogate-gap guided
sharpness-aware minimisation, ``buffer/gsam/gsam.py``) with ρ = 2, α = 0.4, weight-adaptive.

Which logits label an image depends on the initialisation (``dm_quant.py``): with ``real`` or
``graphcut`` (the run its configs make) one expert's final weights label every image
(``one_expert``); with ``medcut_graphcut`` each image takes the mean logits of the experts that
classify it correctly (``correct_experts``). An image no expert classifies correctly would get
0/0 there; here it takes the mean over all experts instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn

from .augment import DSA
from .loader import ImagesLike
from .models import build_model
from .progress import ProgressFn, silent
from .teachers import Normalizer
from .training import cross_entropy_backward, micro_batch, predict, shuffled_batches

SOFT_LABEL_RULES = ("one_expert", "correct_experts")


@dataclass(frozen=True)
class ExpertConfig:
    """``buffer_FTD.py``'s defaults: 50 epochs, batch 256, lr 0.01, momentum 0, no weight decay,
    no decay of the rate, DSA, GSAM (ρ_max = ρ_min = 2, α = 0.4, adaptive)."""

    arch: str = "convnet3"
    num_experts: int = 1
    epochs: int = 50
    lr: float = 0.01
    batch_size: int = 256
    rho: float = 2.0
    alpha: float = 0.4
    adaptive: bool = True
    dsa: bool = True


def _norm(tensors: Sequence[torch.Tensor], scales: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """The L2 norm of all ``tensors`` together (each multiplied by ``|scale|`` first, when given)."""
    scales = scales or [None] * len(tensors)
    return torch.stack([(t if s is None else s.abs() * t).norm(p=2) for t, s in zip(tensors, scales)]).norm(p=2)


@torch.no_grad()
def gsam_update(params: Sequence[torch.Tensor], gradient_at: "GradientFn", rho: float, alpha: float,
                adaptive: bool, eps: float = 1e-12) -> None:
    """Leave in each ``p.grad`` GSAM's direction, as ``GSAM.step`` computes it before the base
    optimiser's step: the gradient ``g`` at ``w``; the perturbation ``e = ρ g / ‖g‖`` (adaptive:
    ``ρ g w² / ‖|w| g‖``); the gradient ``h`` at ``w + e``; then ``h − α (g − cos(g, h) ‖g‖ h/‖h‖)``."""
    gradient_at()
    old = [p.grad.clone() for p in params]
    scale = rho / (_norm(old, params if adaptive else None) + eps)
    perturbations = [g * scale * (p.square() if adaptive else 1.0) for p, g in zip(params, old)]
    for p, e in zip(params, perturbations):
        p.add_(e)
    gradient_at()
    new = [p.grad for p in params]
    new_norm, old_norm = _norm(new), _norm(old)
    cosine = sum((g * h).sum() for g, h in zip(old, new)) / (new_norm * old_norm + eps)
    for p, g, h, e in zip(params, old, new, perturbations):
        h.sub_(g - cosine * old_norm * h / (new_norm + eps), alpha=alpha)
        p.sub_(e)


class GradientFn:
    """Computes a batch's cross-entropy gradient into the model's ``.grad`` (zeroed first). After
    the first call batch norm keeps its running statistics (momentum 0), as GSAM's second pass."""

    def __init__(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, device: torch.device):
        self.model, self.x, self.labels, self.device = model, x, labels, device
        self.parts, self.calls = micro_batch(model, device), 0

    def __call__(self) -> None:
        self.model.zero_grad(set_to_none=False)
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.momentum = m.momentum if self.calls == 0 else 0.0
        with torch.enable_grad():
            cross_entropy_backward(self.model, self.x, self.labels, self.device, parts=self.parts)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        self.calls += 1


def train_expert(model: nn.Module, images: ImagesLike, labels: torch.Tensor, config: ExpertConfig,
                 device: torch.device, seed: int, progress: ProgressFn = silent) -> nn.Module:
    """One expert: ``config.epochs`` shuffled passes over normalised ``images``, each batch DSA-
    augmented (per image) and stepped by GSAM then SGD; returns it in eval mode."""
    torch.manual_seed(seed)
    model = model.to(device).train()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    params = [p for p in model.parameters()]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.0, weight_decay=0.0)
    augment, batches = DSA() if config.dsa else None, shuffled_batches(len(images), config.batch_size)
    for epoch in range(config.epochs):
        for step, rows in enumerate(batches):
            x = images[rows].to(device)
            x = augment(x) if augment is not None else x
            gsam_update(params, GradientFn(model, x, labels[rows].to(device), device), config.rho, config.alpha,
                        config.adaptive)
            optimizer.step()
            progress((epoch + (step + 1) / len(batches)) / config.epochs, f"epoch {epoch + 1}/{config.epochs}")
    return model.eval()


@dataclass
class Experts:
    """Trained experts and the normaliser they were trained behind (they take raw [0, 1] images)."""

    models: list[nn.Module]
    normalizer: Normalizer

    def logits(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(experts, N, classes): each expert's logits on raw [0, 1] ``images``."""
        x = self.normalizer(images)
        return torch.stack([predict(model, x, device)[1].float() for model in self.models])

    def soft_labels(self, images: torch.Tensor, labels: torch.Tensor, rule: str, device: torch.device) -> torch.Tensor:
        """The logits ``dm_quant.py`` gives the condensed images under ``rule`` (see the module)."""
        return soft_label_logits(self.logits(images, device), labels, rule)


def soft_label_logits(logits: torch.Tensor, labels: torch.Tensor, rule: str) -> torch.Tensor:
    """(N, classes) logits from every expert's (experts, N, classes) under ``rule``."""
    if rule not in SOFT_LABEL_RULES:
        raise ValueError(f"soft labels: rule must be one of {list(SOFT_LABEL_RULES)}, got {rule!r}")
    if rule == "one_expert":
        return logits[0]
    correct = (logits.argmax(2) == labels.view(1, -1)).unsqueeze(2).to(logits.dtype)
    count = correct.sum(0)
    correct_mean = (logits * correct).sum(0) / count.clamp_min(1)
    return torch.where(count > 0, correct_mean, logits.mean(0))


def train_experts(images: ImagesLike, labels: torch.Tensor, num_classes: int, config: ExpertConfig,
                  device: torch.device, seed: int = 0, progress: ProgressFn = silent) -> Experts:
    """``config.num_experts`` experts on ``images`` (floats in [0, 1]), expert ``i`` from seed ``seed + i``."""
    normalizer = Normalizer.fit(images)
    normalised, models = normalizer(images), []
    for index in range(config.num_experts):
        torch.manual_seed(seed + index)
        model = build_model(config.arch, images.shape[1], num_classes, tuple(images.shape[-2:]))
        share = lambda fraction, message, i=index: progress((i + fraction) / config.num_experts,  # noqa: E731
                                                             f"expert {i + 1}/{config.num_experts} {message}")
        models.append(train_expert(model, normalised, labels, config, device, seed + index, share).cpu())
    return Experts(models, normalizer)
