"""The production topology (docker-compose.yaml), run natively, does the whole loop and passes verify-release,
and nobody moves a model alias without logging in.

The same parts as the compose file, as processes on this machine: Airflow on a PostgreSQL metadata
database with the CeleryExecutor (Redis broker, PostgreSQL result backend), api-server, scheduler,
dag-processor, triggerer and one Celery worker; the MLflow tracking server on PostgreSQL, serving the
artifacts itself; the prediction service. Logins as in production: Airflow's FAB auth manager with an
admin created at start, MLflow's basic-auth app, whose clients (tasks, prediction service,
verify-release) get their credentials from the environment. `scripts/local_stack.py` starts and stops
them (with a `CeleryConfig`, database URLs and `production_auth` instead of its SQLite defaults).

The stack is the one the Celery faults of tests/chaos/test_chaos_airflow.py damage afterwards
(tests/chaos/stacks.py `shared_production_stack`): started once for both, this test first.

The services run a copy of dags/, plugins/ and include/ taken at the start, as the image does. The test
owns everything it touches: two new databases with a random name, an empty Redis database
whose keys all carry a random prefix, free ports, a temporary state folder, and a small copy of
the demo model config. All of it is stopped, dropped or deleted afterwards, whatever happened.
It needs PostgreSQL (trust auth for user postgres) and Redis on 127.0.0.1, as CI provides.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from include.core import settings
from scripts import local_stack, verify_release
from scripts.local_stack import CeleryConfig, StackConfig
from tests.test_local_stack import free_ports, needs_proc, processes_with_airflow_home

MODEL = "credit_default"
DAYS = 3
FIRST_DAY = dt.date(2026, 1, 1)
LAST_DAY = FIRST_DAY + dt.timedelta(days=DAYS - 1)
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379"
RUN_TIMEOUT_S = 300


def small_model_config(folder: Path) -> Path:
    """The demo config, shrunk so that the loop takes seconds: 3 days of 300 rows, labels known the same
    day, a quick estimator, no slice gate, a generous latency budget for a busy CI machine.

    The gate asks a challenger for +0.05 ROC AUC over the champion, so the second training on the same
    data (verify-release's) is rejected deterministically and delivers nothing.
    """
    raw = yaml.safe_load((settings.PROJECT_ROOT / "include" / "models" / f"{MODEL}.yaml").read_text())
    raw["source"].update({"days": DAYS, "rows_per_day": 300, "start_date": FIRST_DAY})
    raw["target"]["label_delay_days"] = 0
    raw["training"].update({"schedule": None, "window_days": 30, "min_rows": 300, "every_n_batches": 100})
    raw["training"]["estimator"]["params"]["max_iter"] = 30
    raw["evaluation"]["metrics"] = {
        "roc_auc": {"threshold": 0.55, "min_absolute_change": 0.05},
        "brier_score": {"threshold": 0.35, "greater_is_better": False},
    }
    raw["evaluation"]["slices"] = []
    raw["serving"]["latency_budget_ms"] = 2000
    raw["deployment"].update({"load_test_rate": 10, "load_test_seconds": 2, "service_timeout_seconds": 120})
    path = folder / f"{MODEL}.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --- what the test owns in PostgreSQL and Redis ----------------------------------------------------


def postgres_url(database: str, driver: str = "postgresql+psycopg2") -> str:
    return f"{driver}://{PG['user']}@{PG['host']}:{PG['port']}/{database}"


def run_sql(*statements: str) -> None:
    import psycopg2

    connection = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    connection.autocommit = True  # CREATE / DROP DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def existing_databases(prefix: str) -> list[str]:
    import psycopg2

    with psycopg2.connect(dbname="postgres", connect_timeout=5, **PG) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",))
        return sorted(row[0] for row in cursor.fetchall())


def empty_redis_databases(redis_module, count: int) -> list[int]:
    """`count` Redis database numbers (1-15) that hold no key, so the stack shares them with nobody."""
    empty = [number for number in secrets.SystemRandom().sample(range(1, 16), 15)
             if redis_module.Redis.from_url(f"{REDIS_URL}/{number}").dbsize() == 0]
    if len(empty) < count:
        pytest.fail(f"only {len(empty)} of Redis databases 1-15 hold no key; the test needs {count}")
    return empty[:count]


@dataclass(frozen=True)
class Owned:
    """The databases, Redis keys and names this test run created (all with one random token)."""

    token: str
    airflow_db: str
    mlflow_db: str
    redis_db: int
    # The feature store's online store: Feast's Redis keys carry no prefix, so they get a database of their own.
    feast_redis_db: int

    @property
    def key_prefix(self) -> str:
        return f"{self.token}:"

    @property
    def feast_redis_setting(self) -> str:
        """`MLOPS_FEAST_REDIS` for the stack: Feast's Redis connection string."""
        return f"127.0.0.1:6379,db={self.feast_redis_db}"

    def redis(self):
        import redis

        return redis.Redis.from_url(f"{REDIS_URL}/{self.redis_db}")

    def feast_redis(self):
        import redis

        return redis.Redis.from_url(f"{REDIS_URL}/{self.feast_redis_db}")

    def own_keys(self) -> list[bytes]:
        return list(self.redis().scan_iter(match=f"{self.key_prefix}*"))


@contextmanager
def owned_resources(prefix: str) -> Iterator[Owned]:
    """Two new PostgreSQL databases and an empty Redis database, named `<prefix>_<random>`; dropped and
    cleaned afterwards."""
    try:
        import redis

        run_sql("SELECT 1")
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except Exception as exc:  # noqa: BLE001 - whatever the reason, the services are not there
        pytest.skip(f"needs PostgreSQL and Redis on 127.0.0.1 (as in CI): {exc}")
    token = f"{prefix}_{secrets.token_hex(4)}"
    resources = Owned(token, token, f"{token}_mlflow", *empty_redis_databases(redis, 2))
    run_sql(f'CREATE DATABASE "{resources.airflow_db}"', f'CREATE DATABASE "{resources.mlflow_db}"')
    try:
        yield resources
    finally:
        run_sql(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in (resources.airflow_db,
                                                                                 resources.mlflow_db)))
        keys = resources.own_keys()
        if keys:
            resources.redis().delete(*keys)
        resources.feast_redis().flushdb()
        assert existing_databases(token) == []
        assert resources.own_keys() == []


