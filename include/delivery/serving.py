"""The online prediction service: every configured model's `champion`, over HTTP (FastAPI).

Start it with uvicorn; the module-level `app` is built from the environment on first access:

    uvicorn include.delivery.serving:app --host 127.0.0.1 --port 8000
    uvicorn --factory include.delivery.serving:create_app --host 127.0.0.1 --port 8000      (the same)

Endpoints (also described in the OpenAPI page, `/docs`):

    POST /models/{model}/predict   body {"records": [{"age": 41, ...}, ...]}
                                   -> {"model", "version", "request_id",
                                       "predictions": [{"probability": 0.12, "label": 0}, ...]}
    GET  /health                   200 while the service is up; "ok", or "degraded" with its `problems`
                                   (a model not ready or failing to load, a config error, a failing
                                   prediction log); per model: ready, version, last_error; the
                                   `config_errors` by file and the `models_dir` the configs are read from
    GET  /models/{model}           the served version: name, alias, version, run id, loaded_at, ...
    GET  /metrics                  Prometheus' text format (`include.delivery.service_metrics`)
    POST /models/{model}/reload    read the alias and load its version now; needs
                                   `Authorization: Bearer $MLOPS_SERVING_ADMIN_TOKEN` (401 without
                                   it, 403 when wrong or unset); 502 if the version fails to load

A request is checked against the model config before the model sees it. Each record must carry
every feature (`features`), with the type, nullability, allowed values and range of its column in
`schema.columns` (columns listed in `schema.warn_only` skip the allowed-value and range checks, as
in the ingestion gate). Other schema columns, such as the entity id and the event timestamp, are
accepted and written to the prediction log but not given to the model; any other field is refused.
Online features: for a model with `feature_store: feast`, a record that carries its entity id
(`schema.entity_column`) may leave out any features; they are read from the model's Feast online
store (`include.features.online_features`), and the features it sends are used as sent. Feast is
imported, and each such model's store opened, by the follower thread at the start of its rounds,
before the champions are loaded; a service without such models never imports Feast.
Errors are JSON `{"error": <code>, "message": ..., "errors": [{"index", "field", "message"}]}`:
400 malformed JSON, 404 unknown model, 413 more records than `serving.max_batch_size` (or a body
over `max_batch_size` x 4 KiB), 422 invalid records, 503 no champion loaded yet; a 500 only when
a loaded version fails on records that passed validation (a fault of the model, not the caller).
With online features: 404 `unknown_entity` when a record's entity id is not in the online store
(each such record and id named; nothing is scored), 422 naming the missing features when a record
lacks features and its entity id; 503 `online_store_unavailable` when the online store cannot be
read (down, or not opened yet), a fault of the service: requests that send every feature are
still answered.
`label` is 1 when `probability` (of the class `target.positive_label`) is above 0.5, else 0.
A caller's `X-Request-ID` header is used as the request id (otherwise one is made) and echoed.
The deployment's smoke and load tests send ids starting `service-check-` and the admin token
(`Authorization: Bearer …`); only such requests are logged as `service_check`, which monitoring
leaves out. The id without the token is logged and monitored as any prediction.

Model configs come and go while the service runs: the models folder (`MLOPS_MODELS_DIR`) is read
again when its listing changes (file names, sizes, modification times), checked before each round
of the alias poll below and when a request names a model the service does not know (at most once a
second). A new config's model is served once its `champion` is loaded, at the next round (or at once
by the reload endpoint); a removed config's model gets 404 naming it and saying its config is gone.
A config file that fails to load is reported in `/health` and leaves the other models alone; when it
was valid before, its model keeps serving with the last valid config. When a served model's config
changes, requests are checked against the new config at once and the champion is loaded again
against it (the loaded version keeps serving if that fails).

Following the alias: a background thread asks the registry every `poll_seconds` (default 5, or
`MLOPS_SERVING_POLL_SECONDS`) which version holds `champion`. When it changes, the thread loads the
new version (download, unpickle, one smoke prediction on a record built from the schema) and only
then swaps it in; requests keep using the old version until the swap. If the new version fails to
load, the old one keeps serving and `/health` and `/models/{model}` show `last_error`; that version
is retried after `retry_failed_seconds`, or at once by the reload endpoint. When the alias is
removed (a rollback of the first deployment has no earlier champion to restore), the model is no
longer served: requests get 503 until a version holds `champion` again, rather than answers from
a version nobody stands behind. Removed means the registry shows the registered model without the
alias; any other error (the registry unreachable, or saying the model itself does not exist)
changes nothing but `last_error`: the loaded version keeps serving.
A deployment knows its promotion is live when `GET /models/{model}` shows the promoted
`version` (or right away from the reload endpoint).
Every prediction is written to the prediction log (`include.delivery.prediction_log`), buffered in memory
and appended by a background thread about once a second, and on shutdown, first: a shutdown takes at
most 7 s, under the 10 s Docker waits after SIGTERM, whatever the registry does.

Environment: `MLFLOW_TRACKING_URI`, `MLOPS_MODELS_DIR`, `MLOPS_DATA_DIR` (prediction log),
`MLOPS_SERVING_ADMIN_TOKEN`, `MLOPS_SERVING_POLL_SECONDS`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from include.core import settings
from include.core.config import Column, ConfigError, DiscoveredConfigs, ModelConfig, load_model_config
from include.core.registry import CHAMPION
from include.delivery.prediction_log import (
    LOG_COLUMNS,
    SERVICE_CHECK_REQUEST_PREFIX,
    PredictionBatch,
    PredictionLogWriter,
)
from include.delivery.service_metrics import ServiceMetrics
from include.features.feature_store import uses_feature_store
from include.features.online_features import OnlineFeatures, OnlineStoreUnavailable
from include.training.evaluation import DECISION_THRESHOLD

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from threadpoolctl import ThreadpoolController

logger = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 5.0
LOG_CLOSE_SECONDS = 6.0
FOLLOWER_STOP_SECONDS = 1.0
"""With `LOG_CLOSE_SECONDS`, the longest a clean shutdown takes: under the 10 s a container gets
between SIGTERM and SIGKILL."""
BODY_BYTES_PER_RECORD = 4096
MAX_REPORTED_PROBLEMS = 20
MAX_NESTING = 64
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
ADMIN_BEARER = HTTPBearer(auto_error=False, description="The token in `MLOPS_SERVING_ADMIN_TOKEN`.")


# --- request validation --------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with a request: which record (`index`), which field, and what."""

    index: int | None
    field: str | None
    message: str

    def describe(self) -> str:
        if self.index is None:
            return f"{self.field}: {self.message}" if self.field else self.message
        where = f"records[{self.index}]"
        return f"{where}.{self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class RequestRejected(Exception):
    """A request the service refuses, with its HTTP status and a JSON body that says why."""

    def __init__(self, status: int, error: str, message: str, problems: list[FieldProblem] | None = None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.problems = problems or []

    def to_response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.problems:
            body["errors"] = [
                {"index": problem.index, "field": problem.field, "message": problem.message}
                for problem in self.problems
            ]
        return JSONResponse(body, status_code=self.status)


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool) or value is None else None
    text = text or f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    return text if len(text) <= 40 else text[:37] + "..."


