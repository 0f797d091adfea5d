"""DC3 colour compensation and colour statistics, on tensors (no FiftyOne).

Each image gets one *warm* and one *cold* hue edit, which a combine mode merges into one
image: by an instruction-following diffusion model (``diffusion`` backend, as in DC3) or by
a deterministic hue/temperature transform (``classical`` backend, the baseline DC3 argues
against, and the option without diffusion weights).
"""

from .combine import COMBINE_MODES, combine, plan_edits
from .stats import color_stats

BACKENDS = ("diffusion", "classical")

__all__ = ["BACKENDS", "COMBINE_MODES", "color_stats", "combine", "plan_edits"]
