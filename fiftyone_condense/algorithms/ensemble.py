"""Training several networks of one architecture together, each as if it trained alone.

``train_classifiers`` and ``train_students`` return what ``train_classifier`` and
``train_student`` (:mod:`.training`) return for each model and seed, to float rounding, in one
pass: the models' parameters and buffers are stacked (``torch.func.stack_module_state``) and
every step is one forward and backward of all of them (``torch.func.functional_call`` under
``torch.vmap``), each model on its own batch. One optimizer updates the stacked tensors: SGD and
AdamW act element by element, and all models share their schedule, so it is N optimizers in one.

What each model draws is its own: :class:`RandomStreams` keeps one state of torch's global
generators per model and makes it current around that model's draws (its batch order, its
augmentation, its CutMix permutation), in the order the model alone would draw them. Batch norm
works too: its running statistics are stacked buffers that each model updates in place.

Where it pays: on a GPU a step of N small networks launches about the kernels of one. On a CPU
the FLOPs are the same and the convolutions already keep the cores busy; vmap's grouped
convolutions and its unfused norm affine make the stacked step slower there (measured 0.84× one
by one on 2 cores), which is why :func:`.protocols.evaluate_images` stacks only on
an accelerator unless asked.
"""

from __future__ import annotations

import contextlib
import copy
from itertools import chain
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state

from .augment import DSA, cutmix
from .device import autocast
from .progress import ProgressFn, silent
from .training import (
    CPU_MICRO_BATCH, Augment, KDConfig, TrainConfig, kd_loss, micro_batch, rded_schedule, rded_validation_epochs,
    shuffled_batches, weight_decay_groups,
)


