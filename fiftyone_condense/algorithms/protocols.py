"""Evaluation protocols: train fresh models on a condensed set, test on held-out images.

Each follows its reference code (see :mod:`fiftyone_condense.algorithms.training`): ``hard`` is the DC/DSA/DM
protocol, ``soft`` is RDED's, which DC3 uses, and ``autopalette`` is AutoPalette's ``dm_quant.py``
evaluation (the hard protocol's training on soft labels from expert networks, :mod:`.experts`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from .architectures import NAMED_ARCHITECTURES, Arch, architecture, canonical_arch, probe_network
from .augment import DSA, SoftAugment
from .distributed import Parallel
from .ensemble import train_classifiers, train_students
from .experts import SOFT_LABEL_RULES, ExpertConfig, Experts
from .models import ARCHITECTURES
from .errors import CondensationError
from .params import Param, declared, param
from .progress import ProgressFn, silent
from .teachers import Normalizer
from .training import (
    ConvergenceConfig, KDConfig, TrainConfig, accuracy, per_class_accuracy, predict_logits, rded_batch_size, train_classifier,
    train_student,
)


@dataclass(frozen=True)
class ProtocolSettings:
    """What every protocol declares: ``num_models`` fresh ``arch`` networks, trained ``epochs`` epochs.

    ``arch`` is any architecture :mod:`.architectures` accepts (a name, ``torchvision:<model>`` or a
    callable); it is kept in its canonical form (``"ConvNetD4"`` becomes ``"convnet4"``), and
    :meth:`as_dict` records a callable by its qualified name, so the record stays JSON.
    """

    arch: Arch = param("convnet3", "Network trained from scratch on the condensed set: one of ours (listed), a name "
                       "of the DC/DSA/DM code such as ConvNetD4 or ResNet18BN, torchvision:<model>, or in the SDK a "
                       "callable (channels, num_classes, image_size) -> nn.Module", label="Architecture",
                       choices=NAMED_ARCHITECTURES, parse=canonical_arch)
    epochs: int = param(1000, "Training epochs per model", label="Epochs", min=1)
    num_models: int = param(5, "Models trained; accuracy is mean ± std", label="Models", min=1)

    def __post_init__(self):
        try:
            object.__setattr__(self, "arch", canonical_arch(self.arch))
        except ValueError as error:
            raise ValueError(f"arch {error}") from None
        if self.epochs < 1 or self.num_models < 1:
            raise ValueError("epochs and num_models must be at least 1")

    def as_dict(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "arch": architecture(self.arch).name}


@dataclass(frozen=True)
class HardProtocol(ProtocolSettings):
    """The DC/DSA/DM standard (reference ``evaluate_synset``): SGD 0.01, momentum 0.9, wd 5e-4,
    batch 256, ``epochs + 1`` passes with the lr ×0.1 after pass ``epochs // 2 + 1``, DSA."""

    epochs: int = param(1000, "Training epochs per model (hard protocol: 1000)", label="Epochs", min=1)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    dsa: bool = True
    mixed_precision: bool = False
    name: str = field(default="hard", init=False)

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
            batch_size=self.batch_size, mixed_precision=self.mixed_precision,
        )


