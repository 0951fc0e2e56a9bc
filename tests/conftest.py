"""Fixtures that build a private world for each test: state folder, models folder, MLflow store."""

import shutil
from pathlib import Path

import pytest

from include import settings
from include.config import ModelConfig, load_model_config

DEMO_CONFIG = settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state folder (data, reports, MLflow) for one test, with the demo model config."""
    state = tmp_path / "state"
    models = tmp_path / "models"
    models.mkdir(parents=True)
    shutil.copy(DEMO_CONFIG, models / DEMO_CONFIG.name)
    monkeypatch.setenv("MLOPS_STATE_DIR", str(state))
    monkeypatch.setenv("MLOPS_MODELS_DIR", str(models))
    for name in ("MLOPS_DATA_DIR", "MLOPS_REPORTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{state / 'mlflow' / 'mlflow.db'}")
    (state / "mlflow").mkdir(parents=True)
    return state


@pytest.fixture
def demo_config() -> ModelConfig:
    """The demo model's config, as shipped."""
    return load_model_config(DEMO_CONFIG)
