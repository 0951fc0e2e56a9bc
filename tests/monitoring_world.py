"""A small monitored world: filled stores and a real `@champion` made by continuous training's own steps.

The champion is trained, evaluated and registered with `include.training.continuous_training` against the
test's SQLite MLflow store (so its lineage, holdout metric and model are real), then given the
`champion` alias, as model deployment would.
"""

from __future__ import annotations

import datetime as dt

import yaml

from include.core import registry, settings
from include.core.config import ModelConfig
from include.training import continuous_training as ct
from tests.ct_world import FIRST_DAY, fill_stores, ready_mlflow, small_config


def write_model_config(config: ModelConfig, **monitoring: dict) -> None:
    """Write the small world's settings into the model config file the DAGs read.

    Args:
        monitoring: updates of `monitoring` sections, e.g. `retrain_policy={"consecutive_windows": 1}`.
    """
    path = settings.models_dir() / f"{config.name}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["source"]["rows_per_day"] = config.source.rows_per_day
    raw["training"].update(window_days=config.training.window_days, min_rows=config.training.min_rows)
    raw["training"]["estimator"]["params"]["max_iter"] = config.training.estimator.params["max_iter"]
    for section, updates in monitoring.items():
        raw["monitoring"][section].update(updates)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def monitored_world(state_dir, demo_config, days: int = 40, rows_per_day: int = 150, **monitoring) -> ModelConfig:
    """A migrated MLflow store, `days` days of curated batches and labels, and the config file to match."""
    config = small_config(demo_config, rows_per_day=rows_per_day)
    if monitoring:
        config = with_monitoring(config, **monitoring)
    write_model_config(config, **monitoring)
    ready_mlflow(state_dir)
    fill_stores(config, days=days)
    return config


def with_monitoring(config: ModelConfig, **sections: dict) -> ModelConfig:
    monitoring = config.monitoring
    updates = {name: getattr(monitoring, name).model_copy(update=values) for name, values in sections.items()}
    return config.model_copy(update={"monitoring": monitoring.model_copy(update=updates)})


def make_champion(
    config: ModelConfig, cutoff: dt.date, run_id: str = "manual__champion", window_days: int | None = None
) -> str:
    """Train, evaluate and register a version on the data up to `cutoff` (`window_days` days of
    it, else `training.window_days`); make it `@champion`."""
    run_ctx = ct.RunContext(dag_id=f"{config.name}__continuous_training", run_id=run_id, trigger="on_demand")
    assembled = ct.assemble(config, run_ctx, cutoff, window_days)
    trained = ct.train(config, run_ctx, assembled["training_set_uri"])
    ct.evaluate(config, run_ctx, assembled["training_set_uri"], trained["mlflow_run_id"])
    version = ct.register(config, run_ctx, trained["mlflow_run_id"])["version"]
    registry.client().set_registered_model_alias(config.name, registry.CHAMPION, version)
    return version


def day(offset: int) -> dt.date:
    """The world's day `offset` (0 is its first day)."""
    return FIRST_DAY + dt.timedelta(days=offset)
