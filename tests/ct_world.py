"""A small world for the continuous-training tests: filled stores, a cheap config, a ready MLflow DB.

Curated batches and labels come from the synthetic data world (`include.demo.data_world`), whose outcome
follows a logistic link of the features, written through the real stores: labels land in the
partition of the day they ARRIVE (event day + `target.label_delay_days`), as feedback does.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from include.core import settings, storage
from include.core.config import ModelConfig
from include.demo import data_world
from include.training.training_data import LABEL_TIMESTAMP

FIRST_DAY = dt.date(2026, 1, 1)


def small_config(config: ModelConfig, rows_per_day: int = 150, **training: object) -> ModelConfig:
    """The demo config with fewer rows a day, a short window and a quick estimator.

    Args:
        training: replacements of `training` fields (e.g. `min_rows=100`, `estimator=...`).
    """
    config = data_world.with_rows_per_day(config, rows_per_day)
    estimator = config.training.estimator.model_copy(
        update={"params": {**config.training.estimator.params, "max_iter": 60}}
    )
    updates = {"window_days": 30, "min_rows": 500, "estimator": estimator, **training}
    return config.model_copy(update={"training": config.training.model_copy(update=updates)})


def small_training_world(state_dir: Path, demo_config: ModelConfig, days: int = 40) -> ModelConfig:
    """`days` days of curated data and labels, a migrated MLflow store, and the test's copy of the
    demo config made small enough (`small_config`) to train in seconds; the small config."""
    config = small_config(demo_config)
    path = settings.models_dir() / f"{config.name}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["source"]["rows_per_day"] = config.source.rows_per_day
    raw["training"].update(window_days=config.training.window_days, min_rows=config.training.min_rows)
    raw["training"]["estimator"]["params"]["max_iter"] = config.training.estimator.params["max_iter"]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    ready_mlflow(state_dir)
    fill_stores(config, days=days)
    return config


def with_estimator(config: ModelConfig, class_path: str, params: dict) -> ModelConfig:
    """The config with another estimator class and params."""
    estimator = config.training.estimator.model_copy(update={"class_path": class_path, "params": params})
    return config.model_copy(update={"training": config.training.model_copy(update={"estimator": estimator})})


def fill_stores(config: ModelConfig, days: int, first_day: dt.date = FIRST_DAY) -> None:
    """Write `days` days of curated batches, and their labels on the days they arrive."""
    schema, target = config.schema, config.target
    delay = dt.timedelta(days=target.label_delay_days)
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        applications = data_world.applications_for_day(config, day)
        storage.write_curated_batch(config.name, day, applications[list(schema.columns)])
        labels = applications[[schema.entity_column, target.column, schema.timestamp_column]].copy()
        labels[LABEL_TIMESTAMP] = labels[schema.timestamp_column] + delay
        storage.write_labels(config.name, day + delay, labels)


def labelled_frame(config: ModelConfig, days: int, first_day: dt.date = FIRST_DAY) -> pd.DataFrame:
    """Applications of `days` days with their outcome, in memory (no stores)."""
    frames = [data_world.applications_for_day(config, first_day + dt.timedelta(days=i)) for i in range(days)]
    return pd.concat(frames, ignore_index=True)


@functools.cache
def _migrated_mlflow_db() -> Path:
    """An empty MLflow SQLite database with every migration applied, made once per test session.

    Creating the schema takes seconds; copying the finished file into each test's state folder
    takes milliseconds.
    """
    from mlflow import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    database = folder / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{database}").search_experiments()
    return database


def ready_mlflow(state_dir: Path) -> None:
    """Put a migrated, empty MLflow database where the `state_dir` fixture points MLflow."""
    shutil.copy(_migrated_mlflow_db(), state_dir / "mlflow" / "mlflow.db")
