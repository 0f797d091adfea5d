"""DD-Ranking's scores of a condensed set (NUS-HPC-AI-Lab/DD-Ranking ``ddranking/metrics/hard_label.py``).

For each evaluation run ``i`` the package trains on the condensed set, on the whole training
split and on random real images of the same size, and with their top-1 accuracies **in percent**:

* hard-label recovery ``HLR = full − condensed`` (lower is better),
* improvement over random ``IOR = condensed − random`` (higher is better),
* label-robust score ``LRS = (exp(λ·IOR − (1−λ)·HLR) − e⁻¹) / (e − e⁻¹)``, λ = 0.5;

then reports each one's mean and (population) standard deviation over the runs. Being in
percentage points, ``λ·IOR − (1−λ)·HLR`` is not confined to [−1, 1], so LRS is not confined to
[0, 1] either: that is how the package computes it, and what we store. (Its list of LRS values
gets each run appended twice; the mean and standard deviation do not change, and we append once.)

Here run ``i`` is model ``i`` of each of the three evaluations; when the whole split was trained
with fewer models than the others, every run takes its mean (as the package does with its cached
whole-split accuracy).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

LRS_LAMBDA = 0.5


def label_robust_score(ior: float, hlr: float, lam: float = LRS_LAMBDA) -> float:
    """LRS of one run from its IOR and HLR (percentage points)."""
    return (math.exp(lam * ior - (1 - lam) * hlr) - math.exp(-1)) / (math.e - math.exp(-1))


def dd_ranking_scores(condensed: Sequence[float], random: Sequence[float], full: Sequence[float],
                      lam: float = LRS_LAMBDA) -> dict:
    """HLR, IOR and LRS (mean and std over runs) from per-model accuracies as fractions in [0, 1]."""
    if len(random) != len(condensed):
        raise ValueError("the condensed set and its random reference need one accuracy per run each")
    condensed_pct, random_pct = 100 * np.asarray(condensed, float), 100 * np.asarray(random, float)
    full_pct = 100 * np.asarray(full, float)
    full_pct = full_pct if len(full_pct) == len(condensed_pct) else np.full_like(condensed_pct, full_pct.mean())
    hlr, ior = full_pct - condensed_pct, condensed_pct - random_pct
    lrs = np.array([label_robust_score(i, h, lam) for i, h in zip(ior, hlr)])
    return {"hlr_mean": float(hlr.mean()), "hlr_std": float(hlr.std()), "ior_mean": float(ior.mean()),
            "ior_std": float(ior.std()), "lrs_mean": float(lrs.mean()), "lrs_std": float(lrs.std()),
            "lambda": lam, "runs": len(condensed_pct)}
