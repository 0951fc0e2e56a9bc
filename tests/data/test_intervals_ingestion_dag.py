"""Through Airflow: `dag.test()` of a weekly `table` source's ingestion, a good week and a bad one."""

import datetime as dt

import pandas as pd
import pytest
import yaml

from include.core import settings, storage
from include.demo import data_world
from tests.conftest import DEMO_CONFIG

DAG_ID = "credit_default__data_ingestion"
CURATED_ASSET = "credit_default__curated_batch"
GOOD_WEEK = [dt.date(2026, 1, 12) + dt.timedelta(days=offset) for offset in range(7)]
BAD_WEEK = [day + dt.timedelta(days=7) for day in GOOD_WEEK]


@pytest.fixture
def weekly_model(state_dir, demo_config, tmp_path):
    """The demo model reading two weeks from one Parquet file, a week a run; the second week has a bad region."""
    rows = pd.concat(
        [data_world.feature_batch(demo_config, day).head(50) for day in GOOD_WEEK + BAD_WEEK], ignore_index=True
    )
    rows.loc[rows["event_timestamp"].dt.date == BAD_WEEK[4], "region"] = "atlantis"
    rows.to_parquet(tmp_path / "applications.parquet", index=False)
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["source"] = {
        "kind": "table",
        "path": str(tmp_path / "applications.parquet"),
        "interval": "weekly",
        "start_date": "2026-01-12",
        "end_date": "2026-01-25",
    }
    raw["monitoring"].pop("window_days")
    (settings.models_dir() / DEMO_CONFIG.name).write_text(yaml.safe_dump(raw, sort_keys=False))
    return rows


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags" / "data_ingestion.py")).dags[DAG_ID]


def task_states(dag_run) -> dict[str, str]:
    """Every task's state in the run (read from the database: the run object may know only part of its DAG)."""
    from airflow.models.dagrun import DagRun

    return {ti.task_id: ti.state for ti in DagRun.fetch_task_instances(dag_id=DAG_ID, run_id=dag_run.run_id)}


def curated_events() -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == CURATED_ASSET)
            .order_by(AssetEvent.id)
        ).all()
        session.expunge_all()
    return events


@pytest.mark.slow
def test_a_weekly_source_ingests_a_week_per_run_and_quarantines_a_bad_week_whole(airflow_db, weekly_model):
    from mlops_dags.model_dags import event_days

    dag = load_dag()
    before = len(curated_events())

    good = dag.test(logical_date=None, run_conf={"day": "2026-01-15"})
    bad = dag.test(logical_date=None, run_conf={"day": "2026-01-19"})

    assert dag.timetable.expression == "0 0 * * 1"
    assert good.state == "success"
    [event] = curated_events()[before:]
    assert {key: event.extra[key] for key in ("first_day", "last_day", "days", "rows", "interval")} == {
        "first_day": "2026-01-12",
        "last_day": "2026-01-18",
        "days": 7,
        "rows": 350,
        "interval": "weekly",
    }
    assert event_days({"triggering_asset_events": {"curated": [event]}}) == GOOD_WEEK
    assert task_states(bad)["publish_curated_batch"] == "upstream_failed"
    assert storage.curated_days("credit_default") == GOOD_WEEK
    [folder] = storage.quarantined_batches("credit_default", BAD_WEEK[0])
    assert len(pd.read_parquet(folder / "batch.parquet")) == 350  # the whole week, nothing lost


@pytest.fixture
def hourly_model(state_dir, demo_config, tmp_path):
    """The demo model reading a day's rows from one Parquet file, an hour a run; its 23:00 hour has a bad region."""
    day = dt.date(2026, 1, 14)
    rows = data_world.feature_batch(demo_config, day)
    rows = rows[rows["event_timestamp"].dt.hour >= 22].reset_index(drop=True)
    rows.loc[rows["event_timestamp"].dt.hour == 23, "region"] = "atlantis"
    rows.to_parquet(tmp_path / "applications.parquet", index=False)
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["source"] = {
        "kind": "table",
        "path": str(tmp_path / "applications.parquet"),
        "interval": "hourly",
        "start_date": day.isoformat(),
    }
    (settings.models_dir() / DEMO_CONFIG.name).write_text(yaml.safe_dump(raw, sort_keys=False))
    return rows


@pytest.mark.slow
def test_an_hourly_source_announces_its_day_once_even_when_the_last_hour_is_quarantined(airflow_db, hourly_model):
    from mlops_dags.model_dags import event_days

    dag = load_dag()
    before = len(curated_events())

    ten_pm = dag.test(logical_date=None, run_conf={"day": "2026-01-14", "hour": 22})
    ten_pm_states, events_after_ten_pm = task_states(ten_pm), len(curated_events())
    eleven_pm = dag.test(logical_date=None, run_conf={"day": "2026-01-14", "hour": 23})

    assert (dag.timetable.expression, dag.max_active_runs) == ("0 * * * *", 1)
    assert ten_pm.state == "success"
    assert (ten_pm_states["announce_day"], events_after_ten_pm) == ("skipped", before)
    states = task_states(eleven_pm)
    assert (eleven_pm.state, states["validate_batch"], states["announce_day"], states["report_failed_hour"]) == (
        "failed",
        "failed",
        "success",
        "failed",
    )
    [event] = curated_events()[before:]
    assert {key: event.extra[key] for key in ("day", "rows", "hours_curated", "hours_quarantined")} == {
        "day": "2026-01-14",
        "rows": int((hourly_model["event_timestamp"].dt.hour == 22).sum()),
        "hours_curated": [22],
        "hours_quarantined": [23],
    }
    assert event_days({"triggering_asset_events": {"curated": [event]}}) == [dt.date(2026, 1, 14)]
