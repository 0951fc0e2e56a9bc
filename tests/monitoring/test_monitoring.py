"""One drift-sensor check end to end: real MLflow lineage, real Evidently reports, the history."""

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from include.core import registry, settings, storage
from include.delivery import batch_prediction, deployment
from include.monitoring import monitoring
from include.monitoring.drift import ReferenceProfile, reference_profile_path
from include.monitoring.evidently_reports import render_html
from include.monitoring.retrain_policy import append_check, check_record, read_history
from include.training.training_triggers import RETRAIN_REQUEST_KEYS
from tests.monitoring_world import day, make_champion, monitored_world

ROWS_PER_DAY = 250


@pytest.fixture
def world(state_dir, demo_config, one_openmp_thread):
    """40 days of data (250 rows a day) and a champion trained on the days up to day 30."""
    config = monitored_world(state_dir, demo_config, days=40, rows_per_day=ROWS_PER_DAY)
    version = make_champion(config, day(30))
    return config, version


def shift_incomes(config, when: dt.date, factor: float = 3.0) -> None:
    """Rewrite the day's curated batch with incomes `factor` times higher (a covariate shift)."""
    batch = storage.read_curated(config.name, when, when)
    batch["annual_income"] = batch["annual_income"] * factor
    storage.write_curated_batch(config.name, when, batch)


def flip_labels(config, event_day: dt.date) -> None:
    """The outcomes of the event day's applications arrive inverted (the world's link changed)."""
    arrival = event_day + dt.timedelta(days=config.target.label_delay_days)
    labels = pd.read_parquet(storage.labels_path(config.name, arrival))
    labels[config.target.column] = 1 - labels[config.target.column]
    storage.write_labels(config.name, arrival, labels)


def test_a_check_keeps_evidently_reports_an_mlflow_run_and_a_history_row(world):
    config, version = world
    config = with_monitoring_reports(config, "every_check")

    result = monitoring.run_check(config, day(33), {"dag_id": "sensor", "run_id": "scheduled__1"})

    assert result["model_version"] == version and result["rows"] == ROWS_PER_DAY
    assert result["decision"]["retrain"] is False and result["request"] is None
    for name in ("data_drift_snapshot", "data_drift_json", "prediction_drift_snapshot", "prediction_drift_json",
                 "check"):
        assert Path(result["reports"][name]).stat().st_size > 0, name
    assert Path(result["reports"]["data_drift_snapshot"]).is_relative_to(settings.reports_dir())
    assert "annual_income" in render_html(Path(result["reports"]["data_drift_snapshot"]))
    evidently = json.loads(Path(result["reports"]["prediction_drift_json"]).read_text())
    assert any("ValueDrift" in metric["config"]["type"] for metric in evidently["metrics"])
    run = registry.client().get_run(result["mlflow_run_id"])
    assert run.data.tags[monitoring.TAG_RUN_KIND] == monitoring.RUN_KIND
    assert run.data.tags[monitoring.TAG_WINDOW_END] == day(33).isoformat()
    assert run.data.tags[monitoring.TAG_MONITORED_VERSION] == version
    assert run.data.metrics["drift_share"] == result["drift_share"]
    assert {f"drift_score.{name}" for name in config.features.all} <= set(run.data.metrics)
    artifacts = {Path(item.path).name for item in registry.client().list_artifacts(run.info.run_id, "drift_report")}
    assert {"data_drift.snapshot.json.xz", "data_drift.json", "prediction_drift.snapshot.json.xz",
            "check.json"} <= artifacts
    assert not any(name.endswith(".html") for name in artifacts), "the 4 MB pages stay out of MLflow"
    history = read_history(config.name)
    assert list(history["day"]) == [day(33)]
    assert {f"score__{name}" for name in config.features.all} <= set(history.columns)


def test_by_default_only_a_window_that_requested_a_retrain_gets_evidently_reports_every_window_its_verdict(world):
    config, _ = world
    for offset in (34, 35):
        shift_incomes(config, day(offset))

    calm, drifted, requested = (monitoring.run_check(config, day(offset)) for offset in (33, 34, 35))

    assert config.monitoring.reports == "on_request"
    assert set(calm["reports"]) == {"check"} and not calm["dataset_drifted"]
    assert json.loads(Path(calm["reports"]["check"]).read_text())["decision"] == calm["decision"]
    assert drifted["dataset_drifted"] and set(drifted["reports"]) == {"check"}
    assert requested["decision"]["retrain"]
    assert {"data_drift_snapshot", "prediction_drift_json"} <= set(requested["reports"])


