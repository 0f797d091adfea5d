"""Training and inference loops: the hard protocol's, the soft protocol's, and the teachers'.

Each loop follows its reference code step for step (what is drawn from which random generator
included), so that a seed gives the reference's result: ``train_classifier`` is the DC/DSA/DM
``evaluate_synset`` (VICO-UoE/DatasetCondensation), ``train_student`` is RDED's
``validation/main.py`` (LINs-lab/RDED). ``tests/test_reference_parity.py`` checks both.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .augment import cutmix
from .device import autocast
from .progress import ProgressFn, chunks, silent

Augment = Callable[[torch.Tensor], torch.Tensor]


CPU_MICRO_BATCH = 16


def micro_batch(model: nn.Module, device: torch.device) -> Optional[int]:
    """Images per forward/backward pass within a batch: on a CPU, 16 for a network without batch
    norm (its samples are normalised one by one, so a batch's gradient is the sum of its parts'),
    which keeps the feature maps in cache: ConvNet-3 trains 1.45× faster than in one 256-image pass
    (measured, fp32, 2 cores). None (the whole batch at once) elsewhere."""
    batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return CPU_MICRO_BATCH if device.type == "cpu" and not batch_norm else None


def cross_entropy_backward(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, device: torch.device,
                           mixed_precision: bool = False, parts: Optional[int] = None) -> None:
    """Back-propagate the batch-mean cross-entropy, ``parts`` images per pass (all at once if None)."""
    for x_part, labels_part in zip(torch.split(x, parts or len(x)), torch.split(labels, parts or len(x))):
        with autocast(device, mixed_precision):
            logits = model(x_part)
            loss = F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels_part,
                                   reduction="sum") / len(x)
        loss.backward()


def shuffled_batches(count: int, batch_size: int) -> DataLoader:
    """Index batches of one shuffled epoch per iteration, drawn as a ``DataLoader(shuffle=True)``
    over the images draws them (so torch's global seed gives the reference's order)."""
    return DataLoader(range(count), batch_size=batch_size, shuffle=True)


@dataclass(frozen=True)
class TrainConfig:
    """The DC/DSA/DM evaluation recipe: SGD 0.01, momentum 0.9, weight decay 5e-4, batch 256, the
    reference's step decay (``decay=False``: ``epochs`` passes at a constant learning rate)."""

    epochs: int
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    decay: bool = True
    mixed_precision: bool = False  # bf16 autocast: faster, not the reference's numbers

    def passes(self) -> tuple[int, Optional[int]]:
        """Passes over the images, and the pass after which the lr drops ×0.1 (None: never)."""
        return (self.epochs + 1, self.epochs // 2 + 1) if self.decay else (self.epochs, None)

    def optimizer(self, parameters: Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(parameters, lr=lr, momentum=self.momentum, weight_decay=self.weight_decay)


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    device: torch.device,
    seed: int = 0,
    augment: Optional[Augment] = None,
    progress: ProgressFn = silent,
) -> nn.Module:
    """Train ``model`` on normalised ``images`` with cross-entropy; returns it in eval mode.

    As the reference's ``evaluate_synset``: ``epochs + 1`` passes of shuffled batches, each
    batch augmented; after pass ``epochs // 2 + 1`` a new SGD at a tenth of the learning rate
    (so the momentum restarts). Without ``config.decay``: ``epochs`` passes at a constant rate.
    ``seed`` seeds torch's global generator, which draws the batch order and the augmentation.
    """
    torch.manual_seed(seed)
    model = model.to(device).train()
    images, labels = images.to(device), labels.to(device)
    lr, (passes, decay_after) = config.lr, config.passes()
    optimizer = config.optimizer(model.parameters(), lr)
    batches, parts = shuffled_batches(len(images), config.batch_size), micro_batch(model, device)
    for epoch in range(passes):
        for step, batch in enumerate(batches):
            batch = batch.to(device, non_blocking=True)  # no host wait per step
            x = images[batch]
            if augment is not None:
                x = augment(x)
            optimizer.zero_grad(set_to_none=True)
            cross_entropy_backward(model, x, labels[batch], device, config.mixed_precision, parts)
            optimizer.step()
            progress((epoch + (step + 1) / len(batches)) / passes, f"epoch {epoch + 1}/{passes}")
        if epoch == decay_after:
            lr *= 0.1
            optimizer = config.optimizer(model.parameters(), lr)
    return model.eval()


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 1024,
    mixed_precision: bool = False,
    progress: ProgressFn = silent,
    stored_features: Callable[[torch.Tensor], torch.Tensor] = lambda features: features,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features and logits of ``images`` (float32, on the CPU), in batches (a tensor or
    lazily read images); ``stored_features`` reduces each batch's features before they are kept."""
    model = model.to(device).eval()
    features, logits = [], []
    for start, stop in chunks(len(images), batch_size):
        x = images[start:stop].to(device, non_blocking=True)
        with autocast(device, mixed_precision):
            embedding = model.embed(x)
            output = model.classifier(embedding)
        features.append(stored_features(embedding.float()).cpu())
        logits.append(output.float().cpu())
        progress(stop / len(images), f"{stop}/{len(images)} images")
    return torch.cat(features), torch.cat(logits)


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``images`` (float32, on the CPU), in batches: ``model``'s forward, so any classifier
    (one with ``embed`` and ``classifier`` or not)."""
    model = model.to(device).eval()
    return torch.cat([model(images[start:stop].to(device, non_blocking=True)).float().cpu()
                      for start, stop in chunks(len(images), batch_size)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    return float((predict_logits(model, images, device).argmax(1) == labels).float().mean())


def per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Accuracy of each class (NaN for a class absent from ``labels``)."""
    correct = torch.zeros(num_classes).index_add_(0, labels, (predictions == labels).float())
    counts = torch.bincount(labels, minlength=num_classes).float()
    return correct / counts.where(counts > 0, torch.tensor(float("nan")))


# --------------------------------------------------------------------------- teachers


@dataclass(frozen=True)
class ConvergenceConfig:
    """Train until held-out accuracy stops improving: SGD (lr 0.01, momentum 0.9, wd 5e-4,
    batch 256); after ``patience`` epochs without a new best the lr drops ×0.1, after
    ``reductions`` drops training stops; at most ``max_epochs``; the best weights are kept."""

    max_epochs: int = 50
    patience: int = 2
    reductions: int = 2
    lr: float = 0.01
    batch_size: int = 256


def train_to_convergence(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    held_out: tuple[torch.Tensor, torch.Tensor],
    config: ConvergenceConfig,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn = silent,
) -> tuple[nn.Module, dict]:
    """Train ``model`` on normalised ``images`` until ``held_out`` accuracy converges.

    Returns the best model (eval mode) and a record: epochs run, best epoch, held-out accuracy.
    """
    torch.manual_seed(seed)
    model = model.to(device).train()
    images, labels = images.to(device), labels.to(device)
    recipe = TrainConfig(epochs=config.max_epochs, lr=config.lr, batch_size=config.batch_size)
    lr, optimizer = config.lr, recipe.optimizer(model.parameters(), config.lr)
    best, best_state, best_epoch, waited, reductions = -1.0, None, 0, 0, 0
    batches, parts = shuffled_batches(len(images), config.batch_size), micro_batch(model, device)
    for epoch in range(config.max_epochs):
        model.train()
        for batch in batches:
            batch = batch.to(device, non_blocking=True)  # no host wait per step
            optimizer.zero_grad(set_to_none=True)
            cross_entropy_backward(model, images[batch], labels[batch], device, parts=parts)
            optimizer.step()
        score = accuracy(model, *held_out, device)
        progress((epoch + 1) / config.max_epochs, f"epoch {epoch + 1} held-out accuracy {score:.3f}")
        if score > best:
            best, best_state, best_epoch, waited = score, copy.deepcopy(model.state_dict()), epoch + 1, 0
            continue
        waited += 1
        if waited >= config.patience:
            if reductions == config.reductions:
                break
            lr, waited, reductions = lr * 0.1, 0, reductions + 1
            optimizer = recipe.optimizer(model.parameters(), lr)
    model.load_state_dict(best_state)
    return model.eval(), {"epochs": epoch + 1, "best_epoch": best_epoch, "held_out_accuracy": best}


# --------------------------------------------------------------------------- soft-label protocol (RDED)


@dataclass(frozen=True)
class KDConfig:
    """RDED's relabel-and-train recipe: AdamW (lr 1e-3, betas 0.9/0.999, weight decay 0.01 on
    weight matrices only), RDED's cosine schedule stepped per epoch, CutMix (β = 1), KL loss at
    temperature 20 (RDED's value with CutMix)."""

    epochs: int = 300
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.01
    temperature: float = 20.0
    cutmix_beta: float = 1.0
    mixed_precision: bool = False


def rded_batch_size(num_images: int, num_classes: int) -> int:
    """RDED's ``re_batch_size`` (argument.py): 10 / 50 / 100 for IPC 1 / 10 / 50, doubled for 100
    or more classes, at most the number of images. Other IPCs take the row of the largest listed
    IPC not above them."""
    ipc = num_images / max(num_classes, 1)
    size = 100 if ipc >= 50 else 50 if ipc >= 10 else 10
    return int(min(size * (2 if num_classes >= 100 else 1), num_images))


def rded_schedule(epoch: int, epochs: int) -> float:
    """RDED's lr factor after ``epoch`` epochs: a quarter cosine from 1 down to 0.5 at the end."""
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs / 2)) if epoch <= epochs else 0.0


