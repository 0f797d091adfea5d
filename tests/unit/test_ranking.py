"""DD-Ranking's scores, as its ``metrics/hard_label.py`` computes them from three evaluations."""

import math

import numpy as np
import pytest

from fiftyone_condense.algorithms.ranking import dd_ranking_scores, label_robust_score


def their_scores(condensed_pct, full_pct, random_pct, lrs_lambda=0.5):
    """The package's loop restated: per run HLR, IOR and LRS from top-1 accuracies in percent (its
    ``accuracy`` multiplies by 100), LRS appended twice per run, then np.mean / np.std."""
    hard_label_recovery, improvement_over_random, lrs_list = [], [], []
    for syn, full, random in zip(condensed_pct, full_pct, random_pct):
        hlr = 1.00 * (full - syn)
        ior = 1.00 * (syn - random)
        alpha = lrs_lambda * ior - (1 - lrs_lambda) * hlr
        lrs = (np.exp(alpha) - np.exp(-1)) / (np.exp(1) - np.exp(-1))
        lrs_list.append(lrs)
        hard_label_recovery.append(hlr)
        improvement_over_random.append(ior)
        lrs_list.append(lrs)
    return (np.mean(hard_label_recovery), np.std(hard_label_recovery), np.mean(improvement_over_random),
            np.std(improvement_over_random), np.mean(lrs_list), np.std(lrs_list))


def test_scores_reproduce_the_packages_formula_on_percent_accuracies():
    condensed, random, full = [0.8387, 0.8401, 0.8362], [0.7724, 0.7741, 0.7710], [0.9312, 0.9335, 0.9301]
    ours = dd_ranking_scores(condensed, random, full)
    theirs = their_scores([100 * a for a in condensed], [100 * a for a in full], [100 * a for a in random])
    assert [ours[k] for k in ("hlr_mean", "hlr_std", "ior_mean", "ior_std", "lrs_mean", "lrs_std")] == pytest.approx(
        theirs, rel=1e-12, abs=1e-15)
    assert ours["hlr_mean"] == pytest.approx(9.327, abs=1e-3) and ours["ior_mean"] == pytest.approx(6.583, abs=1e-3)


def test_lrs_of_a_set_as_good_as_the_whole_split_and_as_random():
    assert label_robust_score(ior=0.0, hlr=0.0) == pytest.approx((1 - math.exp(-1)) / (math.e - math.exp(-1)))
    assert label_robust_score(ior=2.0, hlr=0.0) == pytest.approx(1.0)  # λ·IOR = 1: the top of the paper's scale
    assert label_robust_score(ior=10.0, hlr=20.0) < 0  # in percentage points the score leaves [0, 1], as theirs


def test_a_whole_split_trained_with_fewer_models_counts_as_its_mean_in_every_run():
    ours = dd_ranking_scores([0.8, 0.9], [0.7, 0.7], [0.95])
    assert ours["hlr_mean"] == pytest.approx(10.0) and ours["hlr_std"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="one accuracy per run"):
        dd_ranking_scores([0.8, 0.9], [0.7], [0.95])