def test_with_reports_on_drift_a_window_that_drifted_gets_evidently_reports(world):
    config, _ = world
    config = with_monitoring_reports(config, "on_drift")
    shift_incomes(config, day(34))

    drifted = monitoring.run_check(config, day(34))

    assert drifted["dataset_drifted"] and {"data_drift_snapshot", "prediction_drift_json"} <= set(drifted["reports"])


def with_monitoring_reports(config, reports: str):
    return config.model_copy(update={"monitoring": config.monitoring.model_copy(update={"reports": reports})})


def test_rechecking_a_window_makes_no_second_run_nor_second_history_row(world):
    config, _ = world
    first = monitoring.run_check(config, day(33))

    again = monitoring.run_check(config, day(33))

    assert again["mlflow_run_id"] == first["mlflow_run_id"]
    assert len(monitoring.monitoring_runs(config)) == 1
    assert len(read_history(config.name)) == 1
    assert again["decision"] == first["decision"]


def test_the_reference_is_the_champions_training_split_found_through_mlflow_lineage_built_once(world):
    config, version = world
    champion = monitoring.current_champion(config)
    train = pd.read_parquet(champion.training_set / "train.parquet")

    monitoring.run_check(config, day(33))
    saved = reference_profile_path(config.name, version)
    built = saved.stat().st_mtime_ns
    monitoring.run_check(config, day(34))

    assert champion.training_set.name == "training_set"
    assert champion.holdout_metric is not None
    profile = ReferenceProfile.load(saved)
    assert profile.rows == len(train) and profile.model_version == version
    assert profile.scores is not None and profile.scores.count > 0
    assert saved.stat().st_mtime_ns == built, "the profile is built once per champion version"


def test_incomes_drifting_two_windows_in_a_row_request_a_retrain_for_drift_with_the_contracted_metadata(world):
    config, version = world
    for offset in (33, 34):
        shift_incomes(config, day(offset))

    first = monitoring.run_check(config, day(33))
    second = monitoring.run_check(config, day(34))

    assert first["dataset_drifted"] and first["request"] is None, "one drifted window is not enough"
    request = second["request"]
    assert second["decision"]["retrain"] and second["decision"]["reason"] == "drift"
    assert set(RETRAIN_REQUEST_KEYS) <= set(request)
    assert request["reason"] == "drift" and request["model_version"] == version
    assert request["window"] == {"start": day(34).isoformat(), "end": day(34).isoformat()}
    assert "annual_income" in request["drifted_columns"]
    assert request["scores"]["annual_income"] < config.monitoring.drift.threshold
    assert Path(request["report_uri"]).name == "data_drift.snapshot.json.xz" and Path(request["report_uri"]).exists()
    json.dumps(request)
    assert read_history(config.name)["retrain"].tolist() == [False, True]


def test_labels_showing_a_drop_in_realized_performance_request_a_retrain_for_performance(world):
    config, _ = world
    for offset in range(26, 33):
        flip_labels(config, day(offset))
    for offset in range(30, 33):
        batch_prediction.score_day(config, day(offset))

    result = monitoring.run_check(config, day(39))

    # Days 30-32 use the champion's batch predictions; days 26-29, which it never scored, are
    # scored now; the window widens to 7 event days to reach enough labelled rows.
    assert result["labeled_rows"] == 7 * ROWS_PER_DAY
    assert result["realized_metric"] < 0.5 < result["champion_holdout_metric"]
    assert result["metric_drop"] > config.monitoring.retrain_policy.performance_drop
    assert result["decision"]["reason"] == "performance"
    assert result["request"]["realized_metric"] == result["realized_metric"]


def test_a_new_champion_is_judged_on_labelled_days_it_never_scored_without_waiting_out_the_label_delay(world):
    config, _ = world

    result = monitoring.run_check(config, day(39))

    assert result["labeled_rows"] == 7 * ROWS_PER_DAY
    assert result["realized_metric"] > 0.5 and result["decision"]["retrain"] is False


def test_a_quarantined_batch_is_a_data_quality_failure_not_drift(world):
    config, _ = world
    when = day(41)
    landed = storage.landing_dir(config.name, when) / "batch.parquet"
    storage.write_parquet_atomically(pd.DataFrame({"income": [1.0]}), landed)
    storage.quarantine_batch(config.name, when, landed, {"passed": False})

    result = monitoring.run_check(config, when)

    assert result["quarantined_days"] == [when.isoformat()]
    assert result["rows"] == 0 and result["dataset_drifted"] is None
    assert result["decision"]["retrain"] is False
    assert "quarantined" in result["decision"]["explanation"] and "not drift" in result["decision"]["explanation"]
    with pytest.raises(monitoring.WindowNotReady, match="not been ingested yet"):
        monitoring.run_check(config, day(42))