class RandomStreams:
    """One saved state of torch's global generators (the CPU's and ``device``'s) per seed, each
    as ``torch.manual_seed(seed)`` leaves it: ``with streams.drawing(i):`` draws from stream
    ``i`` and leaves the caller's state as it was."""

    def __init__(self, seeds: Sequence[int], device: torch.device):
        self.device = device
        self.accelerator = None if device.type == "cpu" else torch.get_device_module(device.type)
        caller = self._state()
        self.states = []
        for seed in seeds:
            torch.manual_seed(seed)
            self.states.append(self._state())
        self._set(caller)

    def _state(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        return torch.get_rng_state(), self.accelerator.get_rng_state(self.device) if self.accelerator else None

    def _set(self, state: tuple[torch.Tensor, Optional[torch.Tensor]]) -> None:
        torch.set_rng_state(state[0])
        if self.accelerator:
            self.accelerator.set_rng_state(state[1], self.device)

    def __len__(self) -> int:
        return len(self.states)

    @contextlib.contextmanager
    def drawing(self, index: int) -> Iterator[None]:
        caller = self._state()
        self._set(self.states[index])
        try:
            yield
        finally:
            self.states[index] = self._state()
            self._set(caller)

    def call(self, index: int, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)``, drawing from stream ``index``."""
        with self.drawing(index):
            return function(*args)

    def adopt(self, index: int) -> None:
        """Make stream ``index`` the global state, as a loop that trained that model last leaves it."""
        self._set(self.states[index])


class Stack:
    """Networks of one architecture as one: parameters and buffers stacked on a new first
    dimension, and a call that runs network ``i`` on ``x[i]``."""

    def __init__(self, models: Sequence[nn.Module]):
        self.models = list(models)
        self.params, self.buffers = stack_module_state(self.models)
        self.template = copy.deepcopy(self.models[0]).to("meta")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.vmap(self._one)(self.params, self.buffers, x)

    def _one(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.template, (params, buffers), (x,))

    def train(self) -> None:
        self.template.train()

    def unstack(self) -> list[nn.Module]:
        """The models, with the stacked values copied back into them."""
        stacked = {**self.params, **self.buffers}
        with torch.no_grad():
            for index, model in enumerate(self.models):
                for name, tensor in chain(model.named_parameters(), model.named_buffers()):
                    tensor.copy_(stacked[name][index])
        return self.models


def epoch_batches(count: int, batch_size: int) -> list[torch.Tensor]:
    """One shuffled epoch's index batches, drawn up front: the ``DataLoader`` draws all it takes
    from the global generator before its first batch, so this draws what iterating it does."""
    return list(shuffled_batches(count, batch_size))


def epoch_orders(streams: RandomStreams, count: int, batch_size: int) -> list[torch.Tensor]:
    """Each step's index batches of every model, as one (models, batch) tensor per step."""
    orders = [streams.call(index, epoch_batches, count, batch_size) for index in range(len(streams))]
    return [torch.stack(rows) for rows in zip(*orders)]


def augment_each(x: torch.Tensor, augment: Optional[Augment], streams: RandomStreams) -> torch.Tensor:
    """Each model's batch ``x[i]`` augmented with stream ``i``'s draws. DSA draws per model and
    applies each drawn family once to all the models that drew it."""
    if augment is None:
        return x
    if isinstance(augment, DSA):
        drawn = [streams.call(index, augment.draw, batch) for index, batch in enumerate(x)]
        return augment.apply(list(x), drawn).view_as(x)
    return torch.stack([streams.call(index, augment, batch) for index, batch in enumerate(x)])


def stack_micro_batch(model: nn.Module, device: torch.device, count: int) -> Optional[int]:
    """Images per model in one forward/backward pass of ``count`` stacked models: where one model
    takes :data:`CPU_MICRO_BATCH` images, the stack takes that many in all (the same feature
    maps in cache), else the whole batch."""
    return max(1, CPU_MICRO_BATCH // count) if micro_batch(model, device) else None


def cross_entropy_backward(stack: Stack, x: torch.Tensor, labels: torch.Tensor, device: torch.device,
                           mixed_precision: bool = False, parts: Optional[int] = None) -> None:
    """Back-propagate each model's batch-mean cross-entropy on its ``x[i]``, ``parts`` images per
    model per pass (all at once if None). The loss is the models' sum: each one's gradient is its own."""
    size = x.shape[1]
    for x_part, labels_part in zip(torch.split(x, parts or size, 1), torch.split(labels, parts or size, 1)):
        with autocast(device, mixed_precision):
            logits = stack(x_part)
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        loss = F.cross_entropy(logits.flatten(0, 1), labels_part.flatten(0, 1), reduction="sum") / size
        loss.backward()


def train_classifiers(
    models: Sequence[nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    device: torch.device,
    seeds: Sequence[int],
    augment: Optional[Augment] = None,
    progress: ProgressFn = silent,
) -> list[nn.Module]:
    """``[train_classifier(model, images, labels, config, device, seed, augment) for model, seed in
    zip(models, seeds)]`` (the hard protocol), all models in each step. Returns them in eval mode,
    and leaves torch's global generator as that loop would."""
    streams = RandomStreams(seeds, device)
    stack = Stack([model.to(device).train() for model in models])
    images, labels = images.to(device), labels.to(device)
    lr, (passes, decay_after) = config.lr, config.passes()
    optimizer = config.optimizer(stack.params.values(), lr)
    parts = stack_micro_batch(models[0], device, len(models))
    for epoch in range(passes):
        orders = epoch_orders(streams, len(images), config.batch_size)
        for step, rows in enumerate(orders):
            rows = rows.to(device, non_blocking=True)
            x = augment_each(images[rows], augment, streams)
            optimizer.zero_grad(set_to_none=True)
            cross_entropy_backward(stack, x, labels[rows], device, config.mixed_precision, parts)
            optimizer.step()
            progress((epoch + (step + 1) / len(orders)) / passes, f"epoch {epoch + 1}/{passes}")
        if epoch == decay_after:
            lr *= 0.1
            optimizer = config.optimizer(stack.params.values(), lr)
    streams.adopt(len(models) - 1)
    return [model.eval() for model in stack.unstack()]


def mixed_batches(images: torch.Tensor, rows: torch.Tensor, augments: Sequence[Augment],
                  rngs: Sequence[np.random.RandomState], streams: RandomStreams, beta: float,
                  device: torch.device) -> torch.Tensor:
    """Each model's batch augmented image by image and CutMixed with its own draws, stacked."""
    def mix(index: int) -> torch.Tensor:
        return cutmix(augments[index](images[rows[index]]).to(device), rngs[index], beta)

    return torch.stack([streams.call(index, mix, index) for index in range(len(rows))])


def kd_backward(stack: Stack, teacher: nn.Module, mixed: torch.Tensor, config: KDConfig, device: torch.device) -> None:
    """Back-propagate each student's KL loss on its own batch ``mixed[i]`` against the teacher's
    soft labels (one teacher pass for all). The loss is the students' sum of batch means."""
    with torch.no_grad(), autocast(device, config.mixed_precision):
        target = teacher(mixed.flatten(0, 1)).float()
    with autocast(device, config.mixed_precision):
        logits = stack(mixed).float()
    (kd_loss(logits.flatten(0, 1), target, config.temperature) * len(mixed)).backward()


def train_students(
    students: Sequence[nn.Module],
    teacher: nn.Module,
    images: torch.Tensor,
    config: KDConfig,
    device: torch.device,
    augments: Sequence[Augment],
    seeds: Sequence[int],
    progress: ProgressFn = silent,
    validate: Optional[Callable[[nn.Module], float]] = None,
) -> list[tuple[nn.Module, dict[int, float]]]:
    """``[train_student(student, teacher, images, config, device, augment, seed, validate=validate)
    for ...]`` (the soft protocol), all students in each step: each with its own augmentation
    (its own Python generator), numpy generator for CutMix and torch stream. Returns each student
    (eval mode) with its validations, and leaves torch's global generator as that loop would."""
    streams = RandomStreams(seeds, device)
    rngs = [np.random.RandomState(seed) for seed in seeds]
    stack, teacher = Stack([student.to(device).train() for student in students]), teacher.to(device).eval()
    optimizer = torch.optim.AdamW(weight_decay_groups(stack.template, stack.params), lr=config.lr,
                                  betas=(0.9, 0.999), weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: rded_schedule(epoch, config.epochs))
    checkpoints = set(rded_validation_epochs(config.epochs)) if validate else set()
    validations: list[dict[int, float]] = [{} for _ in students]
    for epoch in range(config.epochs):
        stack.train()
        for rows in epoch_orders(streams, len(images), config.batch_size):
            mixed = mixed_batches(images, rows, augments, rngs, streams, config.cutmix_beta, device)
            optimizer.zero_grad(set_to_none=True)
            kd_backward(stack, teacher, mixed, config, device)
            optimizer.step()
        if epoch in checkpoints:
            for student, record in zip(stack.unstack(), validations):
                record[epoch + 1] = validate(student)
        schedule.step()
        progress((epoch + 1) / config.epochs, f"epoch {epoch + 1}/{config.epochs}")
    streams.adopt(len(students) - 1)
    return [(student.eval(), record) for student, record in zip(stack.unstack(), validations)]
