"""The local stack behind `make run` / `make stop` / `make status` and bin/airflow.

The fast tests check the pure parts (environment, services, records); the slow ones start the real
stack on free ports with a private state folder and a DAG folder of their own, so they neither clash
with a stack the developer runs nor depend on the project's DAG files.
"""

import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import local_stack
from scripts.local_stack import StackConfig, StackError

SCRIPT = local_stack.PROJECT_ROOT / "scripts" / "local_stack.py"
BIN_AIRFLOW = local_stack.PROJECT_ROOT / "bin" / "airflow"
needs_proc = pytest.mark.skipif(not local_stack.HAS_PROC, reason="finds processes through /proc (Linux)")
STACK_VARIABLES = (
    "MLOPS_STATE_DIR", "MLOPS_DAGS_FOLDER", "MLOPS_MODELS_DIR", "MLOPS_HOST",
    "AIRFLOW_PORT", "MLFLOW_PORT", "SERVING_PORT",
)

DEMO_DAGS = '''
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False, is_paused_upon_creation=False)
def demo__hello():
    @task
    def hello() -> str:
        return "hello"

    hello()


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False, is_paused_upon_creation=False)
def demo__sleepy():
    BashOperator(task_id="sleep", bash_command="sleep 600")


@dag(schedule="@daily", start_date=pendulum.datetime(2026, 1, 1), catchup=False, is_paused_upon_creation=True)
def demo__held():
    BashOperator(task_id="wait", bash_command="true")


@dag(schedule="@daily", start_date=pendulum.datetime(2026, 1, 1), catchup=False, is_paused_upon_creation=False,
     default_args={"retries": 0})
def demo__at_once():
    BashOperator(task_id="first", bash_command="true")


demo__hello()
demo__sleepy()
demo__held()
demo__at_once()
'''


# --- fast tests of the pure parts -----------------------------------------------------------------


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No stack variable from the developer's shell leaks into a test."""
    for name in STACK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def a_config(root: Path) -> StackConfig:
    return StackConfig(root=root, state=root / "state", dags_folder=root / "dags", models_dir=root / "models")


SECRETS = {"jwt_secret": "j", "api_secret_key": "a", "fernet_key": "f", "serving_admin_token": "s",
           "airflow_admin_password": "airflow-pw", "mlflow_admin_password": "mlflow-pw",
           "mlflow_flask_secret_key": "flask-key"}


def test_defaults_are_the_documented_ports_on_loopback_and_the_project_state_folder(clean_environ):
    config = StackConfig.from_environ()

    assert (config.host, config.airflow_port, config.mlflow_port, config.serving_port) == (
        "127.0.0.1", 8080, 5000, 8000,
    )
    assert config.state == local_stack.PROJECT_ROOT / "state"
    assert config.airflow_home == local_stack.PROJECT_ROOT / "state" / "airflow"
    assert config.dags_folder == local_stack.PROJECT_ROOT / "dags"


def test_every_url_and_port_in_the_environment_follows_the_overrides(clean_environ, tmp_path):
    clean_environ.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    clean_environ.setenv("MLOPS_DAGS_FOLDER", str(tmp_path / "dags"))
    clean_environ.setenv("MLOPS_HOST", "127.0.0.2")
    clean_environ.setenv("AIRFLOW_PORT", "18080")
    clean_environ.setenv("MLFLOW_PORT", "15000")
    clean_environ.setenv("SERVING_PORT", "18000")
    config = StackConfig.from_environ()

    env = local_stack.airflow_environment(config, SECRETS, base={})

    home = tmp_path / "state" / "airflow"
    assert env["AIRFLOW_HOME"] == str(home)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home / 'airflow.db'}"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    assert env["AIRFLOW__API__HOST"] == "127.0.0.2"
    assert env["AIRFLOW__API__PORT"] == "18080"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.2:18080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.2:18080/execution/"
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.2:15000"
    assert env["MLOPS_SERVING_URL"] == "http://127.0.0.2:18000"
    assert env["MLOPS_STATE_DIR"] == str(tmp_path / "state")


