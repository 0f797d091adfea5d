"""What the distillation loop draws and reduces: real batches per class, seeds, class sums and means."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DEVICE_REAL_FRACTION = 0.25  # real images move to the GPU when they take at most this share of its free memory


def seed_of_iteration(seed: int, iteration: int) -> int:
    """The seed of one iteration's draws, so a resumed run draws what an uninterrupted one does."""
    return (seed * 1_000_003 + iteration) % (2**62)


def seed_of_class(seed: int, label: int) -> int:
    """The seed of one class's draws within an iteration, the same on whichever process matches it."""
    return (seed * 131 + label) % (2**62)


def class_sums(values: torch.Tensor, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Sum of ``values`` rows per class id: (num_classes, ...)."""
    sums = torch.zeros((num_classes, *values.shape[1:]), dtype=values.dtype, device=values.device)
    return sums.index_add_(0, classes, values)


def class_means(values: torch.Tensor, classes: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` rows per class id, given each class's row count (``bincount`` on a GPU
    would wait for the device to size its output); classes without rows give zeros."""
    return class_sums(values, classes, len(counts)) / counts.clamp_min(1).to(values.dtype).view(-1, *([1] * (values.dim() - 1)))


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move without waiting for the device (a small host tensor is staged at once)."""
    return tensor.to(device, non_blocking=True)


def fits_on_device(real, device: torch.device) -> bool:
    """Whether the real images (a tensor) should move to the GPU: when they take at most
    ``DEVICE_REAL_FRACTION`` of its free memory. Lazily read images stay on the host."""
    if device.type != "cuda" or not isinstance(real, torch.Tensor):
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return real.numel() * 4 <= DEVICE_REAL_FRACTION * free


@dataclass
class SyntheticBlocks:
    """The synthetic rows one process matches, class by class: their labels, every class's row
    count, the classes matched (``present``) and their row counts, in order."""

    labels: torch.Tensor
    class_counts: torch.Tensor
    present: torch.Tensor
    counts: list[int]

    def means(self, values: torch.Tensor) -> torch.Tensor:
        """Class means of per-row ``values``, for the classes matched: (len(present), ...)."""
        return class_means(values, self.labels, self.class_counts)[self.present]


class ClassSampler:
    """Draws up to ``batch`` random members of each requested class in a few batched operations:
    the images, ordered by class once, get a random key per draw, are sorted by (class, key), and
    the first ``batch`` of each class's segment are taken."""

    def __init__(self, labels: torch.Tensor, batch: int, device: torch.device):
        self.device, self.batch = device, batch
        self.order = torch.argsort(labels, stable=True).to(device)
        self.sorted_classes = labels[self.order.cpu()].to(device=device, dtype=torch.float64)
        self.counts = torch.bincount(labels).tolist()
        self.starts = [0, *np.cumsum(self.counts).tolist()]
        self._positions: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def draw(self, classes: list[int], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Row indices (on the sampler's device) and their labels (on the CPU), class by class."""
        positions, labels = self._positions_of(tuple(classes))
        keys = self.sorted_classes + torch.rand(len(self.order), generator=generator, device=self.device, dtype=torch.float64)
        return self.order[torch.argsort(keys)[positions]], labels

    def batch_size(self, c: int) -> int:
        """Images of class ``c`` in a batch: ``batch``, or all of a smaller class."""
        return min(self.batch, self.counts[c]) if c < len(self.counts) else 0

    def _positions_of(self, classes: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        if classes not in self._positions:
            sizes = [self.batch_size(c) for c in classes]
            positions = torch.cat([torch.arange(self.starts[c], self.starts[c] + n) for c, n in zip(classes, sizes)])
            labels = torch.cat([torch.full((n,), c) for c, n in zip(classes, sizes)])
            self._positions[classes] = (positions.to(self.device), labels)
        return self._positions[classes]
