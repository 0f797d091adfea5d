"""The per-class driver shared by every selection method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import CondensationError
from ..progress import ProgressFn, silent

# Picks ``budget`` local indices of one class; ``gram`` is None for methods without embeddings.
Picker = Callable[..., np.ndarray]


@dataclass(frozen=True)
class SelectionMethod:
    name: str
    pick: Picker
    needs_embeddings: bool
    description: str


METHODS: dict[str, SelectionMethod] = {}


def register(method: SelectionMethod) -> SelectionMethod:
    METHODS[method.name] = method
    return method


def check_class_budget(labels: np.ndarray, ipc: int, classes: list[str]) -> None:
    """Every class must hold at least ``ipc`` samples; say which do not."""
    if ipc < 1:
        raise CondensationError(f"ipc must be at least 1, got {ipc}")
    counts = np.bincount(labels, minlength=len(classes))
    short = [f"{classes[c]!r} has {counts[c]}" for c in range(len(classes)) if counts[c] < ipc]
    if short:
        raise CondensationError(
            f"ipc={ipc} is larger than some classes: {', '.join(short)}. "
            f"Choose ipc <= {int(counts.min())} or drop those classes from the view."
        )


def select_per_class(
    method: str,
    labels: np.ndarray,
    ipc: int,
    gram_of_class: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    seed: int = 0,
    params: Optional[dict] = None,
    progress: ProgressFn = silent,
) -> np.ndarray:
    """Indices (into ``labels``) of ``ipc`` picks per class, class by class, in label order.

    ``gram_of_class(indices)`` returns the Gram matrix of those samples' embeddings; it is
    called once per class so only one class's n×n matrix is in memory at a time. ``params``
    go to the method (for example ``lambda_`` and ``optimizer`` for ``graph_cut``).
    """
    spec = METHODS.get(method)
    if spec is None:
        raise CondensationError(f"Unknown selection method {method!r}; choose one of {sorted(METHODS)}")
    if spec.needs_embeddings and gram_of_class is None:
        raise CondensationError(f"Selection method {method!r} needs embeddings")
    present = np.unique(labels)
    picks = []
    for step, label in enumerate(present):
        members = np.flatnonzero(labels == label)
        if len(members) < ipc:
            raise CondensationError(f"class {int(label)} has {len(members)} samples, fewer than ipc={ipc}")
        rng = np.random.default_rng([seed, int(label)])
        gram = gram_of_class(members) if spec.needs_embeddings else None
        local = np.asarray(spec.pick(gram, len(members), ipc, rng, **(params or {})), dtype=np.int64)
        if len(local) != ipc or len(set(local.tolist())) != ipc:
            raise RuntimeError(f"{method} returned {len(local)} picks ({len(set(local.tolist()))} unique), expected {ipc}")
        picks.append(members[local])
        progress((step + 1) / len(present), f"class {step + 1}/{len(present)}")
    return np.concatenate(picks)
