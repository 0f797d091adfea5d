"""Classic coreset baselines: random, herding and k-center, on a class's Gram matrix (dense, or
factored so a large class needs O(n·d) memory: see :class:`~.gram.FactoredGram`)."""

from __future__ import annotations

import numpy as np

from .base import SelectionMethod, embedding_params, register
from .gram import Gram, gram_diagonal, gram_row_means


def pick_random(n: int, budget: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform sample without replacement."""
    return rng.choice(n, size=budget, replace=False)


def pick_herding(n: int, budget: int, rng: np.random.Generator, gram: Gram) -> np.ndarray:
    """Herding (Welling 2009; the DC baseline): grow the set whose mean stays closest to the class mean.

    Step k picks ``argmin_i ||μ - (s + x_i)/(k+1)||²`` with ``s`` the sum of the picks so far,
    written with inner products only: ``-2(k+1)<μ, s+x_i> + ||s + x_i||²`` up to constants.
    """
    mean_dot = gram_row_means(gram)  # <μ, x_i>
    diagonal = gram_diagonal(gram)
    sum_dot = np.zeros(n)  # <s, x_i>
    sum_mean, sum_norm = 0.0, 0.0  # <μ, s>, ||s||²
    available = np.ones(n, dtype=bool)
    picks = []
    for k in range(budget):
        cost = -2.0 * (k + 1) * (sum_mean + mean_dot) + sum_norm + 2.0 * sum_dot + diagonal
        cost[~available] = np.inf
        choice = int(np.argmin(cost))
        picks.append(choice)
        available[choice] = False
        sum_norm += 2.0 * sum_dot[choice] + diagonal[choice]
        sum_mean += mean_dot[choice]
        sum_dot += gram[choice]
    return np.array(picks)


def pick_k_center(n: int, budget: int, rng: np.random.Generator, gram: Gram) -> np.ndarray:
    """Greedy k-center (Sener & Savarese 2018): repeatedly take the point farthest from the picks.

    Starts from the point nearest the class mean, so the result does not depend on the seed.
    """
    diagonal = gram_diagonal(gram)
    first = int(np.argmin(diagonal - 2.0 * gram_row_means(gram)))
    picks = [first]
    nearest = diagonal + diagonal[first] - 2.0 * gram[first]  # squared distance to the nearest pick
    for _ in range(budget - 1):
        nearest[picks] = -np.inf
        choice = int(np.argmax(nearest))
        picks.append(choice)
        nearest = np.minimum(nearest, diagonal + diagonal[choice] - 2.0 * gram[choice])
    return np.array(picks)


def score_herding(picks: np.ndarray, n: int, rng: np.random.Generator, gram: Gram) -> np.ndarray:
    """Herding's order: 1 for its first pick, 2 for the next, ...; NaN for the items it did not take."""
    order = np.full(n, np.nan)
    order[np.asarray(picks, dtype=np.int64)] = np.arange(1, len(picks) + 1)
    return order


def score_k_center(picks: np.ndarray, n: int, rng: np.random.Generator, gram: Gram) -> np.ndarray:
    """Each item's distance to the nearest pick other than itself: how far the selection leaves it
    uncovered (for a pick, how isolated it is among the picks)."""
    diagonal = gram_diagonal(gram)
    picks = np.asarray(picks, dtype=np.int64)
    squared = np.stack([diagonal + diagonal[p] - 2.0 * gram[p] for p in picks])  # (picks, n)
    squared[np.arange(len(picks)), picks] = np.inf
    nearest = squared.min(0)
    return np.where(np.isinf(nearest), np.nan, np.sqrt(np.clip(nearest, 0, None)))  # a lone pick has no other


register(SelectionMethod("random", pick_random, (), "uniform random sample per class"))
register(SelectionMethod("herding", pick_herding, ("gram_rows",), "running mean closest to the class mean",
                         embedding_params(), score_herding,
                         "herding's order: 1 for the first pick (lower: nearer the mean's path); empty for the rest"))
register(SelectionMethod("k_center", pick_k_center, ("gram_rows",), "greedy farthest-first cover of the class",
                         embedding_params(), score_k_center,
                         "distance to the nearest selected sample other than itself (higher: less covered)"))
