"""Realized performance: how good the champion's predictions turned out once the labels arrived.

Labels arrive `target.label_delay_days` after the event, so the sensor scores the predictions of
an earlier window: the prediction log (entity id, probability, model version) joined with the
labels that have arrived for those entities. The metrics are `include.training.evaluation.METRICS`, the
very functions the gate scored the champion's holdout with, so the two numbers compare.

A window whose labels are all of one class has no ROC AUC or average precision (there is no
ranking to score): those metrics are None with a reason, never a made-up 0.5 or 0.0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from include.core.config import ModelConfig
from include.training.evaluation import METRICS, check_metric_names

SCORE_COLUMN = "probability"
VERSION_COLUMN = "version"


def realized_performance(
    config: ModelConfig,
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    model_version: str | int | None = None,
    score_column: str = SCORE_COLUMN,
    version_column: str = VERSION_COLUMN,
) -> dict:
    """Join predictions with the labels that have arrived and compute the config's metrics.

    Args:
        config: the model config (entity column, target, metrics, primary metric).
        predictions: the prediction log (`include.delivery.prediction_log`): entity id, `score_column` and
            `version_column`. When an entity was scored more than once, its last prediction counts.
        labels: labels that have arrived: entity id and the target column.
        model_version: score only this version's predictions (None: every version).

    Returns:
        {"metric": primary name, "value": primary value or None, "metrics": {name: value or None}
         for the config's metrics, "reason": why a metric is None (or None), "rows_joined",
         "positives", "model_versions": the versions that made the joined predictions}

    Raises:
        ValueError: a metric of the config is not one the library computes.
    """
    check_metric_names(config)
    entity, target = config.schema.entity_column, config.target.column
    if model_version is not None:
        predictions = predictions[predictions[version_column].astype(str) == str(model_version)]
    latest = predictions.drop_duplicates(subset=entity, keep="last")[[entity, score_column, version_column]]
    arrived = labels.drop_duplicates(subset=entity, keep="last")[[entity, target]]
    joined = latest.merge(arrived, on=entity, how="inner")
    joined = joined[joined[target].notna() & np.isfinite(joined[score_column].astype("float64"))]
    y_true = (joined[target] == config.target.positive_label).to_numpy(dtype=np.int64)
    scores = joined[score_column].to_numpy(dtype="float64")
    values, reason = _metrics(list(config.evaluation.metrics), y_true, scores)
    primary = config.evaluation.primary_metric
    return {
        "metric": primary,
        "value": values[primary],
        "metrics": values,
        "reason": reason,
        "rows_joined": len(joined),
        "positives": int(y_true.sum()),
        "model_versions": sorted(joined[version_column].astype(str).unique().tolist()),
    }


def _metrics(names: list[str], y_true: np.ndarray, scores: np.ndarray) -> tuple[dict, str | None]:
    if not len(y_true):
        return dict.fromkeys(names), "no predictions with arrived labels"
    values = {}
    for name in names:
        value = METRICS[name](y_true, scores)
        values[name] = None if math.isnan(value) else value
    reason = None
    if len(np.unique(y_true)) < 2:
        reason = f"all {len(y_true)} labels are {int(y_true[0])}: ranking metrics are undefined"
    return values, reason


def performance_dropped(
    config: ModelConfig, realized: dict, champion_holdout_metric: float | None
) -> tuple[bool, float | None]:
    """Whether the realized primary metric fell more than `retrain_policy.performance_drop`.

    The drop is measured in the metric's units and direction: holdout minus realized when greater
    is better, realized minus holdout when lower is better, so a positive drop is always worse.
    How many rows a verdict needs is the retrain policy's business (`RetrainPolicy.min_rows`).

    Returns:
        (dropped, drop), with drop None when either value is missing.
    """
    value = realized.get("value")
    if value is None or champion_holdout_metric is None:
        return False, None
    greater_is_better = config.evaluation.metrics[config.evaluation.primary_metric].greater_is_better
    drop = champion_holdout_metric - value if greater_is_better else value - champion_holdout_metric
    return drop > config.monitoring.retrain_policy.performance_drop, float(drop)
