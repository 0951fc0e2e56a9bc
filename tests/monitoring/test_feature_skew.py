"""The training/serving skew check: the features the service logged against the feature store's offline values.

Real parts: the prediction log written by the service's own writer, the curated store, Feast's
point-in-time retrieval over it (DuckDB, SQLite registry in the test's state folder), a champion
made by continuous training's own steps, MLflow, Evidently, and the drift sensor through `dag.test()`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml
from airflow.sdk import BaseNotifier

from include.core import registry, settings, storage
from include.core.config import ModelConfig
from include.core.jsonable import to_jsonable
from include.delivery.prediction_log import PredictionBatch, PredictionLogWriter
from include.demo import data_world
from include.monitoring import feature_skew, model_status, monitoring
from include.monitoring.evidently_reports import render_html
from include.monitoring.retrain_policy import read_history
from include.training import training_triggers
from tests.monitoring_world import day, make_champion, monitored_world

DAY = dt.date(2026, 1, 2)
ROWS = 40
ALERTS_FILE = "alerts.jsonl"


def with_store(config: ModelConfig) -> ModelConfig:
    return config.model_copy(update={"feature_store": "feast"})


def turn_on_store_in_config_file(config: ModelConfig) -> None:
    """The model config file the DAGs read says `feature_store: feast` too."""
    path = settings.models_dir() / f"{config.name}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["feature_store"] = "feast"
    raw["evaluation"]["degraded_champion"]["notifier"] = f"{__name__}.RecordingNotifier"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def write_days(config: ModelConfig, days: list[dt.date]) -> pd.DataFrame:
    """The demo world's applications of `days`, written as curated batches; the last day's rows."""
    for when in days:
        batch = data_world.applications_for_day(config, when)[list(config.schema.columns)]
        storage.write_curated_batch(config.name, when, batch)
    return batch


def log_predictions(config: ModelConfig, rows: pd.DataFrame, when: dt.datetime) -> None:
    """Log `rows` as the service logs one request: each row's fields as the caller's JSON inputs."""
    records = [{name: to_jsonable(value) for name, value in record.items()} for record in rows.to_dict("records")]
    writer = PredictionLogWriter(flush_seconds=60)
    writer.append(
        PredictionBatch(
            model=config.name,
            version="1",
            request_id=str(uuid.uuid4()),
            timestamp=when,
            inputs=records,
            probabilities=[0.5] * len(records),
            labels=[0] * len(records),
        )
    )
    writer.close()


def late_in(when: dt.date) -> dt.datetime:
    return dt.datetime(when.year, when.month, when.day, 23, 30, tzinfo=dt.UTC)


def skew_some(rows: pd.DataFrame, incomes: int, regions: int) -> pd.DataFrame:
    """The rows with the first `incomes` incomes 10 % higher and the next `regions` regions changed."""
    rows = rows.copy()
    rows.loc[rows.index[:incomes], "annual_income"] *= 1.1
    changed = rows.index[incomes : incomes + regions]
    rows.loc[changed, "region"] = rows.loc[changed, "region"].map({"north": "south"}).fillna("north")
    return rows


@pytest.fixture
def store_config(state_dir, demo_config) -> ModelConfig:
    return with_store(data_world.with_rows_per_day(demo_config, ROWS))


def test_a_log_whose_values_differ_from_the_curated_ones_is_caught_with_the_share_of_each_feature(store_config):
    config = store_config
    curated = write_days(config, [DAY - dt.timedelta(days=1), DAY])
    served = skew_some(curated.reset_index(drop=True), incomes=4, regions=2)
    served.loc[6, "debt_to_income"] *= 1 + 1e-9  # a caller rounding in the last digits is no skew
    served.loc[7, "application_id"] = "A-never-ingested"  # no offline row: unmatched, not a mismatch
    served = served.astype({"event_timestamp": object})
    served.loc[8, "event_timestamp"] = None  # judged as of the time of the prediction instead
    log_predictions(config, served, late_in(DAY))

    check = feature_skew.check_skew(config, DAY, DAY, DAY)

    assert (check.rows, check.matched, check.unmatched, check.as_of_event_time) == (ROWS, ROWS - 1, 1, ROWS - 1)
    assert check.shares == {name: 0.0 for name in config.features.all} | {
        "annual_income": 4 / (ROWS - 1),
        "region": 2 / (ROWS - 1),
    }
    assert check.skewed_features == ["annual_income", "region"] and check.over_threshold
    [example, *_] = check.examples["annual_income"]
    assert example["entity"] == curated["application_id"].iloc[0]
    assert example["served"] == pytest.approx(curated["annual_income"].iloc[0] * 1.1)
    assert example["offline"] == pytest.approx(curated["annual_income"].iloc[0])
    assert "annual_income 10.3%" in check.explanation() and "monitoring.skew_max_share" in check.explanation()


def test_a_log_of_the_curated_values_has_no_skew_and_a_model_without_the_store_is_not_checked(store_config):
    config = store_config
    curated = write_days(config, [DAY])
    log_predictions(config, curated, late_in(DAY))

    check = feature_skew.check_skew(config, DAY, DAY, DAY)
    without_store = feature_skew.check_skew(config.model_copy(update={"feature_store": None}), DAY, DAY, DAY)

    assert check.matched == ROWS and check.unmatched == 0
    assert set(check.shares.values()) == {0.0} and set(check.shares) == set(config.features.all)
    assert not check.over_threshold and check.examples == {}
    assert without_store is None
    assert feature_skew.standing_skew(config.model_copy(update={"feature_store": None})) is None


# --- in the drift sensor -------------------------------------------------------------------------


def shift_incomes(config: ModelConfig, when: dt.date) -> pd.DataFrame:
    """Triple the day's curated incomes (a covariate shift); the day's new curated rows."""
    batch = storage.read_curated(config.name, when, when)
    batch["annual_income"] = batch["annual_income"] * 3
    storage.write_curated_batch(config.name, when, batch)
    return batch


@pytest.fixture
def drifting_world(state_dir, demo_config, one_openmp_thread) -> ModelConfig:
    """40 days of 250 rows with the feature store on, a champion trained up to day 30, and incomes
    drifting from day 33 on: two drifted windows in a row request a retrain (day 34)."""
    config = with_store(monitored_world(state_dir, demo_config, days=40, rows_per_day=250))
    turn_on_store_in_config_file(config)
    make_champion(config, day(30))
    for offset in (33, 34, 35):
        shift_incomes(config, day(offset))
    return config


def served_rows(config: ModelConfig, when: dt.date, skewed_incomes: int = 0) -> None:
    """Log the day's curated rows as online predictions, the first `skewed_incomes` incomes 10 % off."""
    rows = storage.read_curated(config.name, when, when)
    log_predictions(config, skew_some(rows, incomes=skewed_incomes, regions=0), late_in(when))


