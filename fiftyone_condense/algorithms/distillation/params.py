"""The parameters each distillation method declares (names are :class:`DistillSettings` fields
unless said otherwise); the SDK validates against them and the distil form is built from them."""

from __future__ import annotations

import math

from ..errors import CondensationError
from ..params import Param

BUDGETS = ("paper", "bits", "count")

COMMON = (
    Param("iterations", int, 20000, "Optimisation steps (DM protocol: 20000)", label="Iterations", min=0),
    Param("batch_real", int, 256, "Real images per class per step", label="Real batch per class", min=1),
    Param("lr_img", float, None, "SGD step on pixels; empty: the reference's 1 (AutoPalette: 10 from IPC 50, its "
          "paper's Table 9)", label="Image learning rate", min=0.0, optional=True),
    Param("momentum", float, 0.5, "SGD momentum on pixels (reference: 0.5)", label="Momentum", min=0.0, max=1.0),
    Param("teacher_epochs", int, None, "Epochs of the initialising selection's network; empty: that method's default",
          label="Initialisation network epochs", min=1, optional=True),
    Param("mixed_precision", bool, False, "bf16 autocast: faster, not the reference's numbers (ours)",
          label="Mixed precision"),
    Param("checkpoint_every", int, 500, "Iterations between checkpoints an interrupted run resumes from",
          label="Checkpoint every", min=1),
)


def style_params(when: dict | None = None) -> tuple[Param, ...]:
    """Decomposed DM's weights (its README commands' values)."""
    return (
        Param("moments_weight", float, 1e4, "Channel mean/std matching (reference: 1e4)", label="Moments weight",
              min=0.0, when=when),
        Param("correlation_weight", float, 1e4, "Gram matching (reference: 1e4)", label="Correlation weight",
              min=0.0, when=when),
        Param("diversity_weight", float, 10.0, "kNN intra-class KL (reference: 10)", label="Diversity weight",
              min=0.0, when=when),
    )


AUTOPALETTE = (
    Param("task", str, "dm", "Distillation loss behind the palette", label="Task loss", choices=("dm", "ddm")),
    *style_params(when={"task": "ddm"}),
    Param("num_colors", int, 64, "Colours per image", label="Colours (K)", min=2, max=256),
    Param("budget", str, "paper", "Images per class: paper = IPC × 2^(8 − ⌈log₂K⌉) (the reference's), bits = "
          "IPC × 8 / ⌈log₂K⌉ (the bytes of IPC 8-bit images), count = IPC", label="Storage budget", choices=BUDGETS),
    Param("palette_lr", float, 0.05, "Palette network learning rate (reference: 0.05)", label="Palette lr", min=0.0),
    Param("palette_warmup", int, 0, "Epochs fitting the palette network to the real images first (the reference's "
          "--use_warmup; off for CIFAR-10)", label="Palette warm-up epochs", min=0),
    Param("confidence_weight", float, 0.0, "The reference code's per-pixel confidence term (0 in the authors' runs)",
          label="Confidence weight", min=0.0),
    Param("normalize_palette_task", bool, False, "Give the palette network the task gradient divided by the task "
          "value (ours)", label="Normalised palette task"),
)

DISTILL_PARAMS = {"dm": COMMON, "ddm": (*COMMON, *style_params()), "autopalette": (*COMMON, *AUTOPALETTE)}
DESCRIPTIONS = {
    "dm": "Distribution matching: class-mean embeddings of fresh random ConvNets",
    "ddm": "Decomposed DM: DM + feature-map style matching + intra-class diversity",
    "autopalette": "AutoPalette: DM/DDM through a palette network; images stored with K colours",
}


def default_lr_img(method: str, ipc: int) -> float:
    """The image learning rate of the method's reference: 1, AutoPalette 10 from IPC 50 (its paper's Table 9)."""
    return 10.0 if method == "autopalette" and ipc >= 50 else 1.0


def images_per_class(ipc: int, method: str, budget: str, num_colors: int) -> int:
    """Synthetic images per class: AutoPalette's storage budget (``paper``: IPC × 2^(8 − ⌈log₂K⌉),
    as its reference code; ``bits``: IPC × 8 / ⌈log₂K⌉, the same bytes as IPC 8-bit images;
    ``count``: IPC), IPC for the other methods."""
    if budget not in BUDGETS:
        raise CondensationError(f"budget must be one of {BUDGETS}, got {budget!r}")
    bits = math.ceil(math.log2(num_colors))
    if method != "autopalette" or budget == "count":
        return ipc
    return ipc * 2 ** (8 - bits) if budget == "paper" else ipc * 8 // bits
