"""One model's catch-up must not starve the others: the weights the scheduler queues tasks by.

Airflow's scheduler queues ready tasks by priority weight, highest first, then oldest logical date.
These tests build the DAGs as the DAG processor does, round-trip them through Airflow's serialization
(which resolves the weight rule through the registered plugin, as the scheduler does) and compute
the weights Airflow gives the task instances of real run ids.
"""

import datetime as dt
import shutil
import uuid

import pytest
import yaml

from include.core import settings

DAGS_FOLDER = settings.PROJECT_ROOT / "dags"
LONG_CATCH_UP = "credit_default"  # data from 2026-01-01: a year of intervals behind by the end of 2026
FRESH = "fresh_model"


def serialized_dags(dag_file: str) -> dict:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(DAGS_FOLDER / dag_file))
    assert bag.import_errors == {}
    return {dag_id: DagSerialization.from_dict(DagSerialization.to_dict(dag)) for dag_id, dag in bag.dags.items()}


def first_run_weight(dag, task_id: str) -> tuple[int, dt.datetime]:
    """The weight Airflow gives `task_id` in the DAG's first scheduled run, and when that run is due."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.types import DagRunType

    info = dag.next_dagrun_info(last_automated_run_info=None)
    run_id = DagRun.generate_run_id(
        run_type=DagRunType.SCHEDULED, logical_date=info.logical_date, run_after=info.run_after
    )
    task = dag.get_task(task_id)
    ti = TaskInstance(task=task, run_id=run_id, map_index=-1, dag_version_id=uuid.uuid4())
    return task.weight_rule.get_weight(ti), info.run_after


@pytest.fixture
def fleet_of_two(state_dir):
    """The demo model (a long catch-up) and a model whose data starts three days ago."""
    models = settings.models_dir()
    config = yaml.safe_load((models / "credit_default.yaml").read_text())
    config["name"] = FRESH
    config["source"]["start_date"] = dt.date.today() - dt.timedelta(days=3)
    (models / f"{FRESH}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    yield models
    shutil.rmtree(models / "__pycache__", ignore_errors=True)


def test_a_fresh_models_first_run_is_queued_before_another_models_catch_up(fleet_of_two):
    dags = serialized_dags("data_ingestion.py")

    behind, behind_due = first_run_weight(dags[f"{LONG_CATCH_UP}__data_ingestion"], "land_batch")
    fresh, fresh_due = first_run_weight(dags[f"{FRESH}__data_ingestion"], "land_batch")

    assert behind_due < fresh_due - dt.timedelta(days=100), "the demo model should be far behind"
    assert fresh > behind


def test_every_task_of_every_model_dag_uses_the_recent_intervals_first_rule(state_dir):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    for dag in bag.dags.values():
        for task in dag.tasks:
            assert task.weight_rule == "mlops_scheduling.RecentIntervalsFirst", f"{dag.dag_id}.{task.task_id}"
    assert bag.dags["credit_default__data_ingestion"].max_active_runs == 2


def test_a_triggered_run_outranks_any_backlog_and_newer_intervals_outrank_older_ones():
    from mlops_scheduling import HORIZON_HOURS, recency_bonus

    now = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
    yesterday = recency_bonus("scheduled__2026-12-07T00:00:00+00:00", now)
    last_month = recency_bonus("scheduled__2026-11-07T00:00:00+00:00", now)
    manual = recency_bonus("manual__2026-12-07T11:59:00+00:00_a1b2c3", now)

    assert manual > yesterday > last_month > 0
    assert recency_bonus("my-own-run-id", now) == HORIZON_HOURS


def test_models_of_every_source_kind_get_their_dags_without_reading_their_sources(state_dir, tmp_path):
    """Parsing never opens a table file or an Airflow Connection: a fleet parses before its sources exist."""
    from airflow.dag_processing.dagbag import DagBag

    models = settings.models_dir()
    demo = yaml.safe_load((models / "credit_default.yaml").read_text())
    sources = {
        "table_model": {"kind": "table", "path": str(tmp_path / "not_written_yet.parquet"), "start_date": "2026-01-01"},
        "sql_model": {
            "kind": "sql",
            "conn_id": "no_such_connection",
            "table": "public.applications",
            "start_date": "2026-01-01",
        },
    }
    for name, source in sources.items():
        (models / f"{name}.yaml").write_text(yaml.safe_dump({**demo, "name": name, "source": source}, sort_keys=False))

    bag = DagBag(dag_folder=str(DAGS_FOLDER))

    assert bag.import_errors == {}
    for model in ("credit_default", *sources):
        assert {f"{model}__data_ingestion", f"{model}__continuous_training", f"{model}__drift_sensor"} <= set(
            bag.dag_ids
        ), model


def test_dags_built_from_the_discovery_cache_serialize_as_those_built_from_the_configs(state_dir, monkeypatch):
    """A parse served from the cache (mlops_dags.parsed_configs) gives the scheduler exactly the same DAGs."""
    import mlops_dags.model_dags as model_dags
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    from include.core.config import discover_model_configs

    discover_model_configs()  # the cache entry the first parse of the folder leaves behind
    assert model_dags.parsed_model_configs() is not None

    def serialized() -> dict:
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
        assert bag.import_errors == {}
        return {dag_id: DagSerialization.to_dict(dag) for dag_id, dag in bag.dags.items()}

    from_cache = serialized()
    monkeypatch.setattr(model_dags, "parsed_model_configs", lambda: None)
    assert serialized() == from_cache
