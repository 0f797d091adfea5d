"""Budgets a curator thinks in: per class, a fraction of the view, or a count, split by allocation."""

import numpy as np
import pytest

from fiftyone_condense.algorithms.budgets import Budget, balanced, proportional
from fiftyone_condense.algorithms.errors import CondensationError

CLASSES = ["a", "b", "c", "d"]
LABELS = np.repeat(np.arange(4), [600, 300, 90, 10])  # 1,000 images, unbalanced


def test_a_fraction_keeps_the_class_distribution_and_every_class():
    shares = Budget(fraction=0.05).per_class(LABELS, CLASSES)
    assert shares.tolist() == [30, 15, 4, 1] and shares.sum() == 50  # quotas 30, 15, 4.5, 0.5: d's one is the remainder
    assert Budget(count=20).per_class(LABELS, CLASSES).tolist() == [12, 6, 1, 1]  # 12, 6, 1.8, 0.2: floors + d's one
    assert Budget(count=24).per_class(LABELS, CLASSES).tolist() == [14, 7, 2, 1]  # 14.4, 7.2, 2.16, 0.24: c's remainder
    record = Budget(count=20).record(Budget(count=20).per_class(LABELS, CLASSES), CLASSES)
    assert record == {"mode": "count", "value": 20, "allocation": "proportional", "total": 20,
                      "per_class": {"a": 12, "b": 6, "c": 1, "d": 1}}


def test_largest_remainders_against_brute_force():
    """Proportional shares are within one of their quotas (largest remainders) when every quota is at least one."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(5, 50, size=rng.integers(2, 6))
        total = int(rng.integers(counts.sum() // 5 * 1 + len(counts), counts.sum() + 1))
        shares = proportional(counts, total)
        quotas = total * counts / counts.sum()
        assert shares.sum() == total and np.all(shares <= counts) and np.all(np.abs(shares - quotas) < 1)


def test_balanced_gives_equal_shares_and_passes_on_what_a_small_class_cannot_take():
    assert Budget(count=40, allocation="balanced").per_class(LABELS, CLASSES).tolist() == [10, 10, 10, 10]
    assert balanced(np.array([600, 300, 90, 10]), 100).tolist() == [30, 30, 30, 10]
    assert balanced(np.array([5, 5, 5]), 4).tolist() == [2, 1, 1]  # one left for three: the first class


def test_ipc_is_per_class_and_exactly_one_budget_is_given():
    assert Budget(ipc=5).per_class(LABELS, CLASSES).tolist() == [5, 5, 5, 5]
    assert Budget(ipc=5).key() == "ipc5" and Budget(fraction=0.05).key() == "frac0_05" and Budget(count=7).key() == "n7"
    for bad, message in [(dict(ipc=5, count=3), "exactly one"), (dict(), "exactly one"), (dict(fraction=1.5), "fraction"),
                         (dict(count=0), "count"), (dict(count=5, allocation="fair"), "allocation"),
                         (dict(ipc=5, allocation="proportional"), "class distribution")]:
        with pytest.raises(CondensationError, match=message):
            Budget(**bad)
    with pytest.raises(CondensationError, match="more than"):
        Budget(count=1001).per_class(LABELS, CLASSES)
    assert Budget(count=2).per_class(LABELS, CLASSES).sum() == 4  # at least one image of every class