@dataclass(frozen=True)
class SoftProtocol(ProtocolSettings):
    """RDED's validation (used by DC3): soft labels of a teacher trained to convergence on the
    source split, KL at temperature 20 on CutMixed batches, AdamW 1e-3 with RDED's quarter-cosine
    schedule, ShufflePatches → RandomResizedCrop → flip, RDED's batch size (``batch_size=None``)."""

    epochs: int = param(300, "Training epochs per model (RDED: 300)", label="Epochs", min=1)
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: Optional[int] = None
    temperature: float = param(20.0, "Softens teacher and student outputs (RDED with CutMix: 20)",
                               label="KD temperature", min=0.1)
    cutmix_beta: float = 1.0
    patch_factor: int = 2
    max_crop_scale: float = 1.0
    teacher_arch: str = param("convnet3", "Network trained to convergence on the source split (cached) that gives "
                              "the soft labels", label="Teacher", choices=ARCHITECTURES)
    teacher_epochs: int = param(50, "Training stops earlier when held-out accuracy converges",
                                label="Teacher epochs (at most)", min=1)
    mixed_precision: bool = False
    name: str = field(default="soft", init=False)

    def __post_init__(self):
        super().__post_init__()
        if self.teacher_arch not in ARCHITECTURES:
            raise ValueError(f"Unknown teacher architecture {self.teacher_arch!r}; choose one of {ARCHITECTURES}")
        if self.temperature <= 0 or self.patch_factor < 1:
            raise ValueError("temperature must be positive and patch_factor at least 1")

    def kd_config(self, num_images: int, num_classes: int) -> KDConfig:
        batch_size = self.batch_size or rded_batch_size(num_images, num_classes)
        return KDConfig(epochs=self.epochs, batch_size=batch_size, lr=self.lr, weight_decay=self.weight_decay,
                        temperature=self.temperature, cutmix_beta=self.cutmix_beta, mixed_precision=self.mixed_precision)

    def teacher_config(self) -> ConvergenceConfig:
        return ConvergenceConfig(max_epochs=self.teacher_epochs)


@dataclass(frozen=True)
class AutoPaletteProtocol(HardProtocol):
    """AutoPalette's evaluation (``dm_quant.py`` → ``utils_baseline.evaluate_synset``): the hard
    protocol's schedule, SGD and DSA, but each image's target is the softmax of expert logits
    (``SoftCrossEntropy``). In the DM variant the label and learning-rate optimisers never get a
    gradient, so the labels stay the experts' logits and the rate stays ``lr_teacher`` (0.01).
    Batch 128 as its configs (``batch_train``); experts as ``buffer_FTD.py`` trains them."""

    epochs: int = param(1000, "Training epochs per model (AutoPalette: 1000)", label="Epochs", min=1)
    soft_labels: str = param("one_expert", "Which expert logits label an image: one expert's (AutoPalette's configs, "
                             "init graphcut/real) or the mean of the experts that classify it correctly (init "
                             "medcut_graphcut)", label="Soft labels", choices=SOFT_LABEL_RULES)
    num_experts: int = param(10, "Experts trained on the source split (cached) for 'correct_experts' (one buffer "
                             "file of AutoPalette's); 'one_expert' trains one", label="Experts", min=1)
    expert_epochs: int = param(50, "Epochs each expert trains (AutoPalette's buffer: 50)", label="Expert epochs", min=1)
    batch_size: int = 128
    name: str = field(default="autopalette", init=False)

    def __post_init__(self):
        super().__post_init__()
        if self.soft_labels not in SOFT_LABEL_RULES:
            raise ValueError(f"soft_labels must be one of {list(SOFT_LABEL_RULES)}, got {self.soft_labels!r}")
        if self.num_experts < 1 or self.expert_epochs < 1:
            raise ValueError("num_experts and expert_epochs must be at least 1")

    def expert_config(self) -> ExpertConfig:
        experts = self.num_experts if self.soft_labels == "correct_experts" else 1
        return ExpertConfig(num_experts=experts, epochs=self.expert_epochs)


Protocol = Union[HardProtocol, SoftProtocol, AutoPaletteProtocol]
PROTOCOLS = {"hard": HardProtocol, "soft": SoftProtocol, "autopalette": AutoPaletteProtocol}


