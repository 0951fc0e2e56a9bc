"""The retrain policy's rules, its history store, and the retrain request it emits."""

import datetime as dt
import json

import pandas as pd
import pytest

from include.core.config import ModelConfig, RetrainPolicy
from include.demo import data_world
from include.monitoring.drift import build_reference_profile, detect_drift
from include.monitoring.retrain_policy import (
    CheckRecord,
    Decision,
    append_check,
    check_record,
    decide_retrain,
    history_path,
    read_history,
    read_records,
    record_check,
    retrain_request_metadata,
)

POLICY = RetrainPolicy(
    min_rows=200, consecutive_windows=2, performance_drop=0.05, cooldown_days=7, max_retrains=4, period_days=30
)
DAY0 = dt.date(2026, 3, 1)


def day(offset: int) -> dt.date:
    return DAY0 + dt.timedelta(days=offset)


def window(offset: int, drifted: bool = False, rows: int = 1_000, version: str = "1", **performance) -> CheckRecord:
    return CheckRecord(
        day=day(offset),
        model_version=version,
        rows=rows,
        dataset_drifted=drifted,
        drift_share=0.5 if drifted else 0.0,
        drifted_columns=["annual_income"] if drifted else [],
        column_scores={"annual_income": 1e-9 if drifted else 0.4},
        **performance,
    )


def decide(history: list[CheckRecord], last_retrain: int | None = None, retrains: int = 0, policy=POLICY):
    now = history[-1].day
    return decide_retrain(policy, history, now, None if last_retrain is None else day(last_retrain), retrains)


def with_policy(config: ModelConfig, **changes) -> ModelConfig:
    monitoring = config.monitoring
    policy = monitoring.retrain_policy.model_copy(update=changes.pop("policy", {}))
    drift = monitoring.drift.model_copy(update=changes)
    return config.model_copy(
        update={"monitoring": monitoring.model_copy(update={"retrain_policy": policy, "drift": drift})}
    )


# --- drift ---------------------------------------------------------------------------------------


def test_one_drifted_window_is_not_enough_when_two_in_a_row_are_required():
    decision = decide([window(0), window(1, drifted=True)])

    assert decision == Decision(False, None, decision.explanation)
    assert "drift in 1 of the last 2 windows" in decision.explanation


def test_two_drifted_windows_in_a_row_request_a_retrain_for_drift():
    decision = decide([window(0), window(1, drifted=True), window(2, drifted=True)])

    assert (decision.retrain, decision.reason) == (True, "drift")
    assert "2 consecutive windows" in decision.explanation


def test_a_calm_window_breaks_the_drift_streak():
    decision = decide([window(0, drifted=True), window(1), window(2, drifted=True)])

    assert not decision.retrain


def test_a_window_with_too_few_rows_has_no_verdict_and_leaves_the_streak_alone():
    history = [window(0, drifted=True), window(1, rows=50), window(2, drifted=True)]

    assert decide(history).reason == "drift"


def test_today_with_too_few_rows_never_requests_on_drift():
    decision = decide([window(0, drifted=True), window(1, drifted=True, rows=199)])

    assert not decision.retrain
    assert "199 rows is below the 200" in decision.explanation


def test_windows_measured_against_an_earlier_champion_do_not_count():
    decision = decide([window(0, drifted=True, version="1"), window(1, drifted=True, version="2")])

    assert not decision.retrain


def test_the_windows_a_request_was_made_on_do_not_count_again():
    policy = POLICY.model_copy(update={"cooldown_days": 0})
    history = [window(0, drifted=True), window(1, drifted=True), window(2, drifted=True)]

    assert not decide(history, last_retrain=1, retrains=1, policy=policy).retrain
    assert decide([*history, window(3, drifted=True)], last_retrain=1, retrains=1, policy=policy).retrain


# --- performance ---------------------------------------------------------------------------------


def test_a_performance_drop_requests_a_retrain_on_its_own():
    decision = decide([window(0, realized_metric=0.70, metric_drop=0.08, labeled_rows=900)])

    assert (decision.retrain, decision.reason) == (True, "performance")
    assert "more than the allowed drop of 0.05" in decision.explanation


def test_a_drop_within_the_allowed_one_is_no_request():
    assert not decide([window(0, realized_metric=0.76, metric_drop=0.04, labeled_rows=900)]).retrain


def test_a_performance_drop_on_too_few_labels_is_no_verdict():
    decision = decide([window(0, realized_metric=0.5, metric_drop=0.3, labeled_rows=150)])

    assert not decision.retrain
    assert "150 labeled rows" in decision.explanation


def test_performance_is_the_reason_when_drift_fires_too():
    history = [window(0, drifted=True), window(1, drifted=True, realized_metric=0.7, metric_drop=0.1, labeled_rows=900)]

    assert decide(history).reason == "performance"


# --- rest ----------------------------------------------------------------------------------------


def test_no_request_during_the_cooldown_after_a_retrain_and_one_after_it():
    history = [window(offset, drifted=True) for offset in range(10, 17)]

    during = decide(history, last_retrain=10, retrains=1)
    after = decide([*history, window(17, drifted=True)], last_retrain=10, retrains=1)

    assert not during.retrain and "cooling down until 2026-03-18" in during.explanation
    assert after.retrain


def test_the_cooldown_holds_back_a_performance_drop_too():
    history = [window(3, realized_metric=0.6, metric_drop=0.2, labeled_rows=900)]

    assert not decide(history, last_retrain=0, retrains=1).retrain


