"""Registered versions for the delivery tests: small real models with gate verdicts and golden examples.

Each version is trained on a few days of the synthetic world, logged the way continuous training
logs it (`registry.log_model`, golden examples as a run artifact) and registered with a verdict.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from include.core import registry, settings
from include.core.config import ModelConfig, load_model_config
from include.training import training
from tests.ct_world import FIRST_DAY, labelled_frame, small_config

MODEL = "credit_default"


def write_model_config(**sections: dict) -> ModelConfig:
    """Update sections of the test's copy of the demo config (e.g. `deployment={...}`); the new config."""
    path = settings.models_dir() / f"{MODEL}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["source"]["rows_per_day"] = 100
    raw["training"]["estimator"]["params"]["max_iter"] = 30
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_model_config(Path(path))


def register_version(config: ModelConfig, seed: int, *, passed: bool = True, golden_shift: float = 0.0) -> str:
    """Train, log and register one version; `golden_shift` corrupts its recorded golden outputs.

    Returns:
        The new version number as a string.
    """
    model_uri, golden_uri = log_version(config, seed, golden_shift=golden_shift)
    return register_logged(config, seed, model_uri, golden_uri, passed=passed)


def log_version(config: ModelConfig, seed: int, *, golden_shift: float = 0.0) -> tuple[str, str]:
    """Train and log one model with its golden examples, as continuous training does before registering.

    Returns:
        The logged model's URI and the golden examples' artifact URI.
    """
    import mlflow

    config = small_config(config, rows_per_day=100)
    frame = labelled_frame(config, days=3, first_day=FIRST_DAY + dt.timedelta(days=3 * seed))
    model = training.fit(config, frame).model
    experiment_id = registry.ensure_experiment(config.name)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = registry.log_model(config, model, frame)
        golden = registry.golden_examples(config, model, frame)
        golden["expected_probabilities"] = [p + golden_shift for p in golden["expected_probabilities"]]
        golden_uri = registry.log_golden_examples(run.info.run_id, golden)
    return info.model_uri, golden_uri


def register_logged(config: ModelConfig, seed: int, model_uri: str, golden_uri: str, *, passed: bool = True) -> str:
    """Register a logged model as the version of the Airflow run "seed-<seed>" (once: a retry finds it)."""
    version, _ = registry.register_candidate(
        config.name, model_uri, airflow_dag_id="tests", airflow_run_id=f"seed-{seed}",
        verdict={"passed": passed, "reasons": [] if passed else ["roc_auc 0.51 is below the threshold 0.6"]},
        data_fingerprint=f"seed-{seed}", compared_with=registry.NO_CHAMPION, golden_examples=golden_uri,
    )
    return str(version.version)


def aliases() -> dict[str, str | None]:
    """Which version holds each deployment alias now."""
    found = {}
    for alias in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS_CHAMPION):
        version = registry.get_alias_version(MODEL, alias)
        found[alias] = str(version.version) if version else None
    return found
