"""DC3's submodular sampling: encoder bins per class, then GraphCut inside each bin.

Per class: PCA (50 components) and K-means (K = 10) on encoder features split the class into
bins, and GraphCut (λ = 1, similarity 0.5 + 0.5·cos) on gradient embeddings picks inside each
bin, as the reference's ``get_bins.py`` and ``submodular_sampling.py`` do. The reference gives
every bin ``max(1, IPC // K)`` picks and, where that is more than IPC (IPC < K), its validation
step keeps a random IPC of them; so does this, so a class gets exactly IPC. Where the reference
stops with an error we go on: a remainder (IPC > K, not a multiple of K) goes one each to the
largest bins, and a bin smaller than its share passes the excess on to the next largest.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from .base import SelectionMethod, register
from .submodular import pick_graph_cut


def encoder_bins(encoder: np.ndarray, bins: int = 10, pca_dim: int = 50, seed: int = 0) -> np.ndarray:
    """Bin index of each row: K-means (scikit-learn's defaults) on the first ``pca_dim`` principal components."""
    features = encoder.reshape(len(encoder), -1).astype(np.float64)
    clusters = min(bins, len(features))
    components = min(pca_dim, len(features), features.shape[1])
    if features.shape[1] > components:
        features = PCA(n_components=components, random_state=seed).fit_transform(features)
    return KMeans(n_clusters=clusters, random_state=seed).fit_predict(features)


def allocate(bin_sizes: np.ndarray, budget: int) -> np.ndarray:
    """Picks per bin: ``max(1, budget // K)`` each (the reference's), the remainder one each to
    the largest bins, within bin sizes. The total may exceed ``budget`` when budget < K."""
    if budget > int(bin_sizes.sum()):
        raise ValueError(f"budget {budget} exceeds the {int(bin_sizes.sum())} samples of the class")
    wanted = max(budget, len(bin_sizes))
    shares = np.minimum(bin_sizes, max(1, budget // len(bin_sizes)))
    by_size = np.argsort(-bin_sizes, kind="stable")
    while shares.sum() < wanted:
        for index in by_size:
            if shares.sum() == wanted:
                break
            if shares[index] < bin_sizes[index]:
                shares[index] += 1
    return shares


def pick_dc3(
    n: int, budget: int, rng: np.random.Generator, gram: np.ndarray, encoder: np.ndarray,
    bins: int = 10, pca_dim: int = 50, lambda_: float = 1.0, optimizer: str = "NaiveGreedy",
) -> np.ndarray:
    """DC3 picks for one class: ``gram`` of gradient embeddings, ``encoder`` features for the bins."""
    labels = encoder_bins(encoder, bins, pca_dim, seed=int(rng.integers(2**31 - 1)))
    shares = allocate(np.bincount(labels), budget)
    picks = []
    for label, share in enumerate(shares):
        if share:
            members = np.flatnonzero(labels == label)
            local = pick_graph_cut(len(members), int(share), rng, gram[np.ix_(members, members)], lambda_, optimizer)
            picks.extend(members[local].tolist())
    picks = np.array(picks, dtype=np.int64)
    return picks if len(picks) == budget else rng.choice(picks, size=budget, replace=False)


register(SelectionMethod("dc3", pick_dc3, ("gram", "encoder"),
                         "DC3: GraphCut on gradient embeddings inside K-means bins of encoder features"))