def test_no_request_once_the_period_cap_is_reached():
    history = [window(0, drifted=True), window(1, drifted=True)]

    capped = decide(history, last_retrain=-20, retrains=4)

    assert not capped.retrain
    assert "4 retrains were already requested in the last 30 days (at most 4)" in capped.explanation


# --- the history store ---------------------------------------------------------------------------


def test_re_recording_a_day_replaces_its_record(state_dir):
    append_check("credit_default", window(0))
    append_check("credit_default", window(1))
    append_check("credit_default", window(1, drifted=True))
    append_check("credit_default", window(1, version="2"))

    history = read_history("credit_default")

    assert list(zip(history["day"], history["model_version"], strict=True)) == [
        (day(0), "1"), (day(1), "1"), (day(1), "2")
    ]
    assert read_records("credit_default")[1] == window(1, drifted=True)
    assert history["score__annual_income"].tolist() == [0.4, 1e-9, 0.4]
    assert history_path("credit_default") == state_dir / "data" / "credit_default" / "monitoring" / "history.parquet"


def test_an_empty_history_reads_as_an_empty_frame(state_dir):
    assert read_history("credit_default").empty
    assert read_records("credit_default") == []


def test_recorded_requests_start_the_cooldown_and_a_rerun_reaches_the_same_decision(state_dir, demo_config):
    decisions = [record_check(demo_config, window(offset, drifted=True)) for offset in range(4)]
    rerun = record_check(demo_config, window(1, drifted=True))

    assert [decision.retrain for decision in decisions] == [False, True, False, False]
    assert "drift in 1 of the last 2 windows" in decisions[2].explanation
    assert "cooling down" in decisions[3].explanation
    assert rerun == decisions[1]
    assert read_history("credit_default")["retrain"].tolist() == [False, True, False, False]


# --- the retrain request -------------------------------------------------------------------------


def test_the_retrain_request_carries_the_contracted_keys_as_json(demo_config):
    profile = build_reference_profile(demo_config, data_world.feature_batch(demo_config, day(-30)), model_version=4)
    batch = data_world.feature_batch(demo_config, day(0))
    batch["annual_income"] *= 2
    drift = detect_drift(demo_config, profile, batch)
    decision = Decision(True, "drift", "the dataset drifted in 2 consecutive windows")

    metadata = retrain_request_metadata(
        decision, (day(0), day(0)), drift.to_dict(), "file:///reports/drift.html", {"metric": "roc_auc", "value": 0.81}
    )

    assert json.loads(json.dumps(metadata)) == metadata
    assert {"reason", "window", "drifted_columns", "scores", "drift_share", "realized_metric", "report_uri",
            "model_version"} <= set(metadata)
    assert metadata["reason"] == "drift" and metadata["model_version"] == "4"
    assert metadata["window"] == {"start": "2026-03-01", "end": "2026-03-01"}
    assert metadata["drifted_columns"] == ["annual_income"]
    assert metadata["methods"]["region"] == "chisquare" and metadata["realized_metric"] == 0.81


def test_no_retrain_request_is_built_for_a_decision_not_to_retrain(demo_config):
    with pytest.raises(ValueError, match="no retrain request to make: calm"):
        retrain_request_metadata(Decision(False, None, "calm"), (day(0), day(0)), None, None)


# --- the data world, checked day by day ----------------------------------------------------------


def run_sensor(config: ModelConfig, reference: pd.DataFrame, days: list[dt.date]) -> list[tuple[dt.date, Decision]]:
    profile = build_reference_profile(config, reference, model_version=1)
    return [
        (when, record_check(config, check_record(when, 1, detect_drift(config, profile,
                                                                       data_world.feature_batch(config, when)))))
        for when in days
    ]


def test_sixty_stable_days_request_no_retrain(state_dir, demo_config):
    other_world = demo_config.model_copy(update={"source": demo_config.source.model_copy(update={"seed": 7})})
    start = demo_config.source.start_date
    training = [start + dt.timedelta(days=offset) for offset in range(30)]
    reference = pd.concat([data_world.feature_batch(other_world, when) for when in training], ignore_index=True)
    config = with_policy(demo_config, drift_share=0.1, policy={"cooldown_days": 0})

    decisions = run_sensor(config, reference, [start + dt.timedelta(days=offset) for offset in range(60)])

    assert [(when, decision.explanation) for when, decision in decisions if decision.retrain] == []
    assert len(read_history(config.name)) == 60


def test_the_income_shift_requests_a_retrain_for_drift_soon_after_its_onset(state_dir, demo_config):
    start = demo_config.source.start_date
    reference = pd.concat(
        [data_world.feature_batch(demo_config, start + dt.timedelta(days=offset)) for offset in range(30)],
        ignore_index=True,
    )
    config = with_policy(demo_config, drift_share=0.1)
    onset = dt.date(2026, 3, 20)

    decisions = run_sensor(config, reference, [onset + dt.timedelta(days=offset) for offset in range(14)])

    requests = [(when, decision.reason) for when, decision in decisions if decision.retrain]
    assert requests and requests[0][1] == "drift"
    assert (requests[0][0] - onset).days <= 10
    cooldown = config.monitoring.retrain_policy.cooldown_days
    assert all((later - requests[0][0]).days >= cooldown for later, _ in requests[1:])