def _is_integer(value: Any) -> bool:
    """An int, or a float without fraction (JSON has one number type), that fits in int64."""
    integral = type(value) is int or (type(value) is float and value.is_integer())
    return integral and -(2**63) <= value < 2**63


def _is_number(value: Any) -> bool:
    return (type(value) is int or type(value) is float) and math.isfinite(value)


def _is_timestamp(value: Any) -> bool:
    if type(value) is not str:
        return False
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_TYPE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "integer": (_is_integer, "an integer"),
    "float": (_is_number, "a finite number"),
    "string": (lambda value: type(value) is str, "a string"),
    "category": (lambda value: type(value) in (str, int, bool), "a string"),
    "boolean": (lambda value: type(value) is bool, "true or false"),
    "timestamp": (_is_timestamp, "an ISO 8601 timestamp string"),
}


def column_check(column: Column, warn_only: bool) -> Callable[[Any], str | None]:
    """A function that returns what is wrong with a value of `column`, or None when it is valid."""
    is_type, expected = _TYPE_CHECKS[column.type]
    allowed = None if warn_only or column.allowed is None else {(type(v), v) for v in column.allowed}
    allowed_text = ", ".join(json.dumps(value) for value in column.allowed or [])
    low = None if warn_only else column.min
    high = None if warn_only else column.max
    nullable = column.nullable

    def check(value: Any) -> str | None:
        if value is None:
            return None if nullable else "must not be null"
        if not is_type(value):
            return f"expected {expected}, got {_shown(value)}"
        if allowed is not None and (type(value), value) not in allowed:
            return f"{_shown(value)} is not one of the allowed values [{allowed_text}]"
        if low is not None and value < low:
            return f"{_shown(value)} is below the minimum {low:g}"
        if high is not None and value > high:
            return f"{_shown(value)} is above the maximum {high:g}"
        return None

    return check


def record_json_schema(config: ModelConfig) -> dict[str, Any]:
    """The JSON schema of one record of `config`'s model, for the OpenAPI page."""
    json_types = {"integer": "integer", "float": "number", "string": "string", "category": "string",
                  "boolean": "boolean", "timestamp": "string"}
    schema = config.schema
    features = set(config.features.all)
    looked_up = uses_feature_store(config)
    properties = {}
    for name, column in schema.columns.items():
        prop: dict[str, Any] = {"type": json_types[column.type]}
        if column.type == "timestamp":
            prop["format"] = "date-time"
        if column.allowed is not None:
            prop["enum"] = list(column.allowed)
        if name not in schema.warn_only:
            prop.update({key: value for key, value in (("minimum", column.min), ("maximum", column.max))
                         if value is not None})
        if column.nullable:
            prop = {"anyOf": [prop, {"type": "null"}]}
        prop["description"] = "feature" if name in features else "logged with the prediction, not a feature"
        if looked_up and name in features:
            prop["description"] += f"; read from the online store by {schema.entity_column} when left out"
        properties[name] = prop
    required: dict[str, Any] = {"required": config.features.all}
    if looked_up:
        required = {"anyOf": [required, {"required": [schema.entity_column]}]}
    return {
        "title": f"{config.name} record",
        "type": "object",
        "properties": properties,
        **required,
        "additionalProperties": False,
    }