# --- the stack ------------------------------------------------------------------------------------


@dataclass
class Topology:
    config: StackConfig
    env: dict[str, str]
    api: local_stack.AirflowApi
    password: str

    def airflow_cli(self, *args: str) -> subprocess.CompletedProcess:
        """The Airflow CLI with the stack's settings (what bin/airflow does for the local stack)."""
        env = {**self.env, "PYTHONWARNINGS": "ignore:Could not import graphviz:UserWarning"}
        return subprocess.run([str(local_stack.VENV_BIN / "airflow"), *args], env=env, capture_output=True,
                              text=True, timeout=180)


def stack_base_environment() -> dict[str, str]:
    """This process's environment without the settings the test session gave itself (conftest.py)."""
    leaked = ("AIRFLOW_", "MLOPS_", "MLFLOW_")
    return {name: value for name, value in os.environ.items() if not name.startswith(leaked)}


def project_snapshot(folder: Path) -> Path:
    """A copy of the code the image ships (dags/, plugins/, include/), as the Dockerfile copies it: the
    services run what was there when the test started, whatever is edited in the work tree meanwhile."""
    for part in ("dags", "plugins", "include"):
        shutil.copytree(settings.PROJECT_ROOT / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def stack_config(folder: Path, owned: Owned | None) -> StackConfig:
    """A stack in `folder` on free ports, running a snapshot of the code and the model configs in
    `folder/models`: the production topology (PostgreSQL, Celery, production logins) with `owned`, else
    the local stack's SQLite and LocalExecutor."""
    root = project_snapshot(folder / "project")
    airflow_port, mlflow_port, serving_port = free_ports(3)
    production = {}
    if owned is not None:
        production = {
            "airflow_database_url": postgres_url(owned.airflow_db),
            "mlflow_backend_uri": postgres_url(owned.mlflow_db),
            "celery": CeleryConfig(
                broker_url=f"{REDIS_URL}/{owned.redis_db}",
                result_backend=postgres_url(owned.airflow_db, "db+postgresql+psycopg2"),
                queue=owned.token, key_prefix=owned.key_prefix, concurrency=2,
            ),
            "production_auth": True,
        }
    return StackConfig(root=root, state=folder / "state", dags_folder=root / "dags", models_dir=folder / "models",
                       airflow_port=airflow_port, mlflow_port=mlflow_port, serving_port=serving_port, **production)


@contextmanager
def started_stack(
    config: StackConfig, started: dict[str, tuple[subprocess.Popen, local_stack.ServiceProcess]],
    extra_env: dict[str, str] | None = None,
) -> Iterator[Topology]:
    """The stack of `config` started and healthy (its processes recorded in `started`, by service name);
    every process stopped afterwards, whatever happened."""
    for folder in (config.airflow_home, config.logs_dir, config.mlflow_dir / "artifacts"):
        folder.mkdir(parents=True, exist_ok=True)
    env = local_stack.airflow_environment(config, local_stack.load_or_create_secrets(config.secrets_file),
                                          stack_base_environment())
    env |= {"GX_ANALYTICS_ENABLED": "False", "MLOPS_SERVING_POLL_SECONDS": "2", **(extra_env or {})}

    def start(service: local_stack.Service) -> None:
        started[service.name] = local_stack.start_service(service, config, env)

    try:
        local_stack.start_services(config, env, local_stack.stack_services(config), start, started,
                                   time.monotonic())
        password = local_stack.admin_password(config)
        yield Topology(config, env, local_stack.AirflowApi(config.airflow_url, "admin", password), password)
    finally:
        services = tuple(process for _, process in started.values())
        record = local_stack.StackRecord(os.getpid(), None, services, {})
        assert local_stack.stop_stack(config, record), "processes of the stack were left running"
        for process, _ in started.values():
            process.wait(timeout=10)
        assert local_stack.live_group_members(process.pgid for process in services) == []
        assert processes_with_airflow_home(config.airflow_home) == []


@pytest.fixture
def topology(production_stack) -> Topology:
    """The production topology on free ports, healthy, its model's DAGs paused (tests/conftest.py
    `production_stack`: every process is stopped once the Celery faults after this test are done)."""
    return production_stack.topology


@pytest.fixture
def owned(production_stack) -> Owned:
    """The databases and Redis keys of the production topology."""
    return production_stack.owned


# --- driving it -----------------------------------------------------------------------------------

MLFLOW_CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def alias_moves_refused(
    monkeypatch: pytest.MonkeyPatch, url: str, version: str, credentials: dict[str, str]
) -> list[int]:
    """The HTTP statuses with which MLflow refuses a client logged in with `credentials` (none:
    anonymous) that points @champion at `version` and then deletes @champion; fails if either succeeds."""
    with monkeypatch.context() as patch:
        for name in MLFLOW_CREDENTIALS:  # MLflow's client reads them at each request
            patch.delenv(name, raising=False)
        for name, value in credentials.items():
            patch.setenv(name, value)
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        statuses = []
        for move in (lambda: client.set_registered_model_alias(MODEL, "champion", version),
                     lambda: client.delete_registered_model_alias(MODEL, "champion")):
            with pytest.raises(MlflowException) as refused:
                move()
            statuses.append(refused.value.get_http_status_code())
        return statuses


def wait_for_dags(api: local_stack.AirflowApi, dag_ids: set[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while True:
        present = {dag["dag_id"] for dag in api.dags()}
        if dag_ids <= present:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"DAGs never parsed: {sorted(dag_ids - present)}; import errors: {api.import_errors()}")
        time.sleep(3)


def dag_runs(api: local_stack.AirflowApi, dag_id: str) -> list[dict]:
    return api.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]


def wait_for_runs(api: local_stack.AirflowApi, dag_id: str, count: int, timeout: float = RUN_TIMEOUT_S) -> list[dict]:
    """Wait until `dag_id` has `count` finished runs, all successful; fail early on a failed one."""
    deadline = time.monotonic() + timeout
    while True:
        runs = dag_runs(api, dag_id)
        failed = [run for run in runs if run["state"] == "failed"]
        if failed:
            tasks = verify_release.task_states(api, dag_id, failed[0]["dag_run_id"])
            pytest.fail(f"{dag_id} run {failed[0]['dag_run_id']} failed: {verify_release.format_states(tasks)}")
        done = [run for run in runs if run["state"] == "success"]
        if len(done) >= count:
            return done
        if time.monotonic() > deadline:
            pytest.fail(f"{dag_id}: {len(done)} of {count} runs succeeded in {timeout} s: "
                        f"{[(run['dag_run_id'], run['state']) for run in runs]}")
        time.sleep(3)


@pytest.mark.slow
@pytest.mark.production_stack
@pytest.mark.timeout(900)
@needs_proc
def test_the_native_production_topology_ingests_trains_deploys_and_passes_verify_release(topology, owned, monkeypatch):
    api, config = topology.api, topology.config
    dag = {stage: f"{MODEL}__{stage}" for stage in ("data_ingestion", "continuous_training", "model_deployment")}
    wait_for_dags(api, set(dag.values()))

    listing = topology.airflow_cli("dags", "list-import-errors", "--output", "json")
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout.strip().splitlines()[-1]) == [], listing.stdout

    # The model's DAGs are paused at creation (the faults that share the stack want them quiet): unpausing
    # them all runs the whole loop, and lets the scheduler catch up on every day of the (3-day) source.
    for dag_id in [*verify_release.expected_dag_ids(MODEL), f"{MODEL}__feature_materialization"]:
        api.unpause(dag_id)
    ingested = wait_for_runs(api, dag["data_ingestion"], DAYS)
    assert {run["logical_date"][:10] for run in ingested} == {
        (FIRST_DAY + dt.timedelta(days=offset)).isoformat() for offset in range(DAYS)
    }

    # Training through the CLI, with a cutoff; the challenger Asset then triggers the deployment.
    conf = json.dumps({"reason": "production topology test", "cutoff": LAST_DAY.isoformat()})
    triggered = topology.airflow_cli("dags", "trigger", dag["continuous_training"], "--run-id", "topology_ct",
                                     "--conf", conf)
    assert triggered.returncode == 0, triggered.stderr
    state = verify_release.wait_for_run(api, dag["continuous_training"], "topology_ct", RUN_TIMEOUT_S)
    ct_tasks = verify_release.task_states(api, dag["continuous_training"], "topology_ct")
    assert state == "success", ct_tasks
    assert ct_tasks["announce_challenger"] == "success", "the first candidate should pass the gate"
    [deployment_run] = wait_for_runs(api, dag["model_deployment"], 1)
    assert deployment_run["run_type"] == "asset_triggered"

    credentials = {name: topology.env[name] for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    registry = MlflowClient(tracking_uri=config.mlflow_url, registry_uri=config.mlflow_url)
    champion = registry.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags["gate_passed"] == "true"
    assert champion.tags["deployment_status"] == "serving"
    artifact_uri = registry.get_run(champion.run_id).info.artifact_uri
    assert artifact_uri.startswith("mlflow-artifacts:"), "clients must send artifacts through the server"
    assert any((config.mlflow_dir / "artifacts").rglob("MLmodel")), "the server stores them in its destination"

    served = httpx.get(f"{config.serving_url}/models/{MODEL}", timeout=10).json()
    assert served["version"] == champion.version

    # Nobody moves @champion without logging in: not anonymously, not with a wrong password; Airflow's
    # API answers nobody anonymous either.
    aliases = registry.get_registered_model(MODEL).aliases
    assert alias_moves_refused(monkeypatch, config.mlflow_url, champion.version, {}) == [401, 401]
    wrong_password = {**credentials, "MLFLOW_TRACKING_PASSWORD": "not-the-password"}
    assert alias_moves_refused(monkeypatch, config.mlflow_url, champion.version, wrong_password) == [401, 401]
    assert aliases["champion"] == champion.version
    assert registry.get_registered_model(MODEL).aliases == aliases
    assert httpx.get(f"{config.airflow_url}/api/v2/dags", timeout=30).status_code == 401
    assert httpx.post(f"{config.airflow_url}/auth/token", json={"username": "admin", "password": "not-the-password"},
                      timeout=30).status_code == 401

    verify_env = {**topology.env, "AIRFLOW_PASSWORD": topology.password}
    # -o: the venv is installed already; never let make try to reinstall it (that needs the network).
    verified = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "verify-release",
         f"AIRFLOW_URL={config.airflow_url}", f"SERVING_URL={config.serving_url}", "WITH_TRAINING=1"],
        cwd=settings.PROJECT_ROOT, env=verify_env, capture_output=True, text=True, timeout=600,
    )
    output = verified.stdout + verified.stderr
    print(output)
    assert verified.returncode == 0, output
    assert "Release verified" in output
    for check in ("DAGs", f"{MODEL} golden outputs", f"{MODEL} latency", f"{MODEL} continuous training"):
        assert f"PASS  {check}:" in output, output
    assert "rejected by the gate" in output, "the same data again cannot beat the champion by 0.05 ROC AUC"
    assert registry.get_model_version_by_alias(MODEL, "champion").version == champion.version

    # A training DAG that someone paused stays paused: the check is skipped, saying so, and starts no run.
    api.request("PATCH", f"/api/v2/dags/{dag['continuous_training']}", {"is_paused": True})
    runs_before = api.request("GET", f"/api/v2/dags/{dag['continuous_training']}/dagRuns")["total_entries"]
    paused = verify_release.check_continuous_training(api, MODEL, timeout=60)
    assert paused.passed is None and "is paused and stays paused" in paused.detail
    assert api.request("GET", f"/api/v2/dags/{dag['continuous_training']}")["is_paused"] is True
    assert api.request("GET", f"/api/v2/dags/{dag['continuous_training']}/dagRuns")["total_entries"] == runs_before

    keys = list(owned.redis().scan_iter())
    assert keys and all(key.startswith(owned.key_prefix.encode()) for key in keys), keys

    # The feature store's online store is the stack's Redis: materialization (on a Celery worker) filled
    # it, and the prediction service answers a request that sends only an applicant id from it.
    wait_for_runs(api, f"{MODEL}__feature_materialization", 1)
    assert owned.feast_redis().dbsize() > 0
    newest = pd.read_parquet(config.state / "data" / MODEL / "curated" / f"day={LAST_DAY}" / "batch.parquet")
    applicant = str(newest["application_id"].iloc[0])
    predict = f"{config.serving_url}/models/{MODEL}/predict"
    looked_up = httpx.post(predict, json={"records": [{"application_id": applicant}]}, timeout=30)
    assert looked_up.status_code == 200, looked_up.text
    assert 0 <= looked_up.json()["predictions"][0]["probability"] <= 1
    unknown = httpx.post(predict, json={"records": [{"application_id": "nobody"}]}, timeout=30)
    assert unknown.status_code == 404 and "nobody" in unknown.text, unknown.text
