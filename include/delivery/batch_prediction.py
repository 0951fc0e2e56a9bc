"""Batch prediction: score one day's curated batch with the champion of that day and keep the predictions.

What `<model>__batch_prediction` runs for every curated batch. The day is scored by the version
that served it (`include.core.champion_history.champion_on`), so a re-run of an old day scores it with
the model that served it then, and a day no version served is not scored. The predictions of a day are one
Parquet file in the batch prediction store (`include.delivery.prediction_log.write_batch_predictions`),
which a re-run replaces: scoring a day twice never leaves duplicates. Each row carries the model
version that made it, so realized performance can later be measured per version once the
delayed labels arrive.

Columns of the stored frame: the entity and event timestamp columns, the model's raw feature
columns, then `probability` (of `target.positive_label`), `label` (1 when the probability is
above 0.5, as the online service decides), `model`, `version` and `timestamp` (when it was
scored, UTC).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from include.core import champion_history, registry, storage
from include.delivery import prediction_log
from include.training.evaluation import DECISION_THRESHOLD
from include.training.features import feature_columns

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from include.core.config import ModelConfig

log = logging.getLogger(__name__)



class NothingToScore(LookupError):
    """No version served the day (no `@champion` yet), or the day has no curated batch; the message says which."""


def positive_probabilities(config: ModelConfig, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """The model's probability of `target.positive_label` for each row of `frame` (raw feature columns)."""
    classes = list(model.classes_)
    return model.predict_proba(frame[feature_columns(config)])[:, classes.index(config.target.positive_label)]


def score_day(config: ModelConfig, day: dt.date) -> dict:
    """Score the curated batch of `day` with the version that served `day`; store the predictions.

    Returns:
        {"day", "rows", "model_version", "predictions_uri", "mean_probability", "positive_rate"}.

    Raises:
        NothingToScore: no version served `day` (no `@champion` yet, or the first champion serves
            from a later day), or `day` has no curated batch (quarantined, or not ingested yet).
    """
    import pandas as pd

    version = champion_history.champion_on(config.name, day)
    if version is None:
        raise NothingToScore(
            f"{champion_history.why_none_served(config.name, day)}: nothing can score the batch of {day}"
        )
    batch_path = storage.curated_path(config.name, day)
    if not batch_path.exists():
        quarantined = storage.quarantined_batches(config.name, day)
        why = "it was quarantined by ingestion" if quarantined else "it has not been ingested"
        raise NothingToScore(f"{config.name} has no curated batch for {day}: {why}")
    batch = pd.read_parquet(batch_path)
    model = registry.load_model_version(config.name, version)
    probabilities = positive_probabilities(config, model, batch)
    schema = config.schema
    keep = [schema.entity_column, schema.timestamp_column, *feature_columns(config)]
    frame = batch[[name for name in dict.fromkeys(keep) if name in batch.columns]].copy()
    frame["probability"] = probabilities.astype("float64")
    frame["label"] = (probabilities > DECISION_THRESHOLD).astype("int64")
    frame["model"] = config.name
    frame["version"] = version
    frame["timestamp"] = pd.Timestamp(dt.datetime.now(dt.UTC))
    path = prediction_log.write_batch_predictions(config.name, day, frame)
    log.info("%s: scored %d rows of %s with version %s into %s", config.name, len(frame), day, version, path)
    return {
        "day": day.isoformat(),
        "rows": len(frame),
        "model_version": version,
        "predictions_uri": str(path),
        "mean_probability": float(probabilities.mean()) if len(frame) else None,
        "positive_rate": float(frame["label"].mean()) if len(frame) else None,
    }

