"""The settings every distillation method takes; a method's settings class adds its own.

Each field made with :func:`~fiftyone_condense.algorithms.params.param` is a declared parameter:
the SDK checks a call against it, the forms are built from it, and the engine runs with the same
dataclass. The other fields are the engine's own (tests and benchmarks set them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import ClassVar, Optional

from ..cache import digest
from ..params import check_settings, param


@dataclass(frozen=True)
class DistillSettings:
    """What every method takes; each default is the reference code's (see docs/benchmarks.md,
    fidelity). A method's settings subclass this; the ``param`` fields are its declared parameters."""

    method: ClassVar[str]
    iterations: int = param(20000, "Optimisation steps (DM protocol: 20000)", label="Iterations", min=0)
    batch_real: int = param(256, "Real images per class per step", label="Real batch per class", min=1)
    lr_img: Optional[float] = param(None, "SGD step on pixels; empty: the reference's 1 (AutoPalette: 10 from IPC 50, "
                                    "its paper's Table 9)", label="Image learning rate", min=0.0)
    momentum: float = param(0.5, "SGD momentum on pixels (reference: 0.5)", label="Momentum", min=0.0, max=1.0)
    teacher_epochs: Optional[int] = param(None, "Epochs of the initialising selection's network; empty: that method's "
                                          "default", label="Initialisation network epochs", min=1)
    mixed_precision: bool = param(False, "bf16 autocast: faster, not the reference's numbers (ours)",
                                  label="Mixed precision")
    checkpoint_every: int = param(500, "Iterations between checkpoints an interrupted run resumes from",
                                  label="Checkpoint every", min=1)
    dsa: bool = True
    # One DSA draw per class shared by its real and synthetic images (main_DM.py, DM_Style_matching).
    siamese: bool = True
    arch: str = "convnet3"
    real_chunk: int = 0  # images per real forward; 0: 32 on a CPU, 8192 on a GPU
    compile: bool = False  # torch.compile the embedding network (not when a method records feature maps)
    log_every: int = 0  # iterations between loss reads; 0: every iteration on a CPU, every 100 on a GPU

    def __post_init__(self):
        check_settings(self, self.method)

    def images_per_class(self, ipc: int) -> int:
        """Synthetic images per class the method distils at ``ipc``: IPC."""
        return ipc

    def default_lr_img(self, images: int) -> float:
        """The reference's image learning rate when distilling ``images`` per class: 1."""
        return 1.0

    def with_lr_img(self, images: int) -> DistillSettings:
        """These settings with ``lr_img`` set: as given, else the method's default for ``images`` per class."""
        return self if self.lr_img is not None else replace(self, lr_img=self.default_lr_img(images))

    def key(self) -> str:
        """What a checkpoint must match to be resumed (everything but bookkeeping)."""
        bookkeeping = ("checkpoint_every", "iterations", "real_chunk", "compile", "log_every")
        return digest({"method": self.method, **{k: v for k, v in asdict(self).items() if k not in bookkeeping}})
