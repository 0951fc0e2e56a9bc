"""Online feature lookups through the live prediction service, for a model with `feature_store: feast`.

Real parts: the demo world's curated batch written by the project's storage, materialized by Feast into
its SQLite online store (or a private Redis server for the outage), the service in uvicorn on loopback
serving a version from a real SQLite MLflow registry.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.pipeline import Pipeline

from include.core import settings, storage
from include.core.config import ModelConfig
from include.delivery.prediction_log import predictions_dir, read_prediction_log
from include.delivery.serving import record_json_schema
from include.demo import data_world
from include.features import feature_store
from include.features.online_features import OnlineFeatures
from tests.delivery.test_serving import (  # noqa: F401 - the registry fixtures of the serving tests
    Registry,
    champion,
    first_pipeline,
    migrated_mlflow_db,
    registry,
)
from tests.features.conftest import demo_config, state_dir  # noqa: F401 - the demo model with the store on
from tests.service_world import MODEL, Service, running_service, wait_until

DAY = dt.date(2026, 1, 6)
ENTITY = "application_id"
REDIS_TIMEOUTS = "socket_timeout=0.5,socket_connect_timeout=0.5,retry=null"
"""As the compose file gives the service: without `retry=null` redis-py retries a timed-out read 10 times."""


def curated_day(config: ModelConfig, rows: int = 20) -> pd.DataFrame:
    """A small day of the demo world written as the day's curated batch and materialized; the batch."""
    world = data_world.with_rows_per_day(config, rows)
    batch = data_world.applications_for_day(world, DAY)[list(config.schema.columns)]
    storage.write_curated_batch(config.name, DAY, batch)
    feature_store.materialize_day(config, DAY)
    return batch


def sent_features(config: ModelConfig, row: pd.Series) -> dict[str, Any]:
    """The row's features as a caller sends them in JSON (NaN as null)."""
    return {name: (None if pd.isna(value) else value) for name, value in row[config.features.all].to_dict().items()}


def expected_probability(pipeline: Pipeline, config: ModelConfig, row: pd.Series, **sent: Any) -> float:
    features = {**row[config.features.all].to_dict(), **sent}
    return float(pipeline.predict_proba(pd.DataFrame([features]))[0, 1])


def logged_lines() -> list[dict[str, Any]]:
    """The raw lines of today's prediction log, oldest first."""
    folder = predictions_dir(MODEL, dt.datetime.now(dt.UTC).date())
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


@pytest.fixture
def curated(state_dir: Path, demo_config: ModelConfig) -> pd.DataFrame:  # noqa: F811
    return curated_day(demo_config)


@pytest.fixture
def service(curated: pd.DataFrame, champion: str) -> Iterator[Service]:  # noqa: F811
    """The service with a materialized day in the online store, ready once it serves the champion."""
    with running_service() as running:
        running.wait_for(lambda info: info["ready"], "the champion to be loaded")
        yield running


# --- lookups -------------------------------------------------------------------------------------


def test_a_record_with_only_the_entity_id_is_scored_with_the_features_materialized_while_serving(
    state_dir: Path,  # noqa: F811
    demo_config: ModelConfig,  # noqa: F811
    champion: str,  # noqa: F811
    first_pipeline: Pipeline,  # noqa: F811
) -> None:
    with running_service() as running:
        running.wait_for(lambda info: info["ready"], "the champion to be loaded")
        batch = curated_day(demo_config)  # after the service opened its online store

        response = running.predict([{ENTITY: batch[ENTITY].iloc[3]}])

    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction["probability"] == pytest.approx(expected_probability(first_pipeline, demo_config, batch.iloc[3]))


def test_features_sent_with_the_entity_id_are_used_as_sent_and_the_rest_looked_up(
    service: Service,
    curated: pd.DataFrame,
    demo_config: ModelConfig,  # noqa: F811
    first_pipeline: Pipeline,  # noqa: F811
) -> None:
    row = curated.iloc[5]
    sent = {"loan_amount": 250000.0, "region": "north" if row["region"] != "north" else "south"}

    response = service.predict([{ENTITY: row[ENTITY], **sent}])

    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction["probability"] == pytest.approx(expected_probability(first_pipeline, demo_config, row, **sent))
    assert prediction["probability"] != pytest.approx(expected_probability(first_pipeline, demo_config, row))


