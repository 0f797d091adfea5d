"""The distillation loop shared by DM, Decomposed DM and AutoPalette.

Every iteration draws a fresh ConvNet-3 (DM's embedder), samples ``batch_real`` real images
per class, applies DSA with one seed per class to that class's real and synthetic images,
and sends *all classes* through the network in one forward pass (the reference loops over
classes; instance norm makes the two identical). Randomness is derived from
``(seed, iteration)``, so a run resumed from a checkpoint reproduces an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from ..augment import DSA
from ..cache import digest, save_atomically
from ..device import autocast
from ..embeddings import Normalizer
from ..models import build_model
from ..progress import ProgressFn, silent
from . import losses
from .palette import PaletteNetwork, hard_quantize, median_cut, soft_quantize

DISTILL_METHODS = ("dm", "ddm", "autopalette")
WARMUP_IMAGES = 64


@dataclass(frozen=True)
class DistillSettings:
    """Hyper-parameters; defaults follow DM (lr 1, momentum 0.5, real batch 256, 20k iterations)."""

    method: str = "dm"
    iterations: int = 20000
    batch_real: int = 256
    lr_img: float = 1.0
    momentum: float = 0.5
    dsa: bool = True
    arch: str = "convnet3"
    # Decomposed DM (also AutoPalette with task="ddm"). Defaults put each term near 3–10 % of
    # the DM term at initialisation on Fashion-MNIST (measured; see docs/benchmarks.md): with
    # unit weights the moments term is ~3 %, the Gram term ~0.007 % and diversity ~0.3 %.
    moments_weight: float = 3.0
    correlation_weight: float = 1000.0
    diversity_weight: float = 10.0
    # AutoPalette
    task: str = "dm"
    num_colors: int = 64
    palette_lr: float = 0.05
    max_color_weight: float = 1.0
    balance_weight: float = 1.0
    alignment_weight: float = 3.0
    confidence_weight: float = 1.0
    normalize_palette_task: bool = True
    align_every: int = 100
    palette_warmup: int = 200
    # engine
    batched: bool = True
    mixed_precision: bool = True
    checkpoint_every: int = 500

    def __post_init__(self):
        if self.method not in DISTILL_METHODS:
            raise ValueError(f"Unknown distillation method {self.method!r}; choose one of {DISTILL_METHODS}")
        if self.task not in ("dm", "ddm"):
            raise ValueError(f"AutoPalette's task loss must be 'dm' or 'ddm', got {self.task!r}")
        if self.iterations < 0 or self.batch_real < 1 or not 2 <= self.num_colors <= 256:
            raise ValueError("iterations >= 0, batch_real >= 1 and 2 <= num_colors <= 256 are required")

    @property
    def style(self) -> bool:
        return self.method == "ddm" or (self.method == "autopalette" and self.task == "ddm")

    def key(self) -> str:
        """What a checkpoint must match to be resumed (everything but bookkeeping)."""
        return digest({k: v for k, v in asdict(self).items() if k not in ("checkpoint_every", "iterations")})


@dataclass
class DistillResult:
    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    labels: torch.Tensor
    history: list[float]
    seconds: float
    palettes: Optional[torch.Tensor] = None  # AutoPalette: (N, K, C)
    indices: Optional[torch.Tensor] = None  # AutoPalette: (N, H, W)
    resumed_from: int = 0
    extra: dict = field(default_factory=dict)


class StyleRecorder:
    """Forward hooks on every normalisation layer that keep per-class moments and Gram means
    of the layer's *input* maps (after instance norm they would be trivially equal)."""

    def __init__(self, network: nn.Module):
        self.handles = [m.register_forward_hook(self._hook) for m in network.modules() if isinstance(m, nn.GroupNorm)]
        self.maps: list[torch.Tensor] = []

    def _hook(self, module, inputs, output) -> None:
        self.maps.append(inputs[0])

    def take(self) -> list[torch.Tensor]:
        maps, self.maps = self.maps, []
        return maps

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _iteration_seed(seed: int, iteration: int) -> int:
    return (seed * 1_000_003 + iteration) % (2**62)