def test_a_day_not_ingested_yet_or_a_model_without_champion_has_nothing_to_check(state_dir, demo_config):
    config = monitored_world(state_dir, demo_config, days=3, rows_per_day=50)

    with pytest.raises(monitoring.NoChampion, match="no @champion"):
        monitoring.run_check(config, day(1))
    assert read_history(config.name).empty


# --- point in time: the version that served the day ----------------------------------------------


@pytest.fixture
def served_world(state_dir, demo_config, one_openmp_thread):
    """40 days of data; version 1 (trained up to day 20) serves from day 31 on, through deployment."""
    config = monitored_world(state_dir, demo_config, days=40, rows_per_day=ROWS_PER_DAY)
    version = make_champion(config, day(20), run_id="manual__first")
    deployment.promote(config, version, "deploy-1", effective_day=day(31))
    return config, version


def test_a_day_before_a_promotion_is_judged_against_the_old_version_and_after_it_against_the_new_one(served_world):
    config, first = served_world
    second = make_champion(config, day(32), run_id="manual__second")
    deployment.promote(config, second, "deploy-2", effective_day=day(33))

    before, after = monitoring.run_check(config, day(32)), monitoring.run_check(config, day(33))
    scored_before, scored_after = (batch_prediction.score_day(config, day(offset)) for offset in (32, 33))

    assert (before["model_version"], after["model_version"]) == (first, second)
    assert (scored_before["model_version"], scored_after["model_version"]) == (first, second)
    assert before["champion_holdout_metric"] != after["champion_holdout_metric"]
    assert reference_profile_path(config.name, first).exists() and reference_profile_path(config.name, second).exists()
    # Version 2 learned from the event days up to 25 (labels arrive 7 days late). The check of day 33
    # measures it at once on event day 26, whose labels have arrived, and does not widen the window
    # into the days it was trained on to reach more rows, as it does for version 1.
    assert after["labeled_rows"] == ROWS_PER_DAY and before["labeled_rows"] > ROWS_PER_DAY


def test_the_sensor_skips_a_day_no_champion_served_and_says_so(served_world):
    config, _ = served_world

    with pytest.raises(monitoring.NoChampion, match=r"was @champion on 2026-01-31 \(the first champion serves from "
                                                    r"2026-02-01\)"):
        monitoring.run_check(config, day(30))
    with pytest.raises(batch_prediction.NothingToScore, match="the first champion serves from"):
        batch_prediction.score_day(config, day(30))
    assert monitoring.days_to_check(config, day(30)) == ([], [
        "no version of credit_default was @champion on 2026-01-31 (the first champion serves from 2026-02-01): "
        "there is nothing to monitor"])
    assert read_history(config.name).empty


def test_a_run_checks_every_settled_unchecked_day_in_order_and_gives_up_only_on_a_long_missing_batch(served_world):
    config, _ = served_world
    storage.curated_path(config.name, day(33)).unlink()
    storage.curated_path(config.name, day(37)).unlink()

    days, notes = monitoring.days_to_check(config, day(39))

    assert days == [day(31), day(32), day(34), day(35), day(36)]
    assert "2026-02-03 was never curated nor quarantined" in notes[0]
    assert "2026-02-07 has not been ingested yet" in notes[1]


def test_rerunning_the_checks_after_later_promotions_reproduces_the_live_decisions(served_world):
    config, first = served_world
    for offset in (32, 33):
        shift_incomes(config, day(offset))
    live = [
        *monitoring.run_checks(config, day(33))["checked"],  # a sensor that fell behind catches up in one run
        *monitoring.run_checks(config, day(36))["checked"],
    ]
    # Later: a new champion serves from day 37, and a check of day 32 was made against it by mistake
    # (a sensor judging old days against today's champion) and asked for a retrain.
    second = make_champion(config, day(36), run_id="manual__second")
    deployment.promote(config, second, "deploy-2", effective_day=day(37))
    stale = check_record(day(32), second, None)
    append_check(config.name, dataclasses.replace(stale, rows=ROWS_PER_DAY, retrain=True, reason="drift"))

    again = [monitoring.run_check(config, day(offset)) for offset in range(31, 37)]

    assert [check["day"] for check in live] == [day(offset).isoformat() for offset in range(31, 37)]
    assert {check["model_version"] for check in live} == {first}
    assert [(check["day"], check["model_version"], check["decision"]) for check in again] == [
        (check["day"], check["model_version"], check["decision"]) for check in live]
    assert [check["decision"]["reason"] for check in live] == [None, None, "drift", None, None, None]


