"""The training set (point-in-time join, split, fingerprint, checks) and the model built on it."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.core import storage
from include.training.training import build_model, fit, validate_overrides
from include.training.training_data import (
    LABEL_TIMESTAMP,
    assemble_training_set,
    change_weights,
    check_training_set,
    end_of_day,
    fingerprint,
    split_fingerprints,
    time_split,
)
from tests.ct_world import FIRST_DAY, fill_stores, labelled_frame, small_config, with_estimator

pytestmark = pytest.mark.usefixtures("one_openmp_thread")


@pytest.fixture
def config(demo_config):
    return small_config(demo_config)


def training_frame(config, days=20):
    """Labelled applications in the shape of a training set (label known a delay after the event)."""
    frame = labelled_frame(config, days)
    delay = pd.Timedelta(days=config.target.label_delay_days)
    return frame.assign(**{LABEL_TIMESTAMP: frame[config.schema.timestamp_column] + delay})


# --- the training set ----------------------------------------------------------------------------


def test_point_in_time_join_excludes_labels_that_arrive_after_the_cutoff(state_dir, config):
    fill_stores(config, days=30)
    cutoff = FIRST_DAY + dt.timedelta(days=24)

    frame = assemble_training_set(config, cutoff)

    delay = dt.timedelta(days=config.target.label_delay_days)
    assert (frame[LABEL_TIMESTAMP] < end_of_day(cutoff)).all()
    assert frame[config.schema.timestamp_column].max() < end_of_day(cutoff - delay)
    later = assemble_training_set(config, cutoff + dt.timedelta(days=3))
    assert len(later) == len(frame) + 3 * config.source.rows_per_day


def test_a_label_stamped_after_the_cutoff_is_ignored_even_in_an_earlier_partition(state_dir, config):
    fill_stores(config, days=12)
    cutoff = FIRST_DAY + dt.timedelta(days=10)
    arrived = cutoff - dt.timedelta(days=1)
    labels = pd.read_parquet(storage.labels_path(config.name, arrived))
    labels[LABEL_TIMESTAMP] = pd.Timestamp(cutoff + dt.timedelta(days=2))
    storage.write_labels(config.name, arrived, labels)

    frame = assemble_training_set(config, cutoff)

    assert not frame[config.schema.entity_column].isin(labels[config.schema.entity_column]).any()


def test_training_set_holds_only_curated_rows_of_the_window_ending_at_the_cutoff(state_dir, config):
    fill_stores(config, days=30)
    cutoff = FIRST_DAY + dt.timedelta(days=29)

    frame = assemble_training_set(config, cutoff, window_days=10)

    first_day = pd.Timestamp(cutoff - dt.timedelta(days=9))
    assert frame[config.schema.timestamp_column].min() >= first_day
    assert frame[config.schema.entity_column].is_unique
    assert frame[config.schema.timestamp_column].is_monotonic_increasing


def test_time_split_puts_the_newest_rows_in_the_holdout_and_the_oldest_in_train(config):
    frame = training_frame(config)
    timestamp = config.schema.timestamp_column

    parts = time_split(frame, config.training.split, timestamp)

    assert sum(len(part) for part in parts.values()) == len(frame)
    assert parts["train"][timestamp].max() <= parts["validation"][timestamp].min()
    assert parts["validation"][timestamp].max() <= parts["holdout"][timestamp].min()
    assert len(parts["holdout"]) == round(len(frame) * config.training.split.holdout_fraction)


def test_fingerprint_is_stable_for_the_same_rows_and_changes_with_any_value(config):
    frame = training_frame(config, days=3)

    again = fingerprint(frame.copy())
    changed = frame.copy()
    changed.loc[5, "annual_income"] += 1

    assert fingerprint(frame) == again
    assert again["rows"] == len(frame) and len(again["digest"]) == 32
    assert fingerprint(changed)["digest"] != again["digest"]


def test_split_fingerprints_match_the_fingerprint_of_each_split(config):
    frame = training_frame(config, days=5)
    parts = time_split(frame, config.training.split, config.schema.timestamp_column)

    fingerprints = split_fingerprints(frame, parts)

    assert fingerprints["all"] == fingerprint(frame)
    assert all(fingerprints[name] == fingerprint(part) for name, part in parts.items())


def test_a_healthy_training_set_passes_every_check(config):
    frame = training_frame(config)

    result = check_training_set(config, frame, cutoff=FIRST_DAY + dt.timedelta(days=30))

    assert result["passed"], result["reasons"]
    assert {"enough_rows", "both_classes_present", "no_nulls:credit_score",
            "no_feature_separates_the_classes"} <= {check["name"] for check in result["checks"]}


def test_too_few_rows_one_class_and_forbidden_nulls_each_fail_with_a_reason(config):
    frame = training_frame(config, days=2).assign(default=0)
    frame.loc[0, "credit_score"] = np.nan

    result = check_training_set(config, frame)

    failed = {check["name"] for check in result["checks"] if not check["passed"]}
    assert not result["passed"]
    assert {"enough_rows", "both_classes_present", "positive_label_present", "no_nulls:credit_score"} <= failed
    assert len(result["reasons"]) == len(failed)


def test_a_label_that_arrived_after_the_cutoff_fails_the_check(config):
    frame = training_frame(config)
    cutoff = frame[LABEL_TIMESTAMP].max().date() - dt.timedelta(days=1)

    result = check_training_set(config, frame, cutoff=cutoff)

    assert "no_label_after_cutoff" in {c["name"] for c in result["checks"] if not c["passed"]}


def test_a_feature_that_is_the_target_in_disguise_fails_the_leakage_check(config):
    frame = training_frame(config)
    frame["credit_score"] = 500 + 100 * frame["default"]

    result = check_training_set(config, frame)

    leak = next(c for c in result["checks"] if c["name"] == "no_feature_separates_the_classes")
    assert not leak["passed"] and leak["observed"] == ["credit_score"]


# --- the model -----------------------------------------------------------------------------------


def test_the_model_is_one_pipeline_from_raw_columns_to_probabilities(config):
    frame = training_frame(config, days=5)

    model = fit(config, frame).model

    probabilities = model.predict_proba(frame[config.features.all])
    assert list(model.named_steps) == ["preprocess", "estimator"]
    assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(axis=1), 1)


def test_training_converges_and_overfits_a_tiny_sample(config):
    flexible = with_estimator(
        config,
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 300, "min_samples_leaf": 1, "learning_rate": 0.3, "early_stopping": False},
    )
    tiny = training_frame(config, days=1).head(50)

    result = fit(flexible, tiny)

    predicted = result.model.predict(tiny[config.features.all])
    assert result.converged and result.seconds > 0
    assert (predicted == tiny["default"]).mean() >= 0.98


def test_a_solver_that_runs_out_of_iterations_has_not_converged(config):
    logistic = with_estimator(config, "sklearn.linear_model.LogisticRegression", {"max_iter": 2})

    result = fit(logistic, training_frame(config, days=3))

    assert not result.converged
    assert any("ConvergenceWarning" in message for message in result.warnings)


def test_early_stopping_before_max_iter_counts_as_converged(config):
    stopping = with_estimator(
        config,
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 500, "early_stopping": True, "n_iter_no_change": 3, "random_state": 0},
    )

    result = fit(stopping, training_frame(config, days=10))

    assert result.model.named_steps["estimator"].n_iter_ < 500
    assert result.converged


def test_early_stopping_that_never_triggers_has_not_converged(config):
    stopping = with_estimator(
        config,
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 2, "early_stopping": True, "random_state": 0},
    )

    result = fit(stopping, training_frame(config, days=3))

    assert not result.converged


def test_an_unimportable_estimator_class_names_the_config_key_and_value(config):
    broken = with_estimator(config, "sklearn.ensemble.NoSuchClassifier", {})

    with pytest.raises(ValueError, match=r"training\.estimator\.class.*sklearn\.ensemble\.NoSuchClassifier"):
        build_model(broken)


def test_a_regressor_is_refused_as_the_estimator(config):
    regressor = with_estimator(config, "sklearn.linear_model.LinearRegression", {})

    with pytest.raises(ValueError, match=r"training\.estimator\.class.*classifier"):
        build_model(regressor)


def test_an_unknown_estimator_param_names_its_config_key(config):
    typo = with_estimator(config, "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iters": 10})

    with pytest.raises(ValueError, match=r"training\.estimator\.params\.max_iters.*10"):
        build_model(typo)


def test_an_invalid_param_value_names_its_config_key_and_value(config):
    negative = with_estimator(config, "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": -1})

    with pytest.raises(ValueError, match=r"training\.estimator\.params\.max_iter.*-1"):
        build_model(negative)


def test_an_unknown_override_raises_naming_it(config):
    with pytest.raises(ValueError, match="override 'max_depthh'"):
        validate_overrides(config, {"max_depthh": 3})


def test_an_override_replaces_the_configured_param(config):
    model = build_model(config, {"learning_rate": 0.05})

    assert model.named_steps["estimator"].learning_rate == 0.05
    assert model.named_steps["estimator"].max_iter == config.training.estimator.params["max_iter"]


def test_after_a_change_the_holdout_and_validation_come_from_the_new_world_and_train_keeps_half_of_it(config):
    frame = training_frame(config, days=20)
    timestamp = config.schema.timestamp_column
    change = FIRST_DAY + dt.timedelta(days=17)

    parts = time_split(frame, config.training.split, timestamp, change)

    new_rows = int((frame[timestamp] >= pd.Timestamp(change)).sum())
    assert parts["validation"][timestamp].min() >= pd.Timestamp(change)
    assert len(parts["holdout"]) == new_rows // 3 and len(parts["validation"]) == new_rows // 6
    assert (parts["train"][timestamp] >= pd.Timestamp(change)).sum() >= new_rows // 2


def test_rows_after_a_change_carry_the_configured_share_of_the_training_weight(config):
    frame = training_frame(config, days=20)
    timestamp = config.schema.timestamp_column
    change = FIRST_DAY + dt.timedelta(days=18)

    weights = change_weights(frame, timestamp, change, 0.5)

    after = (frame[timestamp] >= pd.Timestamp(change)).to_numpy()
    assert weights[after].sum() == pytest.approx(weights[~after].sum())
    assert weights.mean() == pytest.approx(1.0)
    assert change_weights(frame, timestamp, FIRST_DAY + dt.timedelta(days=1), 0.5) is None, (
        "rows that already carry the share are not weighted")
    assert change_weights(frame, timestamp, None, 0.5) is None
