"""DAG integrity: every DAG file parses cheaply and every model config yields its own DAGs."""

import json
import os
import shutil
import subprocess
import sys
import uuid
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


def new_model(paused_on_start: bool | None) -> str:
    """Add a model config (the demo's, under a name Airflow has never seen); its name."""
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    raw = yaml.safe_load((settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml").read_text())
    raw["name"] = name
    raw.pop("paused_on_start", None)
    if paused_on_start is not None:
        raw["paused_on_start"] = paused_on_start
    (settings.models_dir() / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return name


def parse_and_sync_dags_folder() -> None:
    """What the DAG processor does with the DAG folder: parse it and write its DAGs to the metadata DB."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    bundle = manager.get_bundle("dags-folder")
    dagbag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
    assert dagbag.import_errors == {}
    sync_bag_to_db(dagbag, bundle.name, bundle.version)


def paused_in_db(model: str) -> dict[str, bool]:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return {dag.dag_id: dag.is_paused
                for dag in session.query(DagModel).filter(DagModel.dag_id.startswith(f"{model}__"))}


def test_a_new_models_dags_are_created_unpaused_unless_its_config_says_paused_on_start(state_dir, airflow_db):
    unpaused, paused = new_model(paused_on_start=None), new_model(paused_on_start=True)

    parse_and_sync_dags_folder()

    # The demo's eight stages, and feature_materialization: the demo keeps its features in Feast.
    assert len(paused_in_db(unpaused)) == len(paused_in_db(paused)) == 9
    assert set(paused_in_db(unpaused).values()) == {False}
    assert set(paused_in_db(paused).values()) == {True}


def test_a_dag_a_person_paused_stays_paused_when_the_dags_are_parsed_again(state_dir, airflow_db):
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    model = new_model(paused_on_start=False)
    parse_and_sync_dags_folder()
    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == f"{model}__continuous_training").update({"is_paused": True})

    parse_and_sync_dags_folder()

    assert paused_in_db(model)[f"{model}__continuous_training"] is True
    assert paused_in_db(model)[f"{model}__data_ingestion"] is False
