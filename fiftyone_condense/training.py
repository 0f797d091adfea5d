"""Plain supervised training and inference loops shared by teachers and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .device import autocast
from .progress import ProgressFn, chunks, silent


@dataclass(frozen=True)
class TrainConfig:
    """SGD with a step decay: the DC/DSA/DM evaluation recipe by default."""

    epochs: int
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    decay_at: float = 0.5  # the lr is multiplied by 0.1 once this fraction of epochs is done
    mixed_precision: bool = True


Augment = Callable[[torch.Tensor], torch.Tensor]


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
    """Train ``model`` on normalised ``images`` with cross-entropy; returns it in eval mode."""
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    model = model.to(device).train()
    images, labels = images.to(device), labels.to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    decay_epoch = int(config.epochs * config.decay_at)
    for epoch in range(config.epochs):
        if epoch == decay_epoch and epoch > 0:
            for group in optimizer.param_groups:
                group["lr"] *= 0.1
        permutation = torch.randperm(len(images), generator=order).to(device)
        for start, stop in chunks(len(images), config.batch_size):
            batch = permutation[start:stop]
            x = images[batch]
            if augment is not None:
                x = augment(x)
            with autocast(device, config.mixed_precision):
                loss = F.cross_entropy(model(x), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            progress((epoch + stop / len(images)) / config.epochs, f"epoch {epoch + 1}/{config.epochs}")
    return model.eval()


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 1024,
    mixed_precision: bool = True,
    progress: ProgressFn = silent,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features and logits of ``images`` (float32, on the CPU), in batches."""
    model = model.to(device).eval()
    features, logits = [], []
    for start, stop in chunks(len(images), batch_size):
        x = images[start:stop].to(device, non_blocking=True)
        with autocast(device, mixed_precision):
            embedding = model.embed(x)
            output = model.classifier(embedding)
        features.append(embedding.float().cpu())
        logits.append(output.float().cpu())
        progress(stop / len(images), f"{stop}/{len(images)} images")
    return torch.cat(features), torch.cat(logits)


def per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Accuracy of each class (NaN for a class absent from ``labels``)."""
    correct = torch.zeros(num_classes).index_add_(0, labels, (predictions == labels).float())
    counts = torch.bincount(labels, minlength=num_classes).float()
    return correct / counts.where(counts > 0, torch.tensor(float("nan")))


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from a teacher's soft labels (RDED / DC3 validation)."""

    epochs: int
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 256
    temperature: float = 4.0
    mixed_precision: bool = True


def train_student(
    student: nn.Module,
    teacher: nn.Module,
    images: torch.Tensor,
    config: DistillConfig,
    device: torch.device,
    augment: Augment,
    seed: int = 0,
    progress: ProgressFn = silent,
) -> nn.Module:
    """Train ``student`` to match ``teacher``'s temperature-softened outputs on augmented images.

    AdamW with a cosine schedule; the teacher labels each augmented batch afresh, so every
    view of an image carries its own soft label. Loss: ``T² · KL(teacher_T || student_T)``.
    """
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    student, teacher = student.to(device).train(), teacher.to(device).eval()
    images = images.to(device)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * -(-len(images) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    temperature = config.temperature
    for epoch in range(config.epochs):
        permutation = torch.randperm(len(images), generator=order).to(device)
        for start, stop in chunks(len(images), config.batch_size):
            x = augment(images[permutation[start:stop]])
            with torch.no_grad(), autocast(device, config.mixed_precision):
                target = F.softmax(teacher(x).float() / temperature, dim=1)
            with autocast(device, config.mixed_precision):
                log_student = F.log_softmax(student(x).float() / temperature, dim=1)
            loss = F.kl_div(log_student, target, reduction="batchmean") * temperature**2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        progress((epoch + 1) / config.epochs, f"epoch {epoch + 1}/{config.epochs}")
    return student.eval()
