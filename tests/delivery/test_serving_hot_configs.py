"""Model configs added, removed, edited or broken while the prediction service runs (real uvicorn,
a real SQLite MLflow registry): served or dropped without a restart, and the deployment's live check
says so when the service does not know a model."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from include.core.config import ModelConfig
from include.delivery import service_checks
from include.delivery.service_checks import ServiceCheckFailed
from tests.delivery.test_serving import record, trained_pipeline
from tests.service_world import ADMIN_TOKEN, MODEL, Service, running_service, wait_until

ADDED = "credit_default_eu"
"""The model whose config is copied into the models folder while the service runs."""
EXPERIMENT = "hot-config-tests"


@pytest.fixture(scope="module")
def migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database with its schema created once (migrations take seconds)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def models_dir(state_dir: Path) -> Path:
    """The models folder the service reads (`MLOPS_MODELS_DIR`), holding the demo model's config."""
    return state_dir.parent / "models"


def register_champion(model: str, config: ModelConfig, seed: int) -> str:
    """Register a small pipeline as a new version of `model` and give it the alias `champion`."""
    import mlflow
    import skops.io

    pipeline = trained_pipeline(config, seed)
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name(EXPERIMENT).experiment_id):
        info = mlflow.sklearn.log_model(
            pipeline, name="model", registered_model_name=model, pip_requirements=["scikit-learn"],
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)),
        )
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(model, "champion", version)
    return version


def write_config(models_dir: Path, name: str, **serving: object) -> None:
    """The demo model's config under another name (and with `serving` settings changed)."""
    raw = yaml.safe_load((models_dir / f"{MODEL}.yaml").read_text())
    raw["name"] = name
    raw["serving"].update(serving)
    (models_dir / f"{name}.yaml").write_text(yaml.safe_dump(raw))


@pytest.fixture
def service(
    state_dir: Path, migrated_mlflow_db: Path, demo_config: ModelConfig, models_dir: Path
) -> Iterator[Service]:
    """The service started with only the demo model's config, serving its version 1."""
    from mlflow import MlflowClient

    shutil.copy(migrated_mlflow_db, state_dir / "mlflow" / "mlflow.db")
    MlflowClient().create_experiment(EXPERIMENT, artifact_location=(state_dir / "artifacts").as_uri())
    register_champion(MODEL, demo_config, seed=1)
    with running_service(poll_seconds=0.5) as running:
        running.wait_for(lambda info: info["version"] == "1", "the demo model's champion to be served")
        yield running


def served_version(service: Service, model: str) -> str | None:
    response = service.http.get(f"/models/{model}")
    return response.json()["version"] if response.status_code == 200 else None


def test_a_model_config_copied_in_while_the_service_runs_is_served_without_a_restart(
    service: Service, models_dir: Path, demo_config: ModelConfig
) -> None:
    write_config(models_dir, ADDED)
    version = register_champion(ADDED, demo_config, seed=2)

    wait_until(lambda: served_version(service, ADDED) == version, f"{ADDED} to be served", timeout=10)

    response = service.http.post(f"/models/{ADDED}/predict", json={"records": [record(demo_config)]})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == ADDED and response.json()["version"] == version
    assert service.predict([record(demo_config)]).json()["version"] == "1"
    health = service.http.get("/health").json()
    assert set(health["models"]) == {MODEL, ADDED} and health["status"] == "ok"
    api = service.http.get("/openapi.json").json()
    body = api["paths"]["/models/{model}/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert [schema["title"] for schema in body["properties"]["records"]["items"]["oneOf"]] == [
        f"{MODEL} record", f"{ADDED} record"]


