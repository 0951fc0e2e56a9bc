"""DAG integrity: every DAG file parses cheaply and every model config yields its own DAGs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from include.core import settings

DAGS_FOLDER = settings.PROJECT_ROOT / "dags"
SECOND_MODEL = Path(__file__).parents[1] / "fixtures" / "card_fraud.yaml"
HEAVY_LIBRARIES = ("pandas", "numpy", "sklearn", "great_expectations", "evidently", "mlflow", "scipy")


def load_dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture
def dagbag(state_dir):
    return load_dagbag()


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dag_ids, "the demo model config yields no DAG"


def test_demo_dag_ids_are_model_then_stage(dagbag):
    assert "credit_default__data_ingestion" in dagbag.dag_ids
    assert all(dag_id.startswith("credit_default__") for dag_id in dagbag.dag_ids)


def test_every_dag_has_tags_owner_retries_and_docs(dagbag):
    for dag in dagbag.dags.values():
        assert any(tag.startswith("level-") for tag in dag.tags), dag.dag_id
        assert "model:credit_default" in dag.tags, dag.dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag.dag_id
        for task in dag.tasks:
            assert task.owner == "ml-team", f"{dag.dag_id}.{task.task_id}"
            assert task.retries is not None, f"{dag.dag_id}.{task.task_id}"


def test_every_param_explains_itself_in_the_trigger_form(dagbag):
    for dag in dagbag.dags.values():
        for name, param in dag.params.items():
            assert param.description, f"{dag.dag_id} param {name!r} has no description"


@pytest.mark.parametrize("dag_file", sorted(DAGS_FOLDER.glob("*.py")), ids=lambda path: path.name)
def test_dag_file_parses_without_heavy_imports(dag_file, state_dir):
    probe = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import BundleDagBag\n"
        f"bag = BundleDagBag(dag_folder={str(dag_file)!r}, bundle_path={str(DAGS_FOLDER)!r})\n"
        f"heavy = [name for name in {HEAVY_LIBRARIES!r} if name in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'errors': list(bag.import_errors)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(settings.PROJECT_ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    verdict = json.loads(result.stdout.strip().splitlines()[-1])
    assert verdict == {"heavy": [], "errors": []}


def test_two_model_configs_each_get_their_own_dags(state_dir):
    shutil.copy(SECOND_MODEL, settings.models_dir() / SECOND_MODEL.name)

    dagbag = load_dagbag()

    assert dagbag.import_errors == {}
    assert "credit_default__data_ingestion" in dagbag.dag_ids
    assert "card_fraud__data_ingestion" in dagbag.dag_ids
    assert "model:card_fraud" in dagbag.dags["card_fraud__data_ingestion"].tags


def test_a_broken_config_breaks_only_its_own_dags_with_an_import_error(state_dir):
    raw = yaml.safe_load(SECOND_MODEL.read_text())
    raw["training"]["window_days"] = "a month"
    (settings.models_dir() / "card_fraud.yaml").write_text(yaml.safe_dump(raw))

    dagbag = load_dagbag()

    assert not [dag_id for dag_id in dagbag.dag_ids if dag_id.startswith("card_fraud__")]
    assert "credit_default__data_ingestion" in dagbag.dag_ids
    [error] = dagbag.import_errors.values()
    assert "card_fraud.yaml" in error
    assert "training.window_days" in error
    assert "'a month'" in error