def test_the_prediction_log_records_the_values_used_and_which_were_looked_up(
    service: Service,
    curated: pd.DataFrame,
    demo_config: ModelConfig,  # noqa: F811
) -> None:
    full = {ENTITY: "sent-in-full", **sent_features(demo_config, curated.iloc[0])}
    row = curated.iloc[7]

    response = service.predict([full, {ENTITY: row[ENTITY], "age": 30}], headers={"X-Request-ID": "mixed-1"})
    assert response.status_code == 200, response.text
    today = dt.datetime.now(dt.UTC).date()
    wait_until(lambda: len(read_prediction_log(MODEL, today, today)) == 2, "the predictions to be logged")

    first, second = logged_lines()
    assert "looked_up" not in first  # a record that sent every feature is logged as before
    assert first["inputs"] == full
    looked_up = [name for name in demo_config.features.all if name != "age"]
    assert second["looked_up"] == looked_up
    stored = {name: (None if pd.isna(row[name]) else row[name]) for name in looked_up}
    assert second["inputs"] == {ENTITY: row[ENTITY], "age": 30, **stored}
    log = read_prediction_log(MODEL, today, today)
    assert log["looked_up"].tolist() == [[], looked_up]
    assert log["age"].tolist() == [full["age"], 30]


# --- refusals ------------------------------------------------------------------------------------


def test_an_entity_not_in_the_online_store_is_a_404_naming_it_and_nothing_is_scored(
    service: Service, curated: pd.DataFrame
) -> None:
    response = service.predict([{ENTITY: curated[ENTITY].iloc[0]}, {ENTITY: "A-nobody"}])

    assert response.status_code == 404, response.text
    body = response.json()
    assert body["error"] == "unknown_entity"
    assert [(problem["index"], problem["field"]) for problem in body["errors"]] == [(1, ENTITY)]
    assert "A-nobody" in body["message"] and "online store" in body["message"]


def test_a_record_with_neither_the_features_nor_its_entity_id_is_a_422_naming_the_missing_fields(
    service: Service,
    demo_config: ModelConfig,  # noqa: F811
) -> None:
    response = service.predict([{"region": "north"}])

    assert response.status_code == 422, response.text
    body = response.json()
    missing = sorted(name for name in demo_config.features.all if name != "region")
    assert [(problem["index"], problem["field"]) for problem in body["errors"]] == [(0, name) for name in missing]
    assert all(ENTITY in problem["message"] for problem in body["errors"])


def test_the_openapi_record_asks_for_every_feature_or_the_entity_id(demo_config: ModelConfig) -> None:  # noqa: F811
    schema = record_json_schema(demo_config)

    assert schema["anyOf"] == [{"required": demo_config.features.all}, {"required": [ENTITY]}]
    assert "required" not in schema


# --- the online store down -----------------------------------------------------------------------


