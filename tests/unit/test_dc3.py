"""DC3 submodular sampling: bins, budgets per bin, and GraphCut inside bins."""

import numpy as np
import pytest

from fiftyone_condense.algorithms.selection import feature_gram, similarity_from_gram
from fiftyone_condense.algorithms.selection.dc3 import allocate, encoder_bins, pick_dc3, score_dc3


@pytest.mark.parametrize("sizes, budget, expected", [
    ([5, 5, 5], 6, [2, 2, 2]),           # a multiple of K: IPC/K each
    ([9, 7, 5], 5, [2, 2, 1]),           # the remainder goes to the largest bins
    ([9, 7, 5, 3], 2, [1, 1, 1, 1]),     # IPC < K: one each (the reference's), IPC of them kept
    ([10, 1, 1], 6, [4, 1, 1]),          # a small bin passes its excess on
])
def test_budget_per_bin(sizes, budget, expected):
    assert allocate(np.array(sizes), budget).tolist() == expected


def test_every_bin_gets_at_least_one_when_ipc_reaches_k():
    shares = allocate(np.array([30, 2, 8, 1, 9, 4, 6, 3, 5, 7]), 10)
    assert shares.sum() == 10 and shares.min() >= 1


def test_bins_come_from_kmeans_on_pca_features():
    rng = np.random.default_rng(0)
    clusters = np.concatenate([rng.normal(loc=c * 10, size=(15, 60)) for c in range(3)])
    labels = encoder_bins(clusters, bins=3, pca_dim=5, seed=0)
    assert len(set(labels[:15])) == len(set(labels[15:30])) == len(set(labels[30:])) == 1
    assert len(set(labels)) == 3


def test_below_k_picks_one_per_bin_then_keeps_a_random_ipc_of_them():
    rng = np.random.default_rng(2)
    encoder = np.concatenate([rng.normal(loc=c * 10, size=(10, 8)) for c in range(4)])
    picks = pick_dc3(40, 2, np.random.default_rng(0), gram=feature_gram(rng.normal(size=(40, 5))), encoder=encoder, bins=4)
    assert len(set(picks.tolist())) == 2 and len(set((picks // 10).tolist())) == 2


def test_dc3_spreads_picks_over_bins_and_uses_graph_cut_inside_them():
    rng = np.random.default_rng(1)
    encoder = np.concatenate([rng.normal(loc=c * 10, size=(10, 8)) for c in range(3)])
    gradients = rng.normal(size=(30, 5))
    picks = pick_dc3(30, 6, np.random.default_rng(0), gram=feature_gram(gradients), encoder=encoder, bins=3)
    assert len(set(picks.tolist())) == 6
    assert np.bincount(picks // 10, minlength=3).tolist() == [2, 2, 2]


def test_dc3_scores_are_graph_cut_gains_inside_the_bins_it_drew():
    rng = np.random.default_rng(1)
    encoder = np.concatenate([rng.normal(loc=c * 10, size=(10, 8)) for c in range(3)])
    gram = feature_gram(rng.normal(size=(30, 5)))
    picks = pick_dc3(30, 6, np.random.default_rng(0), gram=gram, encoder=encoder, bins=3)
    scores = score_dc3(picks, 30, np.random.default_rng(0), gram=gram, encoder=encoder, bins=3)
    for cluster in range(3):  # the bins are the three clusters; each pick's gain counts only its bin's earlier picks
        members = np.arange(cluster * 10, cluster * 10 + 10)
        kernel = similarity_from_gram(gram[np.ix_(members, members)]).astype(np.float64)
        chosen = [p - cluster * 10 for p in picks if p // 10 == cluster]
        for item in range(10):
            before = chosen[:chosen.index(item)] if item in chosen else chosen
            gain = kernel[:, item].sum() - kernel[item, item] - 2 * kernel[item, before].sum()
            assert scores[members[item]] == pytest.approx(gain, rel=1e-5)
