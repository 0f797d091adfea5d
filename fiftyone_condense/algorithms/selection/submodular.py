"""Submodular selection with submodlib on a precomputed per-class kernel."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from submodlib import FacilityLocationFunction, GraphCutFunction

from ..params import Param
from .base import SelectionMethod, embedding_params, register
from .gram import similarity_from_gram

GREEDY_VARIANTS = ("NaiveGreedy", "LazyGreedy", "StochasticGreedy", "LazierThanLazyGreedy")
OPTIMIZER = Param("optimizer", str, "NaiveGreedy", "submodlib greedy variant maximising the function",
                  label="Greedy variant", choices=GREEDY_VARIANTS)
LAMBDA = Param("lambda_", float, 1.0, "GraphCut trade-off: larger values favour diverse picks", label="λ (diversity)",
               min=0.0)


def maximize(function, n: int, budget: int, optimizer: str) -> np.ndarray:
    """Greedy maximisation to exactly ``budget`` picks (gains may go to zero; keep going)."""
    if budget >= n:  # submodlib refuses a budget equal to the ground set; every item is picked
        return np.arange(n)
    if optimizer not in GREEDY_VARIANTS:
        raise ValueError(f"Unknown greedy variant {optimizer!r}; choose one of {GREEDY_VARIANTS}")
    chosen = function.maximize(
        budget=budget,
        optimizer=optimizer,
        stopIfZeroGain=False,
        stopIfNegativeGain=False,
        verbose=False,
        show_progress=False,
    )
    return np.array([index for index, _gain in chosen], dtype=np.int64)


def pick_graph_cut(
    n: int, budget: int, rng: np.random.Generator, gram: np.ndarray,
    lambda_: float = 1.0, optimizer: str = "NaiveGreedy",
) -> np.ndarray:
    """GraphCut: f(S) = Σ_{i∈V, j∈S} s_ij − λ Σ_{i,j∈S} s_ij, representative yet diverse."""
    kernel = similarity_from_gram(gram)
    function = GraphCutFunction(n=n, mode="dense", lambdaVal=lambda_, separate_rep=False, ggsijs=kernel)
    return maximize(function, n, budget, optimizer)


def pick_facility_location(
    n: int, budget: int, rng: np.random.Generator, gram: np.ndarray, optimizer: str = "NaiveGreedy",
) -> np.ndarray:
    """Facility location: f(S) = Σ_{i∈V} max_{j∈S} s_ij, every sample near some pick."""
    kernel = similarity_from_gram(gram)
    function = FacilityLocationFunction(n=n, mode="dense", sijs=kernel, separate_rep=False)
    return maximize(function, n, budget, optimizer)


def graph_cut_gains(kernel: np.ndarray, picks: np.ndarray, lambda_: float) -> np.ndarray:
    """GraphCut's marginal gain ``f(j | S) = Σ_i s_ij − λ s_jj − 2λ Σ_{k∈S} s_jk`` of every item: a
    pick's given the picks before it (the gain at which the greedy took it), any other's given all."""
    kernel = kernel.astype(np.float64)
    picks = np.asarray(picks, dtype=np.int64)
    overlap = kernel[:, picks].sum(1)
    overlap[picks] = np.tril(kernel[np.ix_(picks, picks)], -1).sum(1)
    return kernel.sum(0) - lambda_ * (np.diag(kernel) + 2 * overlap)


def facility_location_gains(kernel: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Facility location's marginal gain ``f(j | S) = Σ_i max(0, s_ij − max_{k∈S} s_ik)`` of every
    item: a pick's given the picks before it, any other's given all."""
    kernel = kernel.astype(np.float64)
    covered = np.zeros(len(kernel))  # max similarity to the picks so far (submodlib starts from 0)
    gains = np.empty(len(kernel))
    for pick in np.asarray(picks, dtype=np.int64):
        gains[pick] = np.maximum(kernel[:, pick] - covered, 0).sum()
        covered = np.maximum(covered, kernel[:, pick])
    rest = np.setdiff1d(np.arange(len(kernel)), picks)
    gains[rest] = np.maximum(kernel[:, rest] - covered[:, None], 0).sum(0)
    return gains


def score_graph_cut(picks: np.ndarray, n: int, rng: np.random.Generator, gram: np.ndarray,
                    lambda_: float = 1.0, optimizer: str = "NaiveGreedy") -> np.ndarray:
    return graph_cut_gains(similarity_from_gram(gram), picks, lambda_)


def score_facility_location(picks: np.ndarray, n: int, rng: np.random.Generator, gram: np.ndarray,
                            optimizer: str = "NaiveGreedy") -> np.ndarray:
    return facility_location_gains(similarity_from_gram(gram), picks)