@pytest.mark.slow
def test_skew_withholds_the_retrain_request_until_the_features_match_again(drifting_world):
    config = drifting_world
    served_rows(config, day(33))
    served_rows(config, day(34), skewed_incomes=25)  # 10 % of 250
    served_rows(config, day(35))

    calm = monitoring.run_check(config, day(33))
    skewed = monitoring.run_check(config, day(34))
    automatic = training_triggers.plan_training(config, {"trigger": "schedule", "reason": "scheduled", "request": None})
    by_hand = training_triggers.plan_training(config, {"trigger": "on_demand", "reason": "manual", "request": None})
    mended = monitoring.run_check(config, day(35))

    assert calm["feature_skew"]["over_threshold"] is False and calm["standing_skew"] is None
    assert skewed["dataset_drifted"] and skewed["request"] is None, "drift alone would have requested a retrain"
    assert skewed["decision"]["retrain"] is False and skewed["decision"]["withheld"] == "drift"
    assert (
        "withheld" in skewed["decision"]["explanation"] and "annual_income 10.0%" in skewed["decision"]["explanation"]
    )
    assert skewed["feature_skew"]["shares"]["annual_income"] == pytest.approx(0.1)
    results = json.loads(Path(skewed["reports"]["feature_skew_json"]).read_text())
    means = {
        metric["config"]["column"]: metric["value"]
        for metric in results["metrics"]
        if metric["config"]["type"].endswith("MeanValue")
    }
    assert means["annual_income mismatch"] == pytest.approx(0.1) and means["region mismatch"] == 0.0
    assert "annual_income mismatch" in render_html(Path(skewed["reports"]["feature_skew_snapshot"]))
    assert "feature_skew" in {report["kind"] for report in model_status.reports_of_day(config, day(34))}
    assert json.loads(Path(skewed["reports"]["check"]).read_text())["feature_skew"]["skewed_features"] == [
        "annual_income"
    ]
    run = registry.client().get_run(skewed["mlflow_run_id"])
    assert run.data.metrics["skew_share_annual_income"] == pytest.approx(0.1)
    assert run.data.metrics["skew_share_region"] == 0.0 and run.data.metrics["skew_rows"] == 250
    assert "annual_income" in run.data.tags["feature_skew"]
    assert automatic["train"] is False and "skew" in automatic["why"]
    assert by_hand["train"] is True and "skew" in by_hand["why"]

    assert mended["standing_skew"] is None and mended["decision"]["retrain"] is True
    assert mended["request"]["reason"] == "drift"
    assert read_history(config.name)["retrain"].tolist() == [False, False, True]


class RecordingNotifier(BaseNotifier):
    """A notifier that appends the rendered alert to a file of the test's state folder."""

    template_fields = ("message",)

    def __init__(self, message: str = "{{ champion_alert.message }}"):
        super().__init__()
        self.message = message

    def notify(self, context) -> None:
        with (settings.state_dir() / ALERTS_FILE).open("a") as out:
            out.write(json.dumps({"message": self.message, "kind": context["champion_alert"]["kind"]}) + "\n")


@pytest.mark.slow
def test_the_drift_sensor_raises_the_skew_alert_and_emits_no_retrain_request(airflow_db, drifting_world):
    from tests.dags.test_drift_sensor_dag import request_events, run_sensor

    config = drifting_world
    served_rows(config, day(34), skewed_incomes=25)
    before = len(request_events())

    states = [run_sensor(day(33)), run_sensor(day(34))]

    assert states == [{"check_windows": "success", "enforce_retention": "success"}] * 2
    assert len(request_events()) == before, "the drift of days 33 and 34 requests no retrain while skew lasts"
    [alert] = [json.loads(line) for line in (settings.state_dir() / ALERTS_FILE).read_text().splitlines()]
    assert alert["kind"] == "feature_skew"
    assert "annual_income 10.0%" in alert["message"] and f"request of {day(34)} was withheld" in alert["message"]
