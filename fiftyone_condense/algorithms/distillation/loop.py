"""The distillation loop shared by every method: settings, the step, checkpoints and the driver.

Each iteration draws a fresh network (DM's embedder), samples ``batch_real`` real images per
class, augments each class's real and synthetic images with DSA, and compares class statistics
with the method's :class:`Matching`, as the reference loops do (``main_DM.py``;
DM_Style_matching; AutoPalette's ``dm_quant.py``). The work is organised for speed: real images
go through the network without autograd, in chunks (small on a CPU, where the maps then stay in
cache; large on a GPU), and are reduced to class statistics at once; the synthetic images of all
classes go through one forward pass; DSA applies each drawn family once to all the class blocks
that drew it. On a GPU the real images stay on the device (when they fit) and batches are drawn
there, the per-iteration network is one module re-initialised in place, and nothing waits for the
device within an iteration (the loss is read every ``log_every`` iterations). Randomness is
derived from ``(seed, iteration)``, so a run resumed from a checkpoint reproduces an
uninterrupted one.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Optional, Protocol

import numpy as np
import torch
import torch.nn as nn

from ..augment import DSA
from ..cache import load_cached, save_atomically
from ..device import autocast
from ..distributed import Parallel
from ..models import build_model
from ..progress import ProgressFn, silent
from ..teachers import Normalizer
from .sampling import (
    ClassSampler, SyntheticBlocks, class_sums, fits_on_device, seed_of_class, seed_of_iteration, to_device,
)
from .settings import DistillSettings

GPU_CHUNK_IMAGES = 8192
CPU_CHUNK_IMAGES = 32  # on a CPU, 32-image forwards keep the 128×32×32 maps in cache: 1.6× faster than 256 (measured)
GPU_LOG_EVERY = 100  # iterations between reads of the loss on a GPU (each read waits for the device)


@dataclass
class DistillResult:
    """What :func:`distill` returns: the images, and what a run records about them."""

    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    labels: torch.Tensor
    history: list[float]
    seconds: float
    palettes: Optional[torch.Tensor] = None  # AutoPalette: (N, K, C) in [0, 1]
    indices: Optional[torch.Tensor] = None  # AutoPalette: (N, H, W)
    resumed_from: int = 0
    extra: dict = field(default_factory=dict)
    float_images: Optional[torch.Tensor] = None  # before storage: unclamped (AutoPalette: unquantised), as the reference evaluates them


class Recorder(Protocol):
    """Forward hooks that keep feature maps of a network (Decomposed DM's style layers)."""

    def take(self) -> list[torch.Tensor]: ...


class Matching(Protocol):
    """A method's task loss: which per-image features it compares and how."""

    def recorder(self, net: nn.Module) -> Optional[Recorder]:
        """Hooks keeping the feature maps the loss needs from ``net``, or None."""

    def features(self, embedding: torch.Tensor, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-image features whose class means are compared (the embedding first)."""

    def loss(self, real: list[torch.Tensor], synthetic: list[torch.Tensor], blocks: SyntheticBlocks) -> torch.Tensor:
        """The loss of the synthetic images' ``features`` against the real ones' class means."""


class _Embedder(nn.Module):
    """A network's ``embed`` as its forward, so ``torch.compile`` compiles one module call."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.embed(images)


def embed(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The network's embedding (a compiled embedder is called as a module)."""
    return net(images) if not hasattr(net, "embed") else net.embed(images)


class Distiller(ABC):
    """One distillation problem: real data, synthetic images, their optimiser, and the step.

    A method names its ``Settings`` and its :class:`Matching`; one that trains more than pixels
    (AutoPalette) extends ``task_images``, ``_update``, the checkpoint state and the result.
    """

    Settings: ClassVar[type[DistillSettings]]
    description: ClassVar[str]  # one line, for the forms

    def __init__(self, real: torch.Tensor, real_labels: torch.Tensor, init: torch.Tensor, init_labels: torch.Tensor,
                 num_classes: int, settings: DistillSettings, device: torch.device, seed: int,
                 parallel: Parallel = Parallel()):
        self.settings, self.device, self.seed, self.num_classes = settings, device, seed, num_classes
        self.parallel = parallel
        self.normalizer = Normalizer.fit(real)
        self.real_normalised = fits_on_device(real, device)
        # On a GPU with room, the normalised real images live there and batches are drawn there;
        # otherwise they stay where they are (a tensor or lazily read files) and batches move.
        self.real = self.normalizer(real).to(device) if self.real_normalised else real
        index_device = device if self.real_normalised else torch.device("cpu")
        self.sampler = ClassSampler(real_labels, settings.batch_real, index_device)
        classes_present = sorted(set(init_labels.tolist()))
        self._split_work(classes_present)
        self.syn_rows, self.blocks = self._synthetic_blocks(init_labels, classes_present)
        self.synthetic = self.normalizer(init.clone()).to(device).requires_grad_(True)
        lr = settings.with_lr_img(int(torch.bincount(init_labels).max())).lr_img  # unset: for the largest class
        self.image_optimizer = torch.optim.SGD([self.synthetic], lr=lr, momentum=settings.momentum)
        self.augment = DSA() if settings.dsa else None
        self.shape = (real.shape[1], num_classes, tuple(real.shape[-2:]))
        self.real_chunk = settings.real_chunk or (GPU_CHUNK_IMAGES if device.type == "cuda" else CPU_CHUNK_IMAGES)
        self.classes_per_group = max(1, self.real_chunk // settings.batch_real)
        self.log_every = settings.log_every or (GPU_LOG_EVERY if device.type == "cuda" else 1)
        self.net = build_model(settings.arch, *self.shape).to(device)
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        self.matching = self.make_matching()
        self.recorder = self.matching.recorder(self.net)
        self.embed_net = torch.compile(_Embedder(self.net)) if settings.compile and self.recorder is None else self.net

    @abstractmethod
    def make_matching(self) -> Matching:
        """The method's task loss, from its settings."""

    def _split_work(self, classes_present: list[int]) -> None:
        """Which classes this process matches (``classes``) and whose real images it embeds
        (``real_classes``, its ``real_part`` of each class's batch).

        One process: everything. No more processes than classes: a contiguous block of classes
        each. More processes than classes: the ranks of a class (rank mod the number of classes)
        share its real batch, their class statistics are summed, and the first of them matches
        the class's synthetic images."""
        ranks, count = self.parallel.world_size, len(classes_present)
        if ranks <= count:
            self.classes = [classes_present[i] for i in self.parallel.share(count)]
            self.real_classes, self.real_part = self.classes, (0, 1)
            return
        index, part = self.parallel.rank % count, self.parallel.rank // count
        self.real_classes, self.real_part = [classes_present[index]], (part, len(range(index, ranks, count)))
        self.classes = self.real_classes if part == 0 else []
        smallest = min(self.sampler.batch_size(c) for c in classes_present)
        if self.real_part[1] > smallest:
            raise ValueError(f"{ranks} processes for {count} classes of {smallest} real images per batch: "
                             "each process needs at least one real image of its class")

    def _synthetic_blocks(self, init_labels: torch.Tensor, classes_present: list[int]) -> tuple[slice, SyntheticBlocks]:
        """The synthetic rows of this process's classes (contiguous: the images are sorted by label)."""
        all_counts = torch.bincount(init_labels, minlength=self.num_classes)
        present_counts = all_counts[classes_present].tolist()
        first = classes_present.index(self.classes[0]) if self.classes else 0
        counts = present_counts[first:first + len(self.classes)]
        rows = slice(sum(present_counts[:first]), sum(present_counts[:first]) + sum(counts))
        return rows, SyntheticBlocks(init_labels[rows].to(self.device), all_counts.to(self.device),
                                     torch.tensor(self.classes, device=self.device), counts)

    # -- pixel space helpers
    def raw(self, normalised: torch.Tensor) -> torch.Tensor:
        return self.normalizer.inverse(normalised)

    def task_images(self, rows: slice = slice(None)) -> torch.Tensor:
        """The synthetic images (``rows`` of them) the task loss sees."""
        return self.synthetic[rows]

    # -- one iteration
    def _real_batch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_real`` random real images of each of this process's classes (all of a smaller
        class), sorted by class, normalised; labels on the CPU (their counts are known without asking
        the device). Every process draws the same keys, so a class gets the same images on any rank."""
        rows, labels = self.sampler.draw(self.real_classes, generator)
        part, parts = self.real_part
        keep = slice(len(rows) * part // parts, len(rows) * (part + 1) // parts)  # all of it unless split
        return self._normalised_real(rows[keep]), labels[keep]

    def _normalised_real(self, rows: torch.Tensor) -> torch.Tensor:
        return self.real[rows.to(self.sampler.device)] if self.real_normalised else self.normalizer(self.real[rows])

    def _generator(self, iteration_seed: int) -> torch.Generator:
        """The batch sampler's generator, on the device that holds the real images."""
        return torch.Generator(device=self.sampler.device).manual_seed(iteration_seed)

    def _augment_by_class(self, images: torch.Tensor, classes: list[int], counts: list[int],
                          iteration_seed: int, synthetic: bool, offsets: Optional[list[tuple[int, int]]] = None
                          ) -> torch.Tensor:
        """DSA of each class's block (``counts[i]`` rows of class ``classes[i]``, in order), drawn
        from the class's seed: one draw for the class's real and synthetic images when they share
        draws (Siamese), else one per image, the synthetic block from a seed of its own. Seeded per
        class, a class is augmented alike whichever process matches it; ``offsets`` ((first row,
        rows in the whole block) per class) when the blocks are parts of their classes' batches."""
        if self.augment is None:
            return images
        if self.settings.siamese:
            return self.augment.blocks(images, counts, [seed_of_class(iteration_seed, c) for c in classes], offsets=offsets)
        role_seed = seed_of_class(iteration_seed, self.num_classes + 1) if synthetic else iteration_seed
        return self.augment.blocks(images, counts, [seed_of_class(role_seed, c) for c in classes], shared=False,
                                   offsets=offsets)

    def _features(self, net: nn.Module, recorder: Optional[Recorder], images: torch.Tensor) -> list[torch.Tensor]:
        """The matching's per-image features of ``images`` (the forward in bf16 with ``mixed_precision``)."""
        with autocast(self.device, self.settings.mixed_precision):
            embedding = embed(net, images).float()
        return self.matching.features(embedding, recorder.take() if recorder else [])

    def _real_means(self, net: nn.Module, recorder: Optional[Recorder], real: torch.Tensor, labels: torch.Tensor,
                    iteration_seed: int) -> list[torch.Tensor]:
        """Class means of the augmented real batch's features, without autograd: classes are
        augmented in groups and go through the network ``real_chunk`` images at a time, reduced to
        sums at once (summed over the processes that share a class's batch)."""
        labels = labels.cpu()
        class_counts = torch.bincount(labels, minlength=self.num_classes)
        counts = to_device(class_counts, self.device)
        sizes = class_counts[self.real_classes].tolist()
        starts = np.cumsum([0, *sizes]).tolist()
        offsets = self._real_offsets()
        sums: Optional[list[torch.Tensor]] = None
        for first in range(0, len(self.real_classes), self.classes_per_group):
            last = min(first + self.classes_per_group, len(self.real_classes))
            rows = slice(starts[first], starts[last])
            group_labels = to_device(labels[rows], self.device)
            with torch.no_grad():
                augmented = self._augment_by_class(to_device(real[rows], self.device), self.real_classes[first:last],
                                                   sizes[first:last], iteration_seed, synthetic=False,
                                                   offsets=offsets and offsets[first:last])
                for chunk, chunk_labels in zip(torch.split(augmented, self.real_chunk), torch.split(group_labels, self.real_chunk)):
                    chunk_sums = [class_sums(f, chunk_labels, self.num_classes) for f in self._features(net, recorder, chunk)]
                    sums = chunk_sums if sums is None else [a + b for a, b in zip(sums, chunk_sums)]
        if self.real_part[1] > 1:
            self.parallel.sum_([*sums, counts])
        counts = counts.clamp_min(1).to(sums[0].dtype)
        return [total / counts.view(-1, *([1] * (total.dim() - 1))) for total in sums]

    def _real_offsets(self) -> Optional[list[tuple[int, int]]]:
        """(first row, rows of the whole batch) of each real class block this process holds, when
        it holds a part of its class's batch (the augmentation draws for the whole batch)."""
        part, parts = self.real_part
        if parts == 1:
            return None
        return [(self.sampler.batch_size(c) * part // parts, self.sampler.batch_size(c)) for c in self.real_classes]

    def _task_loss(self, net: nn.Module, recorder: Optional[Recorder], real: torch.Tensor,
                   real_labels: torch.Tensor, syn: torch.Tensor, iteration_seed: int) -> torch.Tensor:
        """The method's matching loss summed over this process's classes; ``syn``: their synthetic
        rows, ``recorder``: hooks on ``net`` keeping the maps the matching needs (or None)."""
        target = self._real_means(net, recorder, real, real_labels, iteration_seed)
        if not self.classes:  # this process only helped with a class's real batch
            return self._zero_loss()
        syn = self._augment_by_class(syn, self.classes, self.blocks.counts, iteration_seed, synthetic=True)
        return self.matching.loss(target, self._features(net, recorder, syn), self.blocks)

    def step(self, iteration: int) -> torch.Tensor:
        """One iteration; returns its loss as a 0-d tensor on the device (reading it waits for the device)."""
        iteration_seed = seed_of_iteration(self.seed, iteration)
        torch.manual_seed(iteration_seed)  # the network's weights, and DSA draws that are not shared
        self.net.reset_parameters()  # a fresh network: the draws of a new build, in place
        self.net.train()
        real, real_labels = self._real_batch(self._generator(iteration_seed))
        self.image_optimizer.zero_grad(set_to_none=True)
        if self.recorder is not None:
            self.recorder.take()  # nothing left from an interrupted iteration
        task = self._task_loss(self.embed_net, self.recorder, real, real_labels, self.task_images(self.syn_rows),
                               iteration_seed)
        return self._update(task, iteration_seed)

    def _update(self, task: torch.Tensor, iteration_seed: int) -> torch.Tensor:
        """Step the pixels on the task loss (each process's classes' gradients summed); the loss
        summed over the processes."""
        task.backward()
        self.parallel.sum_([self.synthetic.grad])
        self.image_optimizer.step()
        return self._total(task)

    def _zero_loss(self) -> torch.Tensor:
        """A loss of zero that still gives every trained tensor a (zero) gradient, so every process
        sums the same tensors."""
        return self.synthetic.sum() * 0.0

    def _total(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss summed over the processes (their classes' terms), detached."""
        total = loss.detach().clone()
        self.parallel.sum_([total])
        return total

    def warm_up(self, progress: ProgressFn = silent) -> None:
        """What a method does before its first iteration (not on resuming): nothing here."""

    # -- checkpoints
    def state(self, iteration: int, history: list[float]) -> dict:
        return {"iteration": iteration, "key": self.settings.key(), "seed": self.seed, "history": history,
                "synthetic": self.synthetic.detach().cpu(), "image_optimizer": self.image_optimizer.state_dict()}

    def load(self, state: dict) -> tuple[int, list[float]]:
        with torch.no_grad():
            self.synthetic.copy_(state["synthetic"].to(self.device))
        self.image_optimizer.load_state_dict(state["image_optimizer"])
        return state["iteration"], list(state["history"])

    def float_images(self) -> torch.Tensor:
        """The synthetic images as the optimisation left them, unclamped (AutoPalette: unquantised)."""
        with torch.no_grad():
            return self.raw(self.synthetic).cpu()

    def result(self) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Images in [0, 1], and (AutoPalette) their palettes and colour indices."""
        with torch.no_grad():
            return self.raw(self.synthetic).clamp(0, 1).cpu(), None, None


METHODS: dict[str, type[Distiller]] = {}


def register(distiller: type[Distiller]) -> type[Distiller]:
    """Add a method's distiller to :data:`METHODS` under its settings' method name."""
    METHODS[distiller.Settings.method] = distiller
    return distiller


def distill(
    real: torch.Tensor,
    real_labels: torch.Tensor,
    init: torch.Tensor,
    init_labels: torch.Tensor,
    num_classes: int,
    settings: DistillSettings,
    device: torch.device,
    seed: int = 0,
    checkpoint: Optional[Path] = None,
    progress: ProgressFn = silent,
    stop: Optional[Callable[[int], bool]] = None,
    parallel: Parallel = Parallel(),
) -> DistillResult:
    """Optimise ``init`` images (floats in [0, 1], sorted by label) so they match ``real`` under
    the method ``settings`` are for.

    With ``checkpoint`` the state is saved every ``settings.checkpoint_every`` iterations and a
    matching checkpoint found there is resumed. ``stop(iterations_done)``, asked at each read of
    the loss, ends the run early when it returns True (a wall-clock budget, say). With ``parallel``
    (several processes, each calling this), each process matches its share of the classes, the
    synthetic images' gradients are summed, and every process holds the same images after every
    iteration; the main process alone writes the checkpoint and decides when to stop.
    """
    started = time.perf_counter()
    order = torch.argsort(init_labels, stable=True)
    if not torch.equal(order, torch.arange(len(order))):
        raise ValueError("init images must be sorted by label")
    distiller = METHODS[settings.method](real, real_labels, init, init_labels, num_classes, settings, device, seed,
                                         parallel)
    first, history = 0, []
    state = parallel.broadcast(load_cached(checkpoint) if checkpoint is not None and parallel.is_main else None)
    if state is not None and state.get("key") == settings.key() and state.get("seed") == seed:
        first, history = distiller.load(state)
    resumed_from = first
    if first == 0:
        distiller.warm_up(progress)
    pending: list[torch.Tensor] = []  # losses not yet read from the device
    for iteration in range(first, settings.iterations):
        pending.append(distiller.step(iteration))
        done = iteration + 1
        saving = checkpoint is not None and (done % settings.checkpoint_every == 0 or done == settings.iterations)
        if saving or done % distiller.log_every == 0 or done == settings.iterations:
            history += torch.stack(pending).tolist()
            pending = []
        if saving and parallel.is_main:
            save_atomically(distiller.state(done, history), checkpoint)
        last = f" loss {history[-1]:.4g}" if history else ""
        progress(done / max(settings.iterations, 1), f"iteration {done}/{settings.iterations}{last}")
        if stop is not None and not pending and parallel.broadcast(stop(done)):
            break
    images, palettes, indices = distiller.result()
    return DistillResult(images, init_labels.clone(), history, time.perf_counter() - started, palettes, indices, resumed_from,
                         float_images=distiller.float_images())
