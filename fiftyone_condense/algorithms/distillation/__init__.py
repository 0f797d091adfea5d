"""Pixel-level dataset distillation on tensors: DM, Decomposed DM and AutoPalette.

:func:`~fiftyone_condense.algorithms.distillation.engine.distill` optimises synthetic images (and, for
AutoPalette, a palette network) against real images of every class, batching all classes
through one network forward per iteration, with resumable checkpoints.
"""

from .engine import DISTILL_METHODS, DistillSettings, distill

__all__ = ["DISTILL_METHODS", "DistillSettings", "distill"]
