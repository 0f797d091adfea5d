"""The settings every distillation method takes; a method's settings class adds its own."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from ..cache import digest


@dataclass(frozen=True)
class DistillSettings:
    """Hyper-parameters every method takes; each default is the reference code's (see
    docs/benchmarks.md, fidelity). A method's settings subclass this."""

    method: ClassVar[str]
    iterations: int = 20000
    batch_real: int = 256
    lr_img: float = 1.0
    momentum: float = 0.5
    dsa: bool = True
    # One DSA draw per class shared by its real and synthetic images (main_DM.py, DM_Style_matching).
    siamese: bool = True
    arch: str = "convnet3"
    real_chunk: int = 0  # images per real forward; 0: 32 on a CPU, 8192 on a GPU
    mixed_precision: bool = False  # bf16 autocast: faster, not the reference's numbers
    compile: bool = False  # torch.compile the embedding network (not when a method records feature maps)
    log_every: int = 0  # iterations between loss reads; 0: every iteration on a CPU, every 100 on a GPU
    checkpoint_every: int = 500

    def __post_init__(self):
        if self.iterations < 0 or self.batch_real < 1:
            raise ValueError("iterations >= 0 and batch_real >= 1 are required")

    def key(self) -> str:
        """What a checkpoint must match to be resumed (everything but bookkeeping)."""
        bookkeeping = ("checkpoint_every", "iterations", "real_chunk", "compile", "log_every")
        return digest({"method": self.method, **{k: v for k, v in asdict(self).items() if k not in bookkeeping}})