def protocol_parameters(protocol: Optional[str] = None) -> tuple[Param, ...]:
    """The parameters ``protocol`` declares; without one, every protocol's, where a default differs
    between protocols (``epochs``) ``None``: each protocol's own."""
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise CondensationError(f"Unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
        return declared(PROTOCOLS[protocol])
    merged: dict[str, Param] = {}
    for settings in PROTOCOLS.values():
        for p in declared(settings):
            same = merged.get(p.name, p).default == p.default
            merged[p.name] = p if same else Param(p.name, p.type, None, p.help, p.label, optional=True)
    return tuple(merged.values())


class Renormalized(nn.Module):
    """A teacher that takes raw [0, 1] images, fed the student's standardised inputs."""

    def __init__(self, teacher_on_raw: nn.Module, student_normalizer: Normalizer):
        super().__init__()
        self.teacher = teacher_on_raw
        self.student_normalizer = student_normalizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher(self.student_normalizer.inverse(x))


@dataclass
class EvaluationResult:
    """Accuracy of each trained model on the test images, with summary statistics.

    ``accuracies`` are after the last epoch. The soft protocol also keeps, per model, the best
    accuracy over the epochs RDED tests at (``best_accuracies``): what RDED and DC3 report.
    """

    accuracies: list[float]
    per_class: list[float]
    num_train: int
    seconds: float
    protocol: dict
    best_accuracies: Optional[list[float]] = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))

    def as_dict(self) -> dict:
        summary = {**asdict(self), "mean": self.mean, "std": self.std}
        if self.best_accuracies:
            summary.update(best_mean=float(np.mean(self.best_accuracies)), best_std=float(np.std(self.best_accuracies)))
        return summary


def model_progress(progress: ProgressFn, indices: range, total: int) -> ProgressFn:
    """Progress of training the models ``indices`` (together, or one alone) out of ``total``."""
    label = f"model {indices.start + 1}" if len(indices) == 1 else f"models {indices.start + 1}-{indices.stop}"
    return lambda fraction, message: progress((indices.start + fraction * len(indices)) / total,
                                              f"{label}/{total} {message}")


def seeded_models(arch: Arch, shape: tuple, seeds: Sequence[int]) -> list[nn.Module]:
    """One fresh network per seed, each built right after ``torch.manual_seed(seed)``; the first is
    probed on blank images of ``shape`` (a ``ValueError`` if it cannot take them)."""
    resolved = architecture(arch)
    models = []
    for model_seed in seeds:
        torch.manual_seed(model_seed)
        models.append(resolved.build(*shape))
    if models:
        probe_network(models[0], resolved.name, shape[0], shape[1], shape[2])
    return models


def train_hard(models: list[nn.Module], indices: range, seeds: list[int], protocol: Union[HardProtocol, AutoPaletteProtocol], images: torch.Tensor,
               labels: torch.Tensor, device: torch.device, progress: ProgressFn, together: bool) -> list[nn.Module]:
    """The hard protocol's training of ``models`` (numbered ``indices``): together or one by one;
    ``labels`` are classes, or (AutoPalette's protocol) each image's target probabilities."""
    config, augment = protocol.train_config(), DSA() if protocol.dsa else None
    if together:
        return train_classifiers(models, images, labels, config, device, seeds, augment,
                                 model_progress(progress, indices, protocol.num_models))
    return [train_classifier(model, images, labels, config, device, model_seed, augment,
                             model_progress(progress, range(index, index + 1), protocol.num_models))
            for model, index, model_seed in zip(models, indices, seeds)]


def train_soft(models: list[nn.Module], indices: range, seeds: list[int], protocol: SoftProtocol, images: torch.Tensor,
               teacher: nn.Module, validate: Callable[[nn.Module], float], num_classes: int, device: torch.device,
               progress: ProgressFn, together: bool) -> list[tuple[nn.Module, dict[int, float]]]:
    """The soft protocol's training of ``models`` (numbered ``indices``): together or one by one;
    each student with its validations."""
    config = protocol.kd_config(len(images), num_classes)
    size = tuple(images.shape[-2:])
    augments = [SoftAugment(size, protocol.patch_factor, protocol.max_crop_scale, model_seed) for model_seed in seeds]
    if together:
        return train_students(models, teacher, images, config, device, augments, seeds,
                              model_progress(progress, indices, protocol.num_models), validate)
    return [train_student(model, teacher, images, config, device, augment, model_seed,
                          model_progress(progress, range(index, index + 1), protocol.num_models), validate)
            for model, index, model_seed, augment in zip(models, indices, seeds, augments)]


