"""Batch prediction: each curated batch scored with `@champion`, through the library and `dag.test()`."""

import pandas as pd
import pytest

from include.core import registry, settings, storage
from include.delivery import batch_prediction, prediction_log
from tests.monitoring_world import day, make_champion, monitored_world

DAG_ID = "credit_default__batch_prediction"


def run_batch_prediction(conf: dict):
    """One `dag.test()` run (it replaces the previous test run of the DAG in the Airflow DB)."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags" / "batch_prediction.py")).dags[DAG_ID]
    return dag.test(logical_date=None, run_conf=conf)


def task_state(dag_run, task_id: str = "score_curated_batch") -> str:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}[task_id]


@pytest.fixture
def world(state_dir, demo_config, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return monitored_world(state_dir, demo_config, days=35)


@pytest.mark.slow
def test_a_rerun_of_batch_prediction_leaves_no_duplicates(airflow_db, world, one_openmp_thread):
    version = make_champion(world, day(27))
    scored_day = day(31)

    states = [task_state(run_batch_prediction({"day": scored_day.isoformat()})) for _ in range(2)]

    assert states == ["success", "success"]
    stored = prediction_log.read_batch_predictions(world.name, scored_day, scored_day)
    batch = storage.read_curated(world.name, scored_day, scored_day)
    entity = world.schema.entity_column
    assert len(stored) == len(batch)
    assert stored[entity].is_unique
    assert set(stored[entity]) == set(batch[entity])
    assert set(stored["version"]) == {version}
    assert stored["probability"].between(0, 1).all()


@pytest.mark.slow
def test_batch_prediction_is_skipped_with_a_reason_when_there_is_no_champion(airflow_db, world):
    with pytest.raises(batch_prediction.NothingToScore, match="no @champion yet"):
        batch_prediction.score_day(world, day(31))

    dag_run = run_batch_prediction({"day": day(31).isoformat()})

    assert task_state(dag_run) == "skipped"
    assert not prediction_log.batch_predictions_path(world.name, day(31)).exists()


def test_predictions_carry_the_version_that_made_them_and_a_new_champion_replaces_the_day(
    state_dir, demo_config, one_openmp_thread
):
    config = monitored_world(state_dir, demo_config, days=35)
    first = make_champion(config, day(20), run_id="manual__first")
    batch_prediction.score_day(config, day(30))
    second = make_champion(config, day(27), run_id="manual__second")

    summary = batch_prediction.score_day(config, day(30))

    stored = pd.read_parquet(summary["predictions_uri"])
    assert (first, second) == ("1", "2")
    assert summary["model_version"] == "2" and set(stored["version"]) == {"2"}
    assert len(stored) == config.source.rows_per_day
    assert str(registry.get_champion_version(config.name).version) == "2"


def test_a_quarantined_day_has_nothing_to_score_and_says_so(state_dir, demo_config, one_openmp_thread):
    config = monitored_world(state_dir, demo_config, days=30)
    make_champion(config, day(27))
    landed = storage.landing_dir(config.name, day(30)) / "batch.parquet"
    storage.write_parquet_atomically(pd.DataFrame({"broken": [1]}), landed)
    storage.quarantine_batch(config.name, day(30), landed, {"passed": False})

    with pytest.raises(batch_prediction.NothingToScore, match="quarantined by ingestion"):
        batch_prediction.score_day(config, day(30))
