"""Every DAG file parse discovers the model configs; the discovery cache must never serve a stale fleet."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from include.core import config as config_module
from include.core.config import discover_model_configs
from include.core.settings import PROJECT_ROOT

DEMO = PROJECT_ROOT / "include" / "models" / "credit_default.yaml"


@pytest.fixture
def models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(DEMO, folder / DEMO.name)
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    return folder


def test_an_unchanged_folder_is_served_from_the_cache_without_reading_the_files(models, monkeypatch):
    first = discover_model_configs(models)

    def no_reading(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(config_module, "load_model_config", no_reading)
    again = discover_model_configs(models)

    assert list(again.valid) == list(first.valid) == ["credit_default"]
    assert again.valid["credit_default"].source.start_date == first.valid["credit_default"].source.start_date


def test_an_added_edited_or_removed_config_is_seen_by_the_next_discovery(models):
    assert list(discover_model_configs(models).valid) == ["credit_default"]

    text = DEMO.read_text().replace("name: credit_default", "name: second_model")
    (models / "second_model.yaml").write_text(text)
    assert list(discover_model_configs(models).valid) == ["credit_default", "second_model"]

    edited = models / "second_model.yaml"
    stat = edited.stat()
    edited.write_text(text.replace("owner: ml-team", "owner: ml-tean"))  # same size
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert discover_model_configs(models).valid["second_model"].owner == "ml-tean"

    edited.write_text(text.replace("seed: 42", "seed: [42]"))
    found = discover_model_configs(models)
    assert list(found.valid) == ["credit_default"]
    assert "seed" in str(found.errors[edited])

    edited.unlink()
    found = discover_model_configs(models)
    assert list(found.valid) == ["credit_default"] and found.errors == {}


def test_an_unwritable_state_folder_only_costs_the_cache(models, monkeypatch, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the state folder should be")
    monkeypatch.setenv("MLOPS_STATE_DIR", str(blocked))

    assert list(discover_model_configs(models).valid) == ["credit_default"]
    assert list(discover_model_configs(models).valid) == ["credit_default"]


def test_a_dag_file_parsed_from_the_cache_gets_its_dags_without_importing_the_config_schema(models):
    """What makes a parse cheap: a DAG file builds its DAGs from the cached facts alone."""
    discover_model_configs(models)  # what the first parse of the folder leaves behind
    probe = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(PROJECT_ROOT / 'dags' / 'continuous_training.py')!r})\n"
        "print(json.dumps({'dags': sorted(bag.dags), 'errors': list(bag.import_errors),\n"
        "                  'schema_imported': 'include.core.config' in sys.modules}))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "dags")]),
        "MLOPS_MODELS_DIR": str(models),
    }
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)

    verdict = json.loads(result.stdout.strip().splitlines()[-1])
    assert verdict == {"dags": ["credit_default__continuous_training"], "errors": [], "schema_imported": False}


def test_a_config_served_from_the_cache_behaves_as_the_real_one(models):
    from mlops_dags.parsed_configs import parsed_model_configs

    real = discover_model_configs(models).valid["credit_default"]
    [parsed] = parsed_model_configs(models)

    assert (parsed.name, parsed.training.schedule, parsed.source.start_date, parsed.source.end_date) == (
        real.name,
        real.training.schedule,
        real.source.start_date,
        real.source.end_date,
    )
    assert parsed.evaluation.degraded_champion.promotion == real.evaluation.degraded_champion.promotion
    assert isinstance(parsed, config_module.ModelConfig) and isinstance(parsed.source, config_module.SyntheticSource)
    assert parsed == real and parsed.features.all == real.features.all
    copied = parsed.model_copy(update={"owner": "someone"})
    assert copied.owner == "someone" and copied.training == real.training


def test_no_cache_entry_means_the_folder_is_read(models):
    from mlops_dags.parsed_configs import parsed_model_configs

    assert parsed_model_configs(models) is None
    discover_model_configs(models)
    (models / "credit_default.yaml").write_text(DEMO.read_text().replace("owner: ml-team", "owner: other"))
    assert parsed_model_configs(models) is None