def test_environment_keeps_the_callers_variables_but_the_stack_settings_win(tmp_path):
    base = {"PATH": "/somewhere/bin", "AIRFLOW_HOME": "/elsewhere", "PYTHONPATH": "/lib"}

    env = local_stack.airflow_environment(a_config(tmp_path), SECRETS, base)

    assert env["PATH"] == "/somewhere/bin"
    assert env["AIRFLOW_HOME"] == str(tmp_path / "state" / "airflow")
    assert env["PYTHONPATH"] == os.pathsep.join([str(tmp_path), "/lib"])


def test_all_components_share_the_stack_secrets_and_the_simple_auth_manager_admin(tmp_path):
    env = local_stack.airflow_environment(a_config(tmp_path), SECRETS, base={})

    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "j"
    assert env["AIRFLOW__API__SECRET_KEY"] == "a"
    assert env["AIRFLOW__CORE__FERNET_KEY"] == "f"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def test_secrets_are_generated_once_and_kept(tmp_path):
    path = tmp_path / "airflow" / "stack_secrets.json"

    first = local_stack.load_or_create_secrets(path)
    second = local_stack.load_or_create_secrets(path)

    assert first == second
    assert set(first) == {"jwt_secret", "api_secret_key", "fernet_key", "serving_admin_token",
                          "airflow_admin_password", "mlflow_admin_password", "mlflow_flask_secret_key"}
    assert len(first["jwt_secret"]) >= 64
    assert len(first["mlflow_admin_password"]) >= 12, "MLflow refuses a shorter admin password"
    assert path.stat().st_mode & 0o077 == 0


def test_a_secret_added_in_a_later_version_is_generated_without_changing_the_others(tmp_path):
    path = tmp_path / "stack_secrets.json"
    path.write_text(json.dumps({"jwt_secret": "kept", "api_secret_key": "kept", "fernet_key": "kept"}))

    values = local_stack.load_or_create_secrets(path)

    assert values["jwt_secret"] == values["api_secret_key"] == values["fernet_key"] == "kept"
    assert values["serving_admin_token"]
    assert json.loads(path.read_text()) == values


def test_a_port_that_is_not_a_number_is_refused_naming_the_variable(clean_environ):
    clean_environ.setenv("MLFLOW_PORT", "five thousand")

    with pytest.raises(StackError, match="MLFLOW_PORT"):
        StackConfig.from_environ()


def test_services_listen_on_the_configured_host_and_ports(tmp_path):
    config = StackConfig(
        root=tmp_path, state=tmp_path / "state", dags_folder=tmp_path / "dags", models_dir=tmp_path,
        host="127.0.0.3", airflow_port=18080, mlflow_port=15000, serving_port=18000,
    )

    services = {service.name: service for service in local_stack.stack_services(config)}

    assert list(services) == ["mlflow", "api-server", "scheduler", "dag-processor", "triggerer"]
    mlflow_argv = services["mlflow"].argv
    assert mlflow_argv[mlflow_argv.index("--host") + 1] == "127.0.0.3"
    assert mlflow_argv[mlflow_argv.index("--port") + 1] == "15000"
    assert services["mlflow"].health_url == "http://127.0.0.3:15000/health"
    assert services["api-server"].argv[-4:] == ("--host", "127.0.0.3", "--port", "18080")
    assert services["scheduler"].health_url == "http://127.0.0.3:18080/api/v2/monitor/health"
    assert services["dag-processor"].airflow_component == "dag_processor"


