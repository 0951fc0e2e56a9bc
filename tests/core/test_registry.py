"""The MLflow registry: aliases, idempotent registration, version tags and golden examples."""

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from threadpoolctl import threadpool_limits

from include.core import registry
from include.training.training import fit
from tests.ct_world import labelled_frame, ready_mlflow, small_config

VERDICT = {"passed": True, "reasons": [], "summary": "PASSED: all 5 checks passed"}


@pytest.fixture
def config(demo_config, state_dir):
    ready_mlflow(state_dir)
    return small_config(demo_config)


@pytest.fixture
def logged(config):
    """A model fitted on a few days and logged to an MLflow run: (run id, model URI, model, frame)."""
    frame = labelled_frame(config, days=6)
    with threadpool_limits(1):
        model = fit(config, frame).model
    experiment_id = registry.ensure_experiment(config.name)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = registry.log_model(config, model, frame)
    return run.info.run_id, info.model_uri, model, frame


def register(config, model_uri, airflow_run_id="scheduled__1", verdict=VERDICT, **tags):
    return registry.register_candidate(
        config.name,
        model_uri,
        airflow_dag_id=f"{config.name}__continuous_training",
        airflow_run_id=airflow_run_id,
        verdict=verdict,
        data_fingerprint="f" * 32,
        compared_with=tags.pop("compared_with", registry.NO_CHAMPION),
        **tags,
    )


def test_there_is_no_champion_before_the_first_promotion(config):
    assert registry.get_champion_version(config.name) is None


def test_the_experiment_is_named_after_the_model_and_keeps_artifacts_in_the_state_folder(config, state_dir):
    experiment_id = registry.ensure_experiment(config.name)

    experiment = registry.client().get_experiment(experiment_id)
    assert experiment.name == config.name
    assert experiment.artifact_location.startswith((state_dir / "mlflow").as_uri())
    assert registry.ensure_experiment(config.name) == experiment_id


def test_registering_twice_for_the_same_airflow_run_gives_one_version(config, logged):
    _, model_uri, _, _ = logged

    first, created = register(config, model_uri)
    again, created_again = register(config, model_uri)

    assert (created, created_again) == (True, False)
    assert str(first.version) == str(again.version) == "1"
    assert len(registry.client().search_model_versions(f"name = '{config.name}'")) == 1


def test_another_airflow_run_registers_another_version(config, logged):
    _, model_uri, _, _ = logged
    register(config, model_uri, airflow_run_id="scheduled__1")

    second, _ = register(config, model_uri, airflow_run_id="scheduled__2")

    assert str(second.version) == "2"
    assert str(registry.find_version_for_airflow_run(config.name, "scheduled__1").version) == "1"
    assert registry.find_version_for_airflow_run(config.name, "never_ran") is None


def test_a_version_carries_the_verdict_the_airflow_run_the_data_and_the_rollback_pointer(config, logged):
    _, model_uri, _, _ = logged
    rejected = {"passed": False, "reasons": ["roc_auc too low"], "summary": "REJECTED: roc_auc too low"}

    version, _ = register(config, model_uri, verdict=rejected, compared_with="3",
                          golden_examples="runs:/abc/golden_examples.json")

    tags = registry.client().get_model_version(config.name, version.version).tags
    assert tags[registry.TAG_GATE_PASSED] == "false"
    assert tags[registry.TAG_GATE_SUMMARY] == "REJECTED: roc_auc too low"
    assert tags[registry.TAG_AIRFLOW_RUN_ID] == "scheduled__1"
    assert tags[registry.TAG_AIRFLOW_DAG_ID] == f"{config.name}__continuous_training"
    assert tags[registry.TAG_DATA_FINGERPRINT] == "f" * 32
    assert tags[registry.TAG_COMPARED_WITH] == "3"
    assert tags[registry.TAG_GOLDEN_EXAMPLES] == "runs:/abc/golden_examples.json"


def test_set_challenger_moves_the_alias_to_the_newer_version(config, logged):
    _, model_uri, _, _ = logged
    first, _ = register(config, model_uri, airflow_run_id="scheduled__1")
    second, _ = register(config, model_uri, airflow_run_id="scheduled__2")

    registry.set_challenger(config.name, first.version)
    registry.set_challenger(config.name, second.version)

    assert str(registry.get_alias_version(config.name, registry.CHALLENGER).version) == "2"
    assert registry.get_champion_version(config.name) is None


def test_a_registered_version_loads_as_the_pipeline_taking_raw_columns(config, logged):
    _, model_uri, model, frame = logged
    version, _ = register(config, model_uri)

    loaded = registry.load_model_version(config.name, version.version)

    raw = frame[config.features.all].head(20)
    assert np.allclose(loaded.predict_proba(raw), model.predict_proba(raw))


def test_golden_examples_reproduce_the_logged_models_probabilities(config, logged):
    run_id, model_uri, model, frame = logged
    frame = frame.copy()
    frame.loc[3, "debt_to_income"] = np.nan

    uri = registry.log_golden_examples(run_id, registry.golden_examples(config, model, frame, count=10))

    examples = mlflow.artifacts.load_dict(uri)
    assert len(examples["inputs"]) == len(examples["expected_probabilities"]) == 10
    assert examples["inputs"][0]["debt_to_income"] is None
    served = mlflow.sklearn.load_model(model_uri)
    probabilities = served.predict_proba(pd.DataFrame(examples["inputs"], columns=examples["columns"]))[:, 1]
    assert np.allclose(probabilities, examples["expected_probabilities"], atol=examples["tolerance"])


class HomeMadeClassifier(ClassifierMixin, BaseEstimator):
    """A classifier skops has never heard of: it always answers one half."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.full((len(X), 2), 0.5)


def test_a_model_needing_an_unreviewed_skops_type_is_refused(config):
    frame = labelled_frame(config, days=1)
    home_made = HomeMadeClassifier().fit(frame[config.features.all], frame["default"])

    with mlflow.start_run(experiment_id=registry.ensure_experiment(config.name)):
        with pytest.raises(ValueError, match="SKOPS_TRUSTED_TYPES.*HomeMadeClassifier"):
            registry.log_model(config, home_made, frame)
