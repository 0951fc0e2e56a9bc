"""The online prediction service, over real HTTP, serving versions from a real SQLite MLflow registry."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from include.core import settings
from include.core.config import ModelConfig
from include.delivery import service_checks, serving
from include.delivery.prediction_log import PredictionBatch, read_prediction_log
from include.delivery.serving import PredictionService
from tests.service_world import ADMIN_TOKEN, MODEL, Service, running_service, wait_until

DEMO_CONFIG = settings.PROJECT_ROOT / "include" / "models" / f"{MODEL}.yaml"


# --- the world: a tiny model, a registry, a running service ---------------------------------------


def applications(config: ModelConfig, rows: int, seed: int) -> pd.DataFrame:
    """Valid credit applications of the demo schema, with an entity id and an event timestamp."""
    rng = np.random.default_rng(seed)
    columns = config.schema.columns
    frame = pd.DataFrame({
        "application_id": [f"app-{seed}-{i}" for i in range(rows)],
        "event_timestamp": ["2026-03-01T12:00:00+00:00"] * rows,
    })
    for name in config.features.numeric:
        column = columns[name]
        values = rng.uniform(column.min, column.max / 10 if column.max > 1000 else column.max, rows)
        frame[name] = values.round().astype("int64") if column.type == "integer" else values
    frame.loc[rng.random(rows) < 0.1, "debt_to_income"] = np.nan
    for name in config.features.categorical:
        frame[name] = rng.choice(columns[name].allowed, rows)
    return frame


def trained_pipeline(config: ModelConfig, seed: int) -> Pipeline:
    """A small preprocessing + logistic regression pipeline on the demo features."""
    frame = applications(config, 300, seed)
    rng = np.random.default_rng(seed)
    target = (frame["credit_score"] < 500).astype(int) ^ (rng.random(len(frame)) < 0.1)
    preprocess = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), config.features.numeric),
        (OneHotEncoder(handle_unknown="ignore"), config.features.categorical),
    )
    return make_pipeline(preprocess, LogisticRegression(C=0.5 + seed)).fit(frame[config.features.all], target)


def record(config: ModelConfig, **changes: Any) -> dict[str, Any]:
    """One valid request record (features and entity id), with `changes` applied."""
    row = applications(config, 1, seed=7).iloc[0].to_dict()
    row = {key: (None if isinstance(value, float) and np.isnan(value) else value) for key, value in row.items()}
    row = {key: value.item() if isinstance(value, np.generic) else value for key, value in row.items()}
    row.pop("event_timestamp")
    row.update(changes)
    return row


@pytest.fixture(scope="session")
def migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database with its schema created once (migrations take seconds)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


class Registry:
    """The test's MLflow registry: register pipelines as versions of the demo model, move aliases."""

    def __init__(self, state_dir: Path, config: ModelConfig) -> None:
        from mlflow import MlflowClient

        self.config = config
        self.client = MlflowClient()
        self.experiment_id = self.client.create_experiment(
            "serving-tests", artifact_location=(state_dir / "artifacts").as_uri()
        )

    def register(self, pipeline: Pipeline) -> str:
        import mlflow
        import skops.io

        with mlflow.start_run(experiment_id=self.experiment_id):
            info = mlflow.sklearn.log_model(
                pipeline, name="model", registered_model_name=MODEL, pip_requirements=["scikit-learn"],
                skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)),
            )
        return str(info.registered_model_version)

    def set_champion(self, version: str) -> None:
        self.client.set_registered_model_alias(MODEL, "champion", version)

    def break_artifacts(self, version: str) -> None:
        """Overwrite the serialized model of `version` with bytes that do not unpickle."""
        folder = Path(self.client.get_model_version_download_uri(MODEL, version).removeprefix("file://"))
        for path in folder.glob("model.*"):
            path.write_bytes(b"not a model")


@pytest.fixture
def registry(state_dir: Path, migrated_mlflow_db: Path, demo_config: ModelConfig) -> Registry:
    shutil.copy(migrated_mlflow_db, state_dir / "mlflow" / "mlflow.db")
    return Registry(state_dir, demo_config)


@pytest.fixture
def first_pipeline(demo_config: ModelConfig) -> Pipeline:
    return trained_pipeline(demo_config, seed=1)


@pytest.fixture
def champion(registry: Registry, first_pipeline: Pipeline) -> str:
    """Version 1 of the demo model, holding the alias `champion`."""
    version = registry.register(first_pipeline)
    registry.set_champion(version)
    return version


