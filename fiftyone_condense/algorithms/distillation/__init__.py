"""Pixel-level dataset distillation on tensors: DM, Decomposed DM and AutoPalette.

One file per method (:mod:`.dm`, :mod:`.ddm`, :mod:`.autopalette`: its settings, its loss and
its state) on a shared loop (:mod:`.loop`): :func:`distill` optimises synthetic images (and, for
AutoPalette, a palette network) against real images of every class, batching all classes
through one network forward per iteration, with resumable checkpoints. :data:`METHODS` maps each
method's name to its distiller, whose ``Settings`` it runs with.
"""

from __future__ import annotations

from ..errors import CondensationError
from .autopalette import AutoPalette, AutoPaletteSettings
from .ddm import DDMSettings, DecomposedDM
from .dm import DM, DMSettings
from .loop import METHODS, Distiller, DistillResult, distill
from .settings import DistillSettings

__all__ = [
    "DM", "METHODS", "AutoPalette", "AutoPaletteSettings", "DDMSettings", "DMSettings", "DecomposedDM",
    "DistillResult", "DistillSettings", "Distiller", "distill", "distiller_for", "settings_for",
]


def distiller_for(method: str) -> type[Distiller]:
    """The distiller of ``method``; an unknown name raises :class:`CondensationError` naming the methods."""
    if method not in METHODS:
        raise CondensationError(f"Unknown distillation method {method!r}; choose one of {sorted(METHODS)}")
    return METHODS[method]


def settings_for(method: str, **values) -> DistillSettings:
    """``method``'s settings: ``values`` (declared parameters or engine fields) over the defaults."""
    return distiller_for(method).Settings(**values)
