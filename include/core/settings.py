"""Where local state lives and which services the library talks to.

Everything a run writes (databases, artifacts, data, reports) lives under one folder, the state
directory, so that `make clean` can remove it. Each location can be overridden by an environment
variable, which is how the tests and the production topology point the library elsewhere.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """The git-ignored folder holding all local state (`MLOPS_STATE_DIR`, default `<project>/state`)."""
    return Path(os.environ.get("MLOPS_STATE_DIR", PROJECT_ROOT / "state"))


def models_dir() -> Path:
    """The folder of model config files (`MLOPS_MODELS_DIR`, default `include/models`)."""
    return Path(os.environ.get("MLOPS_MODELS_DIR", PROJECT_ROOT / "include" / "models"))


def data_dir() -> Path:
    """Root of the landing, curated, quarantine, labels and prediction stores (`MLOPS_DATA_DIR`)."""
    return Path(os.environ.get("MLOPS_DATA_DIR", state_dir() / "data"))


def reports_dir() -> Path:
    """Root of validation and monitoring reports (`MLOPS_REPORTS_DIR`)."""
    return Path(os.environ.get("MLOPS_REPORTS_DIR", state_dir() / "reports"))


def mlflow_tracking_uri() -> str:
    """The MLflow tracking URI (`MLFLOW_TRACKING_URI`, default a SQLite store in the state folder)."""
    default = f"sqlite:///{state_dir() / 'mlflow' / 'mlflow.db'}"
    return os.environ.get("MLFLOW_TRACKING_URI", default)


def serving_url() -> str:
    """Base URL of the online prediction service (`MLOPS_SERVING_URL`)."""
    return os.environ.get("MLOPS_SERVING_URL", "http://127.0.0.1:8000")