def weight_decay_groups(model: nn.Module, stacked: Optional[dict[str, torch.Tensor]] = None) -> list[dict]:
    """RDED's ``get_parameters``: weight decay on weight matrices and kernels, not on biases and norms.
    With ``stacked`` (several models' parameters stacked, by ``model``'s names) the groups of those."""
    named = dict(model.named_parameters())
    tensors = stacked if stacked is not None else named
    decayed = {name for name, p in named.items() if "weight" in name and p.dim() > 1}
    return [{"params": [tensors[name] for name in named if name in decayed]},
            {"params": [tensors[name] for name in named if name not in decayed], "weight_decay": 0.0}]


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """RDED's loss: ``KLDivLoss(batchmean)(log_softmax(s / T), softmax(t / T))`` (no T² factor)."""
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1), F.softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean")


def rded_validation_epochs(epochs: int) -> list[int]:
    """The epochs after which RDED tests the student: every 10th (and the last) past 80 % of
    training. The last epoch always counts (for runs of 5 epochs or fewer RDED tests none)."""
    return [e for e in range(epochs) if ((e % 10 == 9 or e == epochs - 1) and e > epochs * 0.8) or e == epochs - 1]


def train_student(
    student: nn.Module,
    teacher: nn.Module,
    images: torch.Tensor,
    config: KDConfig,
    device: torch.device,
    augment: Augment,
    seed: int = 0,
    progress: ProgressFn = silent,
    validate: Optional[Callable[[nn.Module], float]] = None,
) -> tuple[nn.Module, dict[int, float]]:
    """Train ``student`` on the teacher's soft labels of augmented, CutMixed ``images``.

    As RDED's ``train``: each batch is augmented image by image, CutMixed, labelled by the
    teacher at ``temperature`` and learnt with the KL loss. ``validate(student)`` is called after
    the epochs RDED tests at; returns the student (eval mode) and those accuracies by epoch.
    """
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    student, teacher = student.to(device).train(), teacher.to(device).eval()
    optimizer = torch.optim.AdamW(weight_decay_groups(student), lr=config.lr, betas=(0.9, 0.999),
                                  weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: rded_schedule(epoch, config.epochs))
    checkpoints = set(rded_validation_epochs(config.epochs)) if validate else set()
    validations: dict[int, float] = {}
    for epoch in range(config.epochs):
        student.train()
        for batch in shuffled_batches(len(images), config.batch_size):
            mixed = cutmix(augment(images[batch]).to(device), rng, config.cutmix_beta)
            with torch.no_grad(), autocast(device, config.mixed_precision):
                target = teacher(mixed).float()
            with autocast(device, config.mixed_precision):
                loss = kd_loss(student(mixed).float(), target, config.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if epoch in checkpoints:
            validations[epoch + 1] = validate(student)
        schedule.step()
        progress((epoch + 1) / config.epochs, f"epoch {epoch + 1}/{config.epochs}")
    return student.eval(), validations
