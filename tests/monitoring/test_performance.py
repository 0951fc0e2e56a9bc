"""Realized performance on delayed labels, and the drop against the champion's holdout."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from include.core.config import ModelConfig
from include.monitoring.performance import performance_dropped, realized_performance


def prediction_log(ids: list[str], probabilities, version: str = "3") -> pd.DataFrame:
    return pd.DataFrame({"application_id": ids, "probability": probabilities, "version": version})


def arrived_labels(ids: list[str], outcomes) -> pd.DataFrame:
    return pd.DataFrame({"application_id": ids, "default": outcomes})


def with_primary_metric(config: ModelConfig, name: str) -> ModelConfig:
    evaluation = config.evaluation.model_copy(update={"primary_metric": name})
    return config.model_copy(update={"evaluation": evaluation})


@pytest.fixture
def window():
    rng = np.random.default_rng(0)
    ids = [f"A-{i}" for i in range(400)]
    outcomes = rng.integers(0, 2, 400)
    probabilities = np.clip(0.5 * outcomes + rng.uniform(0, 0.5, 400), 0, 1)
    return ids, outcomes, probabilities


def test_only_predictions_whose_labels_arrived_are_scored(demo_config, window):
    ids, outcomes, probabilities = window
    log, labels = prediction_log(ids, probabilities), arrived_labels(ids[:300], outcomes[:300])

    realized = realized_performance(demo_config, log, labels)

    assert realized["rows_joined"] == 300
    assert realized["metric"] == "roc_auc"
    assert realized["value"] == pytest.approx(roc_auc_score(outcomes[:300], probabilities[:300]))
    assert realized["metrics"]["brier_score"] == pytest.approx(brier_score_loss(outcomes[:300], probabilities[:300]))
    assert set(realized["metrics"]) == set(demo_config.evaluation.metrics)
    assert realized["reason"] is None and realized["model_versions"] == ["3"]


def test_a_window_of_one_class_has_no_roc_auc_and_says_why(demo_config):
    ids = [f"A-{i}" for i in range(50)]
    log, labels = prediction_log(ids, np.linspace(0, 1, 50)), arrived_labels(ids, [0] * 50)

    realized = realized_performance(demo_config, log, labels)

    assert realized["value"] is None
    assert realized["metrics"]["average_precision"] is None
    assert realized["metrics"]["brier_score"] is not None
    assert "all 50 labels are 0" in realized["reason"]


def test_no_arrived_labels_means_no_metrics_with_a_reason(demo_config):
    realized = realized_performance(demo_config, prediction_log(["A-1"], [0.2]), arrived_labels([], []))

    assert realized["rows_joined"] == 0
    assert realized["metrics"] == dict.fromkeys(demo_config.evaluation.metrics)
    assert realized["reason"] == "no predictions with arrived labels"


def test_only_the_asked_version_is_scored_and_a_rescored_entity_counts_once(demo_config, window):
    ids, outcomes, probabilities = window
    log = pd.concat(
        [prediction_log(ids, 1 - probabilities, version="2"), prediction_log(ids, probabilities, version="3"),
         prediction_log(ids[:10], probabilities[:10], version="3")],
        ignore_index=True,
    )

    realized = realized_performance(demo_config, log, arrived_labels(ids, outcomes), model_version=3)

    assert realized["rows_joined"] == 400
    assert realized["model_versions"] == ["3"]
    assert realized["value"] == pytest.approx(roc_auc_score(outcomes, probabilities))


def test_a_drop_beyond_the_policy_is_reported_with_its_size(demo_config):
    dropped, drop = performance_dropped(demo_config, {"value": 0.70}, champion_holdout_metric=0.80)
    kept, small = performance_dropped(demo_config, {"value": 0.78}, champion_holdout_metric=0.80)

    assert (dropped, drop) == (True, pytest.approx(0.10))
    assert (kept, small) == (False, pytest.approx(0.02))


def test_a_lower_is_better_metric_drops_when_it_rises(demo_config):
    config = with_primary_metric(demo_config, "brier_score")

    assert performance_dropped(config, {"value": 0.20}, champion_holdout_metric=0.12) == (True, pytest.approx(0.08))
    assert performance_dropped(config, {"value": 0.10}, champion_holdout_metric=0.12) == (False, pytest.approx(-0.02))


def test_a_missing_realized_metric_is_no_drop(demo_config):
    assert performance_dropped(demo_config, {"value": None}, champion_holdout_metric=0.8) == (False, None)
