"""Level 0 end to end through Airflow: `dag.test()` of the manual training DAG on a real SQLite MLflow store."""

import pytest

from include.core import registry, settings
from tests.ct_world import small_training_world

DAG_FILE = settings.PROJECT_ROOT / "dags" / "level0_manual_training.py"
DAG_ID = "credit_default__level0_manual_training"
MODEL = "credit_default"


@pytest.fixture
def small_world(state_dir, demo_config, monkeypatch, one_openmp_thread):
    """40 days of curated data and labels, and a model config small enough to train in seconds."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return small_training_world(state_dir, demo_config)


def level0_dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAG_FILE)).dags[DAG_ID]


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def versions() -> list:
    return registry.client().search_model_versions(f"name='{MODEL}'")


def test_only_a_person_can_start_level0_and_it_is_tagged_level_0(state_dir):
    dag = level0_dag()

    assert not dag.timetable.can_be_scheduled  # no schedule
    assert dag.timetable.asset_condition is None  # and no Asset starts it
    assert "level-0" in dag.tags and "model:credit_default" in dag.tags
    assert "model_deployment" in dag.doc_md and '"force": true' in dag.doc_md


@pytest.mark.slow
def test_a_manual_run_registers_a_version_with_no_alias_and_no_gate(airflow_db, small_world):
    dag_run = level0_dag().test(logical_date=None, run_conf={"reason": "baseline", "cutoff": "2026-02-09"})

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    [version] = versions()
    version = registry.client().get_model_version(MODEL, version.version)
    assert version.aliases == []
    for alias in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS_CHAMPION):
        assert registry.get_alias_version(MODEL, alias) is None
    assert version.tags[registry.TAG_GATE_PASSED] == "false"
    assert version.tags[registry.TAG_GATE_SUMMARY] == "level 0: no gate"
    assert version.tags[registry.TAG_AIRFLOW_DAG_ID] == DAG_ID
    assert version.tags[registry.TAG_AIRFLOW_RUN_ID] == dag_run.run_id

    import mlflow.artifacts

    golden = mlflow.artifacts.load_dict(version.tags[registry.TAG_GOLDEN_EXAMPLES])
    assert golden["model"] == MODEL and len(golden["inputs"]) == len(golden["expected_probabilities"]) > 0
    metrics = registry.client().get_run(version.run_id).data.metrics
    assert 0.5 < metrics["holdout_roc_auc"] <= 1.0


def run_tasks_again(dag, dag_run) -> dict[str, str]:
    """Clear every task of a finished run and run them again in order, as `airflow tasks clear` and
    the scheduler would (the same loop as `dag.test()`, on the existing run)."""
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    for task_id in ("load_data", "train_model", "evaluate_model", "register_model"):
        with create_session() as session:
            ti = dag_run.get_task_instance(task_id, session=session)
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
            session.merge(ti)
        with create_session() as session:
            ti = dag_run.get_task_instance(task_id, session=session)
            _run_task(ti=ti, task=dag.task_dict[task_id])
    with create_session() as session:
        return {ti.task_id: (ti.state, ti.try_number) for ti in dag_run.get_task_instances(session=session)}


@pytest.mark.slow
def test_running_the_same_airflow_run_again_registers_no_second_version(airflow_db, small_world):
    dag = level0_dag()
    dag_run = dag.test(logical_date=None, run_conf={"reason": "baseline", "cutoff": "2026-02-09"})
    assert dag_run.state == "success", task_states(dag_run)

    again = run_tasks_again(dag, dag_run)

    assert again["register_model"] == ("success", 2), again
    [version] = versions()
    assert version.tags[registry.TAG_AIRFLOW_RUN_ID] == dag_run.run_id
    experiment = registry.client().get_experiment_by_name(MODEL)
    assert len(registry.client().search_runs([experiment.experiment_id])) == 1


@pytest.mark.slow
def test_an_unknown_key_in_the_request_fails_before_any_training(airflow_db, small_world):
    dag_run = level0_dag().test(logical_date=None, run_conf={"reason": "typo", "window_day": 30})

    states = task_states(dag_run)
    assert dag_run.state == "failed"
    assert states["load_data"] == "failed"
    assert states["train_model"] == "upstream_failed"
    assert versions() == []
