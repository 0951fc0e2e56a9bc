"""Through Airflow: the drift sensor's retrain request, and continuous training run on it.

`dag.test()` always creates a manual run, so it cannot hand an Asset event to the DAG it runs.
The chain is shown this way: `dag.test()` of the drift sensor emits the retrain-request event
into the Airflow DB; the test reads that AssetEvent back and creates the run the scheduler would
create for it (run type `asset_triggered`, the event among its consumed events), then runs that
run's tasks with the same loop `dag.test()` uses.
"""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from include.core import registry, settings, storage
from include.delivery import deployment
from include.monitoring.monitoring import find_monitoring_run
from include.monitoring.retrain_policy import read_history
from include.training.training_triggers import RETRAIN_REQUEST_KEYS
from tests.monitoring_world import day, make_champion, monitored_world

SENSOR = "credit_default__drift_sensor"
TRAINING = "credit_default__continuous_training"
REQUEST_ASSET = "credit_default__retrain_request"


def load_dag(file_name: str, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags" / file_name)).dags[dag_id]


def run_sensor(when: dt.date) -> dict[str, str]:
    """One `dag.test()` run of the sensor for the window ending `when`; its task states."""
    dag_run = load_dag("drift_sensor.py", SENSOR).test(logical_date=None, run_conf={"day": when.isoformat()})
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def request_events() -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == REQUEST_ASSET).order_by(AssetEvent.id)
        ).all()
        session.expunge_all()
    return events


def run_asset_triggered(dag, event_ids: list[int]):
    """Create the asset-triggered run the scheduler would create for these events, and run it."""
    from airflow.models.asset import AssetEvent
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    now = timezone.utcnow()
    with create_session() as session:
        dag_run = scheduler_dag.create_dagrun(
            run_id=DagRun.generate_run_id(run_type=DagRunType.ASSET_TRIGGERED, logical_date=None, run_after=now),
            logical_date=None, data_interval=None, run_after=now, run_type=DagRunType.ASSET_TRIGGERED,
            triggered_by=DagRunTriggeredByType.ASSET, state=DagRunState.RUNNING, start_date=now, session=session,
        )
        dag_run.consumed_asset_events.extend(session.scalars(select(AssetEvent).where(AssetEvent.id.in_(event_ids))))
        session.commit()
        while dag_run.state == DagRunState.RUNNING:
            session.expire_all()
            schedulable, _ = dag_run.update_state(session=session)
            for ti in schedulable:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
                ti.scheduled_dttm = timezone.utcnow()
            session.commit()
            for ti in dag_run.get_task_instances(session=session):
                if ti.state == TaskInstanceState.SCHEDULED:
                    _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
        states = {ti.task_id: ti.state for ti in dag_run.get_task_instances(session=session)}
        return dag_run.run_id, dag_run.state, states


@pytest.fixture
def world(state_dir, demo_config, monkeypatch, one_openmp_thread):
    """40 days of data (250 rows a day), a champion trained on the days up to day 30."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = monitored_world(state_dir, demo_config, days=40, rows_per_day=250)
    make_champion(config, day(30))
    return config


def shift_incomes(config, when: dt.date) -> None:
    batch = storage.read_curated(config.name, when, when)
    batch["annual_income"] = batch["annual_income"] * 3
    storage.write_curated_batch(config.name, when, batch)


@pytest.fixture
def world_with_labels_after_the_change(state_dir, demo_config, monkeypatch, one_openmp_thread):
    """45 days of data (250 rows a day), a champion trained up to day 30, and a change-point rule
    of 500 labelled rows: labels of days 33 to 37 have arrived by day 44, the newest curated day."""
    import yaml

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = monitored_world(state_dir, demo_config, days=45, rows_per_day=250)
    path = settings.models_dir() / f"{config.name}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["training"]["change_point"]["min_labelled_rows"] = 500
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    make_champion(config, day(30))
    return config


@pytest.mark.slow
def test_drift_requests_a_retrain_and_continuous_training_learns_from_the_change_it_names(
    airflow_db, world_with_labels_after_the_change
):
    world = world_with_labels_after_the_change
    for offset in (33, 34):
        shift_incomes(world, day(offset))
    before = len(request_events())

    calm = run_sensor(day(33))
    after_calm = len(request_events())
    fired = run_sensor(day(34))

    assert calm == fired == {"check_windows": "success", "enforce_retention": "success"}
    assert after_calm == before, "one drifted window is not enough, and a run without a request emits no event"
    [event] = request_events()[before:]
    assert set(RETRAIN_REQUEST_KEYS) <= set(event.extra)
    assert event.extra["reason"] == "drift" and "annual_income" in event.extra["drifted_columns"]
    assert event.extra["window"] == {"start": day(34).isoformat(), "end": day(34).isoformat()}
    assert event.extra["change_start"] == day(33).isoformat(), "the drifted streak began on day 33"

    run_id, state, states = run_asset_triggered(load_dag("continuous_training.py", TRAINING), [event.id])

    assert state == "success", states
    [version] = registry.client().search_model_versions(f"name='credit_default' and tags.airflow_run_id='{run_id}'")
    assert version.tags[registry.TAG_TRIGGER] == "drift"
    training_run = registry.client().get_run(version.run_id)
    assert training_run.data.tags[registry.TAG_TRIGGER] == "drift"
    assert training_run.data.params["change_start"] == day(33).isoformat()
    holdout = pd.read_parquet(Path(training_run.data.tags["training_set_uri"]) / "holdout.parquet")
    assert holdout[world.schema.timestamp_column].min() >= pd.Timestamp(day(33)), "judged on the changed world"


@pytest.mark.slow
def test_rerunning_the_window_that_requested_a_retrain_does_not_request_it_again(airflow_db, world):
    for offset in (33, 34):
        shift_incomes(world, day(offset))
    run_sensor(day(33))
    run_sensor(day(34))
    before = len(request_events())

    again = run_sensor(day(34))

    assert again == {"check_windows": "success", "enforce_retention": "success"}
    assert len(request_events()) == before
    assert len(read_history(world.name)) == 2
    assert find_monitoring_run(world, day(34), "1").data.tags["retrain_request_emitted"] == "true"


@pytest.mark.slow
def test_one_run_catches_up_on_every_day_the_champion_served_in_order(airflow_db, world):
    deployment.promote(world, "1", "deploy-1", effective_day=day(32))

    states = run_sensor(day(35))

    assert states == {"check_windows": "success", "enforce_retention": "success"}
    history = read_history(world.name)
    assert list(history["day"]) == [day(offset) for offset in range(32, 36)]
    assert set(history["model_version"]) == {"1"}


@pytest.mark.slow
def test_the_sensor_is_skipped_without_a_champion(airflow_db, state_dir, demo_config):
    monitored_world(state_dir, demo_config, days=3, rows_per_day=50)

    states = run_sensor(day(2))

    assert states == {"check_windows": "skipped", "enforce_retention": "success"}
