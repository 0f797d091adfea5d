"""The distillation loop shared by DM, Decomposed DM and AutoPalette.

Each iteration draws a fresh network (DM's embedder), samples ``batch_real`` real images per
class, augments each class's real and synthetic images with DSA, and matches class means, as
the reference loops do (``main_DM.py``; DM_Style_matching; AutoPalette's ``dm_quant.py``). The
loss is the same; the work is organised for speed: real images go through the network without
autograd, in chunks (small on a CPU, where the maps then stay in cache; large on a GPU), and are
reduced to class statistics at once; the synthetic images of all classes go through one forward
pass; DSA applies each drawn family once to all the class blocks that drew it. On a GPU the real
images stay on the device (when they fit) and batches are drawn there, the per-iteration network
is one module re-initialised in place, and nothing waits for the device within an iteration (the
loss is read every ``log_every`` iterations). Randomness is derived from ``(seed, iteration)``, so
a run resumed from a checkpoint reproduces an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from ..augment import DSA
from ..cache import digest, save_atomically
from ..device import autocast
from ..distributed import Parallel
from ..models import build_model
from ..progress import ProgressFn, silent
from ..teachers import Normalizer
from . import losses
from .palette import PaletteNetwork, hard_quantize, median_cut, soft_quantize
from .sampling import (
    ClassSampler, class_means, class_sums, fits_on_device, seed_of_class, seed_of_iteration, to_device,
)

DISTILL_METHODS = ("dm", "ddm", "autopalette")
GPU_CHUNK_IMAGES = 8192
WARMUP_BATCH = 256  # the reference's batch_train
CPU_CHUNK_IMAGES = 32  # on a CPU, 32-image forwards keep the 128×32×32 maps in cache: 1.6× faster than 256 (measured)
GPU_LOG_EVERY = 100  # iterations between reads of the loss on a GPU (each read waits for the device)


@dataclass(frozen=True)
class DistillSettings:
    """Hyper-parameters; each default is the reference code's (see docs/benchmarks.md, fidelity)."""

    method: str = "dm"
    iterations: int = 20000
    batch_real: int = 256
    lr_img: float = 1.0
    momentum: float = 0.5
    dsa: bool = True
    # One DSA draw per class shared by its real and synthetic images (main_DM.py, DM_Style_matching);
    # None: shared for dm/ddm, independent for autopalette (its dm_quant.py draws them separately, from
    # the global generator; ours from per-class seeded generators, so any split across processes agrees).
    siamese: Optional[bool] = None
    arch: str = "convnet3"
    # Decomposed DM: the weights of the reference's README commands and its k.
    moments_weight: float = 1e4
    correlation_weight: float = 1e4
    diversity_weight: float = 10.0
    neighbours: int = 2
    # AutoPalette: dm_quant.py with the authors' commands (lr_quant 0.05, conf_ratio 0).
    task: str = "dm"
    num_colors: int = 64
    palette_lr: float = 0.05
    palette_momentum: float = 0.5
    palette_weight_decay: float = 5e-4
    max_color_weight: float = 1.0
    balance_weight: float = 1.0
    alignment_weight: float = 3.0
    confidence_weight: float = 0.0
    colour_batch: int = 64
    pixel_sample: float = 0.3
    normalize_palette_task: bool = False  # ours: the palette network gets the task gradient / task value
    # The reference's --use_warmup: epochs over the real images fitting the palette network alone
    # before distilling (off in the authors' CIFAR-10 runs, 2 in their Tiny-ImageNet and ImageNet ones).
    palette_warmup: int = 0
    # engine
    real_chunk: int = 0  # images per real forward; 0: 32 on a CPU, 8192 on a GPU
    mixed_precision: bool = False  # bf16 autocast: faster, not the reference's numbers
    compile: bool = False  # torch.compile the embedding network (DM and AutoPalette's DM task; not style hooks)
    log_every: int = 0  # iterations between loss reads; 0: every iteration on a CPU, every 100 on a GPU
    checkpoint_every: int = 500

    def __post_init__(self):
        if self.method not in DISTILL_METHODS:
            raise ValueError(f"Unknown distillation method {self.method!r}; choose one of {DISTILL_METHODS}")
        if self.task not in ("dm", "ddm"):
            raise ValueError(f"AutoPalette's task loss must be 'dm' or 'ddm', got {self.task!r}")
        if self.iterations < 0 or self.batch_real < 1 or not 2 <= self.num_colors <= 256:
            raise ValueError("iterations >= 0, batch_real >= 1 and 2 <= num_colors <= 256 are required")
        if not 0 < self.pixel_sample <= 1 or self.colour_batch < 1 or self.neighbours < 1:
            raise ValueError("0 < pixel_sample <= 1, colour_batch >= 1 and neighbours >= 1 are required")
        if self.siamese is None:
            object.__setattr__(self, "siamese", self.method != "autopalette")

    @property
    def style(self) -> bool:
        return self.method == "ddm" or (self.method == "autopalette" and self.task == "ddm")

    def key(self) -> str:
        """What a checkpoint must match to be resumed (everything but bookkeeping)."""
        bookkeeping = ("checkpoint_every", "iterations", "real_chunk", "compile", "log_every")
        return digest({k: v for k, v in asdict(self).items() if k not in bookkeeping})


