"""Hourly sources: one batch per hour, validated once, merged into its day's curated partition."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from include.core import storage
from include.core.config import ModelConfig, TableSource
from include.data import history_import, ingestion
from include.demo import data_world

DAY = dt.date(2026, 1, 14)


def hour(number: int) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(number))


@pytest.fixture
def rows(demo_config: ModelConfig) -> pd.DataFrame:
    """A day of the demo world, its rows spread over the 24 hours."""
    return data_world.feature_batch(demo_config, DAY).sample(frac=1, random_state=0).reset_index(drop=True)


def hourly(config: ModelConfig, path) -> ModelConfig:
    source = TableSource(kind="table", path=str(path), start_date=DAY, interval="hourly")
    return config.model_copy(update={"source": source})


def curate(config: ModelConfig, moment: dt.datetime) -> dict:
    landed = ingestion.land(config, moment)
    key = ingestion.parse_batch_key(landed["day"])
    validated = ingestion.validate(config, key, landed["batch_uri"], data_docs=False)
    return ingestion.publish(config, key, validated["validated_uri"])


def in_hours(frame: pd.DataFrame, *hours: int) -> pd.DataFrame:
    return frame[frame["event_timestamp"].dt.hour.isin(hours)].sort_values("event_timestamp").reset_index(drop=True)


def test_hours_merge_into_their_days_partition_and_a_rerun_replaces_its_hour(state_dir, demo_config, rows, tmp_path):
    rows.to_parquet(tmp_path / "applications.parquet", index=False)
    config = hourly(demo_config, tmp_path / "applications.parquet")

    curate(config, hour(14))
    curate(config, dt.datetime.combine(DAY, dt.time(13, 30)))  # any moment of the hour
    published = curate(config, hour(14))

    assert published["hour"] == "2026-01-14T14:00:00" and published["rows"] == len(in_hours(rows, 14))
    assert storage.landing_dir("credit_default", hour(13)).relative_to(storage.model_root("credit_default")) == (
        Path("landing/day=2026-01-14/hour=13")
    )
    curated = storage.read_curated("credit_default", DAY, DAY)
    pd.testing.assert_frame_equal(curated, in_hours(rows, 13, 14), check_dtype=False)
    assert ingestion.hours_of_day(config, DAY) | {"hours_missing": None} == {
        "day": "2026-01-14",
        "rows": len(curated),
        "hours_curated": [13, 14],
        "hours_quarantined": [],
        "hours_missing": None,
    }


def test_a_quarantined_hour_keeps_its_rows_and_the_days_other_hours(state_dir, demo_config, rows, tmp_path):
    rows.loc[rows["event_timestamp"].dt.hour == 9, "region"] = "atlantis"
    rows.to_parquet(tmp_path / "applications.parquet", index=False)
    config = hourly(demo_config, tmp_path / "applications.parquet")

    curate(config, hour(8))
    with pytest.raises(ingestion.BatchRejected, match=r"expect_column_values_to_be_in_set\(region\)"):
        curate(config, hour(9))

    [folder] = storage.quarantined_batches("credit_default", hour(9))
    assert len(pd.read_parquet(folder / "batch.parquet")) == len(in_hours(rows, 9))
    status = ingestion.hours_of_day(config, DAY)
    assert (status["hours_curated"], status["hours_quarantined"]) == ([8], [9])
    assert len(status["hours_missing"]) == 22


def test_an_hours_labels_merge_into_the_labels_of_their_arrival_day(state_dir, demo_config, tmp_path):
    labels = data_world.labels_arriving_on(demo_config, DAY)
    labels[data_world.LABEL_TIMESTAMP] = [hour(number % 3 + 10) for number in range(len(labels))]
    labels.to_csv(tmp_path / "outcomes.csv", index=False)
    source = TableSource(
        kind="table",
        path=str(tmp_path / "none.csv"),
        labels_path=str(tmp_path / "outcomes.csv"),
        start_date=DAY,
        interval="hourly",
    )
    config = demo_config.model_copy(update={"source": source})

    for number in (10, 11, 10, 12):
        ingestion.land_labels(config, hour(number), data_docs=False)

    stored = storage.read_labels_arrived_by("credit_default", DAY)
    assert sorted(stored["application_id"]) == sorted(labels["application_id"])


@pytest.mark.slow
def test_an_hourly_history_curates_a_day_with_a_bad_hour_and_names_the_hour(state_dir, demo_config, rows, tmp_path):
    rows.loc[rows["event_timestamp"].dt.hour == 5, "age"] = 150
    rows.to_parquet(tmp_path / "applications.parquet", index=False)
    config = hourly(demo_config, tmp_path / "applications.parquet")

    chunks = history_import.plan_chunks(DAY, DAY, 1, "hourly")
    summary = history_import.import_range(config, DAY, DAY, chunk_days=1)

    assert [len(chunk) for chunk in chunks] == [24] and chunks[0][0] == "2026-01-14T00:00:00"
    assert (summary["first_day"], summary["last_day"], summary["days"]) == ("2026-01-14", "2026-01-14", 1)
    assert (summary["quarantined"], summary["quarantined_batches"]) == ([], ["2026-01-14T05:00:00"])
    assert summary["rows"] == len(rows) - len(in_hours(rows, 5))
    assert "1 hour(s) quarantined: 2026-01-14T05:00:00" in history_import.describe_problems(summary)