def evaluate_images(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    protocol: Protocol,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn = silent,
    teacher: Optional[nn.Module] = None,
    parallel: Parallel = Parallel(),
    together: Optional[bool] = None,
    experts: Optional[Experts] = None,
) -> EvaluationResult:
    """Train ``protocol.num_models`` fresh networks on the train images and test each.

    Images are floats in [0, 1]; both sets are standardised with the test images' channel
    statistics, which every method being compared then shares. The soft protocol needs
    ``teacher``, a trained network taking raw [0, 1] images; the hard one trains on the labels;
    AutoPalette's needs ``experts`` and trains on the softmax of their logits for each image.
    With ``parallel`` each process trains its share of the models (model ``i`` always from seed
    ``seed · 1000 + i``) and every process returns the same result as one process would.
    ``together``: a process's models train in one stacked pass (:mod:`.ensemble`), each drawing
    what it would draw alone; ``False`` trains them one by one (the same models, to float rounding).
    By default (None) together on an accelerator, where one pass of N small networks costs little
    more than one, and one by one on a CPU, where the convolutions already keep the cores busy and
    the stacked pass measured slower (``benchmarks/evaluation_speed.py``); a torchvision model or a
    callable's network trains one by one unless asked (vmap may not take every network).
    """
    if protocol.name == "soft" and teacher is None:
        raise ValueError("the soft protocol needs a teacher")
    if protocol.name == "autopalette":
        if experts is None:
            raise ValueError("AutoPalette's protocol needs its experts")
        train_labels = experts.soft_labels(train_images, train_labels, protocol.soft_labels, device).softmax(1).cpu()
    started = time.perf_counter()
    normalizer = Normalizer.fit(test_images)
    train_x, test_x = normalizer(train_images), normalizer(test_images)
    indices = parallel.share(protocol.num_models)
    seeds = [seed * 1000 + index for index in indices]
    models = seeded_models(protocol.arch, (train_images.shape[1], num_classes, tuple(train_images.shape[-2:])), seeds)
    if together is None:
        together = device.type != "cpu" and architecture(protocol.arch).kind == "ours"
    together = together and len(models) > 0
    if protocol.name == "soft":
        def validate(model: nn.Module) -> float:
            return accuracy(model, test_x, test_labels, device)

        students = train_soft(models, indices, seeds, protocol, train_x, Renormalized(teacher, normalizer), validate,
                              num_classes, device, progress, together)
        models, bests = [model for model, _ in students], [max(record.values()) for _, record in students]
    else:
        models = train_hard(models, indices, seeds, protocol, train_x, train_labels, device, progress, together)
        bests = [None] * len(models)
    trained = []  # (index, accuracy, per-class accuracy, best accuracy or None) of this process's models
    for index, model, best_accuracy in zip(indices, models, bests):
        predictions = predict_logits(model, test_x, device).argmax(1)
        trained.append((index, float((predictions == test_labels).float().mean()),
                        per_class_accuracy(predictions, test_labels, num_classes), best_accuracy))
    trained = sorted(model for part in parallel.gather(trained) for model in part)
    accuracies = [accuracy for _, accuracy, _, _ in trained]
    per_class = [classes for _, _, classes, _ in trained]
    best = [value for *_, value in trained if value is not None]
    return EvaluationResult(
        accuracies=accuracies,
        per_class=torch.stack(per_class).nanmean(0).tolist(),
        num_train=len(train_images),
        seconds=time.perf_counter() - started,
        protocol=protocol.as_dict(),
        best_accuracies=best or None,
    )
