"""Retention: real folders as the loop leaves them, deleted by age in data days, data never touched."""

import datetime as dt

import pandas as pd
import pytest

from include.core import settings, storage
from include.delivery import prediction_log
from include.monitoring import retrain_policy
from include.monitoring.retention import days_kept, enforce_retention
from include.monitoring.retrain_policy import CheckRecord

MODEL = "credit_default"
NEWEST_CHECKED = dt.date(2026, 6, 30)
TODAY = dt.date(2026, 7, 1)


def day(back: int) -> dt.date:
    return NEWEST_CHECKED - dt.timedelta(days=back)


def with_retention(config, **days):
    return config.model_copy(update={"retention": config.retention.model_copy(update=days)})


@pytest.fixture
def loop_files(state_dir):
    """200 days of every artefact and every data store, and the sensor's checks up to `NEWEST_CHECKED`."""
    made = {"reports": [], "logs": [], "batch_predictions": [], "data": []}
    for back in range(-2, 200):  # two days newer than the newest check: not checked yet
        when = day(back)
        report = settings.reports_dir() / MODEL / "drift" / f"day={when}" / "version=3"
        report.mkdir(parents=True)
        (report / "check.json").write_text("{}")
        (report / "data_drift.snapshot.json.xz").write_bytes(b"x" * 1000)
        log = prediction_log.predictions_dir(MODEL, when) / "host-1.jsonl"
        log.parent.mkdir(parents=True)
        log.write_text('{"probability": 0.1}\n')
        batch = prediction_log.batch_predictions_path(MODEL, when)
        batch.parent.mkdir(parents=True)
        batch.write_bytes(b"parquet")
        curated = storage.curated_path(MODEL, when)
        curated.parent.mkdir(parents=True, exist_ok=True)
        curated.write_bytes(b"parquet")
        made["reports"].append(report.parent)
        made["logs"].append(log.parent)
        made["batch_predictions"].append(batch.parent)
        made["data"].append(curated)
    records = [CheckRecord(day=day(back), model_version="3", rows=1000) for back in range(199, -1, -1)]
    storage.write_parquet_atomically(  # the metrics history in one write (`append_check` writes a row at a time)
        pd.DataFrame([retrain_policy._to_row(record) for record in records]), retrain_policy.history_path(MODEL))
    quarantined = settings.data_dir() / MODEL / "quarantine" / f"day={day(150)}" / "batch.parquet"
    quarantined.parent.mkdir(parents=True)
    quarantined.write_bytes(b"bad batch")
    made["data"].append(quarantined)
    return made


def surviving_days(folders) -> list[dt.date]:
    return sorted(dt.date.fromisoformat(folder.name.removeprefix("day=")) for folder in folders if folder.exists())


def test_artefacts_older_than_their_setting_are_deleted_counted_from_the_newest_checked_day(demo_config, loop_files):
    config = with_retention(demo_config, reports_days=60, logs_days=20, batch_predictions_days=30)

    result = enforce_retention(config, today=TODAY)

    assert surviving_days(loop_files["reports"])[0] == day(59)
    assert surviving_days(loop_files["logs"])[0] == day(19)
    assert surviving_days(loop_files["batch_predictions"])[0] == day(29)
    assert surviving_days(loop_files["reports"])[-1] == day(-2), "days not checked yet are kept"
    assert len(result["deleted"]["reports"]) == 202 - 62 and result["freed_bytes"] > 140 * 1000
    assert all(path.exists() for path in loop_files["data"]), "curated and quarantined data are never deleted"
    assert result["newest_checked_day"] == NEWEST_CHECKED.isoformat()


def test_a_second_run_deletes_nothing_more(demo_config, loop_files):
    config = with_retention(demo_config, reports_days=60)
    enforce_retention(config, today=TODAY)

    again = enforce_retention(config, today=TODAY)

    assert again["deleted"] == {"reports": [], "logs": [], "batch_predictions": []} and again["freed_bytes"] == 0


def test_none_keeps_everything(demo_config, loop_files):
    config = with_retention(demo_config, reports_days=None, logs_days=None, batch_predictions_days=None)

    result = enforce_retention(config, today=TODAY)

    assert result["freed_bytes"] == 0
    assert all(folder.exists() for kind in ("reports", "logs", "batch_predictions") for folder in loop_files[kind])


def test_a_setting_shorter_than_what_the_drift_sensor_reads_is_raised_and_says_so(demo_config, loop_files):
    config = with_retention(demo_config, logs_days=1, batch_predictions_days=1, reports_days=1)
    label_window = config.target.label_delay_days + 7

    result = enforce_retention(config, today=TODAY)

    assert days_kept(config) == {"reports": config.monitoring.retrain_policy.cooldown_days + 1,
                                 "logs": label_window, "batch_predictions": label_window}
    assert surviving_days(loop_files["batch_predictions"])[0] == day(label_window - 1)
    assert any("retention.logs_days = 1 is raised to 14" in note for note in result["notes"])


def test_the_log_folders_of_today_and_yesterday_are_never_deleted(demo_config, loop_files):
    """A sensor whose newest check is ahead of the clock (a replayed calendar) still leaves the open logs alone."""
    config = with_retention(demo_config, logs_days=20)

    enforce_retention(config, today=day(25))

    assert surviving_days(loop_files["logs"])[0] == day(26), "yesterday's log folder is kept"


def test_before_the_first_check_nothing_is_deleted(demo_config, state_dir):
    folder = settings.reports_dir() / MODEL / "drift" / "day=2020-01-01" / "version=1"
    folder.mkdir(parents=True)

    result = enforce_retention(demo_config, today=TODAY)

    assert folder.exists() and result["newest_checked_day"] is None
    assert "has checked no day yet" in result["notes"][0]
