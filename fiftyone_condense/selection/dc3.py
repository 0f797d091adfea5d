"""DC3's submodular sampling: encoder bins per class, then GraphCut inside each bin.

Per class: PCA (50 components) and K-means (K = 10) on encoder features split the class
into bins; each bin receives ``IPC // K`` picks, and the remaining ``IPC mod K`` go one
each to the largest bins (so with IPC < K only the IPC largest bins are sampled). A bin
smaller than its share passes the excess on to the next largest bins. Inside a bin, GraphCut
(λ = 1, similarity 0.5 + 0.5·cos) on the gradient embeddings chooses the picks greedily.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from .base import SelectionMethod, register
from .submodular import pick_graph_cut


def encoder_bins(encoder: np.ndarray, bins: int = 10, pca_dim: int = 50, seed: int = 0) -> np.ndarray:
    """Bin index of each row: K-means on the first ``pca_dim`` principal components."""
    features = encoder.reshape(len(encoder), -1).astype(np.float64)
    clusters = min(bins, len(features))
    components = min(pca_dim, len(features), features.shape[1])
    if features.shape[1] > components:
        features = PCA(n_components=components, random_state=seed).fit_transform(features)
    return KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(features)


def allocate(bin_sizes: np.ndarray, budget: int) -> np.ndarray:
    """Picks per bin: ``budget // K`` each, the remainder to the largest bins, within bin sizes."""
    if budget > int(bin_sizes.sum()):
        raise ValueError(f"budget {budget} exceeds the {int(bin_sizes.sum())} samples of the class")
    shares = np.minimum(bin_sizes, budget // len(bin_sizes))
    by_size = np.argsort(-bin_sizes, kind="stable")
    while shares.sum() < budget:
        for index in by_size:
            if shares.sum() == budget:
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
    return np.array(picks, dtype=np.int64)


register(SelectionMethod("dc3", pick_dc3, ("gram", "encoder"),
                         "DC3: GraphCut on gradient embeddings inside K-means bins of encoder features"))
