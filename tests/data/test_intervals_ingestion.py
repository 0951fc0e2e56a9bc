"""Weekly and monthly sources: one batch per interval, validated once, curated by day."""

import datetime as dt
import json

import pandas as pd
import pytest

from include.core import settings, storage
from include.core.config import FilesSource, ModelConfig, TableSource, load_model_config
from include.data import history_import, ingestion
from include.demo import data_world

MONDAY = dt.date(2026, 1, 12)
WEEK = [MONDAY + dt.timedelta(days=offset) for offset in range(7)]
NEXT_WEEK = [day + dt.timedelta(days=7) for day in WEEK]
ROWS_PER_DAY = 60


def applications(config: ModelConfig, days: list[dt.date]) -> pd.DataFrame:
    """A few rows of each day of the demo world, in no particular order."""
    frame = pd.concat([data_world.feature_batch(config, day).head(ROWS_PER_DAY) for day in days], ignore_index=True)
    return frame.sample(frac=1, random_state=0).reset_index(drop=True)


def with_source(config: ModelConfig, source) -> ModelConfig:
    return config.model_copy(update={"source": source})


def curate(config: ModelConfig, day: dt.date) -> dict:
    landed = ingestion.land(config, day)
    validated = ingestion.validate(config, dt.date.fromisoformat(landed["day"]), landed["batch_uri"], data_docs=False)
    return ingestion.publish(config, dt.date.fromisoformat(landed["day"]), validated["validated_uri"])