def test_the_production_topology_runs_celery_on_postgresql_with_a_worker_on_its_own_queue(tmp_path):
    celery = local_stack.CeleryConfig(
        broker_url="redis://127.0.0.1:6379/3", result_backend="db+postgresql+psycopg2://pg/airflow",
        queue="team_a", key_prefix="team_a:", concurrency=3,
    )
    config = StackConfig(
        root=tmp_path, state=tmp_path / "state", dags_folder=tmp_path / "dags", models_dir=tmp_path,
        airflow_database_url="postgresql+psycopg2://pg/airflow", mlflow_backend_uri="postgresql+psycopg2://pg/mlflow",
        celery=celery,
    )

    env = local_stack.airflow_environment(config, SECRETS, base={})
    services = {service.name: service for service in local_stack.stack_services(config)}

    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://pg/airflow"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/3"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://pg/airflow"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "team_a"
    assert env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"] == "team_a:"
    worker = services["celery-worker"].argv
    assert worker[1:3] == ("celery", "worker")
    assert worker[worker.index("--queues") + 1] == "team_a" and worker[worker.index("--concurrency") + 1] == "3"
    assert services["celery-worker"].port is None, "stopped with the other clients, before the api-server"
    mlflow = services["mlflow"].argv
    assert mlflow[mlflow.index("--backend-store-uri") + 1] == "postgresql+psycopg2://pg/mlflow"


def production_auth_config(root: Path, mlflow_backend_uri: str | None = None) -> StackConfig:
    return StackConfig(root=root, state=root / "state", dags_folder=root / "dags", models_dir=root / "models",
                       mlflow_backend_uri=mlflow_backend_uri, production_auth=True)


MLFLOW_LOGIN_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_AUTH_CONFIG_PATH",
                     "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")


def test_production_auth_runs_fab_and_mlflow_basic_auth_whose_clients_log_in_as_its_admin(tmp_path):
    from mlflow.server.auth import is_unprotected_route

    config = production_auth_config(tmp_path)

    env = local_stack.airflow_environment(config, SECRETS, base={})
    mlflow = {service.name: service for service in local_stack.stack_services(config)}["mlflow"]

    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == local_stack.FAB_AUTH_MANAGER
    assert not any(name.startswith("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER") for name in env)
    assert mlflow.argv[mlflow.argv.index("--app-name") + 1] == "basic-auth"
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == (
        env["MLFLOW_AUTH_ADMIN_USERNAME"], env["MLFLOW_AUTH_ADMIN_PASSWORD"]) == ("admin", "mlflow-pw")
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "flask-key"
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(config.mlflow_auth_config_file)
    assert is_unprotected_route(urllib.parse.urlparse(mlflow.health_url).path), "the health check needs no login"


def test_the_default_stack_keeps_the_simple_auth_manager_and_an_mlflow_without_login(tmp_path):
    config = a_config(tmp_path)

    env = local_stack.airflow_environment(config, SECRETS, base={})
    mlflow = local_stack.stack_services(config)[0]

    assert config.production_auth is False
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == local_stack.SIMPLE_AUTH_MANAGER
    assert [key for key in MLFLOW_LOGIN_KEYS if key in env] == []
    assert "--app-name" not in mlflow.argv


@pytest.mark.parametrize("backend", [None, "postgresql+psycopg2://postgres@127.0.0.1:5432/mlops_mlflow"])
def test_mlflow_reads_the_basic_auth_configuration_the_stack_writes(tmp_path, monkeypatch, backend):
    from mlflow.server.auth.config import read_auth_config

    config = production_auth_config(tmp_path, mlflow_backend_uri=backend)
    local_stack.write_mlflow_auth_config(config)
    for key, value in local_stack.airflow_environment(config, SECRETS, base={}).items():
        if key.startswith("MLFLOW_AUTH_"):
            monkeypatch.setenv(key, value)

    auth = read_auth_config()

    assert auth.default_permission == "READ", "a logged-in user reads; moving an alias takes more"
    assert auth.database_uri == (backend or f"sqlite:///{config.mlflow_dir / 'basic_auth.db'}")
    assert (auth.admin_username, auth.admin_password) == ("admin", "mlflow-pw")
    assert auth.auth_cache_ttl_seconds > 0, "without the cache each request costs a scrypt hash (~0.2 s of CPU)"
    assert config.mlflow_auth_config_file.stat().st_mode & 0o077 == 0