def test_once_a_champion_trained_on_the_shifted_world_serves_drift_requests_stop(state_dir, demo_config,
                                                                                 one_openmp_thread):
    config = monitored_world(state_dir, demo_config, days=48, rows_per_day=1000)
    for offset in range(20, 48):
        shift_incomes(config, day(offset))  # incomes triple on day 20 and stay there: a plateau
    before = make_champion(config, day(19), run_id="manual__before")
    deployment.promote(config, before, "deploy-1", effective_day=day(20))
    judged_by_old = monitoring.run_checks(config, day(30))["checked"]
    after = make_champion(config, day(39), run_id="manual__after", window_days=13)  # event days 27-32
    deployment.promote(config, after, "deploy-2", effective_day=day(40))

    judged_by_new = monitoring.run_checks(config, day(47))["checked"]

    # While the old champion serves, the shift is seen against its training data: a request, and
    # another once the cooldown is over.
    assert [check["day"] for check in judged_by_old if check["decision"]["retrain"]] == [
        day(21).isoformat(), day(28).isoformat()]
    assert [check["day"] for check in judged_by_new] == [day(offset).isoformat() for offset in range(31, 48)]
    served = {check["day"]: check["model_version"] for check in judged_by_new}
    assert served == {day(offset).isoformat(): before if offset < 40 else after for offset in range(31, 48)}
    requests = [check["day"] for check in judged_by_new if check["decision"]["retrain"]]
    assert requests == [day(35).isoformat()], "the old champion asks again; the new one, trained on the shift, never"
    assert all("annual_income" not in check["drifted_columns"] for check in judged_by_new
               if check["model_version"] == after)


def test_a_request_decided_by_a_run_that_failed_before_sending_it_is_sent_by_the_next_run(world):
    config, _ = world
    for offset in (33, 34):
        shift_incomes(config, day(offset))
    monitoring.run_checks(config, day(33))
    [decided] = monitoring.run_checks(config, day(34))["requests"]  # ... and the run fails before emitting it

    [retried] = monitoring.run_checks(config, day(35))["requests"]
    monitoring.mark_request_emitted(retried["request"]["monitoring_run_id"])
    after_sending = monitoring.run_checks(config, day(36))["requests"]

    assert retried == decided and retried["already_emitted"] is False and retried["day"] == day(34).isoformat()
    assert after_sending == []


def test_a_version_trained_for_a_changed_world_is_measured_against_its_rows_from_the_change_on(world):
    from include.training import continuous_training as ct

    config, _ = world
    change = day(20)
    run_ctx = ct.RunContext(dag_id=f"{config.name}__continuous_training", run_id="drift__1", trigger="drift")
    assembled = ct.assemble(config, run_ctx, day(30), change_start=change)
    folder = Path(assembled["training_set_uri"])
    train = pd.read_parquet(folder / "train.parquet")
    unseen = pd.concat([pd.read_parquet(folder / f"{split}.parquet") for split in ("validation", "holdout")])

    inputs = monitoring.reference_inputs(config, folder, train, unseen)

    timestamp = config.schema.timestamp_column
    assert inputs[timestamp].min() >= pd.Timestamp(change)
    assert len(inputs) == int((pd.concat([train, unseen])[timestamp] >= pd.Timestamp(change)).sum())
    plain = ct.assemble(config, dataclasses.replace(run_ctx, run_id="schedule__1"), day(30))
    assert len(monitoring.reference_inputs(config, Path(plain["training_set_uri"]), train, unseen)) == len(train)


def test_a_run_without_a_day_follows_the_batches_published_while_it_works(served_world, monkeypatch):
    config, _ = served_world
    later = {day(offset): storage.read_curated(config.name, day(offset), day(offset)) for offset in (34, 35)}
    for offset in range(34, 40):
        storage.curated_path(config.name, day(offset)).unlink()
    check = monitoring.run_check

    def ingestion_publishes_meanwhile(config, when, *args):
        """While the sensor checks day 33, ingestion publishes days 34 and 35."""
        if when == day(33):
            for published, batch in later.items():
                storage.write_curated_batch(config.name, published, batch)
        return check(config, when, *args)

    monkeypatch.setattr(monitoring, "run_check", ingestion_publishes_meanwhile)

    result = monitoring.run_checks(config)

    checked = [checked["day"] for checked in result["checked"]]
    assert checked[-3:] == [day(offset).isoformat() for offset in (33, 34, 35)]
    assert result["up_to"] == day(35).isoformat()