class RecordValidator:
    """Checks prediction requests of one model against its config, and turns records into a frame.

    Built once per model: each column's checks are compiled into a closure, so a valid one-row
    request costs a dict lookup and a few type tests per field.
    """

    def __init__(self, config: ModelConfig) -> None:
        schema = config.schema
        self.model = config.name
        self.max_batch_size = config.serving.max_batch_size
        self.max_body_bytes = config.serving.max_batch_size * BODY_BYTES_PER_RECORD + 65536
        self.features = config.features.all
        self.lookup_entity = schema.entity_column if uses_feature_store(config) else None
        """The column by which left-out features are read from the online store; None: every feature is required."""
        self._required = frozenset(self.features)
        self._checks = {
            name: column_check(column, name in schema.warn_only) for name, column in schema.columns.items()
        }
        self._dtypes = {name: _feature_dtype(schema.columns[name]) for name in self.features}
        self.example_record = _example_record(config)

    def parse(self, body: bytes) -> list[dict[str, Any]]:
        """The records of a request body, or `RequestRejected` naming what is wrong."""
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestRejected(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            problem = _too_deep(body)
            raise RequestRejected(400, "malformed_json", problem.describe(), [problem]) from None
        if not isinstance(payload, dict):
            raise self._invalid([FieldProblem(None, None, 'the body must be a JSON object {"records": [...]}')])
        unknown = [FieldProblem(None, name, "is not a field of the body, which has only 'records'")
                   for name in sorted(set(payload) - {"records"})]
        if unknown:
            raise self._invalid(unknown)
        records = payload.get("records")
        if not isinstance(records, list):
            raise self._invalid([FieldProblem(None, "records", "is required and must be a list of objects")])
        if not records:
            raise self._invalid([FieldProblem(None, "records", "is empty; send at least one record")])
        if len(records) > self.max_batch_size:
            problem = FieldProblem(
                None, "records", f"has {len(records)} records, more than max_batch_size "
                f"{self.max_batch_size} of model {self.model!r}; split the batch",
            )
            raise RequestRejected(413, "batch_too_large", problem.describe(), [problem])
        problems = self._problems(records)
        if problems:
            raise self._invalid(problems)
        return records

    def frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        """The model's input: one row per record, the feature columns only, with the schema's dtypes."""
        import numpy as np
        import pandas as pd

        columns = {}
        for name, dtype in self._dtypes.items():
            values = [record[name] for record in records]
            if dtype == "datetime":
                columns[name] = pd.to_datetime(values, utc=True, format="ISO8601")
            else:
                columns[name] = np.array(values, dtype=dtype)
        return pd.DataFrame(columns, copy=False)

    def _problems(self, records: list[Any]) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        checks = self._checks
        for index, record in enumerate(records):
            if type(record) is not dict:
                problems.append(FieldProblem(index, None, f"expected an object, got {_shown(record)}"))
            else:
                missing = self._required - record.keys()
                if missing and (self.lookup_entity is None or record.get(self.lookup_entity) is None):
                    problems.extend(FieldProblem(index, name, self._required_message) for name in sorted(missing))
                for name, value in record.items():
                    check = checks.get(name)
                    if check is None:
                        problems.append(FieldProblem(index, name, "is not a column of the model's schema"))
                    else:
                        message = check(value)
                        if message is not None:
                            problems.append(FieldProblem(index, name, message))
            if len(problems) >= MAX_REPORTED_PROBLEMS:
                return problems[:MAX_REPORTED_PROBLEMS]
        return problems

    def missing_features(self, record: dict[str, Any]) -> list[str]:
        """The features a valid record leaves out (to be read from the online store), in feature order."""
        if self._required <= record.keys():
            return []
        return [name for name in self.features if name not in record]

    @property
    def _required_message(self) -> str:
        if self.lookup_entity is None:
            return "is required (a feature of the model)"
        return (f"is required (a feature of the model): send it, or send {self.lookup_entity!r} "
                "to read it from the online store")

    def _invalid(self, problems: list[FieldProblem]) -> RequestRejected:
        first = problems[0].describe()
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return RequestRejected(422, "invalid_request", f"{first}{more}", problems)


def _too_deep(body: bytes) -> FieldProblem:
    """Where a body that nests too deeply for the JSON parser goes too deep: its record and field.

    Runs only after the parser gave up, so the valid requests never pay for this byte-by-byte walk.
    A record holds one number, string, boolean or null per field: any list or object nested
    `MAX_NESTING` deep is wrong wherever it is, and the first place it happens is the one named.
    """
    containers: list[int] = []  # the open brackets, as bytes: ord("{") or ord("[")
    top_key: str | None = None
    record_key: str | None = None
    index = -1
    expect_key = False
    position = 0
    while position < len(body):
        byte = body[position]
        if byte == 0x22:  # a string: skip it, and remember it when it is a key
            end = position + 1
            while end < len(body) and body[end] != 0x22:
                end += 2 if body[end] == 0x5C else 1
            if expect_key:
                key = body[position + 1:end].decode("utf-8", "replace")
                if len(containers) == 1:
                    top_key = key
                elif len(containers) == 3:
                    record_key = key
            position = end
        elif byte in b"{[":
            containers.append(byte)
            if len(containers) == 2 and top_key == "records":
                index = max(index, 0)
            elif len(containers) == 3:
                record_key = None
            if len(containers) > MAX_NESTING:
                break
            expect_key = byte == 0x7B
        elif byte in b"}]" and containers:
            containers.pop()
            expect_key = False
        elif byte == 0x2C:  # a comma
            if len(containers) == 2 and top_key == "records":
                index += 1
            expect_key = bool(containers) and containers[-1] == 0x7B
        elif byte == 0x3A:  # a colon
            expect_key = False
        position += 1
    message = (f"nests too deeply: lists or objects more than {MAX_NESTING} levels deep; a field holds one "
               "number, string, boolean or null")
    if top_key != "records" or len(containers) < 2:
        return FieldProblem(None, top_key, message)
    field_name = record_key if len(containers) > 3 and containers[2] == 0x7B else None
    return FieldProblem(index, field_name, message)


def _feature_dtype(column: Column) -> Any:
    if column.type == "integer":
        return "float64" if column.nullable else "int64"
    if column.type == "float":
        return "float64"
    if column.type == "boolean" and not column.nullable:
        return "bool"
    if column.type == "timestamp":
        return "datetime"
    return "object"


def _example_record(config: ModelConfig) -> dict[str, Any]:
    """A valid record built from the schema, for the smoke prediction a model must pass to be served."""
    record: dict[str, Any] = {}
    for name in config.features.all:
        column = config.schema.columns[name]
        if column.allowed:
            record[name] = column.allowed[0]
        elif column.type in ("integer", "float"):
            low = column.min if column.min is not None else min(0.0, column.max if column.max is not None else 0.0)
            record[name] = math.ceil(low) if column.type == "integer" else float(low)
        elif column.type == "boolean":
            record[name] = False
        elif column.type == "timestamp":
            record[name] = "2000-01-01T00:00:00+00:00"
        else:
            record[name] = "example"
    return record


# --- the served models ---------------------------------------------------------------------------


class ModelLoadError(RuntimeError):
    """A registered model version that cannot be served; the message says why."""


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version and what the service reports about it."""

    name: str
    version: str
    run_id: str | None
    source: str
    loaded_at: dt.datetime
    estimator: Any
    positive_column: int
    threads: ThreadpoolController

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """The probability of the positive class for each row of `frame`, computed on one thread.

        OpenMP estimators (HistGradientBoosting) start a thread team per call; for the small
        batches of online requests that costs more than it saves, and on a busy 2-core machine it
        made p99 over a second. The controller is built once per load; `limit` costs ~20 µs.
        """
        with self.threads.limit(limits=1, user_api="openmp"):
            return self.estimator.predict_proba(frame)[:, self.positive_column]


def load_model_version(
    config: ModelConfig, model_version: ModelVersion, tracking_uri: str, example: pd.DataFrame
) -> ServedModel:
    """Download and load one registered version of `config`'s model, and check that it predicts.

    The version must be a scikit-learn model (the MLflow `sklearn` flavor) whose `predict_proba`
    gives a probability in [0, 1] for `example` and whose classes include `target.positive_label`.

    Raises:
        ModelLoadError: naming the version and what went wrong.
    """
    import mlflow
    from threadpoolctl import ThreadpoolController

    name, version = config.name, str(model_version.version)
    # MLflow resolves a version's logged model (`models:/m-…`) through the process-wide tracking URI,
    # whatever `download_artifacts` is given; left unset, MLflow 3 falls back to a new local SQLite
    # store where the model does not exist ("Registered Model … not found"). The service has one store.
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        with tempfile.TemporaryDirectory(prefix=f"serving-{name}-{version}-") as folder:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=folder,
                tracking_uri=tracking_uri, registry_uri=tracking_uri,
            )
            pyfunc_model = mlflow.pyfunc.load_model(local)
        estimator = pyfunc_model.get_raw_model()
    except NotImplementedError:
        raise ModelLoadError(f"version {version} is not a scikit-learn model (no sklearn flavor)") from None
    except Exception as exc:
        raise ModelLoadError(f"version {version} could not be loaded: {type(exc).__name__}: {exc}") from exc
    classes = list(getattr(estimator, "classes_", []))
    if not hasattr(estimator, "predict_proba") or config.target.positive_label not in classes:
        raise ModelLoadError(
            f"version {version} must have predict_proba and classes_ including the positive label "
            f"{config.target.positive_label!r}; it has classes {classes}"
        )
    served = ServedModel(
        name=name, version=version, run_id=model_version.run_id, source=model_version.source,
        loaded_at=dt.datetime.now(dt.UTC), estimator=estimator,
        positive_column=classes.index(config.target.positive_label), threads=ThreadpoolController(),
    )
    try:
        probability = float(served.probabilities(example)[0])
    except Exception as exc:
        raise ModelLoadError(
            f"version {version} fails to predict a valid record: {type(exc).__name__}: {exc}"
        ) from exc
    if not 0.0 <= probability <= 1.0:
        raise ModelLoadError(f"version {version} returned probability {probability} for a valid record")
    return served


@dataclass
class ModelSlot:
    """What the service knows about one configured model; `served` is swapped as a whole."""

    config: ModelConfig
    validator: RecordValidator
    served: ServedModel | None = None
    champion_version: str | None = None
    last_checked_at: dt.datetime | None = None
    last_error: str | None = None
    failed_version: str | None = None
    failed_error: str | None = None
    failed_at: float = 0.0
    reload_due: bool = False
    """The config changed while a version was served: load the champion again against the new config."""
    online: OnlineFeatures | None = None
    """The model's online store, for a model with `feature_store: feast`, once the follower opened it."""
    online_error: str | None = None
    """Why the online store could not be opened (retried every round); None when open or not used."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self) -> dict[str, Any]:
        served = self.served
        return {
            "name": self.config.name,
            "alias": CHAMPION,
            "ready": served is not None,
            "version": served.version if served else None,
            "run_id": served.run_id if served else None,
            "source": served.source if served else None,
            "loaded_at": served.loaded_at.isoformat() if served else None,
            "champion_version": self.champion_version,
            "last_checked_at": self.last_checked_at.isoformat() if self.last_checked_at else None,
            "last_error": self.last_error,
            "max_batch_size": self.validator.max_batch_size,
            "features": self.validator.features,
        }

    def not_ready_message(self) -> str:
        if self.last_error:
            return f"model {self.config.name!r} is not ready: {self.last_error}"
        if self.last_checked_at is None:
            return f"model {self.config.name!r} is not ready: the registry has not been read yet"
        return (f"model {self.config.name!r} is not ready: no version of the registered model "
                f"has the alias {CHAMPION!r} yet")


class ModelSlots(Mapping[str, ModelSlot]):
    """The configured models by name, read by requests, the follower and `/metrics` while the
    models folder is re-read.

    A change builds a new dict and swaps it in with one assignment; nobody mutates a dict once it is
    in, so a reader iterating over `items()` or `values()` walks one consistent set of models
    without a lock, and the event loop never waits for the thread that re-reads the folder.
    """

    def __init__(self) -> None:
        self._current: dict[str, ModelSlot] = {}

    def __getitem__(self, name: str) -> ModelSlot:
        return self._current[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current)

    def __len__(self) -> int:
        return len(self._current)

    def keys(self) -> KeysView[str]:
        return self._current.keys()

    def items(self) -> ItemsView[str, ModelSlot]:
        return self._current.items()

    def values(self) -> ValuesView[ModelSlot]:
        return self._current.values()

    def replace(self, slots: dict[str, ModelSlot]) -> None:
        self._current = slots


class ChampionFollower:
    """Keeps each slot serving the version its `champion` alias points to.

    A daemon thread checks every model at start and then every `poll_seconds`, or at once when
    woken (a model config appeared). Before each round it calls `before_round` (the service
    re-reads the models folder there). A version that failed to load is not retried before
    `retry_failed_seconds` (a reload forces it).
    """

    def __init__(
        self, slots: Mapping[str, ModelSlot], tracking_uri: str, poll_seconds: float,
        retry_failed_seconds: float = 60.0, before_round: Callable[[], None] | None = None,
    ) -> None:
        self.slots = slots
        self.tracking_uri = tracking_uri
        self.poll_seconds = poll_seconds
        self.retry_failed_seconds = retry_failed_seconds
        self.before_round = before_round
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="champion-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Tell the thread to stop, and wait for it at most `timeout` seconds.

        A load or a registry call in progress is not interrupted; the thread is a daemon, so a
        process that does not wait for it still exits.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Start the next round now instead of at the end of the poll interval."""
        self._wake.set()

    def refresh(self, slot: ModelSlot, force: bool = False) -> str | None:
        """Read the alias and load its version if it is not the one served (always, when `force`).

        Returns:
            None when the slot serves the champion (or there is none), else the error.
        """
        from mlflow.exceptions import MlflowException

        name = slot.config.name
        with slot.lock:
            served = slot.served
            still = f"still serving version {served.version}" if served else "nothing is served"
            try:
                model_version = self.client.get_model_version_by_alias(name, CHAMPION)
            except MlflowException as exc:
                slot.last_checked_at = dt.datetime.now(dt.UTC)
                not_found = exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
                if not_found and (served is None or self._alias_removed(name)):
                    if served is not None:
                        logger.warning("model %s: no version has the alias %s any more; version %s is "
                                       "no longer served", name, CHAMPION, served.version)
                    slot.champion_version = slot.served = slot.last_error = None
                    return None
                error = f"cannot read the alias {CHAMPION!r} from the registry: {exc.error_code}: {exc}; {still}"
                if error != slot.last_error:
                    logger.error("model %s: %s", name, error)
                slot.last_error = error
                return slot.last_error
            version = str(model_version.version)
            slot.champion_version = version
            slot.last_checked_at = dt.datetime.now(dt.UTC)
            if served is not None and served.version == version and not force and not slot.reload_due:
                slot.last_error = slot.failed_version = None
                return None
            recently_failed = time.monotonic() - slot.failed_at < self.retry_failed_seconds
            if version == slot.failed_version and recently_failed and not force:
                slot.last_error = slot.failed_error
                return slot.last_error
            try:
                example = slot.validator.frame([slot.validator.example_record])
                slot.served = load_model_version(slot.config, model_version, self.tracking_uri, example)
                slot.reload_due = False
            except ModelLoadError as exc:
                slot.last_error = slot.failed_error = f"champion {exc}; {still}"
                slot.failed_version, slot.failed_at = version, time.monotonic()
                logger.error("model %s: %s", name, slot.last_error)
                return slot.last_error
            slot.last_error = slot.failed_version = None
            logger.info("model %s: now serving version %s (was %s)", name, version,
                        served.version if served else "none")
            return None

    def _alias_removed(self, name: str) -> bool:
        """Whether the registry shows the registered model `name` without the `champion` alias.

        Only then is a served version taken out of service. A "not found" for the alias alone may
        come from a registry that is not the one it was (restored from a backup, a new empty
        database behind the same URL, a proxy's 404) or from a model renamed or deleted by mistake:
        answering with the loaded version is better than refusing every request for it.
        """
        try:
            registered = self.client.get_registered_model(name)
        except Exception:
            return False
        return CHAMPION not in registered.aliases

    def _follow(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            if self.before_round is not None:
                try:
                    self.before_round()
                except Exception:
                    logger.exception("reading the model configs failed")
            for slot in self.slots.values():
                try:
                    self.refresh(slot)
                except Exception:
                    logger.exception("model %s: checking the champion failed", slot.config.name)
            self._wake.wait(self.poll_seconds)


# --- the service and its HTTP app ----------------------------------------------------------------


CONFIG_CHECK_SECONDS = 1.0
"""The shortest time between two looks at the models folder prompted by requests for unknown models."""


FileStamp = tuple[int, int]
"""A file's size and modification time in ns: when either changes, the file is read again."""


def _listing(folder: Path) -> dict[str, FileStamp] | None:
    """The model config files (`*.yaml`) of `folder` by name, with their stamps; None without the folder.

    One directory scan: about 0.5 ms for 50 files on a busy 2-core machine, cheap enough before every
    round of the follower.
    """
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return None
    found = {}
    for entry in entries:
        if entry.name.endswith(".yaml"):
            try:
                stat = entry.stat()
            except OSError:
                continue
            found[entry.name] = (stat.st_size, stat.st_mtime_ns)
    return found


def _slot(config: ModelConfig, previous: ModelSlot | None) -> ModelSlot:
    """A new slot for `config`; when its model was served under an earlier config, that version keeps
    serving until the champion is loaded again against the new config (`reload_due`)."""
    slot = ModelSlot(config=config, validator=RecordValidator(config))
    if previous is not None and previous.served is not None:
        slot.served, slot.champion_version = previous.served, previous.champion_version
        slot.last_checked_at, slot.reload_due = previous.last_checked_at, True
    return slot


class PredictionService:
    """The models, their follower and the prediction log of one serving process.

    The models folder is read at start and again whenever its listing changes (a file added,
    removed or rewritten: names, sizes and modification times), looked at before each round of the
    follower and, at most every `CONFIG_CHECK_SECONDS`, when a request names a model the service
    does not know. So a model config added while the service runs is served from its next round,
    and a removed one stops being served (404 naming it). A file that fails to load is reported in
    `/health` and changes nothing else: the other models are untouched, and a model whose file
    was valid before keeps serving with its last valid config.
    """

    def __init__(
        self, models_dir: Path | None, tracking_uri: str, poll_seconds: float,
        data_dir: Path | None, log_flush_seconds: float,
    ) -> None:
        self.models_dir = models_dir or settings.models_dir()
        self.slots = ModelSlots()
        self.config_errors: dict[str, str] = {}
        self.removed: dict[str, str] = {}
        """Why each model that was served is no longer: for the 404 of a request that names it."""
        self._configs_lock = threading.Lock()
        self._folder_listing: dict[str, FileStamp] | None = None
        self._files: dict[str, tuple[FileStamp, ModelConfig | ConfigError]] = {}
        self._last_request_check = -math.inf
        self.read_configs_if_changed()
        self.tracking_uri = tracking_uri
        self.follower = ChampionFollower(self.slots, tracking_uri, poll_seconds, before_round=self._before_round)
        self.data_dir = data_dir
        self.log_flush_seconds = log_flush_seconds
        self.log: PredictionLogWriter | None = None
        self.metrics = ServiceMetrics(self.slots, lambda: self.log)

    def start(self) -> None:
        self.log = PredictionLogWriter(self.data_dir, flush_seconds=self.log_flush_seconds)
        self.follower.start()

    def stop(self) -> None:
        """Write the buffered predictions, then stop following the alias: within 7 s in all.

        The log goes first: it holds the only copy of the last predictions, while the follower may
        be waiting on a slow registry or download that nobody needs any more.
        """
        self.follower.stop(timeout=0)
        if self.log is not None:
            self.log.close(timeout=LOG_CLOSE_SECONDS)
        self.follower.stop(timeout=FOLLOWER_STOP_SECONDS)

    def _before_round(self) -> None:
        self.read_configs_if_changed()
        self.open_online_stores()

    def open_online_stores(self) -> None:
        """Open the online store of each model that uses the feature store and has none open yet.

        Runs in the follower's thread (the first time, it imports Feast: seconds of CPU), before the
        champions are loaded, so a model is ready with its store. A store that fails to open is
        reported in `/health` and tried again next round; meanwhile requests that need it get 503.
        """
        for name, slot in self.slots.items():
            if slot.validator.lookup_entity is None or slot.online is not None:
                continue
            try:
                slot.online = OnlineFeatures.open(slot.config)
            except Exception as exc:
                error = f"cannot open the online store: {type(exc).__name__}: {exc}"
                if error != slot.online_error:
                    logger.error("model %s: %s", name, error)
                slot.online_error = error
            else:
                slot.online_error = None
                logger.info("model %s: reading left-out features from its %s online store", name,
                            slot.online.store_kind)

    def read_configs_if_changed(self) -> bool:
        """Read the models folder again if its listing changed since the last read; whether it did."""
        with self._configs_lock:
            listing = _listing(self.models_dir)
            if listing == self._folder_listing:
                return False
            if listing is None:
                self.config_errors = {str(self.models_dir): (
                    f"the models folder {self.models_dir} does not exist; the models read before keep "
                    "being served"
                )}
            else:
                self._apply(self._read_configs(listing))
            self._folder_listing = listing
            return True

    def _read_configs(self, listing: dict[str, FileStamp]) -> DiscoveredConfigs:
        """The configs of the files in `listing`, as `discover_model_configs` gives them, reading only
        the files whose stamp changed since they were last read (with 50 models, a new file costs one
        parse instead of fifty: the read runs on the event loop when a request prompts it)."""
        found, files = DiscoveredConfigs(), {}
        for name in sorted(listing):
            stamp_and_result = self._files.get(name)
            if stamp_and_result is None or stamp_and_result[0] != listing[name]:
                try:
                    result: ModelConfig | ConfigError = load_model_config(self.models_dir / name)
                except ConfigError as exc:
                    result = exc
                stamp_and_result = (listing[name], result)
            files[name] = stamp_and_result
            result = stamp_and_result[1]
            if isinstance(result, ConfigError):
                found.errors[self.models_dir / name] = result
            else:
                found.valid[result.name] = result
        self._files = files
        return found

    def _apply(self, discovered: DiscoveredConfigs) -> None:
        """Swap in the slots of a fresh read of the models folder, keeping the slots of unchanged configs."""
        before = dict(self.slots.items())
        errors = {str(path): str(error) for path, error in discovered.errors.items()}
        slots: dict[str, ModelSlot] = {}
        for name, config in discovered.valid.items():
            clashes = sorted(set(config.schema.columns) & set(LOG_COLUMNS))
            if clashes:
                errors[name] = (
                    f"model {name!r} is not served: schema columns {clashes} clash with the prediction "
                    f"log's own columns {list(LOG_COLUMNS)}; rename them"
                )
                continue
            previous = before.get(name)
            slots[name] = previous if previous is not None and previous.config == config else _slot(config, previous)
        for path in discovered.errors:
            previous = before.get(path.stem)
            if previous is not None and path.stem not in slots:
                slots[path.stem] = previous
                errors[str(path)] += f"; model {path.stem!r} keeps serving with its last valid config"
        for name in before.keys() - slots.keys():
            self.removed[name] = (f"its config is not valid: {errors[name]}" if name in errors
                                  else f"its config {self.models_dir / (name + '.yaml')} is gone")
            logger.warning("model %s: no longer served, %s", name, self.removed[name])
        for name in slots.keys() - before.keys():
            self.removed.pop(name, None)
            if before:
                logger.info("model %s: config found, serving it from the next champion check", name)
        self.config_errors = errors
        self.slots.replace(slots)

    def slot(self, model: str, always_look: bool = False) -> ModelSlot:
        """The slot of `model`; a name the service does not know makes it look at the models folder
        first, if it has not looked for a request in the last `CONFIG_CHECK_SECONDS` (or `always_look`).

        Raises:
            RequestRejected: 404 naming the model, and why it is no longer served if it was.
        """
        slot = self.slots.get(model)
        now = time.monotonic()
        if slot is None and (always_look or now - self._last_request_check >= CONFIG_CHECK_SECONDS):
            self._last_request_check = now
            if self.read_configs_if_changed():
                slot = self.slots.get(model)
                if slot is not None:
                    self.follower.wake()
        if slot is None:
            removed = self.removed.get(model)
            why = f" ({removed})" if removed else ""
            raise RequestRejected(
                404, "unknown_model", f"no model named {model!r} is served{why}; served models: {sorted(self.slots)}"
            )
        return slot

    def predict(self, model: str, body: bytes, request_id: str, service_check: bool = False) -> bytes:
        """Validate a request body, score it with the served version, log it; the response body.

        Args:
            service_check: Log the predictions as the deployment's own checks, left out of monitoring.
        """
        slot = self.slot(model)
        records = slot.validator.parse(body)
        served = slot.served
        if served is None:
            raise RequestRejected(503, "model_not_ready", slot.not_ready_message())
        looked_up = None
        if slot.validator.lookup_entity is not None:
            records, looked_up = self._with_stored_features(slot, records)
        try:
            probabilities = served.probabilities(slot.validator.frame(records)).tolist()
        except Exception as exc:
            logger.exception("model %s version %s failed to score a valid request", model, served.version)
            raise RequestRejected(
                500, "prediction_failed",
                f"version {served.version} of {model!r} failed to score valid records: {type(exc).__name__}: {exc}",
            ) from exc
        labels = [1 if probability > DECISION_THRESHOLD else 0 for probability in probabilities]
        self.log.append(PredictionBatch(
            model=model, version=served.version, request_id=request_id,
            timestamp=dt.datetime.now(dt.UTC), inputs=records, probabilities=probabilities, labels=labels,
            service_check=service_check, looked_up=looked_up,
        ))
        self.metrics.observe_rows(model, served.version, len(records))
        return json.dumps({
            "model": model,
            "version": served.version,
            "request_id": request_id,
            "predictions": [
                {"probability": probability, "label": label}
                for probability, label in zip(probabilities, labels, strict=True)
            ],
        }).encode()

    def _with_stored_features(
        self, slot: ModelSlot, records: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[list[str]] | None]:
        """The records with the features they leave out read from the online store, and the names
        read for each record (None when every record sent every feature).

        Raises:
            RequestRejected: 404 naming each record whose entity id the online store does not hold;
                503 when the online store is not open or cannot be read.
        """
        validator = slot.validator
        missing = [validator.missing_features(record) for record in records]
        needing = [index for index, names in enumerate(missing) if names]
        if not needing:
            return records, None
        model, entity = slot.config.name, validator.lookup_entity
        online = slot.online
        if online is None:
            why = slot.online_error or "it is being opened"
            raise RequestRejected(
                503, "online_store_unavailable",
                f"model {model!r} cannot read left-out features: its online store is not open ({why}); "
                "send every feature, or retry later",
            )
        try:
            stored = online.read([records[index][entity] for index in needing])
        except OnlineStoreUnavailable as exc:
            logger.error("model %s: %s", model, exc)
            raise RequestRejected(
                503, "online_store_unavailable", f"{exc}; send every feature, or retry later"
            ) from None
        unknown = [
            FieldProblem(index, entity, f"{_shown(records[index][entity])} is not in the online store of model "
                         f"{model!r} (not materialized yet, or never seen); send its features "
                         f"{missing[index]} instead")
            for index, row in zip(needing, stored, strict=True) if row is None
        ]
        if unknown:
            more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
            raise RequestRejected(404, "unknown_entity", f"{unknown[0].describe()}{more}",
                                  unknown[:MAX_REPORTED_PROBLEMS])
        completed, looked_up = list(records), [[] for _ in records]
        for index, row in zip(needing, stored, strict=True):
            completed[index] = {**records[index], **{name: row[name] for name in missing[index]}}
            looked_up[index] = missing[index]
        return completed, looked_up

    def health(self) -> dict[str, Any]:
        """The service's state; `degraded`, with each reason in `problems`, when anything is wrong.

        A failing prediction log degrades the service without stopping predictions: they are
        answered and kept in memory (up to the writer's limit) until the log can be written again.
        """
        models, problems = {}, []
        for name, slot in self.slots.items():
            status = slot.status()
            models[name] = {key: status[key] for key in ("ready", "version", "champion_version", "last_error")}
            if not status["ready"]:
                problems.append(slot.not_ready_message())
            elif status["last_error"]:
                problems.append(f"model {name!r}: {status['last_error']}")
            if slot.online_error:
                problems.append(f"model {name!r}: {slot.online_error}")
        problems.extend(f"config {source}: {error}" for source, error in self.config_errors.items())
        log = self.log
        if log is not None and log.last_error:
            problems.append(f"prediction log: writing failed ({log.last_error}); {log.pending_rows} predictions "
                            f"wait in memory, {log.dropped_rows} were dropped")
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "models": models,
            "config_errors": self.config_errors,
            "models_dir": str(self.models_dir),
            "prediction_log": {
                "pending_rows": log.pending_rows if log else 0,
                "written_rows": log.written_rows if log else 0,
                "dropped_rows": log.dropped_rows if log else 0,
                "last_error": log.last_error if log else None,
            },
        }


class Prediction(BaseModel):
    probability: float
    label: int


class PredictResponse(BaseModel):
    model: str
    version: str
    request_id: str
    predictions: list[Prediction]


class Problem(BaseModel):
    index: int | None
    field: str | None
    message: str


class ErrorResponse(BaseModel):
    error: str
    message: str
    errors: list[Problem] | None = None


class ModelStatus(BaseModel):
    ready: bool
    version: str | None
    champion_version: str | None
    last_error: str | None


class LogStatus(BaseModel):
    pending_rows: int
    written_rows: int
    dropped_rows: int
    last_error: str | None


class HealthResponse(BaseModel):
    status: str
    problems: list[str]
    models: dict[str, ModelStatus]
    config_errors: dict[str, str]
    models_dir: str
    prediction_log: LogStatus


class ModelInfo(BaseModel):
    name: str
    alias: str
    ready: bool
    version: str | None
    run_id: str | None
    source: str | None
    loaded_at: str | None
    champion_version: str | None
    last_checked_at: str | None
    last_error: str | None
    max_batch_size: int
    features: list[str]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestRejected(413, "body_too_large", f"the body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRejected(413, "body_too_large", f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _rejected(request: Request, exc: RequestRejected) -> JSONResponse:
    return exc.to_response()


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    return given if given and REQUEST_ID_PATTERN.match(given) else uuid.uuid4().hex


def _is_admin_token(given: str, token: str) -> bool:
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def _is_service_check(request: Request, request_id: str, token: str) -> bool:
    """Whether a prediction request is the deployment's own check: its id says so and it carries the
    admin token. Anyone can choose a request id, so the id alone is logged as ordinary traffic."""
    if not request_id.startswith(SERVICE_CHECK_REQUEST_PREFIX):
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _is_admin_token(given, token)


def create_app(
    models_dir: Path | None = None,
    tracking_uri: str | None = None,
    poll_seconds: float | None = None,
    admin_token: str | None = None,
    data_dir: Path | None = None,
    log_flush_seconds: float = 1.0,
) -> FastAPI:
    """Build the prediction service. Nothing starts until the app's lifespan begins (uvicorn).

    Args:
        models_dir: Folder of model configs (default `settings.models_dir()`).
        tracking_uri: MLflow tracking and registry URI (default `settings.mlflow_tracking_uri()`).
        poll_seconds: How often the alias is read (default `MLOPS_SERVING_POLL_SECONDS` or 5).
        admin_token: Token of the reload endpoint (default `MLOPS_SERVING_ADMIN_TOKEN`; unset
            disables reloading over HTTP).
        data_dir: Root of the prediction log (default `settings.data_dir()`).
        log_flush_seconds: How often buffered predictions are written.
    """
    if poll_seconds is None:
        poll_seconds = float(os.environ.get("MLOPS_SERVING_POLL_SECONDS", DEFAULT_POLL_SECONDS))
    token = admin_token if admin_token is not None else os.environ.get("MLOPS_SERVING_ADMIN_TOKEN", "")
    service = PredictionService(
        models_dir, tracking_uri or settings.mlflow_tracking_uri(), poll_seconds, data_dir, log_flush_seconds
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="Prediction service",
        summary=f"Serves the `{CHAMPION}` version of each configured model and logs every prediction.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_exception_handler(RequestRejected, _rejected)
    def require_admin(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(ADMIN_BEARER)]) -> None:
        if not token:
            raise RequestRejected(403, "reload_disabled", "reloading is disabled: MLOPS_SERVING_ADMIN_TOKEN is not set")
        if credentials is None:
            raise RequestRejected(401, "unauthorized", "send the header 'Authorization: Bearer <admin token>'")
        if not _is_admin_token(credentials.credentials, token):
            raise RequestRejected(403, "forbidden", "the admin token is wrong")

    records_schema: dict[str, Any] = {
        "type": "array", "minItems": 1, "description": "At most the model's `serving.max_batch_size` records.",
    }

    @app.post(
        "/models/{model}/predict",
        response_model=PredictResponse,
        responses=_errors(400, 404, 413, 422, 500, 503),
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["records"],
            "additionalProperties": False,
            "properties": {"records": records_schema},
        }}}}},
    )
    async def predict(model: str, request: Request) -> Response:
        """Score records with the model's champion; every prediction is written to the prediction log.

        Scoring runs on the event loop: with one worker process and the GIL, a hop to a thread
        adds latency to a single-row request without adding throughput.
        """
        started, status = time.perf_counter(), 500
        try:
            limit = service.slot(model).validator.max_body_bytes
            request_id = _request_id(request)
            service_check = _is_service_check(request, request_id, token)
            content = service.predict(model, await _read_body(request, limit), request_id, service_check)
            status = 200
        except RequestRejected as rejected:
            status = rejected.status
            raise
        finally:
            service.metrics.observe_request(model, status, time.perf_counter() - started)
        return Response(content, media_type="application/json", headers={"X-Request-ID": request_id})

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus' text format: requests by status, latency, rows, served versions, the log's queue."""
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, Any]:
        """The service is up (always 200); each model's readiness, version and last error."""
        return service.health()

    @app.get("/models/{model}", response_model=ModelInfo, responses=_errors(404))
    async def model_info(model: str) -> dict[str, Any]:
        """The version served for `model`, where it came from, and the last alias check."""
        return service.slot(model).status()

    @app.post(
        "/models/{model}/reload",
        response_model=ModelInfo,
        responses=_errors(401, 403, 404, 502),
        dependencies=[Depends(require_admin)],
    )
    def reload(model: str) -> dict[str, Any]:
        """Read the alias and load its version now, even if it is the one served (and, for a model
        the service does not know, read the models folder first).

        502 when the version cannot be loaded (the previous one keeps serving).
        """
        slot = service.slot(model, always_look=True)
        error = service.follower.refresh(slot, force=True)
        if error:
            raise RequestRejected(502, "reload_failed", error)
        return slot.status()

    def openapi() -> dict[str, Any]:
        """The OpenAPI page, with a record schema for each model served now (configs come and go)."""
        slots = list(service.slots.values())
        schemas = [record_json_schema(slot.config) for slot in slots]
        records_schema["maxItems"] = max((slot.validator.max_batch_size for slot in slots), default=1)
        records_schema["items"] = {"oneOf": schemas} if schemas else {"type": "object"}
        app.openapi_schema = None
        return FastAPI.openapi(app)

    app.openapi = openapi
    return app


def __getattr__(name: str) -> FastAPI:
    """Build the module-level `app` on first access, so that importing this module reads nothing."""
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