@pytest.fixture
def service(champion: str) -> Iterator[Service]:
    """The service, started once the champion exists, ready once it serves it."""
    with running_service() as running:
        running.wait_for(lambda info: info["ready"], "the champion to be loaded")
        yield running


# --- predictions ---------------------------------------------------------------------------------


def test_a_valid_request_is_scored_by_the_champion_version(
    service: Service, demo_config: ModelConfig, first_pipeline: Pipeline
) -> None:
    records = [record(demo_config), record(demo_config, age=70, region="west", debt_to_income=None)]

    response = service.predict(records, headers={"X-Request-ID": "req-42"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"], body["request_id"]) == (MODEL, "1", "req-42")
    assert response.headers["X-Request-ID"] == "req-42"
    expected = first_pipeline.predict_proba(pd.DataFrame(records)[demo_config.features.all])[:, 1]
    assert [p["probability"] for p in body["predictions"]] == pytest.approx(expected.tolist())
    assert [p["label"] for p in body["predictions"]] == [int(p > 0.5) for p in expected]


def test_a_request_without_an_id_gets_a_fresh_one(service: Service, demo_config: ModelConfig) -> None:
    first = service.predict([record(demo_config)]).json()["request_id"]
    second = service.predict([record(demo_config)]).json()["request_id"]

    assert first and second and first != second


def test_schema_columns_that_are_not_features_are_accepted(service: Service, demo_config: ModelConfig) -> None:
    with_extras = record(demo_config, application_id="app-x", event_timestamp="2026-03-01T08:30:00Z")

    response = service.predict([with_extras])

    assert response.status_code == 200, response.text


def test_null_in_a_nullable_feature_and_out_of_range_warn_only_values_are_scored(
    service: Service, demo_config: ModelConfig
) -> None:
    response = service.predict([record(demo_config, debt_to_income=None), record(demo_config, debt_to_income=42.0)])

    assert response.status_code == 200, response.text


BAD_REQUESTS: list[tuple[str, Callable[[ModelConfig], Any], int, int | None, str | None]] = [
    # Without its entity id too: the demo keeps its features in the feature store, which an id would look up.
    ("missing field",
     lambda c: [{k: v for k, v in record(c).items() if k not in ("credit_score", c.schema.entity_column)}],
     422, 0, "credit_score"),
    ("wrong type", lambda c: [record(c), record(c, age="forty")], 422, 1, "age"),
    ("boolean for a number", lambda c: [record(c, loan_amount=True)], 422, 0, "loan_amount"),
    ("fractional integer", lambda c: [record(c, loan_term_months=12.5)], 422, 0, "loan_term_months"),
    ("integer beyond int64", lambda c: [record(c, loan_term_months=2**70)], 422, 0, "loan_term_months"),
    ("unknown field", lambda c: [record(c, favourite_colour="blue")], 422, 0, "favourite_colour"),
    ("null in a non-nullable field", lambda c: [record(c, credit_score=None)], 422, 0, "credit_score"),
    ("value not in the allowed set", lambda c: [record(c), record(c), record(c, region="mars")], 422, 2, "region"),
    ("value out of range", lambda c: [record(c, age=150)], 422, 0, "age"),
    ("malformed entity id", lambda c: [record(c, application_id=17)], 422, 0, "application_id"),
    ("malformed timestamp", lambda c: [record(c, event_timestamp="yesterday")], 422, 0, "event_timestamp"),
    ("record not an object", lambda c: [record(c), "age=41"], 422, 1, None),
    ("empty list", lambda c: [], 422, None, "records"),
    ("records not a list", lambda c: {"age": 41}, 422, None, "records"),
    ("oversized batch", lambda c: [record(c)] * (c.serving.max_batch_size + 1), 413, None, "records"),
]


@pytest.mark.parametrize(
    ("case", "make_records", "status", "index", "field"), BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS]
)
def test_a_bad_request_is_a_4xx_that_names_the_field_and_record(
    served_without_champion: Service,
    demo_config: ModelConfig,
    case: str,
    make_records: Callable[[ModelConfig], Any],
    status: int,
    index: int | None,
    field: str | None,
) -> None:
    response = served_without_champion.predict(make_records(demo_config))

    assert response.status_code == status, response.text
    problem = response.json()["errors"][0]
    assert (problem["index"], problem["field"]) == (index, field)
    if field:
        assert field in response.json()["message"]


@pytest.fixture(scope="module")
def served_without_champion(tmp_path_factory: pytest.TempPathFactory, migrated_mlflow_db: Path) -> Iterator[Service]:
    """A service with no registered model: enough for validation, which happens before the model.

    Module-scoped so that the table of bad requests shares one server.
    """
    state = tmp_path_factory.mktemp("validation-state")
    shutil.copy(migrated_mlflow_db, state / "mlflow.db")
    models = tmp_path_factory.mktemp("validation-models")
    shutil.copy(DEMO_CONFIG, models / DEMO_CONFIG.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_STATE_DIR", str(state))
        patch.setenv("MLOPS_MODELS_DIR", str(models))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{state / 'mlflow.db'}")
        with running_service() as running:
            yield running


def test_malformed_json_is_a_400_that_says_where(served_without_champion: Service) -> None:
    response = served_without_champion.http.post(
        f"/models/{MODEL}/predict", content=b'{"records": [{"age": 41,}]}',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"
    assert "column" in response.json()["message"]


def test_a_body_nested_thousands_deep_is_a_400_not_a_crash(served_without_champion: Service) -> None:
    nested = b'{"records":' + b"[" * 5000 + b"]" * 5000 + b"}"

    response = served_without_champion.http.post(
        f"/models/{MODEL}/predict", content=nested, headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json" and "nests too deeply" in response.json()["message"]


def test_every_problem_of_a_request_is_listed(served_without_champion: Service, demo_config: ModelConfig) -> None:
    response = served_without_champion.predict([record(demo_config, age="x"), record(demo_config, region=None)])

    problems = [(p["index"], p["field"]) for p in response.json()["errors"]]
    assert problems == [(0, "age"), (1, "region")]


def test_the_openapi_page_documents_the_endpoints_and_each_models_record(
    served_without_champion: Service, demo_config: ModelConfig
) -> None:
    api = served_without_champion.http.get("/openapi.json").json()

    assert {"/models/{model}/predict", "/health", "/models/{model}", "/models/{model}/reload"} <= set(api["paths"])
    body = api["paths"]["/models/{model}/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    (record_schema,) = body["properties"]["records"]["items"]["oneOf"]
    # The demo keeps its features in the feature store: a record sends every feature, or its id to look them up.
    entity = demo_config.schema.entity_column
    assert record_schema["anyOf"] == [{"required": demo_config.features.all}, {"required": [entity]}]
    assert record_schema["properties"]["region"]["enum"] == ["north", "south", "east", "west"]


def test_an_unknown_model_is_a_404_that_names_it(served_without_champion: Service) -> None:
    response = served_without_champion.http.post("/models/house_prices/predict", json={"records": [{}]})

    assert response.status_code == 404
    assert "house_prices" in response.json()["message"]
    assert served_without_champion.http.get("/models/house_prices").status_code == 404


def test_a_model_without_champion_is_not_ready_and_answers_503_to_valid_requests(
    registry: Registry, first_pipeline: Pipeline, demo_config: ModelConfig
) -> None:
    registry.register(first_pipeline)

    with running_service() as service:
        service.wait_for(lambda info: info["last_checked_at"] is not None, "the first alias check")
        response = service.predict([record(demo_config)])
        health = service.http.get("/health").json()

    assert response.status_code == 503
    assert "champion" in response.json()["message"]
    assert health["models"][MODEL] == {"ready": False, "version": None, "champion_version": None, "last_error": None}
    assert health["status"] == "degraded"


def test_health_reports_each_model_as_ready_with_its_version(service: Service) -> None:
    health = service.http.get("/health")

    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["models"][MODEL]["ready"] is True
    assert health.json()["models"][MODEL]["version"] == "1"


def test_model_info_says_which_version_of_which_run_is_served(service: Service, registry: Registry) -> None:
    info = service.model_info()

    version = registry.client.get_model_version(MODEL, "1")
    assert info["name"] == MODEL and info["alias"] == "champion" and info["version"] == "1"
    assert info["run_id"] == version.run_id
    assert dt.datetime.fromisoformat(info["loaded_at"]) <= dt.datetime.now(dt.UTC)


# --- following the alias -------------------------------------------------------------------------


def test_moving_the_champion_alias_is_followed_without_restart(
    service: Service, registry: Registry, demo_config: ModelConfig
) -> None:
    second = registry.register(trained_pipeline(demo_config, seed=2))

    registry.set_champion(second)

    service.wait_for(lambda info: info["version"] == second, "version 2 to be served")
    assert service.predict([record(demo_config)]).json()["version"] == second


def test_a_champion_that_fails_to_load_does_not_replace_the_served_version(
    service: Service, registry: Registry, demo_config: ModelConfig
) -> None:
    broken = registry.register(trained_pipeline(demo_config, seed=2))
    registry.break_artifacts(broken)

    registry.set_champion(broken)

    info = service.wait_for(lambda info: info["last_error"] is not None, "the failed load to be reported")
    assert info["version"] == "1" and info["champion_version"] == broken
    assert f"version {broken}" in info["last_error"] and "still serving version 1" in info["last_error"]
    assert service.predict([record(demo_config)]).json()["version"] == "1"
    health = service.http.get("/health").json()
    assert health["status"] == "degraded" and health["models"][MODEL]["last_error"] == info["last_error"]


def test_a_removed_champion_alias_takes_the_model_out_of_service(
    service: Service, registry: Registry, demo_config: ModelConfig
) -> None:
    registry.client.delete_registered_model_alias(MODEL, "champion")

    info = service.wait_for(lambda info: not info["ready"], "the model to be taken out of service")

    assert info["version"] is None and info["last_error"] is None
    response = service.predict([record(demo_config)])
    assert response.status_code == 503 and "champion" in response.json()["message"]


def test_a_registry_that_says_the_model_does_not_exist_does_not_unload_the_served_version(
    service: Service, registry: Registry, demo_config: ModelConfig
) -> None:
    registry.client.rename_registered_model(MODEL, f"{MODEL}_elsewhere")

    info = service.wait_for(lambda info: info["last_error"] is not None, "the registry error to be reported")

    assert "RESOURCE_DOES_NOT_EXIST" in info["last_error"] and "still serving version 1" in info["last_error"]
    assert info["version"] == "1" and service.predict([record(demo_config)]).json()["version"] == "1"
    health = service.http.get("/health").json()
    assert health["status"] == "degraded" and health["models"][MODEL]["last_error"] == info["last_error"]
    registry.client.rename_registered_model(f"{MODEL}_elsewhere", MODEL)
    service.wait_for(lambda info: info["last_error"] is None, "the registry to be read again")
    assert service.http.get("/health").json()["status"] == "ok"


def test_reload_requires_the_admin_token(service: Service) -> None:
    url = f"/models/{MODEL}/reload"

    assert service.http.post(url).status_code == 401
    assert service.http.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    response = service.http.post(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200 and response.json()["version"] == "1"


def test_reload_serves_a_new_champion_at_once(
    champion: str, registry: Registry, demo_config: ModelConfig
) -> None:
    with running_service(poll_seconds=3600) as service:
        service.wait_for(lambda info: info["ready"], "the champion to be loaded")
        second = registry.register(trained_pipeline(demo_config, seed=2))
        registry.set_champion(second)

        response = service.http.post(f"/models/{MODEL}/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

        assert response.status_code == 200 and response.json()["version"] == second
        assert service.predict([record(demo_config)]).json()["version"] == second


def test_reloading_a_broken_champion_fails_and_keeps_the_served_version(
    service: Service, registry: Registry, demo_config: ModelConfig
) -> None:
    broken = registry.register(trained_pipeline(demo_config, seed=2))
    registry.break_artifacts(broken)
    registry.set_champion(broken)

    response = service.http.post(f"/models/{MODEL}/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    assert response.status_code == 502
    assert "still serving version 1" in response.json()["message"]
    assert service.model_info()["version"] == "1"


# --- the prediction log --------------------------------------------------------------------------


def test_every_prediction_is_logged_with_its_version_request_id_and_entity_id(
    champion: str, registry: Registry, demo_config: ModelConfig
) -> None:
    with running_service() as service:
        service.wait_for(lambda info: info["ready"], "the champion to be loaded")
        answers = [
            service.predict([record(demo_config, application_id=f"a-{i}-{j}") for j in range(i + 1)]).json()
            for i in range(5)
        ]
        registry.set_champion(registry.register(trained_pipeline(demo_config, seed=2)))
        service.wait_for(lambda info: info["version"] == "2", "version 2 to be served")
        answers.append(service.predict([record(demo_config, application_id="after-the-switch")]).json())
    today = dt.datetime.now(dt.UTC).date()

    log = read_prediction_log(MODEL, today, today)

    sent = [
        (answer["request_id"], index, answer["version"], prediction["probability"], prediction["label"])
        for answer in answers
        for index, prediction in enumerate(answer["predictions"])
    ]
    logged = list(log[["request_id", "index", "version", "probability", "label"]].itertuples(index=False, name=None))
    assert sorted(logged) == sorted(sent)
    assert log.loc[log["application_id"] == "after-the-switch", "version"].tolist() == ["2"]
    assert set(demo_config.features.all) <= set(log.columns)
    assert log["timestamp"].dt.tz is not None


def test_a_forged_service_check_request_id_is_monitored_only_the_admin_tokens_checks_are_left_out(
    service: Service, demo_config: ModelConfig
) -> None:
    forged = service.predict([record(demo_config)], headers={"X-Request-ID": "service-check-smoke-1"})
    wrong_token = service.predict([record(demo_config)], headers={
        "X-Request-ID": "service-check-smoke-2", "Authorization": "Bearer guessed"})
    genuine = service.predict([record(demo_config)], headers={
        "X-Request-ID": "service-check-smoke-3", "Authorization": f"Bearer {ADMIN_TOKEN}"})
    today = dt.datetime.now(dt.UTC).date()
    wait_until(lambda: len(read_prediction_log(MODEL, today, today, include_service_checks=True)) == 3,
               "the predictions to be logged")

    assert [response.status_code for response in (forged, wrong_token, genuine)] == [200, 200, 200]
    assert read_prediction_log(MODEL, today, today)["request_id"].tolist() == [
        "service-check-smoke-1", "service-check-smoke-2"]


def test_the_deployments_smoke_and_load_tests_with_the_admin_token_are_left_out_of_monitoring(
    service: Service, demo_config: ModelConfig, first_pipeline: Pipeline
) -> None:
    inputs = [record(demo_config), record(demo_config, age=70)]
    expected = first_pipeline.predict_proba(pd.DataFrame(inputs)[demo_config.features.all])[:, 1].tolist()
    golden = {"inputs": inputs, "expected_probabilities": expected, "tolerance": 1e-6}

    service_checks.smoke_test(service.url, MODEL, "1", golden, admin_token=ADMIN_TOKEN)
    load = service_checks.load_test(service.url, MODEL, inputs, rate=20, seconds=0.5, admin_token=ADMIN_TOKEN)

    assert load.errors == 0
    today = dt.datetime.now(dt.UTC).date()
    wait_until(lambda: len(read_prediction_log(MODEL, today, today, include_service_checks=True)) == 2 + 10,
               "the checks' predictions to be logged")
    assert read_prediction_log(MODEL, today, today).empty


def test_a_failing_prediction_log_degrades_health_with_the_reason_while_predictions_are_still_answered(
    service: Service, demo_config: ModelConfig
) -> None:
    blocker = settings.data_dir() / MODEL / "predictions"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the prediction log's folder should be")

    response = service.predict([record(demo_config)], headers={"X-Request-ID": "while-the-log-fails"})

    assert response.status_code == 200, response.text
    wait_until(lambda: service.http.get("/health").json()["status"] == "degraded", "the log failure to be reported")
    health = service.http.get("/health").json()
    assert [problem for problem in health["problems"] if problem.startswith("prediction log")]
    assert health["prediction_log"]["last_error"] and health["prediction_log"]["pending_rows"] == 1
    blocker.unlink()
    wait_until(lambda: service.http.get("/health").json()["status"] == "ok", "the log to be written again")
    today = dt.datetime.now(dt.UTC).date()
    assert read_prediction_log(MODEL, today, today)["request_id"].tolist() == ["while-the-log-fails"]


@pytest.fixture
def hung_registry() -> Iterator[tuple[str, list[socket.socket]]]:
    """The URL of a registry that accepts connections and never answers, and the connections made to it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    connections: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                connections.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", connections
    stopping.set()
    thread.join()
    for connection in [listener, *connections]:
        connection.close()


def test_a_shutdown_while_the_registry_hangs_writes_the_buffered_predictions_within_dockers_stop_timeout(
    state_dir: Path, hung_registry: tuple[str, list[socket.socket]]
) -> None:
    url, connections = hung_registry
    app = serving.create_app(tracking_uri=url, log_flush_seconds=3600)
    with TestClient(app):
        wait_until(lambda: connections, "the service to ask the registry for the champion")
        app.state.service.log.append(PredictionBatch(
            model=MODEL, version="1", request_id="answered-before-shutdown", timestamp=dt.datetime.now(dt.UTC),
            inputs=[{"application_id": "a-1"}], probabilities=[0.3], labels=[0],
        ))
        stopping = time.monotonic()

    assert time.monotonic() - stopping < 10
    today = dt.datetime.now(dt.UTC).date()
    assert read_prediction_log(MODEL, today, today)["request_id"].tolist() == ["answered-before-shutdown"]


# --- how the service is built --------------------------------------------------------------------


def test_the_module_level_app_for_uvicorn_is_built_from_the_environment_on_first_access(state_dir: Path) -> None:
    try:
        app = serving.app

        assert app.state.service.slots.keys() == {MODEL}
        assert app.state.service.follower.tracking_uri == f"sqlite:///{state_dir / 'mlflow' / 'mlflow.db'}"
        assert serving.app is app
    finally:
        vars(serving).pop("app", None)


def test_a_model_whose_schema_clashes_with_the_log_columns_is_reported_not_served(state_dir: Path) -> None:
    models = state_dir.parent / "models"
    raw = yaml.safe_load((models / f"{MODEL}.yaml").read_text())
    raw["name"] = "clashing"
    raw["schema"]["columns"]["version"] = {"type": "string", "nullable": True}
    (models / "clashing.yaml").write_text(yaml.safe_dump(raw))

    service = PredictionService(None, "sqlite://", poll_seconds=5, data_dir=None, log_flush_seconds=1)

    assert set(service.slots) == {MODEL}
    assert "version" in service.config_errors["clashing"]



@pytest.mark.parametrize("opening", ["[", '{"a":'], ids=["lists", "objects"])
def test_a_record_nested_ten_thousand_deep_is_a_4xx_naming_the_record_and_field_and_the_service_stays_up(
    served_without_champion: Service, demo_config: ModelConfig, opening: str
) -> None:
    closing = "]" if opening == "[" else "}"
    deep = opening * 10_000 + "1" + closing * 10_000
    fields = {key: value for key, value in record(demo_config).items() if key != "age"}
    body = '{"records": [' + json.dumps(record(demo_config)) + ", " + json.dumps(fields)[:-1] + ', "age": ' + deep
    body += "}]}"

    response = served_without_champion.http.post(
        f"/models/{MODEL}/predict", content=body.encode(), headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["index"] == 1 and response.json()["errors"][0]["field"] == "age"
    assert response.json()["message"].startswith("records[1].age: nests too deeply")
    assert served_without_champion.predict([record(demo_config, age="x")]).status_code == 422


# --- metrics -------------------------------------------------------------------------------------


def scraped(service: Service) -> dict[tuple[str, tuple], float]:
    """`GET /metrics` parsed as Prometheus parses it: {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = service.http.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def test_metrics_count_requests_by_status_rows_by_version_and_show_the_served_version(
    service: Service, demo_config: ModelConfig
) -> None:
    service.predict([record(demo_config), record(demo_config)])
    service.predict([record(demo_config, age="old")])
    service.http.post("/models/made_up_model/predict", json={"records": [record(demo_config)]})

    metrics = scraped(service)

    assert metrics[("mlops_prediction_requests_total", (("model", MODEL), ("status", "200")))] == 1
    assert metrics[("mlops_prediction_requests_total", (("model", MODEL), ("status", "422")))] == 1
    assert metrics[("mlops_prediction_requests_total", (("model", "unknown"), ("status", "404")))] == 1
    assert metrics[("mlops_predicted_rows_total", (("model", MODEL), ("version", "1")))] == 2
    assert metrics[("mlops_prediction_latency_seconds_count", (("model", MODEL),))] == 2
    assert metrics[("mlops_served_version", (("model", MODEL), ("version", "1")))] == 1
    assert metrics[("mlops_model_ready", (("model", MODEL),))] == 1
    wait_until(lambda: scraped(service)[("mlops_prediction_log_written_rows_total", ())] == 2,
               "the two predictions to be written to the log")
    assert scraped(service)[("mlops_prediction_log_pending_rows", ())] == 0
    assert scraped(service)[("mlops_prediction_log_failing", ())] == 0
