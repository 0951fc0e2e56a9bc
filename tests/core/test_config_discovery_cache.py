"""Every DAG file parse discovers the model configs; the discovery cache must never serve a stale fleet."""

import os
import shutil

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