def test_the_production_admin_password_is_the_generated_one_kept_in_the_stack_secrets(tmp_path):
    config = production_auth_config(tmp_path)

    password = local_stack.admin_password(config)

    assert password == local_stack.admin_password(config)
    assert password == json.loads(config.secrets_file.read_text())["airflow_admin_password"]
    assert not config.passwords_file.exists(), "no SimpleAuthManager passwords file in this mode"


def test_without_celery_the_stack_is_sqlite_and_the_local_executor_with_no_worker(tmp_path):
    config = a_config(tmp_path)

    env = local_stack.airflow_environment(config, SECRETS, base={})

    assert "celery-worker" not in [service.name for service in local_stack.stack_services(config)]
    assert not any(name.startswith(("AIRFLOW__CELERY", "AIRFLOW__OPERATORS")) for name in env)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")


def test_the_prediction_service_is_started_once_include_serving_exists(tmp_path):
    config = a_config(tmp_path)
    assert "serving" not in [service.name for service in local_stack.stack_services(config)]

    (tmp_path / "include" / "delivery").mkdir(parents=True)
    (tmp_path / "include" / "delivery" / "serving.py").write_text("app = None\n")
    serving = local_stack.stack_services(config)[-1]

    assert serving.name == "serving"
    assert "include.delivery.serving:app" in serving.argv
    assert serving.port == 8000


def test_a_taken_port_is_refused_naming_the_variable_to_change(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        mlflow_port, serving_port = free_ports(2)  # not 5000 / 8000, which a running `make run` holds
        config = StackConfig(
            root=tmp_path, state=tmp_path, dags_folder=tmp_path, models_dir=tmp_path,
            airflow_port=squatter.getsockname()[1], mlflow_port=mlflow_port, serving_port=serving_port,
        )

        with pytest.raises(StackError, match="AIRFLOW_PORT"):
            local_stack.refuse_taken_ports(config, local_stack.stack_services(config))


def test_a_recorded_stack_whose_up_process_lives_blocks_a_second_up(tmp_path):
    config = a_config(tmp_path)
    config.state.mkdir()
    parent = os.getppid()
    local_stack.StackRecord(parent, local_stack.process_start_time(parent), (), {}).save(config.stack_file)

    with pytest.raises(StackError, match="already running"):
        local_stack.refuse_if_running(config)


def test_a_record_of_finished_processes_does_not_block_up(tmp_path):
    config = a_config(tmp_path)
    config.state.mkdir()
    finished = subprocess.Popen(["true"])
    finished.wait()
    local_stack.StackRecord(finished.pid, None, (), {}).save(config.stack_file)

    local_stack.refuse_if_running(config)


@needs_proc
def test_stop_ends_clients_before_servers_and_sweeps_stack_processes_outside_the_groups(tmp_path):
    config = a_config(tmp_path)
    order = tmp_path / "stop_order"
    script = "trap 'echo {name} >> {order}; exit 0' TERM; while :; do sleep 0.1; done"

    def service(name: str, port: int | None) -> tuple[subprocess.Popen, local_stack.ServiceProcess]:
        process = subprocess.Popen(
            ["bash", "-c", script.format(name=name, order=order)], start_new_session=True
        )
        started = local_stack.process_start_time(process.pid)
        return process, local_stack.ServiceProcess(
            name, process.pid, process.pid, started, str(tmp_path / f"{name}.log"), port, None, None
        )

    (server, server_record), (client, client_record) = service("server", 8080), service("client", None)
    stack_env = {**os.environ, "AIRFLOW_HOME": str(config.airflow_home), local_stack.STACK_MARKER: "1"}
    escaped_task = subprocess.Popen(["sleep", "60"], env=stack_env, start_new_session=True)
    shell_with_same_home = subprocess.Popen(
        ["sleep", "60"], env={**os.environ, "AIRFLOW_HOME": str(config.airflow_home)}
    )
    time.sleep(0.3)
    record = local_stack.StackRecord(os.getpid(), None, (server_record, client_record), {})

    try:
        assert local_stack.stop_stack(config, record)

        assert order.read_text().split() == ["client", "server"]
        assert [process.wait(timeout=5) for process in (server, client)] == [0, 0]
        assert escaped_task.wait(timeout=5) == -signal.SIGTERM
        assert shell_with_same_home.poll() is None
    finally:
        shell_with_same_home.kill()
        shell_with_same_home.wait()


def test_a_task_process_left_in_a_services_session_is_found_without_the_stack_environment(tmp_path):
    child_code = "import os, time; os.setpgid(0, 0); time.sleep(60)"
    service_code = (
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child_code!r}]); time.sleep(60)"
    )
    service = subprocess.Popen([sys.executable, "-c", service_code], start_new_session=True, env={})
    try:
        local_stack.wait_until(lambda: len(local_stack.stack_processes(tmp_path, [service.pid])) == 2, 10)
        found = local_stack.stack_processes(tmp_path, [service.pid])
        assert service.pid in found and len(found) == 2
        assert local_stack.stack_processes(tmp_path) == []
    finally:
        for pid in local_stack.stack_processes(tmp_path, [service.pid]):
            os.kill(pid, signal.SIGKILL)
        service.wait()


