"""Pixel-level dataset distillation on tensors: DM, Decomposed DM and AutoPalette.

One file per method (:mod:`.dm`, :mod:`.ddm`, :mod:`.autopalette`: its settings, its loss and
its state) on a shared loop (:mod:`.loop`): :func:`distill` optimises synthetic images (and, for
AutoPalette, a palette network) against real images of every class, batching all classes
through one network forward per iteration, with resumable checkpoints. :data:`METHODS` maps each
method's name to its distiller, whose ``Settings`` declare its parameters.
"""

from __future__ import annotations

from ..errors import CondensationError
from ..params import Param, declared
from .autopalette import AutoPalette, AutoPaletteSettings
from .ddm import DDMSettings, DecomposedDM
from .dm import DM, DMSettings
from .loop import METHODS, Distiller, DistillResult, distill
from .settings import DistillSettings

__all__ = [
    "DM", "METHODS", "AutoPalette", "AutoPaletteSettings", "DDMSettings", "DMSettings", "DecomposedDM",
    "DistillResult", "DistillSettings", "Distiller", "distill", "distiller_for", "images_per_class", "parameters",
    "settings_for",
]


def distiller_for(method: str) -> type[Distiller]:
    """The distiller of ``method``; an unknown name raises :class:`CondensationError` naming the methods."""
    if method not in METHODS:
        raise CondensationError(f"Unknown distillation method {method!r}; choose one of {sorted(METHODS)}")
    return METHODS[method]


def parameters(method: str) -> tuple[Param, ...]:
    """The parameters ``method`` declares (its settings' ``param`` fields)."""
    return declared(distiller_for(method).Settings)


def settings_for(method: str, **values) -> DistillSettings:
    """``method``'s settings: ``values`` (declared parameters or engine fields) over the defaults."""
    return distiller_for(method).Settings(**values)


def images_per_class(ipc: int, method: str, budget: str = "paper", num_colors: int = 64) -> int:
    """Synthetic images per class ``method`` distils at ``ipc``: AutoPalette's storage budget at
    ``budget`` and ``num_colors``, IPC for the methods that take neither."""
    taken = {p.name for p in parameters(method)}
    given = {name: value for name, value in (("budget", budget), ("num_colors", num_colors)) if name in taken}
    return settings_for(method, **given).images_per_class(ipc)
