"""A seeded paired bootstrap of (candidate - champion) on the same holdout rows.

Each draw resamples the holdout's row indices once, and both models' metrics are computed on
that same resample, so the interval is the uncertainty of the *difference*, which is much
narrower than either model's own interval when the two models rank the rows alike.

A resample is a vector of counts (how often each row was drawn); every metric of
`include.training.evaluation.METRICS` is computed from the counts as row weights, for a block of draws at
once. Ranking metrics sort each model's scores once (the order is the same in every resample)
and sum the weights per distinct score, so 1,000 draws of ROC AUC on 10,000 rows take a fraction
of a second instead of 1,000 sorts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from include.training.evaluation import DECISION_THRESHOLD

DRAWS_PER_BLOCK = 100
"""Draws computed together: a block of 100 draws on 10,000 rows is 8 MB per weight matrix."""


@dataclass(frozen=True)
class Interval:
    """The paired bootstrap of one metric: the point difference and its interval.

    `difference` is candidate - champion on the whole holdout (the metric's own direction: for a
    lower-is-better metric a negative difference is an improvement); `low` and `high` are the
    percentile interval at `confidence` over `samples` draws.
    """

    metric: str
    candidate: float
    champion: float
    difference: float
    low: float
    high: float
    confidence: float
    samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def _groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Start index of each run of equal scores in sorted scores (tied rows share a threshold)."""
    return np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])


def _roc_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney: the weighted share of (positive, negative) pairs ranked right, ties half."""
    order = np.argsort(scores, kind="stable")
    starts = _groups(scores[order])
    ranked, positive = weights[:, order], labels[order] == 1
    pos = np.add.reduceat(np.where(positive, ranked, 0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0, ranked), starts, axis=1)
    negatives_below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    right = (pos * (negatives_below + 0.5 * neg)).sum(axis=1)
    return np.divide(right, pairs, out=np.full(len(weights), np.nan), where=pairs > 0)


def _average_precision(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """scikit-learn's AP: sum over distinct thresholds of (recall step) x precision."""
    order = np.argsort(-scores, kind="stable")
    starts = _groups(scores[order])
    ranked, positive = weights[:, order], labels[order] == 1
    pos = np.add.reduceat(np.where(positive, ranked, 0), starts, axis=1)
    flagged = np.cumsum(np.add.reduceat(ranked, starts, axis=1), axis=1)
    precision = np.divide(np.cumsum(pos, axis=1), flagged, out=np.zeros_like(flagged, dtype=float),
                          where=flagged > 0)
    positives = pos.sum(axis=1)
    found = (pos * precision).sum(axis=1)
    both = (positives > 0) & (positives < weights.sum(axis=1))
    return np.divide(found, positives, out=np.full(len(weights), np.nan), where=both)


def _mean(per_row: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable:
    def metric(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return weights @ per_row(labels, scores) / weights.sum(axis=1)

    return metric


def _log_loss_per_row(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    p = np.clip(scores, 1e-15, 1 - 1e-15)
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


def _f1(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    decided = scores > DECISION_THRESHOLD
    true_pos = weights @ (decided & (labels == 1))
    wrong = weights @ (decided != (labels == 1))
    denominator = 2 * true_pos + wrong
    return np.divide(2 * true_pos, denominator, out=np.zeros(len(weights)), where=denominator > 0)


WEIGHTED_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "roc_auc": _roc_auc,
    "average_precision": _average_precision,
    "brier_score": _mean(lambda y, p: (p - y) ** 2),
    "log_loss": _mean(_log_loss_per_row),
    "accuracy": _mean(lambda y, p: ((p > DECISION_THRESHOLD) == (y == 1)).astype(float)),
    "f1": _f1,
}
"""Each metric of `include.training.evaluation.METRICS`, for a (draws, rows) matrix of row weights at once.
With all weights 1 each equals its scikit-learn counterpart."""


def paired_bootstrap(
    labels: np.ndarray,
    candidate_scores: np.ndarray,
    champion_scores: np.ndarray,
    metrics: list[str],
    *,
    samples: int,
    confidence: float,
    seed: int,
) -> dict[str, Interval]:
    """The paired bootstrap interval of (candidate - champion) for each named metric.

    Rows where either model's score is not finite are left out (the gate rejects NaN
    predictions separately). A draw where a metric is undefined (e.g. a resample with one class)
    is left out of that metric's interval.

    Args:
        labels: 0/1 labels of the holdout rows.
        candidate_scores, champion_scores: each model's positive-class probability for the same rows.
        samples: bootstrap draws; confidence: the interval's coverage; seed: the generator's seed
            (the same inputs and seed give the same interval).

    Returns:
        {metric: Interval}.
    """
    labels = np.asarray(labels, dtype=int)
    candidate_scores = np.asarray(candidate_scores, dtype=float)
    champion_scores = np.asarray(champion_scores, dtype=float)
    finite = np.isfinite(candidate_scores) & np.isfinite(champion_scores)
    labels, candidate_scores, champion_scores = labels[finite], candidate_scores[finite], champion_scores[finite]
    rows = len(labels)
    whole = np.ones((1, rows))
    differences: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    generator = np.random.default_rng(seed)
    for first in range(0, samples if rows else 0, DRAWS_PER_BLOCK):
        draws = min(DRAWS_PER_BLOCK, samples - first)
        picked = generator.integers(0, rows, size=(draws, rows)) + np.arange(draws)[:, None] * rows
        weights = np.bincount(picked.ravel(), minlength=draws * rows).reshape(draws, rows).astype(float)
        for name in metrics:
            metric = WEIGHTED_METRICS[name]
            differences[name].append(metric(labels, candidate_scores, weights) -
                                     metric(labels, champion_scores, weights))
    tail = (1 - confidence) / 2
    intervals = {}
    for name in metrics:
        metric = WEIGHTED_METRICS[name]
        candidate, champion = (float(metric(labels, scores, whole)[0]) if rows else math.nan
                               for scores in (candidate_scores, champion_scores))
        spread = np.concatenate(differences[name]) if rows else np.array([])
        spread = spread[np.isfinite(spread)]
        low, high = (np.quantile(spread, [tail, 1 - tail]) if len(spread) else (math.nan, math.nan))
        intervals[name] = Interval(
            metric=name, candidate=candidate, champion=champion, difference=candidate - champion,
            low=float(low), high=float(high), confidence=confidence, samples=samples,
        )
    return intervals
