"""Materialization owned by Airflow: `dag.test()` of `<model>__feature_materialization` on real Feast stores."""

from __future__ import annotations

import datetime as dt
import shutil
from types import SimpleNamespace

import pytest

from include.core import settings
from include.demo import data_world
from include.features import feature_store
from tests.dags.test_dags import SECOND_MODEL, load_dagbag
from tests.features.test_feature_store import online_rows, write_day

DAG_ID = "credit_default__feature_materialization"
DAY = dt.date(2026, 1, 6)


def materialization_dag():
    from airflow.dag_processing.dagbag import DagBag

    dags = DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags" / "feature_materialization.py")).dags
    return dags[DAG_ID]


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def test_only_models_that_use_the_feature_store_get_a_materialization_dag_run_by_the_curated_batch(state_dir):
    shutil.copy(SECOND_MODEL, settings.models_dir() / SECOND_MODEL.name)  # card_fraud has no feature store

    dagbag = load_dagbag()

    materializing = sorted(dag_id for dag_id in dagbag.dag_ids if dag_id.endswith("__feature_materialization"))
    assert materializing == [DAG_ID]
    dag = dagbag.dags[DAG_ID]
    assert dag.timetable.asset_condition.name == "credit_default__curated_batch"
    assert dag.max_active_runs == 1


@pytest.mark.slow
def test_a_run_materializes_its_day_and_running_it_again_changes_nothing(airflow_db, state_dir, demo_config):
    config = data_world.with_rows_per_day(demo_config, 100)
    write_day(config, DAY, rows=100)
    dag = materialization_dag()

    first = dag.test(logical_date=None, run_conf={"day": DAY.isoformat()})
    loaded = online_rows(config)
    again = dag.test(logical_date=None, run_conf={"day": DAY.isoformat()})

    assert first.state == again.state == "success", (task_states(first), task_states(again))
    assert len(loaded) == 100 * (1 + len(config.features.all))
    assert online_rows(config) == loaded


@pytest.mark.slow
def test_a_day_without_a_curated_batch_is_skipped_and_loads_nothing(airflow_db, state_dir, demo_config):
    write_day(demo_config, DAY, rows=10)

    dag_run = materialization_dag().test(logical_date=None, run_conf={"day": "2026-01-07"})

    assert task_states(dag_run) == {"materialize_curated_batch": "skipped"}
    assert not (feature_store.repo_dir("credit_default") / "online_store.db").exists()


@pytest.mark.slow
def test_a_history_imports_range_event_is_materialized_in_one_run_of_the_task(state_dir, demo_config):
    config = data_world.with_rows_per_day(demo_config, 20)
    days = [DAY + dt.timedelta(days=offset) for offset in range(5)]
    for day in days[:2] + days[3:]:
        write_day(config, day)
    event = SimpleNamespace(
        extra={
            "first_day": days[0].isoformat(),
            "last_day": days[-1].isoformat(),
            "quarantined": [days[2].isoformat()],
            "missing": [],
        }
    )
    task = materialization_dag().get_task("materialize_curated_batch")

    loaded = task.python_callable(
        params={"day": None}, triggering_asset_events={"credit_default__curated_batch": [event]}
    )

    assert (loaded["first_day"], loaded["last_day"]) == ("2026-01-06", "2026-01-10")
    assert loaded["days"] == [day.isoformat() for day in days[:2] + days[3:]]
    assert len(online_rows(config)) == 4 * 20 * (1 + len(config.features.all))
