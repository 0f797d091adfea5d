"""How many images a run keeps of each class: per class (``ipc``), a fraction of the view, or a count.

The papers ask for ``ipc`` images of every class; a curator asks for "5 % of my data" or "2,000
images". :class:`Budget` turns any of the three into per-class numbers:

* ``ipc``: that many of each class (a smaller class is handled by ``small_classes``, as before);
* ``fraction`` / ``count``: a total of ``count`` images, or ``round(fraction × N)`` (halves to even,
  Python's ``round``) of the view's N, at least one per class that has images and at most N, split
  ``"proportional"`` (the default: the view's class distribution kept) or ``"balanced"`` (equal
  shares).

Rounding, stated once. Proportional: class c's quota is ``total · n_c / N``; each class gets the
quota's floor, or one if that is zero and the class has images; the images left go one each to
the classes with the largest remainders (ties: the larger class, then the earlier class), or, when
the minimum of one took more than the remainders held, come one each from the class holding the
most (ties: the later class). Balanced: equal shares of what is
left, each capped at the class's size, repeated until every image is placed; when fewer images than
classes with room are left, they go to the classes with the most room (ties: the earlier class).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import CondensationError
from .selection.base import class_budgets

ALLOCATIONS = ("proportional", "balanced")


@dataclass(frozen=True)
class Budget:
    """Exactly one of ``ipc``, ``fraction`` or ``count``, and for the last two an ``allocation``."""

    ipc: Optional[int] = None
    fraction: Optional[float] = None
    count: Optional[int] = None
    allocation: Optional[str] = None

    def __post_init__(self):
        given = [name for name in ("ipc", "fraction", "count") if getattr(self, name) is not None]
        if len(given) != 1:
            raise CondensationError(f"Give exactly one budget of ipc, fraction or count; got {given or 'none'}")
        if self.ipc is not None and self.ipc < 1:
            raise CondensationError(f"ipc must be at least 1, got {self.ipc}")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise CondensationError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.count is not None and self.count < 1:
            raise CondensationError(f"count must be at least 1, got {self.count}")
        if self.allocation is not None and self.allocation not in ALLOCATIONS:
            raise CondensationError(f"allocation must be one of {list(ALLOCATIONS)}, got {self.allocation!r}")
        if self.ipc is not None and self.allocation not in (None, "balanced"):
            raise CondensationError("ipc is a per-class budget (balanced); use fraction= or count= to keep the "
                                    "class distribution")

    @property
    def mode(self) -> str:
        return "ipc" if self.ipc is not None else "fraction" if self.fraction is not None else "count"

    @property
    def value(self) -> float:
        return getattr(self, self.mode)

    def allocation_used(self) -> str:
        return "balanced" if self.mode == "ipc" else self.allocation or "proportional"

    def key(self) -> str:
        """The part of a default run key that names the budget: ``ipc10``, ``frac0_05``, ``n2000``."""
        if self.mode == "fraction":
            return f"frac{self.fraction:g}".replace(".", "_")
        return f"ipc{self.ipc}" if self.mode == "ipc" else f"n{self.count}"

    def total(self, size: int, classes_present: int) -> int:
        """Images kept of a view of ``size`` with ``classes_present`` non-empty classes (not for ``ipc``)."""
        wanted = self.count if self.mode == "count" else round(self.fraction * size)
        if wanted > size:
            raise CondensationError(f"count={self.count} is more than the {size} images of the view")
        return max(wanted, classes_present)

    def per_class(self, labels: np.ndarray, classes: list[str], small_classes: str = "error") -> np.ndarray:
        """Images to keep of each class of ``labels`` (class indices into ``classes``)."""
        if self.mode == "ipc":
            return class_budgets(labels, self.ipc, classes, small_classes)
        counts = np.bincount(labels, minlength=len(classes))
        total = self.total(len(labels), int((counts > 0).sum()))
        if self.allocation_used() == "proportional":
            return proportional(counts, total)
        return balanced(counts, total)

    def record(self, per_class: np.ndarray, classes: list[str]) -> dict:
        """What the run records: the budget asked for and the per-class numbers it gave."""
        return {"mode": self.mode, "value": self.value, "allocation": self.allocation_used(),
                "total": int(per_class.sum()), "per_class": {name: int(n) for name, n in zip(classes, per_class)}}


def proportional(counts: np.ndarray, total: int) -> np.ndarray:
    """``total`` images split in proportion to ``counts`` (one per non-empty class, then largest remainders)."""
    quotas = total * counts / counts.sum()
    shares = np.floor(quotas).astype(np.int64)
    shares[(counts > 0) & (shares == 0)] = 1
    left = total - int(shares.sum())
    order = sorted(range(len(counts)), key=lambda c: (-(quotas[c] - shares[c]), -counts[c], c))
    for c in [c for c in order if shares[c] < counts[c]][:max(left, 0)]:
        shares[c] += 1
    for _ in range(-left):  # the minimum of one took more than the remainders held
        donor = max(range(len(counts)), key=lambda d: (shares[d], d))
        shares[donor] -= 1
    return shares


def balanced(counts: np.ndarray, total: int) -> np.ndarray:
    """``total`` images in equal shares, each capped at its class's size (what a class cannot take
    goes to the others)."""
    shares = np.zeros(len(counts), dtype=np.int64)
    left = total
    while left > 0:
        room = counts - shares
        open_classes = np.flatnonzero(room > 0)
        share = left // len(open_classes)
        if share == 0:
            for c in sorted(open_classes, key=lambda c: (-room[c], c))[:left]:
                shares[c] += 1
            break
        given = np.minimum(room[open_classes], share)
        shares[open_classes] += given
        left -= int(given.sum())
    return shares


def budget_of(ipc: Optional[int], fraction: Optional[float], count: Optional[int], allocation: Optional[str]) -> Budget:
    """The run's budget: the one of ``ipc``, ``fraction`` and ``count`` given (``ipc=10`` when none is)."""
    if ipc is not None and (not isinstance(ipc, int) or isinstance(ipc, bool)):
        raise CondensationError(f"ipc must be at least 1, got {ipc!r}: pass a whole number of images per class")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise CondensationError(f"count must be a whole number of images, got {count!r}")
    if ipc is None and fraction is None and count is None:
        ipc = 10
    return Budget(ipc=ipc, fraction=fraction, count=count, allocation=allocation)