def of_day(frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return frame[frame["event_timestamp"].dt.date == day].sort_values("application_id").reset_index(drop=True)


def curated_rows(day: dt.date) -> pd.DataFrame:
    return storage.read_curated("credit_default", day, day).sort_values("application_id").reset_index(drop=True)


def test_a_weekly_table_source_lands_one_batch_and_curates_each_day_of_it(state_dir, demo_config, tmp_path):
    rows = applications(demo_config, WEEK + NEXT_WEEK)
    rows.to_parquet(tmp_path / "applications.parquet", index=False)
    config = with_source(
        demo_config,
        TableSource(kind="table", path=str(tmp_path / "applications.parquet"), start_date=MONDAY, interval="weekly"),
    )

    published = curate(config, dt.date(2026, 1, 15))  # a Thursday: the week from Monday 12th

    assert [path.parent.name for path in storage.landing_dir("credit_default", MONDAY).iterdir()] == ["day=2026-01-12"]
    assert {key: published[key] for key in ("first_day", "last_day", "days", "rows", "quarantined", "missing")} == {
        "first_day": "2026-01-12",
        "last_day": "2026-01-18",
        "days": 7,
        "rows": 7 * ROWS_PER_DAY,
        "quarantined": [],
        "missing": [],
    }
    assert "day" not in published  # consumers expand the range, as they do a history import's
    assert storage.curated_days("credit_default") == WEEK
    for day in WEEK:
        pd.testing.assert_frame_equal(curated_rows(day), of_day(rows, day), check_dtype=False)


def test_a_quarantined_week_loses_nothing_and_curates_nothing(state_dir, demo_config, tmp_path):
    rows = applications(demo_config, WEEK)
    rows.loc[rows.index[:3], "age"] = 150  # three bad rows on some day of the week
    rows.to_csv(tmp_path / "applications.csv", index=False)
    config = with_source(
        demo_config,
        TableSource(kind="table", path=str(tmp_path / "applications.csv"), start_date=MONDAY, interval="weekly"),
    )

    with pytest.raises(ingestion.BatchRejected, match=r"expect_column_values_to_be_between\(age\)"):
        curate(config, MONDAY)

    assert storage.curated_days("credit_default") == []
    [folder] = storage.quarantined_batches("credit_default", MONDAY)
    kept = pd.read_parquet(folder / "batch.parquet")
    assert sorted(kept["application_id"]) == sorted(rows["application_id"])
    assert json.loads((folder / storage.REPORT_FILE).read_text())["blocking_failures"]


def test_a_weekly_batch_with_a_row_from_another_week_is_quarantined(state_dir, demo_config, tmp_path):
    folder = tmp_path / "weekly"
    folder.mkdir()
    stray = applications(demo_config, WEEK + [NEXT_WEEK[0]])
    stray.to_csv(folder / f"applications_{MONDAY}.csv", index=False)
    config = with_source(
        demo_config,
        FilesSource(kind="files", path=folder, pattern="applications_{day}.csv", start_date=MONDAY, interval="weekly"),
    )

    with pytest.raises(ingestion.BatchRejected, match="event_timestamp"):
        curate(config, WEEK[3])

    assert storage.curated_days("credit_default") == []
    assert storage.quarantined_batches("credit_default", MONDAY)


def test_a_weekly_files_source_reads_the_file_named_by_the_weeks_first_day(state_dir, demo_config, tmp_path):
    folder = tmp_path / "weekly"
    (folder / "labels").mkdir(parents=True)
    rows = applications(demo_config, WEEK)
    rows.to_csv(folder / f"applications_{MONDAY}.csv", index=False)
    labels = data_world.labels_arriving_on(demo_config, WEEK[2]).head(40).drop(columns=[data_world.LABEL_TIMESTAMP])
    labels.to_csv(folder / "labels" / f"outcomes_{MONDAY}.csv", index=False)
    config = with_source(
        demo_config,
        FilesSource(
            kind="files",
            path=folder,
            pattern="applications_{day}.csv",
            labels_path=folder / "labels",
            labels_pattern="outcomes_{day}.csv",
            start_date=MONDAY,
            interval="weekly",
        ),
    )

    published = curate(config, WEEK[6])
    stored = ingestion.land_labels(config, WEEK[4], data_docs=False)

    assert published["days"] == 7 and published["rows"] == len(rows)
    assert stored["rows"] == 40
    # A label file does not say when each label arrived: they count as known on the week's last day.
    assert storage.label_days("credit_default") == [WEEK[-1]]


def test_monthly_labels_are_stored_by_the_day_they_arrived(state_dir, demo_config, tmp_path):
    january = [dt.date(2026, 1, 1) + dt.timedelta(days=offset) for offset in range(31)]
    arrivals = [january[7], january[14], january[30], dt.date(2026, 2, 1)]
    labels = pd.concat(
        [data_world.labels_arriving_on(demo_config, day).head(20) for day in arrivals], ignore_index=True
    )
    labels.to_csv(tmp_path / "outcomes.csv", index=False)
    config = with_source(
        demo_config,
        TableSource(
            kind="table",
            path=str(tmp_path / "nothing.csv"),
            labels_path=str(tmp_path / "outcomes.csv"),
            start_date=january[0],
            interval="monthly",
        ),
    )

    stored = ingestion.land_labels(config, january[9], data_docs=False)

    assert stored["day"] == "2026-01-01" and stored["rows"] == 60
    assert storage.label_days("credit_default") == arrivals[:3]
    assert len(storage.read_labels_arrived_by("credit_default", january[14])) == 40


def test_a_daily_source_still_publishes_one_day(state_dir, demo_config, tmp_path):
    rows = applications(demo_config, WEEK[:2])
    rows.to_parquet(tmp_path / "applications.parquet", index=False)
    config = with_source(
        demo_config, TableSource(kind="table", path=str(tmp_path / "applications.parquet"), start_date=MONDAY)
    )

    published = curate(config, WEEK[1])

    assert published == {
        "day": "2026-01-13",
        "curated_uri": str(storage.curated_path("credit_default", WEEK[1])),
        "rows": ROWS_PER_DAY,
    }


def test_the_week_an_event_names_expands_to_its_curated_days(state_dir, demo_config, tmp_path):
    from types import SimpleNamespace

    from mlops_dags.model_dags import event_days

    extra = {"first_day": "2026-01-12", "last_day": "2026-01-18", "quarantined": [], "missing": ["2026-01-17"]}
    context = {"triggering_asset_events": {"curated": [SimpleNamespace(extra=extra)]}}

    assert event_days(context) == [day for day in WEEK if day != dt.date(2026, 1, 17)]


# --- history import by intervals -----------------------------------------------------------------


def test_history_chunks_are_whole_weeks_holding_the_range():
    chunks = history_import.plan_chunks("2026-01-14", "2026-02-10", 14, "weekly")

    assert chunks == [["2026-01-12", "2026-01-19"], ["2026-01-26", "2026-02-02"], ["2026-02-09"]]
    assert history_import.plan_chunks("2026-01-14", "2026-03-01", 10, "monthly") == [
        ["2026-01-01"],
        ["2026-02-01"],
        ["2026-03-01"],
    ]


def test_a_weekly_history_quarantines_a_bad_week_whole_and_names_its_days(state_dir, demo_config, tmp_path):
    weeks = [[day + dt.timedelta(days=7 * week) for day in WEEK] for week in range(3)]
    rows = applications(demo_config, [day for week in weeks for day in week if day != weeks[2][6]])
    rows.loc[rows["event_timestamp"].dt.date == weeks[1][2], "region"] = "atlantis"
    rows.to_parquet(tmp_path / "applications.parquet", index=False)
    config = with_source(
        demo_config,
        TableSource(kind="table", path=str(tmp_path / "applications.parquet"), start_date=MONDAY, interval="weekly"),
    )

    summary = history_import.import_range(config, WEEK[2], weeks[2][3], chunk_days=7)

    iso = [[day.isoformat() for day in week] for week in weeks]
    assert {key: summary[key] for key in ("interval", "first_day", "last_day", "days", "quarantined", "missing")} == {
        "interval": "weekly",
        "first_day": "2026-01-12",
        "last_day": "2026-02-01",
        "days": 13,
        "quarantined": iso[1],
        "missing": [iso[2][6]],
    }
    assert summary["rows"] == 13 * ROWS_PER_DAY
    assert storage.curated_days("credit_default") == weeks[0] + weeks[2][:6]
    [folder] = storage.quarantined_batches("credit_default", weeks[1][0])
    assert len(pd.read_parquet(folder / "batch.parquet")) == 7 * ROWS_PER_DAY
    assert "2026-01-19" in history_import.describe_problems(summary)


def test_a_replay_of_a_weekly_model_is_refused_saying_why(demo_config, tmp_path):
    from include.replay import runner

    config = with_source(
        demo_config,
        TableSource(
            kind="table", path=str(tmp_path), start_date=MONDAY, end_date=dt.date(2026, 6, 1), interval="weekly"
        ),
    )

    with pytest.raises(runner.ReplayError, match="source.interval is 'weekly'; a replay .* replays daily sources only"):
        runner.plan_days(config, None, None)


def test_the_weekly_worked_example_curates_a_week_of_its_file(state_dir, tmp_path):
    example = load_model_config(settings.PROJECT_ROOT / "docs" / "examples" / "loans_weekly.yaml")
    config = example.model_copy(
        update={"source": example.source.model_copy(update={"path": tmp_path, "labels_path": tmp_path})}
    )
    submitted = pd.date_range("2024-01-01", periods=56, freq="3h")
    pd.DataFrame(
        {
            "application_id": [f"a{number}" for number in range(56)],
            "submitted_at": submitted.strftime("%Y-%m-%dT%H:%M:%S"),
            "amount": [1000.0 + number for number in range(56)],
            "purpose": ["car", "home improvement", "studies €", "car"] * 14,
        }
    ).to_csv(tmp_path / "applications_2024-01-01.csv", index=False)

    published = curate(config, dt.date(2024, 1, 3))

    assert example.source.interval == "weekly" and example.drift_window_days == 7
    assert (published["first_day"], published["last_day"], published["days"]) == ("2024-01-01", "2024-01-07", 7)
    curated = storage.read_curated("loans_weekly", dt.date(2024, 1, 1), dt.date(2024, 1, 7))
    assert sorted(curated["application_id"]) == sorted(f"a{number}" for number in range(56))


def test_the_drift_sensor_sees_every_day_of_a_weekly_batch_as_settled(state_dir, demo_config, tmp_path):
    from include.monitoring import monitoring

    rows = applications(demo_config, WEEK[:6] + NEXT_WEEK)  # no row on the first Sunday
    rows.loc[rows["event_timestamp"].dt.date == NEXT_WEEK[2], "region"] = "atlantis"
    rows.to_parquet(tmp_path / "applications.parquet", index=False)
    config = with_source(
        demo_config,
        TableSource(kind="table", path=str(tmp_path / "applications.parquet"), start_date=MONDAY, interval="weekly"),
    )
    curate(config, MONDAY)
    with pytest.raises(ingestion.BatchRejected):
        curate(config, NEXT_WEEK[0])

    assert all(monitoring.batch_settled(config, day) for day in WEEK + NEXT_WEEK)
    assert not monitoring.batch_settled(config, NEXT_WEEK[-1] + dt.timedelta(days=1))
    assert monitoring.quarantined_days(config, WEEK[0], NEXT_WEEK[-1]) == NEXT_WEEK