class RedisServer:
    """A private redis-server on a free loopback port, without persistence, that a test can stop and start."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, "redis-server to accept connections", timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=10)

    def hang(self) -> None:
        """Stop answering while keeping the port open, as a server stuck or cut off by the network."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_an_online_store_that_hangs_or_is_down_is_a_503_and_full_requests_are_still_served(
    state_dir: Path,  # noqa: F811
    demo_config: ModelConfig,  # noqa: F811
    champion: str,  # noqa: F811
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The socket timeouts bound a request when Redis does not answer.
    monkeypatch.setenv(feature_store.REDIS_ENV, f"127.0.0.1:{redis_server.port},db=0,{REDIS_TIMEOUTS}")
    batch = curated_day(demo_config)
    by_id = [{ENTITY: batch[ENTITY].iloc[0]}]
    full = [sent_features(demo_config, batch.iloc[0])]
    with running_service() as running:
        running.wait_for(lambda info: info["ready"], "the champion to be loaded")
        before = running.predict(by_id)

        redis_server.hang()
        hung = running.predict(by_id)
        full_while_hung = running.predict(full)
        redis_server.resume()
        resumed = running.predict(by_id)

        redis_server.stop()
        down = running.predict(by_id)

        redis_server.start()  # an empty server: materialized again, as the next day's task would
        feature_store.materialize_day(demo_config, DAY)
        after = running.predict(by_id)

    assert before.status_code == 200, before.text
    for failed in (hung, down):
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"] == "online_store_unavailable"
        assert "redis online store" in failed.json()["message"]
    assert "Timeout" in hung.json()["message"]
    assert full_while_hung.status_code == 200, full_while_hung.text
    for recovered in (resumed, after):
        assert recovered.status_code == 200, recovered.text
        assert recovered.json()["predictions"] == before.json()["predictions"]


def test_the_redis_online_store_gives_the_stored_features_read_after_read(
    state_dir: Path,  # noqa: F811
    demo_config: ModelConfig,  # noqa: F811
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(feature_store.REDIS_ENV, f"127.0.0.1:{redis_server.port},db=0,{REDIS_TIMEOUTS}")
    batch = curated_day(demo_config)
    online = OnlineFeatures.open(demo_config)

    reads = [online.read([batch[ENTITY].iloc[index], "A-nobody"]) for index in (1, 2, 1)]

    expected = [sent_features(demo_config, batch.iloc[index]) for index in (1, 2, 1)]
    assert reads == [[features, None] for features in expected]


def test_an_online_store_that_cannot_be_opened_is_reported_in_health_and_lookups_get_503(
    state_dir: Path,  # noqa: F811
    demo_config: ModelConfig,  # noqa: F811
    champion: str,  # noqa: F811
    curated: pd.DataFrame,
) -> None:
    repository = feature_store.repo_dir(MODEL)
    shutil.rmtree(repository)
    repository.write_text("a file where the Feast repository folder should be")
    with running_service() as running:
        running.wait_for(lambda info: info["ready"], "the champion to be loaded")
        health = running.http.get("/health").json()
        by_id = running.predict([{ENTITY: curated[ENTITY].iloc[0]}])
        full = running.predict([sent_features(demo_config, curated.iloc[0])])

    assert health["status"] == "degraded"
    assert any("cannot open the online store" in problem for problem in health["problems"])
    assert by_id.status_code == 503, by_id.text
    assert by_id.json()["error"] == "online_store_unavailable"
    assert "cannot open the online store" in by_id.json()["message"]
    assert full.status_code == 200, full.text


# --- import cost ---------------------------------------------------------------------------------


@pytest.mark.slow  # a fresh process imports the service, then Feast: about 25 s on a busy machine
def test_feast_is_imported_only_when_a_served_model_uses_the_feature_store(tmp_path: Path) -> None:
    """In a fresh process: whether `feast` is imported once a service has opened its online stores,
    first over a models folder without the feature store, then over one with it."""
    folders = []
    for store in (None, "feast"):
        models = tmp_path / f"models-{store}"
        models.mkdir()
        raw = yaml.safe_load((settings.PROJECT_ROOT / "include" / "models" / f"{MODEL}.yaml").read_text())
        raw["feature_store"] = store
        (models / f"{MODEL}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        folders.append(str(models))
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from include.delivery.serving import PredictionService\n"
        "for folder in sys.argv[1:]:\n"
        "    PredictionService(Path(folder), 'sqlite:///unused.db', 5, None, 1).open_online_stores()\n"
        "    print('feast' in sys.modules)\n"
    )
    environment = {**os.environ, "MLOPS_STATE_DIR": str(tmp_path / "state")}
    environment.pop(feature_store.REDIS_ENV, None)

    run = subprocess.run(
        [sys.executable, "-c", script, *folders],
        capture_output=True,
        text=True,
        cwd=settings.PROJECT_ROOT,
        env=environment,
        timeout=300,
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "True"]