def test_a_deployments_reload_serves_a_model_whose_config_just_arrived_at_once(
    service: Service, models_dir: Path, demo_config: ModelConfig
) -> None:
    version = register_champion(ADDED, demo_config, seed=2)
    write_config(models_dir, ADDED)

    response = service.http.post(f"/models/{ADDED}/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    assert response.status_code == 200, response.text
    assert response.json()["version"] == version


def test_a_removed_model_config_stops_its_model_with_a_404_naming_it(
    service: Service, models_dir: Path, demo_config: ModelConfig
) -> None:
    write_config(models_dir, ADDED)
    register_champion(ADDED, demo_config, seed=2)
    wait_until(lambda: served_version(service, ADDED) == "1", f"{ADDED} to be served", timeout=10)

    (models_dir / f"{ADDED}.yaml").unlink()

    wait_until(lambda: service.http.get(f"/models/{ADDED}").status_code == 404, f"{ADDED} to be dropped", timeout=10)
    response = service.http.post(f"/models/{ADDED}/predict", json={"records": [record(demo_config)]})
    assert response.status_code == 404 and response.json()["error"] == "unknown_model"
    assert f"no model named {ADDED!r} is served" in response.json()["message"]
    assert f"{ADDED}.yaml is gone" in response.json()["message"]
    assert set(service.http.get("/health").json()["models"]) == {MODEL}
    assert service.predict([record(demo_config)]).status_code == 200


def test_a_broken_config_file_is_reported_and_the_other_models_keep_serving(
    service: Service, models_dir: Path, demo_config: ModelConfig
) -> None:
    (models_dir / "half_written.yaml").write_text("name: half_written\nschema: [")
    (models_dir / f"{MODEL}.yaml").write_text("name: credit_default\nfeatures: {")

    wait_until(lambda: len(service.http.get("/health").json()["config_errors"]) == 2, "the broken files to be read")

    health = service.http.get("/health").json()
    assert health["status"] == "degraded"
    assert str(models_dir / "half_written.yaml") in health["config_errors"]
    assert "keeps serving with its last valid config" in health["config_errors"][str(models_dir / f"{MODEL}.yaml")]
    assert set(health["models"]) == {MODEL}
    assert service.predict([record(demo_config)]).json()["version"] == "1"


def test_an_edited_config_applies_to_requests_without_a_restart(
    service: Service, models_dir: Path, demo_config: ModelConfig
) -> None:
    write_config(models_dir, MODEL, max_batch_size=1)

    wait_until(lambda: service.predict([record(demo_config)] * 2).status_code == 413, "the new batch limit")

    assert "max_batch_size 1" in service.predict([record(demo_config)] * 2).json()["message"]
    assert service.predict([record(demo_config)]).json()["version"] == "1"


def test_requests_health_and_metrics_keep_answering_while_configs_come_and_go(
    service: Service, models_dir: Path, demo_config: ModelConfig
) -> None:
    statuses: list[int] = []
    done = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=service.url, timeout=10) as http:
            while not done.is_set():
                statuses.append(http.post(f"/models/{MODEL}/predict", json={"records": [record(demo_config)]})
                                .status_code)
                statuses.append(http.get("/health").status_code)
                statuses.append(http.get("/metrics").status_code)
                statuses.append(http.get("/openapi.json").status_code)

    threads = [threading.Thread(target=traffic) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(20):
            name = f"{ADDED}_{round_ % 3}"
            write_config(models_dir, name)
            service.http.get(f"/models/{name}")
            wait_until(lambda: service.http.get(f"/models/{name}").status_code == 200, f"{name} to be known")  # noqa: B023
            (models_dir / f"{name}.yaml").unlink()
    finally:
        done.set()
        for thread in threads:
            thread.join()

    assert statuses and set(statuses) == {200}


def test_the_deployment_check_says_when_the_service_does_not_know_the_model(
    service: Service, models_dir: Path
) -> None:
    with pytest.raises(ServiceCheckFailed) as failed:
        service_checks.wait_until_serving(service.url, ADDED, "1", timeout=1.5)

    message = str(failed.value)
    assert f"the prediction service at {service.url} does not know the model {ADDED!r} (it serves: {MODEL})" in message
    assert f"it reads the model configs in {models_dir}, where it finds no {ADDED}.yaml" in message


def test_the_deployment_check_quotes_the_error_of_the_models_broken_config(
    service: Service, models_dir: Path
) -> None:
    (models_dir / f"{ADDED}.yaml").write_text(f"name: {ADDED}\nschema: [")

    with pytest.raises(ServiceCheckFailed) as failed:
        service_checks.wait_until_serving(service.url, ADDED, "1", timeout=1.5)

    assert f"does not know the model {ADDED!r}" in str(failed.value)
    assert f"its config in {models_dir} does not load: {models_dir / ADDED}.yaml" in str(failed.value)
