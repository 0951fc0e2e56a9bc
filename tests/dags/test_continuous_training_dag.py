"""End to end through Airflow: `dag.test()` of continuous training against a real SQLite MLflow store."""

import pytest
import yaml

from include.core import registry, settings
from tests.ct_world import small_training_world

DAG_ID = "credit_default__continuous_training"


@pytest.fixture
def small_world(state_dir, demo_config, monkeypatch):
    """40 days of curated data and labels, and a model config small enough to train in seconds."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return small_training_world(state_dir, demo_config)


def run_training(conf: dict):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags" / "continuous_training.py")).dags[DAG_ID]
    return dag.test(logical_date=None, run_conf=conf)


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


@pytest.mark.slow
def test_a_manual_run_registers_challenger_v1_and_records_its_trigger_and_reason(airflow_db, small_world):
    dag_run = run_training({"reason": "first model", "cutoff": "2026-02-09"})

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states["announce_challenger"] == "success"
    challenger = registry.get_alias_version("credit_default", registry.CHALLENGER)
    assert str(challenger.version) == "1"
    assert challenger.tags[registry.TAG_GATE_PASSED] == "true"
    run = registry.client().get_run(challenger.run_id)
    assert run.data.tags[registry.TAG_TRIGGER] == "on_demand"
    assert run.data.tags[registry.TAG_REASON] == "first model"
    assert challenger.tags[registry.TAG_REASON] == "first model"
    assert run.data.tags[registry.TAG_AIRFLOW_RUN_ID] == dag_run.run_id


@pytest.mark.slow
def test_a_rejected_candidate_ends_the_run_as_a_success_without_a_challenger(airflow_db, small_world):
    path = settings.models_dir() / "credit_default.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["evaluation"]["metrics"]["roc_auc"]["threshold"] = 0.999
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    dag_run = run_training({"reason": "unreachable floor", "cutoff": "2026-02-09"})

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states["register_candidate"] == "success"
    assert states["announce_challenger"] == "skipped"
    assert registry.get_alias_version("credit_default", registry.CHALLENGER) is None
    [version] = registry.client().search_model_versions("name='credit_default'")
    assert version.tags[registry.TAG_GATE_PASSED] == "false"


@pytest.mark.slow
def test_a_conf_with_an_unknown_key_fails_before_any_work(airflow_db, small_world):
    dag_run = run_training({"reason": "typo", "window_day": 30})

    states = task_states(dag_run)
    assert dag_run.state == "failed"
    assert states["plan_run"] == "failed"
    assert states["assemble_training_set"] == "upstream_failed"
    assert not (settings.state_dir() / "runs" / "credit_default").exists() or not any(
        (settings.state_dir() / "runs" / "credit_default").glob("*/training_set")
    )
    assert registry.client().search_model_versions("name='credit_default'") == []


def test_only_schedule_and_new_data_runs_count_as_automatic():
    import importlib.util
    from types import SimpleNamespace

    from airflow.sdk import Asset

    spec = importlib.util.spec_from_file_location("ct_dag", settings.PROJECT_ROOT / "dags" / "continuous_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def context(run_type, *asset_names):
        return {"dag_run": SimpleNamespace(run_type=run_type),
                "triggering_asset_events": {Asset(name): [] for name in asset_names}}

    assert module.trigger_is_automatic(context("scheduled"))
    assert module.trigger_is_automatic(context("asset_triggered", "credit_default__curated_batch"))
    assert not module.trigger_is_automatic(context("manual"))
    assert not module.trigger_is_automatic(context("asset_triggered", "credit_default__retrain_request"))
