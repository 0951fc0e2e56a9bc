"""The paired bootstrap: its weighted metrics are scikit-learn's, and its interval is of the difference."""

import math

import numpy as np
import pytest

from include.training.evaluation import METRICS
from include.training.paired_bootstrap import WEIGHTED_METRICS, paired_bootstrap


def holdout(rows=3000, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.3).astype(int)
    scores = np.clip(0.3 + 0.3 * labels + rng.normal(0, 0.2, rows), 0, 1).round(2)  # many ties
    return labels, scores


@pytest.mark.parametrize("name", sorted(METRICS))
def test_a_weighted_metric_equals_scikit_learns_on_the_resampled_rows(name):
    labels, scores = holdout()
    counts = np.random.default_rng(1).integers(0, 3, size=(4, len(labels)))

    weighted = WEIGHTED_METRICS[name](labels, scores, counts.astype(float))

    for draw, row_counts in enumerate(counts):
        expected = METRICS[name](np.repeat(labels, row_counts), np.repeat(scores, row_counts))
        assert weighted[draw] == pytest.approx(expected, abs=1e-12)


def test_the_interval_is_of_the_paired_difference_and_narrower_than_either_models():
    labels, champion = holdout()
    candidate = np.clip(champion + np.random.default_rng(2).normal(0, 0.02, len(labels)), 0, 1)

    paired = paired_bootstrap(labels, candidate, champion, ["roc_auc"], samples=500, confidence=0.95, seed=0)
    alone = paired_bootstrap(labels, candidate, np.full(len(labels), 0.5), ["roc_auc"], samples=500,
                             confidence=0.95, seed=0)

    interval = paired["roc_auc"]
    assert interval.difference == pytest.approx(METRICS["roc_auc"](labels, candidate) -
                                                METRICS["roc_auc"](labels, champion))
    assert interval.low < interval.difference < interval.high
    assert interval.high - interval.low < (alone["roc_auc"].high - alone["roc_auc"].low) / 3


def test_rows_either_model_could_not_score_are_left_out():
    labels, scores = holdout()
    broken = scores.copy()
    broken[::10] = np.nan

    interval = paired_bootstrap(labels, broken, scores, ["brier_score"], samples=200, confidence=0.9, seed=0)[
        "brier_score"]

    kept = np.isfinite(broken)
    assert interval.candidate == pytest.approx(METRICS["brier_score"](labels[kept], scores[kept]))
    assert interval.difference == 0 and interval.low == interval.high == 0


def test_an_empty_holdout_gives_an_undefined_interval():
    empty = np.array([])

    interval = paired_bootstrap(empty, empty, empty, ["roc_auc"], samples=100, confidence=0.95, seed=0)["roc_auc"]

    assert math.isnan(interval.low) and math.isnan(interval.high)
