"""The selection algorithms' math, checked against brute force on tiny inputs."""

import itertools

import numpy as np
import pytest

from fiftyone_condense.errors import CondensationError
from fiftyone_condense.selection import (
    check_class_budget, feature_gram, gradient_embeddings, gradient_gram, select_per_class, similarity_from_gram,
)
from fiftyone_condense.selection.coresets import pick_herding, pick_k_center
from fiftyone_condense.selection.submodular import pick_facility_location, pick_graph_cut


@pytest.fixture
def points():
    return np.random.default_rng(0).normal(size=(12, 4))


def test_gradient_gram_equals_gram_of_explicit_gradient_embeddings():
    rng = np.random.default_rng(1)
    features, logits, labels = rng.normal(size=(7, 5)), rng.normal(size=(7, 3)), rng.integers(0, 3, 7)
    explicit = gradient_embeddings(features, logits, labels)
    assert explicit.shape == (7, 3 * (5 + 1))
    np.testing.assert_allclose(gradient_gram(features, logits, labels), explicit @ explicit.T, rtol=1e-4, atol=1e-5)


def test_herding_each_step_is_the_best_mean_match(points):
    picks = pick_herding(len(points), 4, np.random.default_rng(0), gram=feature_gram(points))
    mean = points.mean(0)
    for k in range(4):
        candidates = [i for i in range(len(points)) if i not in picks[:k]]
        costs = [np.linalg.norm(mean - points[list(picks[:k]) + [i]].mean(0)) for i in candidates]
        assert picks[k] == candidates[int(np.argmin(costs))]


def test_k_center_starts_at_the_mean_and_takes_the_farthest_point(points):
    picks = pick_k_center(len(points), 4, np.random.default_rng(0), gram=feature_gram(points))
    assert picks[0] == np.argmin(np.linalg.norm(points - points.mean(0), axis=1))
    for k in range(1, 4):
        distance = np.min(np.linalg.norm(points[:, None] - points[None, picks[:k]], axis=2), axis=1)
        assert picks[k] == np.argmax(distance)


def graph_cut_value(kernel, subset, lam):
    subset = list(subset)
    return kernel[:, subset].sum() - lam * kernel[np.ix_(subset, subset)].sum()


def facility_location_value(kernel, subset):
    return kernel[:, list(subset)].max(axis=1).sum()


@pytest.mark.parametrize("lam", [0.5, 1.0])
def test_graph_cut_matches_a_brute_force_greedy_on_a_tiny_kernel(points, lam):
    kernel = similarity_from_gram(feature_gram(points)).astype(np.float64)
    picks = pick_graph_cut(len(points), 4, np.random.default_rng(0), gram=feature_gram(points), lambda_=lam)
    chosen = []
    for _ in range(4):
        gains = {i: graph_cut_value(kernel, chosen + [i], lam) for i in range(len(points)) if i not in chosen}
        chosen.append(max(gains, key=gains.get))
    assert list(picks) == chosen


def test_facility_location_matches_brute_force_greedy(points):
    kernel = similarity_from_gram(feature_gram(points)).astype(np.float64)
    picks = pick_facility_location(len(points), 3, np.random.default_rng(0), gram=feature_gram(points))
    chosen = []
    for _ in range(3):
        gains = {i: facility_location_value(kernel, chosen + [i]) for i in range(len(points)) if i not in chosen}
        chosen.append(max(gains, key=gains.get))
    assert list(picks) == chosen
    best = max(itertools.combinations(range(len(points)), 3), key=lambda s: facility_location_value(kernel, s))
    # greedy is within (1 - 1/e) of the optimum for a monotone submodular function
    assert facility_location_value(kernel, chosen) >= (1 - 1 / np.e) * facility_location_value(kernel, best)


def test_similarity_is_half_plus_half_cosine():
    gram = feature_gram(np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]))
    np.testing.assert_allclose(similarity_from_gram(gram), [[1, 0.5, 0], [0.5, 1, 0.5], [0, 0.5, 1]], atol=1e-6)


def test_per_class_selection_is_balanced_seeded_and_within_class():
    labels = np.repeat(np.arange(3), [5, 6, 7])
    first = select_per_class("random", labels, 2, seed=3)
    assert np.bincount(labels[first]).tolist() == [2, 2, 2]
    assert first.tolist() == select_per_class("random", labels, 2, seed=3).tolist()
    assert first.tolist() != select_per_class("random", labels, 2, seed=4).tolist()


def test_budget_larger_than_a_class_names_the_class():
    with pytest.raises(CondensationError, match="'b' has 2"):
        check_class_budget(np.array([0, 0, 0, 1, 1]), 3, ["a", "b"])