def _class_means(values: torch.Tensor, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean of ``values`` rows per class id (classes without rows give zeros)."""
    sums = torch.zeros((num_classes, *values.shape[1:]), dtype=values.dtype, device=values.device)
    sums.index_add_(0, classes, values)
    counts = torch.bincount(classes, minlength=num_classes).clamp_min(1).to(values.dtype)
    return sums / counts.view(-1, *([1] * (values.dim() - 1)))


def _style_terms(maps: torch.Tensor, classes: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, ...]:
    mean, std = losses.channel_moments(maps.float())
    return (_class_means(mean, classes, num_classes), _class_means(std, classes, num_classes),
            _class_means(losses.gram(maps.float()), classes, num_classes))


class Distiller:
    """One distillation problem: real data, synthetic parameters, optimisers, and the step."""

    def __init__(self, real: torch.Tensor, real_labels: torch.Tensor, init: torch.Tensor, init_labels: torch.Tensor,
                 num_classes: int, settings: DistillSettings, device: torch.device, seed: int):
        self.settings, self.device, self.seed, self.num_classes = settings, device, seed, num_classes
        self.normalizer = Normalizer.fit(real)
        self.real = real  # stays on the CPU; batches move to the device
        self.by_class = [torch.nonzero(real_labels == c).flatten() for c in range(num_classes)]
        self.syn_labels = init_labels.to(device)
        self.classes_present = sorted(set(init_labels.tolist()))
        self.synthetic = self.normalizer(init.clone()).to(device).requires_grad_(True)
        self.image_optimizer = torch.optim.SGD([self.synthetic], lr=settings.lr_img, momentum=settings.momentum)
        self.augment = DSA() if settings.dsa else None
        self.shape = (real.shape[1], num_classes, tuple(real.shape[-2:]))
        self.palette = None
        if settings.method == "autopalette":
            torch.manual_seed(seed)
            self.palette = PaletteNetwork(real.shape[1], settings.num_colors).to(device)
            self.palette_optimizer = torch.optim.SGD(self.palette.parameters(), lr=settings.palette_lr, momentum=settings.momentum)
            self.reference = self._median_cut_reference()
            self._warm_up_palette()
        self.k = losses.neighbour_count(int(torch.bincount(init_labels).max()))

    # -- pixel space helpers
    def raw(self, normalised: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.normalizer.mean, device=normalised.device).view(1, -1, 1, 1)
        std = torch.tensor(self.normalizer.std, device=normalised.device).view(1, -1, 1, 1)
        return normalised * std + mean

    def _median_cut_reference(self) -> torch.Tensor:
        with torch.no_grad():
            return median_cut(self.raw(self.synthetic).detach().cpu(), self.settings.num_colors)[1].to(self.device)

    def _warm_up_palette(self) -> None:
        """Fit the palette network to the Median-Cut assignment (with the colour-usage losses)
        before distillation, so its hard palette starts as a K-colour quantiser rather than
        a collapsed one. Each step uses ``WARMUP_IMAGES`` random images (the reference computes its
        colour losses on 64), so the cost does not grow with the number of synthetic images."""
        settings = self.settings
        raw = self.raw(self.synthetic).detach().clamp(0, 1)
        optimizer = torch.optim.Adam(self.palette.parameters(), lr=1e-2)
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(settings.palette_warmup):
            rows = torch.randperm(len(raw), generator=generator)[:WARMUP_IMAGES].to(self.device)
            loss = self._colour_loss(self.palette(raw[rows]), self.reference[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def task_images(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The synthetic images the task loss sees (soft-quantised for AutoPalette)."""
        if self.palette is None:
            return self.synthetic, None
        raw = self.raw(self.synthetic).clamp(0, 1)
        probabilities = self.palette(raw)
        return self.normalizer(soft_quantize(raw, probabilities)), probabilities

    # -- one iteration
    def _real_batch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        picks, labels = [], []
        for c in self.classes_present:
            members = self.by_class[c]
            chosen = members[torch.randperm(len(members), generator=generator)[: self.settings.batch_real]]
            picks.append(chosen)
            labels.append(torch.full((len(chosen),), c))
        indices = torch.cat(picks)
        return self.normalizer(self.real[indices]).to(self.device), torch.cat(labels).to(self.device)

    def _augment_by_class(self, images: torch.Tensor, labels: torch.Tensor, seed: int) -> torch.Tensor:
        """DSA with one seed per class; class blocks are contiguous when labels are sorted (the usual
        case), which avoids masked copies."""
        if self.augment is None:
            return images
        if bool((labels[1:] >= labels[:-1]).all()):
            counts = torch.bincount(labels, minlength=self.num_classes)[self.classes_present].tolist()
            blocks = torch.split(images, counts)
            return torch.cat([self.augment(block, seed=seed * 131 + c) for block, c in zip(blocks, self.classes_present)])
        out = torch.empty_like(images)
        for c in self.classes_present:
            rows = labels == c
            out[rows] = self.augment(images[rows], seed=seed * 131 + c)
        return out

    def step(self, iteration: int) -> float:
        settings = self.settings
        it_seed = _iteration_seed(self.seed, iteration)
        torch.manual_seed(it_seed)
        net = build_model(settings.arch, *self.shape).to(self.device).train()
        for parameter in net.parameters():
            parameter.requires_grad_(False)
        recorder = StyleRecorder(net) if settings.style else None
        real, real_labels = self._real_batch(torch.Generator().manual_seed(it_seed))
        syn, probabilities = self.task_images()
        real = self._augment_by_class(real, real_labels, it_seed)
        syn = self._augment_by_class(syn, self.syn_labels, it_seed)

        task = self._task_loss(net, recorder, real, real_labels, syn)
        self.image_optimizer.zero_grad(set_to_none=True)
        if probabilities is None:
            task.backward()
            self.image_optimizer.step()
            loss = task
        else:
            loss = task + self._palette_step(iteration, task, probabilities)
        if recorder is not None:
            recorder.close()
        return float(loss.detach())

    def _colour_loss(self, probabilities: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        settings = self.settings
        return (settings.max_color_weight * losses.max_color_loss(probabilities)
                + settings.balance_weight * losses.palette_balance_loss(probabilities)
                + settings.alignment_weight * losses.alignment_loss(probabilities, reference)
                + settings.confidence_weight * losses.confidence_loss(probabilities))

    def _palette_step(self, iteration: int, task: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        """Update images and palette network from the task and colour losses.

        The task loss reaches the palette network divided by its own value (the gradient of
        log L_task) so that it and the O(1) colour losses keep the paper's relative weights on any
        dataset: raw, a DM loss in the hundreds outweighs them ~250× and the palette collapses to
        a handful of colours (measured; docs/benchmarks.md). Images get the task gradient as is.
        """
        self.palette_optimizer.zero_grad(set_to_none=True)
        task.backward(retain_graph=True)
        if self.settings.normalize_palette_task:
            scale = 1.0 / max(float(task.detach()), 1e-8)
            for parameter in self.palette.parameters():
                if parameter.grad is not None:
                    parameter.grad.mul_(scale)
        colour = self._colour_loss(probabilities, self.reference)
        colour.backward()
        self.image_optimizer.step()
        self.palette_optimizer.step()
        if (iteration + 1) % self.settings.align_every == 0:
            self.reference = self._median_cut_reference()
        return colour.detach()

    def _task_loss(self, net, recorder, real, real_labels, syn) -> torch.Tensor:
        settings, classes = self.settings, self.num_classes
        if not settings.batched:
            return self._task_loss_per_class(net, recorder, real, real_labels, syn)
        with torch.no_grad(), autocast(self.device, settings.mixed_precision):
            real_embedding = net.embed(real).float()
        real_maps = recorder.take() if recorder else []
        with autocast(self.device, settings.mixed_precision):
            syn_embedding = net.embed(syn).float()
        syn_maps = recorder.take() if recorder else []
        present = torch.tensor(self.classes_present, device=self.device)
        difference = (_class_means(real_embedding, real_labels, classes) - _class_means(syn_embedding, self.syn_labels, classes))[present]
        loss = difference.square().sum()
        if recorder is not None:
            for real_map, syn_map in zip(real_maps, syn_maps):
                with torch.no_grad():
                    real_terms = _style_terms(real_map, real_labels, classes)
                syn_terms = _style_terms(syn_map, self.syn_labels, classes)
                moments = sum((r - s)[present].square().sum() for r, s in zip(real_terms[:2], syn_terms[:2]))
                loss = loss + settings.moments_weight * moments
                loss = loss + settings.correlation_weight * (real_terms[2] - syn_terms[2])[present].square().sum()
            loss = loss + settings.diversity_weight * self._diversity(syn_embedding)
        return loss

    def _diversity(self, embedding: torch.Tensor) -> torch.Tensor:
        return sum(losses.diversity_loss(embedding[self.syn_labels == c], self.k) for c in self.classes_present)

    def _task_loss_per_class(self, net, recorder, real, real_labels, syn) -> torch.Tensor:
        """The reference's formulation: one forward pass per class (for the benchmark)."""
        settings, loss = self.settings, 0.0
        for c in self.classes_present:
            real_c, syn_c = real[real_labels == c], syn[self.syn_labels == c]
            with torch.no_grad(), autocast(self.device, settings.mixed_precision):
                real_embedding = net.embed(real_c).float()
            real_maps = recorder.take() if recorder else []
            with autocast(self.device, settings.mixed_precision):
                syn_embedding = net.embed(syn_c).float()
            syn_maps = recorder.take() if recorder else []
            loss = loss + losses.mean_embedding_loss(real_embedding, syn_embedding)
            for real_map, syn_map in zip(real_maps, syn_maps):
                loss = loss + settings.moments_weight * losses.moments_loss(real_map.float(), syn_map.float())
                loss = loss + settings.correlation_weight * losses.correlation_loss(real_map.float(), syn_map.float())
            if recorder is not None:
                loss = loss + settings.diversity_weight * losses.diversity_loss(syn_embedding, self.k)
        return loss

    # -- checkpoints
    def state(self, iteration: int, history: list[float]) -> dict:
        state = {"iteration": iteration, "key": self.settings.key(), "seed": self.seed, "history": history,
                 "synthetic": self.synthetic.detach().cpu(), "image_optimizer": self.image_optimizer.state_dict()}
        if self.palette is not None:
            state.update(palette=self.palette.state_dict(), palette_optimizer=self.palette_optimizer.state_dict(),
                         reference=self.reference.cpu())
        return state

    def load(self, state: dict) -> tuple[int, list[float]]:
        with torch.no_grad():
            self.synthetic.copy_(state["synthetic"].to(self.device))
        self.image_optimizer.load_state_dict(state["image_optimizer"])
        if self.palette is not None:
            self.palette.load_state_dict(state["palette"])
            self.palette_optimizer.load_state_dict(state["palette_optimizer"])
            self.reference = state["reference"].to(self.device)
        return state["iteration"], list(state["history"])

    def result(self) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        with torch.no_grad():
            raw = self.raw(self.synthetic).clamp(0, 1)
            if self.palette is None:
                return raw.cpu(), None, None
            palettes, indices = hard_quantize(raw, self.palette(raw))
            images = torch.gather(palettes, 1, indices.flatten(1).unsqueeze(2).expand(-1, -1, raw.shape[1]))
            images = images.transpose(1, 2).reshape(raw.shape)
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
) -> DistillResult:
    """Optimise ``init`` images (floats in [0, 1]) so they match ``real`` under ``settings.method``.

    With ``checkpoint`` the state is saved every ``settings.checkpoint_every`` iterations and a
    matching checkpoint found there is resumed.
    """
    started = time.perf_counter()
    distiller = Distiller(real, real_labels, init, init_labels, num_classes, settings, device, seed)
    first, history = 0, []
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if state.get("key") == settings.key() and state.get("seed") == seed:
            first, history = distiller.load(state)
    resumed_from = first
    for iteration in range(first, settings.iterations):
        history.append(distiller.step(iteration))
        done = iteration + 1
        if checkpoint is not None and (done % settings.checkpoint_every == 0 or done == settings.iterations):
            save_atomically(distiller.state(done, history), checkpoint)
        progress(done / max(settings.iterations, 1), f"iteration {done}/{settings.iterations} loss {history[-1]:.4g}")
    images, palettes, indices = distiller.result()
    return DistillResult(images, init_labels.clone(), history, time.perf_counter() - started, palettes, indices, resumed_from)