@dataclass
class DistillResult:
    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    labels: torch.Tensor
    history: list[float]
    seconds: float
    palettes: Optional[torch.Tensor] = None  # AutoPalette: (N, K, C) in [0, 1]
    indices: Optional[torch.Tensor] = None  # AutoPalette: (N, H, W)
    resumed_from: int = 0
    extra: dict = field(default_factory=dict)


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
        maps, self.maps = self.maps, []
        return maps

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


class _Embedder(nn.Module):
    """A network's ``embed`` as its forward, so ``torch.compile`` compiles one module call."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.embed(images)


def _compiled(net: nn.Module) -> nn.Module:
    return torch.compile(_Embedder(net))


def embed(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The network's embedding (a compiled embedder is called as a module)."""
    return net(images) if not hasattr(net, "embed") else net.embed(images)


@dataclass
class ClassStatistics:
    """Class means of what the losses compare: embeddings, and per style layer the mean map and
    the mean Gram matrix."""

    embedding: torch.Tensor  # (classes, D)
    maps: list[torch.Tensor]  # per layer (classes, C, H, W)
    grams: list[torch.Tensor]  # per layer (classes, C, C)


class Distiller:
    """One distillation problem: real data, synthetic parameters, optimisers, and the step."""

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
        self.syn_class_counts = torch.bincount(init_labels, minlength=num_classes).to(device)
        classes_present = sorted(set(init_labels.tolist()))
        self._split_work(classes_present)
        all_counts = torch.bincount(init_labels, minlength=num_classes)[classes_present].tolist()
        first = classes_present.index(self.classes[0]) if self.classes else 0
        self.syn_counts = all_counts[first:first + len(self.classes)]
        self.syn_rows = slice(sum(all_counts[:first]), sum(all_counts[:first]) + sum(self.syn_counts))
        self.syn_labels = init_labels[self.syn_rows].to(device)
        self.present = torch.tensor(self.classes, device=device)
        self.synthetic = self.normalizer(init.clone()).to(device).requires_grad_(True)
        self.image_optimizer = torch.optim.SGD([self.synthetic], lr=settings.lr_img, momentum=settings.momentum)
        self.augment = DSA() if settings.dsa else None
        self.shape = (real.shape[1], num_classes, tuple(real.shape[-2:]))
        self.real_chunk = settings.real_chunk or (GPU_CHUNK_IMAGES if device.type == "cuda" else CPU_CHUNK_IMAGES)
        self.classes_per_group = max(1, self.real_chunk // settings.batch_real)
        self.log_every = settings.log_every or (GPU_LOG_EVERY if device.type == "cuda" else 1)
        self.net = build_model(settings.arch, *self.shape).to(device)
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        self.recorder = StyleRecorder(self.net) if settings.style else None
        self.embed_net = _compiled(self.net) if settings.compile and not settings.style else self.net
        self.palette = None
        if settings.method == "autopalette":
            torch.manual_seed(seed)
            self.palette = PaletteNetwork(real.shape[1], settings.num_colors).to(device)
            self.palette_optimizer = torch.optim.SGD(self.palette.parameters(), lr=settings.palette_lr,
                                                     momentum=settings.palette_momentum,
                                                     weight_decay=settings.palette_weight_decay)

    def _split_work(self, classes_present: list[int]) -> None:
        """Which classes this process matches (``classes``: their synthetic rows and loss terms) and
        whose real images it embeds (``real_classes``, its ``real_part`` of each class's batch).

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

    # -- pixel space helpers
    def raw(self, normalised: torch.Tensor) -> torch.Tensor:
        return self.normalizer.inverse(normalised)

    def task_images(self, rows: slice = slice(None)) -> torch.Tensor:
        """The synthetic images (``rows`` of them) the task loss sees (AutoPalette: soft-quantised, as
        the reference, by a palette network that reads the normalised images)."""
        if self.palette is None:
            return self.synthetic[rows]
        return soft_quantize(self.synthetic[rows], self.palette(self.synthetic[rows]))

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

    def _real_statistics(self, net: nn.Module, recorder: Optional[StyleRecorder], real: torch.Tensor,
                         labels: torch.Tensor, iteration_seed: int) -> ClassStatistics:
        """Class statistics of the augmented real batch, without autograd: classes are augmented
        in groups and go through the network ``real_chunk`` images at a time, reduced to sums at once
        (summed over the processes that share a class's batch)."""
        settings, classes = self.settings, self.num_classes
        labels = labels.cpu()
        class_counts = torch.bincount(labels, minlength=classes)
        counts = to_device(class_counts, self.device)
        sizes = class_counts[self.real_classes].tolist()
        starts = np.cumsum([0, *sizes]).tolist()
        offsets = self._real_offsets(sizes)
        embedding, maps, grams = 0.0, None, None
        for first in range(0, len(self.real_classes), self.classes_per_group):
            last = min(first + self.classes_per_group, len(self.real_classes))
            rows = slice(starts[first], starts[last])
            group_labels = to_device(labels[rows], self.device)
            with torch.no_grad():
                augmented = self._augment_by_class(to_device(real[rows], self.device), self.real_classes[first:last],
                                                   sizes[first:last], iteration_seed, synthetic=False,
                                                   offsets=offsets and offsets[first:last])
                for chunk, chunk_labels in zip(torch.split(augmented, self.real_chunk), torch.split(group_labels, self.real_chunk)):
                    with autocast(self.device, settings.mixed_precision):
                        features = embed(net, chunk).float()
                    embedding = embedding + class_sums(features, chunk_labels, classes)
                    layer_maps = recorder.take() if recorder else []
                    map_sums = [class_sums(m.float(), chunk_labels, classes) for m in layer_maps]
                    gram_sums = [class_sums(losses.gram(m.float()), chunk_labels, classes) for m in layer_maps]
                    maps = map_sums if maps is None else [a + b for a, b in zip(maps, map_sums)]
                    grams = gram_sums if grams is None else [a + b for a, b in zip(grams, gram_sums)]

        if self.real_part[1] > 1:
            self.parallel.sum_([embedding, *(maps or []), *(grams or []), counts])
        counts = counts.clamp_min(1).to(embedding.dtype)

        def mean(total: torch.Tensor) -> torch.Tensor:
            return total / counts.view(-1, *([1] * (total.dim() - 1)))

        return ClassStatistics(mean(embedding), [mean(m) for m in maps], [mean(g) for g in grams])

    def _real_offsets(self, sizes: list[int]) -> Optional[list[tuple[int, int]]]:
        """(first row, rows of the whole batch) of each real class block this process holds, when
        it holds a part of its class's batch (the augmentation draws for the whole batch)."""
        part, parts = self.real_part
        if parts == 1:
            return None
        offsets = []
        for c, size in zip(self.real_classes, sizes):
            total = self.sampler.batch_size(c)
            offsets.append((total * part // parts, total))
        return offsets

    def _task_loss(self, net: nn.Module, recorder: Optional[StyleRecorder], real: torch.Tensor,
                   real_labels: torch.Tensor, syn: torch.Tensor, iteration_seed: int) -> torch.Tensor:
        """DM (+ Decomposed DM's style and diversity terms), summed over this process's classes;
        ``syn``: their synthetic rows."""
        settings, present = self.settings, self.present
        target = self._real_statistics(net, recorder, real, real_labels, iteration_seed)
        if not self.classes:  # this process only helped with a class's real batch
            return self._zero_loss()
        syn = self._augment_by_class(syn, self.classes, self.syn_counts, iteration_seed, synthetic=True)
        with autocast(self.device, settings.mixed_precision):
            syn_embedding = embed(net, syn).float()
        loss = (target.embedding - class_means(syn_embedding, self.syn_labels, self.syn_class_counts))[present].square().sum()
        if recorder is None:
            return loss
        syn_maps = [m.float() for m in recorder.take()]
        moments = sum(losses.moments_distance(real_map[present], class_means(syn_map, self.syn_labels, self.syn_class_counts)[present])
                      for real_map, syn_map in zip(target.maps, syn_maps)) / len(syn_maps)
        correlation = sum(losses.gram_distance(real_gram[present], class_means(losses.gram(syn_map), self.syn_labels, self.syn_class_counts)[present])
                          for real_gram, syn_map in zip(target.grams, syn_maps)) / len(syn_maps)
        diversity = sum(losses.diversity_loss(block, settings.neighbours)
                        for block in torch.split(syn_embedding, self.syn_counts))
        return (loss + settings.moments_weight * moments.sum() + settings.correlation_weight * correlation.sum()
                + settings.diversity_weight * diversity)

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
        if self.palette is None:
            task.backward()
            self.parallel.sum_([self.synthetic.grad])  # each rank's classes' gradients, summed
            self.image_optimizer.step()
            return self._total(task)
        return self._palette_step(task / self.num_classes, iteration_seed)

    def _zero_loss(self) -> torch.Tensor:
        """A loss of zero that still gives every trained tensor a (zero) gradient, so every process
        sums the same tensors."""
        zero = self.synthetic.sum() * 0.0
        if self.palette is not None:
            zero = zero + sum(parameter.sum() for parameter in self.palette.parameters()) * 0.0
        return zero

    def _total(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss summed over the processes (their classes' terms), detached."""
        total = loss.detach().clone()
        self.parallel.sum_([total])
        return total

    def _colour_loss(self, images: torch.Tensor, rng: np.random.RandomState, confidence: bool = True) -> torch.Tensor:
        """AutoPalette's colour losses of the palette network on normalised, detached ``images``,
        against their Median-Cut quantisation (they train the palette network only)."""
        settings = self.settings
        probabilities = self.palette(images)
        target = median_cut(self.raw(images).cpu(), settings.num_colors)[1]
        loss = (settings.max_color_weight * losses.max_color_loss(probabilities)
                + settings.balance_weight * losses.palette_balance_loss(probabilities)
                + settings.alignment_weight * losses.pixel_similarity_loss(probabilities, target, rng, settings.pixel_sample))
        return loss + settings.confidence_weight * losses.confidence_loss(probabilities) if confidence else loss

    def warm_up_palette(self, progress: ProgressFn = silent) -> None:
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

    def _palette_step(self, task: torch.Tensor, iteration_seed: int) -> float:
        """As ``dm_quant.py``: the task loss (per class, divided by the number of classes) trains
        images and palette network; the colour losses then add to the palette network's gradient.
        With ``normalize_palette_task`` the palette network gets the task gradient divided by the
        task value instead (an option of ours)."""
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

    # -- checkpoints
    def state(self, iteration: int, history: list[float]) -> dict:
        state = {"iteration": iteration, "key": self.settings.key(), "seed": self.seed, "history": history,
                 "synthetic": self.synthetic.detach().cpu(), "image_optimizer": self.image_optimizer.state_dict()}
        if self.palette is not None:
            state.update(palette=self.palette.state_dict(), palette_optimizer=self.palette_optimizer.state_dict())
        return state

    def load(self, state: dict) -> tuple[int, list[float]]:
        with torch.no_grad():
            self.synthetic.copy_(state["synthetic"].to(self.device))
        self.image_optimizer.load_state_dict(state["image_optimizer"])
        if self.palette is not None:
            self.palette.load_state_dict(state["palette"])
            self.palette_optimizer.load_state_dict(state["palette_optimizer"])
        return state["iteration"], list(state["history"])

    def result(self) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Images in [0, 1]; AutoPalette's are hard-quantised, with their palettes and indices."""
        with torch.no_grad():
            if self.palette is None:
                return self.raw(self.synthetic).clamp(0, 1).cpu(), None, None
            palettes, indices = hard_quantize(self.synthetic, self.palette(self.synthetic))
            palettes = self.raw(palettes.transpose(1, 2).unsqueeze(-1)).squeeze(-1).transpose(1, 2).clamp(0, 1)
            images = torch.gather(palettes, 1, indices.flatten(1).unsqueeze(2).expand(-1, -1, palettes.shape[2]))
            images = images.transpose(1, 2).reshape(self.synthetic.shape)
            return images.cpu(), palettes.cpu(), indices.cpu()


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
    ``settings.method``.

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
    distiller = Distiller(real, real_labels, init, init_labels, num_classes, settings, device, seed, parallel)
    first, history = 0, []
    found = checkpoint is not None and parallel.is_main and checkpoint.is_file()
    state = parallel.broadcast(torch.load(checkpoint, map_location="cpu", weights_only=False) if found else None)
    if state is not None and state.get("key") == settings.key() and state.get("seed") == seed:
        first, history = distiller.load(state)
    resumed_from = first
    if first == 0 and distiller.palette is not None and settings.palette_warmup:
        distiller.warm_up_palette(progress)
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
    return DistillResult(images, init_labels.clone(), history, time.perf_counter() - started, palettes, indices, resumed_from)