def test_down_with_nothing_running_succeeds(tmp_path, capsys):
    assert local_stack.down(a_config(tmp_path)) == 0
    assert "not running" in capsys.readouterr().out


def test_airflow_health_is_read_per_component():
    report = json.dumps({"scheduler": {"status": "healthy"}, "triggerer": {"status": "unhealthy"}}).encode()

    assert local_stack.airflow_component_healthy(report, "scheduler")
    assert not local_stack.airflow_component_healthy(report, "triggerer")
    assert not local_stack.airflow_component_healthy(report, "dag_processor")
    assert not local_stack.airflow_component_healthy(b"<html>", "scheduler")


def test_dags_of_a_model_are_those_named_model_double_underscore_stage():
    assert local_stack.is_model_dag("credit_default__data_ingestion", ["credit_default"])
    assert not local_stack.is_model_dag("credit_default_v2__data_ingestion", ["credit_default"])
    assert not local_stack.is_model_dag("housekeeping", ["credit_default"])


def test_dag_files_are_found_with_airflows_heuristic(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pipeline.py").write_text("from airflow.sdk import dag\n")
    (tmp_path / "helpers.py").write_text("def add(a, b):\n    return a + b\n")

    assert local_stack.dag_files(tmp_path) == {"sub/pipeline.py"}


def test_dag_files_leave_out_what_airflowignore_lists(tmp_path):
    (tmp_path / "pipeline.py").write_text("from airflow.sdk import dag\n")
    (tmp_path / "mlops_dags").mkdir()
    (tmp_path / "mlops_dags" / "model_dags.py").write_text("from airflow.sdk import dag\n")
    (tmp_path / ".airflowignore").write_text("# helpers, not DAG files\nmlops_dags/\n")

    assert local_stack.dag_files(tmp_path) == {"pipeline.py"}
    assert "mlops_dags/model_dags.py" not in local_stack.dag_files(local_stack.PROJECT_ROOT / "dags")


def test_model_names_are_the_config_file_stems(tmp_path):
    (tmp_path / "credit_default.yaml").write_text("name: credit_default\n")
    (tmp_path / "churn.yaml").write_text("name: churn\n")
    (tmp_path / "README.md").write_text("not a model\n")

    assert local_stack.model_names(tmp_path) == ["churn", "credit_default"]


# --- slow tests that start the real stack ---------------------------------------------------------


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def processes_with_airflow_home(airflow_home: Path) -> list[str]:
    """Command lines of every process whose environment has AIRFLOW_HOME=`airflow_home`."""
    needle = f"AIRFLOW_HOME={airflow_home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a private stack: own state folder, free ports, one demo model, two DAGs.

    Whatever a failing test leaves running is stopped with `down` afterwards.
    """
    dags, models = tmp_path / "dags", tmp_path / "models"
    dags.mkdir()
    models.mkdir()
    (dags / "demo_dags.py").write_text(DEMO_DAGS)
    (models / "demo.yaml").write_text("name: demo\n")
    airflow_port, mlflow_port, serving_port = free_ports(3)
    env = {name: value for name, value in os.environ.items() if name not in STACK_VARIABLES} | {
        "MLOPS_STATE_DIR": str(tmp_path / "state"),
        "MLOPS_DAGS_FOLDER": str(dags),
        "MLOPS_MODELS_DIR": str(models),
        "AIRFLOW_PORT": str(airflow_port),
        "MLFLOW_PORT": str(mlflow_port),
        "SERVING_PORT": str(serving_port),
    }
    yield env
    subprocess.run([sys.executable, str(SCRIPT), "down"], env=env, capture_output=True, timeout=180)


class StackProcess:
    """`local_stack.py up` as a subprocess, its output collected line by line."""

    def __init__(self, env: dict[str, str], **popen_args):
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "up"], env=env, cwd=local_stack.PROJECT_ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen_args,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            if text in line:
                return
        pytest.fail(f"no {text!r} in the output of `up`:\n{''.join(self.output)}")

    def rest_of_output(self) -> str:
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def api_for(env: dict[str, str]) -> local_stack.AirflowApi:
    state = Path(env["MLOPS_STATE_DIR"])
    passwords = json.loads((state / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
    return local_stack.AirflowApi(f"http://127.0.0.1:{env['AIRFLOW_PORT']}", "admin", passwords["admin"])


def trigger_once(api: local_stack.AirflowApi, dag_id: str) -> str:
    """Trigger one run of `dag_id` and return its id. On SQLite the api-server answers 500 when the
    database stayed locked past its busy timeout (the stack's first seconds, on a busy machine); the run
    was not created then, and a retry with the same run id can never create a second one (409)."""
    run_id = f"manual__{secrets.token_hex(4)}"
    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            api.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "dag_run_id": run_id},
                        attempts=1)
        except urllib.error.HTTPError as error:
            if error.code == 500 and attempt < attempts:
                time.sleep(2)
                continue
            if error.code != 409:
                raise
        return run_id


def wait_for_task_state(api: local_stack.AirflowApi, dag_id: str, run_id: str, wanted: set[str]) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        instances = api.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        states = {instance["state"] for instance in instances["task_instances"]}
        if states & wanted:
            return next(iter(states & wanted))
        if states & {"failed", "upstream_failed"}:
            pytest.fail(f"{dag_id} failed: {instances}")
        time.sleep(2)
    pytest.fail(f"{dag_id} never reached {wanted}")


@pytest.mark.slow
@pytest.mark.timeout(900)
@needs_proc
def test_up_serves_a_healthy_stack_that_runs_tasks_and_ctrl_c_stops_every_process(stack_env):
    airflow_home = Path(stack_env["MLOPS_STATE_DIR"]) / "airflow"
    stack = StackProcess(stack_env)
    try:
        stack.wait_for("The local stack is ready", timeout=480)
        stack.wait_for("Press Ctrl-C", timeout=10)

        health = get_json(f"http://127.0.0.1:{stack_env['AIRFLOW_PORT']}/api/v2/monitor/health")
        assert {name: part["status"] for name, part in health.items()} == {
            "metadatabase": "healthy", "scheduler": "healthy", "triggerer": "healthy", "dag_processor": "healthy",
        }
        with urllib.request.urlopen(f"http://127.0.0.1:{stack_env['MLFLOW_PORT']}/health", timeout=10) as answer:
            assert answer.status == 200
        # The stack leaves pausing to the DAGs (a model's `paused_on_start`) and to people, and says which wait.
        banner = stack.rest_of_output()
        assert "Paused 1 DAG(s), whose runs wait until you unpause them in the UI: demo__held" in banner
        api = api_for(stack_env)
        assert {dag["dag_id"]: dag["is_paused"] for dag in api.dags()} == {
            "demo__hello": False, "demo__sleepy": False, "demo__held": True, "demo__at_once": False}
        # A DAG that runs as soon as it is created: its first task, with no retry, does not meet an
        # api-server that is still booting (the scheduler starts once the api-server answers).
        assert banner.index("api-server     healthy") < banner.index("Started the scheduler")
        def runs() -> list[dict]:
            return api.request("GET", "/api/v2/dags/demo__at_once/dagRuns")["dag_runs"]

        assert local_stack.wait_until(runs, timeout=120), "the scheduler never ran demo__at_once"
        [first] = runs()
        assert wait_for_task_state(api, "demo__at_once", first["dag_run_id"], {"success"}) == "success"

        listing = subprocess.run(
            [str(BIN_AIRFLOW), "dags", "list", "--output", "json"],
            env=stack_env, capture_output=True, text=True, timeout=300,
        )
        assert listing.returncode == 0, listing.stderr
        assert "demo__hello" in listing.stdout

        run_id = trigger_once(api, "demo__hello")
        assert wait_for_task_state(api, "demo__hello", run_id, {"success"}) == "success"
    finally:
        stack.process.send_signal(signal.SIGINT)
        stack.process.wait(timeout=120)

    output = stack.rest_of_output()
    assert stack.process.returncode == 0, output
    assert "All processes of the local stack are stopped" in output
    assert processes_with_airflow_home(airflow_home) == []
    assert not (Path(stack_env["MLOPS_STATE_DIR"]) / "stack.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
@needs_proc
def test_down_stops_a_background_stack_including_a_running_task(stack_env):
    airflow_home = Path(stack_env["MLOPS_STATE_DIR"]) / "airflow"
    stack = StackProcess(stack_env, start_new_session=True)
    try:
        stack.wait_for("The local stack is ready", timeout=480)
        api = api_for(stack_env)
        run_id = trigger_once(api, "demo__sleepy")
        wait_for_task_state(api, "demo__sleepy", run_id, {"running"})
        assert local_stack.wait_until(
            lambda: any("sleep 600" in command for command in processes_with_airflow_home(airflow_home)),
            timeout=120,
        ), "the task's `sleep 600` never started"

        down = subprocess.run(
            [sys.executable, str(SCRIPT), "down"], env=stack_env, capture_output=True, text=True, timeout=180
        )
    finally:
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGTERM)

    assert down.returncode == 0, down.stdout + down.stderr
    assert "Asking the `up` process" in down.stdout
    assert stack.process.wait(timeout=30) == 0, stack.rest_of_output()
    assert processes_with_airflow_home(airflow_home) == []
    assert not (Path(stack_env["MLOPS_STATE_DIR"]) / "stack.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_fab_admin_is_created_at_the_first_start_and_a_second_start_keeps_it(tmp_path):
    config = production_auth_config(tmp_path)
    config.logs_dir.mkdir(parents=True)
    base = {name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW_", "MLFLOW_"))}
    env = local_stack.airflow_environment(config, local_stack.load_or_create_secrets(config.secrets_file), base)
    local_stack.ensure_airflow_db(config, env)

    local_stack.ensure_airflow_admin(config, env)
    local_stack.ensure_airflow_admin(config, env)

    assert "admin already exists" in (config.logs_dir / "airflow-users-create.log").read_text()
    listing = subprocess.run([str(local_stack.VENV_BIN / "airflow"), "users", "list", "--output", "json"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    users = json.loads(listing.stdout.strip().splitlines()[-1])  # after Airflow's log lines
    assert [(user["username"], user["roles"]) for user in users] == [("admin", ["Admin"])], users