GAIN_HELP = ("the greedy gain at which each pick was taken; for the others, their gain given all the picks "
             "(higher: more {what})")
register(SelectionMethod("graph_cut", pick_graph_cut, ("gram",), "submodular GraphCut (λ=1) with submodlib",
                         (*embedding_params(), LAMBDA, OPTIMIZER), score_graph_cut,
                         GAIN_HELP.format(what="representative and unlike the picks")))
register(SelectionMethod("facility_location", pick_facility_location, ("gram",),
                         "submodular facility location with submodlib", (*embedding_params(), OPTIMIZER),
                         score_facility_location, GAIN_HELP.format(what="coverage the item adds")))


def stochastic_sample_size(n: int, budget: int, epsilon: float) -> int:
    """Candidates each stochastic-greedy step looks at: max(1, round(−ln ε · n / budget))."""
    return max(1, round(-math.log(epsilon) * n / budget))


def stochastic_graph_cut(kernel: np.ndarray, budget: int, lambda_: float, epsilon: float,
                         rng: np.random.Generator) -> np.ndarray:
    """GraphCut maximised by stochastic greedy (Mirzasoleiman et al. 2015), as AutoPalette's selection
    code runs it: each step draws :func:`stochastic_sample_size` of the items not yet picked, from
    ``rng``, and takes the one of largest gain ``Σ_i s_ij − λ (s_jj + 2 Σ_{k∈S} s_jk)``."""
    n = len(kernel)
    if budget >= n:
        return np.arange(n)
    coverage, self_similarity = kernel.sum(0), np.diag(kernel)
    overlap, free, picks = np.zeros(n), np.ones(n, dtype=bool), []
    size = stochastic_sample_size(n, budget, epsilon)
    for _ in range(budget):
        candidates = np.flatnonzero(free)
        drawn = rng.choice(candidates, size=min(size, len(candidates)), replace=False)
        gains = coverage[drawn] - lambda_ * (self_similarity[drawn] + 2 * overlap[drawn])
        best = int(drawn[np.argmax(gains)])
        picks.append(best)
        free[best] = False
        overlap += kernel[best]
    return np.array(picks, dtype=np.int64)


def pick_autopalette_init(
    n: int, budget: int, rng: np.random.Generator, gram: np.ndarray,
    lambda_: float = 1.0, optimizer: str = "StochasticGreedy", epsilon: float = 0.9,
) -> np.ndarray:
    """AutoPalette's colour-guided initialisation on the Gram of Median-Cut-quantised images.

    Each greedy GraphCut step takes the sample of highest conditional gain
    ``f(j | S) = Σ_i s_ij − λ s_jj − 2λ Σ_{k∈S} s_jk``: representative of the class, unlike
    the picks so far. As the authors' code: among a random ``epsilon`` sample of the candidates
    (stochastic greedy, seeded per class); another ``optimizer`` runs submodlib's greedy.
    """
    if optimizer == "StochasticGreedy":
        return stochastic_graph_cut(similarity_from_gram(gram), budget, lambda_, epsilon, rng)
    return pick_graph_cut(n, budget, rng, gram, lambda_, optimizer)


EPSILON = Param("epsilon", float, 0.9, "Stochastic greedy: each step looks at max(1, round(−ln ε · n / IPC)) random "
                "candidates (AutoPalette: 0.9)", label="ε (stochastic greedy)", min=1e-12, max=1.0,
                when={"optimizer": "StochasticGreedy"})
AUTOPALETTE_INIT_PARAMS = (
    Param("num_colors", int, 64, "Median-Cut colours per image", label="Colours (K)", min=2, max=256),
    Param("teacher_epochs", int, 50, "Epochs training ConvNet-3 on the Median-Cut images (AutoPalette: 50)",
          label="Selection network epochs", min=1),
    LAMBDA,
    replace(OPTIMIZER, default="StochasticGreedy", help="Greedy variant: StochasticGreedy (AutoPalette's, seeded; "
            "ε below), or one of submodlib's"),
    EPSILON,
)
def score_autopalette_init(picks: np.ndarray, n: int, rng: np.random.Generator, gram: np.ndarray,
                           lambda_: float = 1.0, optimizer: str = "StochasticGreedy", epsilon: float = 0.9) -> np.ndarray:
    return graph_cut_gains(similarity_from_gram(gram), picks, lambda_)


register(SelectionMethod("autopalette_init", pick_autopalette_init, ("gram",),
                         "AutoPalette init: GraphCut conditional gain on Median-Cut-quantised images",
                         AUTOPALETTE_INIT_PARAMS, score_autopalette_init,
                         GAIN_HELP.format(what="representative and unlike the picks"), needs_labels=True))
