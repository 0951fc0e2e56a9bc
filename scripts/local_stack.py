"""Start, stop and inspect the local stack: Airflow, the MLflow tracking server, the prediction service.

    scripts/local_stack.py up        start everything, wait until healthy, stay in the foreground
    scripts/local_stack.py down      stop every process a stack started (also from another terminal)
    scripts/local_stack.py status    which services are up and healthy
    scripts/local_stack.py airflow … the Airflow CLI with the stack's environment (what bin/airflow runs)

`make run`, `make stop` and `make status` call the first three. Everything the stack writes lives in
the state folder (include/core/settings.py): the Airflow home with its SQLite database, the MLflow store and
artifacts, one log per service in state/logs/, and state/stack.json, which records the processes so
that `down` can stop them from any terminal.

The same code runs the production topology of docker-compose.yaml natively (tests/test_production_topology.py):
a StackConfig with PostgreSQL URLs and a CeleryConfig gives Airflow and MLflow PostgreSQL databases, the
CeleryExecutor with a Redis broker, and one `airflow celery worker` among the services; with
`production_auth` it also logs in as production does: Airflow's FAB auth manager with an admin user
created at start, MLflow's basic-auth app, and every MLflow client given the credentials.

Each service runs in its own session, so a Ctrl-C in the terminal reaches only the `up` process, which
then stops the services itself. Airflow's task processes put themselves in process groups of their
own, so stopping also sweeps every process whose environment says it belongs to this stack.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn, TextIO

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from include.core import settings  # noqa: E402  (needs the project root on sys.path, set just above)

VENV_BIN = Path(sys.executable).parent
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
ADMIN_USER = "admin"
MLFLOW_ADMIN_USER = "admin"
STACK_MARKER = "MLOPS_LOCAL_STACK"
HEALTH_TIMEOUT_S = 300
PARSE_TIMEOUT_S = 150
PARSE_QUIET_S = 20
STOP_GRACE_S = 20
HAS_PROC = Path("/proc/self/stat").exists()


class StackError(Exception):
    """A problem the user has to act on; the message says what and where to look."""


class StopRequested(BaseException):
    """Ctrl-C, SIGTERM (e.g. from `make stop`) or SIGHUP asked the `up` process to stop the stack."""


@dataclass(frozen=True)
class CeleryConfig:
    """The CeleryExecutor's broker, result backend and the one worker the stack starts.

    `queue` and `key_prefix` (Kombu's `global_keyprefix` for every Redis key) keep several stacks on
    one Redis database apart: each worker takes only its own stack's tasks.
    """

    broker_url: str
    result_backend: str
    queue: str = "default"
    key_prefix: str = ""
    concurrency: int = 2


@dataclass(frozen=True)
class StackConfig:
    """Where the stack keeps its state and where its services listen."""

    root: Path
    state: Path
    dags_folder: Path
    models_dir: Path
    host: str = "127.0.0.1"
    airflow_port: int = 8080
    mlflow_port: int = 5000
    serving_port: int = 8000
    # The production topology (docker-compose.yaml) on this machine: PostgreSQL databases and the
    # CeleryExecutor instead of SQLite files and the LocalExecutor. None keeps the local defaults.
    airflow_database_url: str | None = None
    mlflow_backend_uri: str | None = None
    celery: CeleryConfig | None = None
    # Production's logins: Airflow's FAB auth manager (users in the metadata database, an admin
    # created at start) and MLflow's basic-auth app, whose clients all log in. False keeps `make run`'s
    # SimpleAuthManager and an MLflow without login, which are enough on one laptop, on loopback only.
    production_auth: bool = False

    @classmethod
    def from_environ(cls) -> StackConfig:
        """The configuration for this machine: defaults overridden by the environment variables
        MLOPS_STATE_DIR, MLOPS_DAGS_FOLDER, MLOPS_MODELS_DIR, MLOPS_HOST, AIRFLOW_PORT, MLFLOW_PORT and
        SERVING_PORT."""
        return cls(
            root=settings.PROJECT_ROOT,
            state=settings.state_dir().resolve(),
            dags_folder=Path(os.environ.get("MLOPS_DAGS_FOLDER", settings.PROJECT_ROOT / "dags")).resolve(),
            models_dir=settings.models_dir().resolve(),
            host=os.environ.get("MLOPS_HOST", "127.0.0.1"),
            airflow_port=port_from_env("AIRFLOW_PORT", 8080),
            mlflow_port=port_from_env("MLFLOW_PORT", 5000),
            serving_port=port_from_env("SERVING_PORT", 8000),
        )

    @property
    def airflow_home(self) -> Path:
        return self.state / "airflow"

    @property
    def logs_dir(self) -> Path:
        return self.state / "logs"

    @property
    def stack_file(self) -> Path:
        return self.state / "stack.json"

    @property
    def secrets_file(self) -> Path:
        return self.airflow_home / "stack_secrets.json"

    @property
    def passwords_file(self) -> Path:
        return self.airflow_home / "simple_auth_manager_passwords.json.generated"

    @property
    def airflow_db(self) -> Path:
        return self.airflow_home / "airflow.db"

    @property
    def airflow_sql_alchemy_conn(self) -> str:
        return self.airflow_database_url or f"sqlite:///{self.airflow_db}"

    @property
    def mlflow_dir(self) -> Path:
        return self.state / "mlflow"

    @property
    def mlflow_backend_store_uri(self) -> str:
        return self.mlflow_backend_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_auth_config_file(self) -> Path:
        return self.mlflow_dir / "basic_auth.ini"

    @property
    def mlflow_auth_database_uri(self) -> str:
        """Where MLflow's basic-auth app keeps its users: MLflow's PostgreSQL database, as in
        docker-compose.yaml (its tables and migration history are its own), else a SQLite file."""
        return self.mlflow_backend_uri or f"sqlite:///{self.mlflow_dir / 'basic_auth.db'}"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def serving_url(self) -> str:
        return f"http://{self.host}:{self.serving_port}"


def port_from_env(name: str, default: int) -> int:
    """The TCP port in environment variable `name`, or `default`; a clear error if it is not a port."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StackError(f"{name} must be a TCP port number between 1 and 65535, got {raw!r}")
    return int(raw)


def load_or_create_secrets(path: Path) -> dict[str, str]:
    """The stack's secrets, generated on first use and kept in the state folder.

    The JWT secret signs the UI/API tokens and the tokens the scheduler gives each task to call the
    execution API, so every component must hold the same one (64 bytes or more, as HS512 wants);
    keeping it, the API secret key and the Fernet key across restarts keeps browser sessions and
    encrypted connections valid. The serving admin token lets tasks ask the prediction service to
    reload a model. The passwords of Airflow's and MLflow's admin users and the secret key of MLflow's
    basic-auth app (its sign-up form's CSRF token) are used with `production_auth` only.
    """
    generators = {
        "jwt_secret": lambda: secrets.token_urlsafe(64),
        "api_secret_key": lambda: secrets.token_urlsafe(32),
        "fernet_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "serving_admin_token": lambda: secrets.token_urlsafe(32),
        "airflow_admin_password": lambda: secrets.token_urlsafe(24),
        "mlflow_admin_password": lambda: secrets.token_urlsafe(24),
        "mlflow_flask_secret_key": lambda: secrets.token_urlsafe(32),
    }
    values = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: generate() for name, generate in generators.items() if name not in values}
    if missing:
        values |= missing
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(values, indent=2) + "\n")
        partial.chmod(0o600)
        partial.replace(path)
    return values


def airflow_environment(
    config: StackConfig, stack_secrets: Mapping[str, str], base: Mapping[str, str]
) -> dict[str, str]:
    """The environment every process of the stack gets (Airflow's, MLflow, the prediction service and
    bin/airflow): `base` (normally os.environ) plus the stack's settings, which win over `base`."""
    home = config.airflow_home
    python_path = os.pathsep.join(filter(None, [str(config.root), base.get("PYTHONPATH")]))
    env = {
        **base,
        STACK_MARKER: "1",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(config.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if config.celery else "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",  # task processes at once: enough for the demo on 2 cores
        # A task's first call to the execution API waits for the api-server, which on 2 busy cores and
        # SQLite can take longer than Airflow's 5 s x 5 attempts while the stack starts; the task would
        # then fail before it began. 30 s x 8 attempts (waits growing to 90 s) ride that out.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "8",
        # Airflow's default for a DAG that does not say; every model DAG says (`paused_on_start` in its config).
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__FERNET_KEY": stack_secrets["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{config.airflow_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": config.airflow_sql_alchemy_conn,
        "AIRFLOW__API__HOST": config.host,
        "AIRFLOW__API__PORT": str(config.airflow_port),
        "AIRFLOW__API__BASE_URL": config.airflow_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": stack_secrets["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": stack_secrets["jwt_secret"],
        # Edited and new DAG files show up within ~10 s instead of Airflow's default 5 minutes.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "2",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "dag_bundles"),
        "PYTHONPATH": python_path,  # the DAGs import the `include` package
        "MLFLOW_TRACKING_URI": config.mlflow_url,
        "MLOPS_STATE_DIR": str(config.state),
        "MLOPS_MODELS_DIR": str(config.models_dir),
        "MLOPS_SERVING_URL": config.serving_url,
        "MLOPS_SERVING_ADMIN_TOKEN": stack_secrets["serving_admin_token"],
    }
    if config.celery:
        env |= {
            "AIRFLOW__CELERY__BROKER_URL": config.celery.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": config.celery.result_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(config.celery.concurrency),
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": config.celery.queue,
        }
        if config.celery.key_prefix:
            env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"] = config.celery.key_prefix
    return env | (production_auth_environment(config, stack_secrets) if config.production_auth
                  else simple_auth_environment(config))


def simple_auth_environment(config: StackConfig) -> dict[str, str]:
    """`make run`'s login: Airflow's SimpleAuthManager with one admin whose password the api-server
    generates into a file; MLflow asks for none."""
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(config.passwords_file),
    }


def production_auth_environment(config: StackConfig, stack_secrets: Mapping[str, str]) -> dict[str, str]:
    """Production's logins (docker-compose.yaml's): Airflow's FAB auth manager, and MLflow's basic-auth
    app with its clients' credentials.

    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD are what MLflow's client sends with every
    request: the tasks, the UI plugin in the api-server, the prediction service and verify-release
    read the registry with them. The MLFLOW_AUTH_* and secret-key settings are the server's: the
    basic-auth app creates its admin user from them the first time it starts on an empty user store.
    """
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
        "MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN_USER,
        "MLFLOW_TRACKING_PASSWORD": stack_secrets["mlflow_admin_password"],
        "MLFLOW_AUTH_CONFIG_PATH": str(config.mlflow_auth_config_file),
        "MLFLOW_AUTH_ADMIN_USERNAME": MLFLOW_ADMIN_USER,
        "MLFLOW_AUTH_ADMIN_PASSWORD": stack_secrets["mlflow_admin_password"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": stack_secrets["mlflow_flask_secret_key"],
    }


def write_mlflow_auth_config(config: StackConfig) -> None:
    """The configuration of MLflow's basic-auth app (MLFLOW_AUTH_CONFIG_PATH): a logged-in user may read
    every experiment and model (`default_permission = READ`), changing one takes a permission or the
    admin; anonymous requests are refused. The admin's name and password come from the environment.

    MLflow checks the password of every request against its scrypt hash, about 0.2 s of CPU that each
    of the prediction service's alias polls and of a training run's dozens of calls would pay. A
    verified password is therefore cached for 60 s (a password changed through MLflow's API stays
    valid that long in the server's other worker processes).
    """
    config.mlflow_auth_config_file.parent.mkdir(parents=True, exist_ok=True)
    partial = config.mlflow_auth_config_file.with_suffix(".tmp")
    partial.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {config.mlflow_auth_database_uri}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"
    )
    partial.chmod(0o600)  # a database URL may hold a password
    partial.replace(config.mlflow_auth_config_file)


@dataclass(frozen=True)
class Service:
    """One long-running process of the stack and how to tell that it is healthy.

    Healthy means `health_url` answers 200 and, for an Airflow component, Airflow's own health report
    (fetched from `health_url`) says `airflow_component` is "healthy".
    """

    name: str
    argv: tuple[str, ...]
    port: int | None = None
    health_url: str | None = None
    airflow_component: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)


def stack_services(config: StackConfig) -> list[Service]:
    """The services `up` starts, in start order; the prediction service once include/delivery/serving.py exists.

    MLflow comes first: it needs no Airflow database, so it boots while `up` prepares that.
    """
    airflow = str(VENV_BIN / "airflow")
    airflow_health = f"{config.airflow_url}/api/v2/monitor/health"

    def airflow_component(command: str, *options: str) -> Service:
        """An Airflow component whose health Airflow reports under the command's name."""
        return Service(
            command,
            (airflow, command, *options),
            health_url=airflow_health,
            airflow_component=command.replace("-", "_"),
        )

    mlflow_options = {
        "--backend-store-uri": config.mlflow_backend_store_uri,
        "--artifacts-destination": str(config.mlflow_dir / "artifacts"),
        "--host": config.host,
        "--port": str(config.mlflow_port),
        "--workers": "1",
    }
    if config.production_auth:
        mlflow_options["--app-name"] = "basic-auth"
    services = [
        Service(
            "mlflow",
            (str(VENV_BIN / "mlflow"), "server", "--serve-artifacts", *flatten(mlflow_options)),
            port=config.mlflow_port,
            health_url=f"{config.mlflow_url}/health",
            # The GenAI job runner (huey workers) is of no use here and costs memory and CPU.
            extra_env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        ),
        Service(
            "api-server",
            (airflow, "api-server", "--host", config.host, "--port", str(config.airflow_port)),
            port=config.airflow_port,
            health_url=airflow_health,
            airflow_component="metadatabase",
        ),
        # Task logs are files on this machine that the api-server reads itself, so the scheduler and
        # triggerer need no log server (it would listen on all interfaces, on fixed ports 8793/8794).
        airflow_component("scheduler", "--skip-serve-logs"),
        airflow_component("dag-processor"),
        airflow_component("triggerer", "--skip-serve-logs"),
    ]
    if config.celery:
        # Airflow's health report does not cover Celery workers; a worker that dies is caught by
        # its exit, and one that runs takes the tasks queued for it.
        worker_options = {
            "--queues": config.celery.queue,
            "--concurrency": str(config.celery.concurrency),
            "--celery-hostname": f"{config.celery.queue}@%h",
        }
        services.append(Service("celery-worker", (airflow, "celery", "worker", "--skip-serve-logs",
                                                  *flatten(worker_options))))
    if (config.root / "include" / "delivery" / "serving.py").exists():
        serving_options = {"--host": config.host, "--port": str(config.serving_port)}
        services.append(
            Service(
                "serving",
                (str(VENV_BIN / "uvicorn"), "include.delivery.serving:app", *flatten(serving_options)),
                port=config.serving_port,
                health_url=f"{config.serving_url}/health",
            )
        )
    return services


def flatten(options: Mapping[str, str]) -> list[str]:
    """Command-line options from a mapping: {"--port": "80"} -> ["--port", "80"]."""
    return [part for option in options.items() for part in option]


@dataclass(frozen=True)
class ServiceProcess:
    """A started service as recorded in state/stack.json.

    `started` is the process start time (clock ticks since boot, from /proc) so that a recycled pid is
    never mistaken for the service. Each service leads its own session, so its process group id is its pid.
    """

    name: str
    pid: int
    pgid: int
    started: int | None
    log: str
    port: int | None
    health_url: str | None
    airflow_component: str | None


@dataclass(frozen=True)
class StackRecord:
    """The content of state/stack.json: who runs the stack, its processes and its URLs."""

    supervisor_pid: int
    supervisor_started: int | None
    services: tuple[ServiceProcess, ...]
    urls: dict[str, str]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> StackRecord | None:
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(
            supervisor_pid=data["supervisor_pid"],
            supervisor_started=data["supervisor_started"],
            services=tuple(ServiceProcess(**service) for service in data["services"]),
            urls=data["urls"],
        )

    def supervisor_alive(self) -> bool:
        """Whether the `up` process that started the stack still runs."""
        return process_alive(self.supervisor_pid, self.supervisor_started)

    def live_services(self) -> list[ServiceProcess]:
        return [service for service in self.services if process_alive(service.pid, service.started)]


# --- processes ------------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks) of a live process, from /proc; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[2]), int(fields[19])


def proc_session(pid: int) -> int | None:
    """The session id of a process, from /proc; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2 :].split()[3])


def process_start_time(pid: int) -> int | None:
    stat = proc_stat(pid) if HAS_PROC else None
    return stat[2] if stat else None


def process_alive(pid: int, started: int | None) -> bool:
    """Whether `pid` is a running (not zombie) process that started at `started` (if known)."""
    if not HAS_PROC:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    stat = proc_stat(pid)
    if stat is None or stat[0] == "Z":
        return False
    return started is None or stat[2] == started


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def live_group_members(pgids: Iterable[int]) -> list[int]:
    """Pids of the running (not zombie) processes in any of the process groups `pgids`."""
    pgids = set(pgids)
    members = []
    if not HAS_PROC:
        for pgid in pgids:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, 0)
                members.append(pgid)
        return members
    for pid in all_pids():
        stat = proc_stat(pid)
        if stat and stat[0] != "Z" and stat[1] in pgids:
            members.append(pid)
    return members


def own_lineage() -> set[int]:
    """This process and its ancestors: never to be signalled, whatever their environment says."""
    lineage, pid = set(), os.getpid()
    while pid > 1 and pid not in lineage:
        lineage.add(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return lineage


def stack_processes(airflow_home: Path, sessions: Iterable[int] = ()) -> list[int]:
    """Pids of running processes started with this stack's environment (AIRFLOW_HOME and the marker),
    or still in one of the services' `sessions`.

    This finds what escaped the services' process groups: Airflow's task supervisors and task
    processes call setpgid(0, 0), and a service killed with SIGKILL leaves its children behind.
    The marker spares a shell in which someone merely exported the same AIRFLOW_HOME. The session
    check catches task processes whose setproctitle overwrote the memory /proc/<pid>/environ reads.
    """
    if not HAS_PROC:
        return []
    wanted = {f"AIRFLOW_HOME={airflow_home}".encode(), f"{STACK_MARKER}=1".encode()}
    sessions = set(sessions)
    spared = own_lineage()
    found = []
    for pid in all_pids():
        if pid in spared:
            continue
        if sessions and proc_session(pid) in sessions and process_alive(pid, None):
            found.append(pid)
            continue
        try:
            environ = set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= environ and process_alive(pid, None):
            found.append(pid)
    return found


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:100]


def signal_groups(pgids: Iterable[int], signum: signal.Signals) -> None:
    for pgid in pgids:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)


def signal_pids(pids: Iterable[int], signum: signal.Signals) -> None:
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.2) -> bool:
    """Poll `condition()` until it is true or `timeout` seconds have passed; return whether it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def stop_stack(config: StackConfig, record: StackRecord | None) -> bool:
    """Stop every process of the stack, print what was stopped, and return whether none is left.

    First the services that serve nobody (scheduler, dag-processor, triggerer), so that tasks ended by
    the stop can still report their state to the api-server and finish their MLflow runs; then the
    servers. Each wave's process groups get SIGTERM, and SIGKILL after STOP_GRACE_S seconds. Last,
    the processes that carry the stack's environment outside those groups (see `stack_processes`).
    """
    t0 = time.monotonic()
    services = list(reversed(record.services)) if record else []
    clients = [service for service in services if service.port is None]
    servers = [service for service in services if service.port is not None]
    stopped = stop_services(clients) + stop_services(servers)

    sessions = [service.pgid for service in services]
    strays = stack_processes(config.airflow_home, sessions)
    if strays:
        print(f"Stopping {len(strays)} process(es) of the stack outside the services' process groups:")
        for pid in strays:
            print(f"  pid {pid}: {command_line(pid)}")
        signal_pids(strays, signal.SIGTERM)
        if not wait_until(lambda: not stack_processes(config.airflow_home, sessions), 5):
            signal_pids(stack_processes(config.airflow_home, sessions), signal.SIGKILL)
            wait_until(lambda: not stack_processes(config.airflow_home, sessions), 5)

    left = set(live_group_members(sessions)) | set(stack_processes(config.airflow_home, sessions))
    if left:
        details = "\n".join(f"  pid {pid}: {command_line(pid)}" for pid in sorted(left))
        print(f"Error: these processes of the stack are still running:\n{details}", file=sys.stderr)
        return False
    if stopped or strays:
        print(f"All processes of the local stack are stopped ({time.monotonic() - t0:.0f} s).")
    return True


def stop_services(services: list[ServiceProcess]) -> list[ServiceProcess]:
    """SIGTERM the process groups of `services`, SIGKILL those still running after STOP_GRACE_S;
    return the services that were running."""
    running = [service for service in services if live_group_members([service.pgid])]
    if not running:
        return []
    print(f"Stopping {', '.join(s.name for s in running)} (waiting up to {STOP_GRACE_S} s)...")
    signal_groups([s.pgid for s in running], signal.SIGTERM)
    wait_until(lambda: not live_group_members(s.pgid for s in running), STOP_GRACE_S)
    for service in running:
        why = ", waiting for running tasks" if service.name == "scheduler" else ""
        if live_group_members([service.pgid]):
            signal_groups([service.pgid], signal.SIGKILL)
            print(f"  killed  {service.name:<14} pid {service.pid} (still running after {STOP_GRACE_S} s{why})")
        else:
            print(f"  stopped {service.name:<14} pid {service.pid}")
    wait_until(lambda: not live_group_members(s.pgid for s in running), 5)
    return running


# --- health and the Airflow REST API ------------------------------------------------------------


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """Status and body of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, ValueError):
        return 0, b""


def health_of(services: Iterable[Service | ServiceProcess]) -> dict[str, bool]:
    """Whether each service is healthy right now, by name (each health URL is fetched once)."""
    answers: dict[str, tuple[int, bytes]] = {}
    healthy = {}
    for service in services:
        if service.health_url is None:
            healthy[service.name] = True
            continue
        if service.health_url not in answers:
            answers[service.health_url] = http_get(service.health_url)
        status, body = answers[service.health_url]
        healthy[service.name] = status == 200 and (
            service.airflow_component is None or airflow_component_healthy(body, service.airflow_component)
        )
    return healthy


def airflow_component_healthy(health_body: bytes, component: str) -> bool:
    """Whether Airflow's /api/v2/monitor/health answer says `component` is healthy."""
    try:
        report = json.loads(health_body)
    except ValueError:
        return False
    return (report.get(component) or {}).get("status") == "healthy"


class AirflowApi:
    """The few calls of Airflow's REST API v2 the stack needs, authenticated as the admin user."""

    def __init__(self, base_url: str, username: str, password: str):
        self.base_url = base_url
        self.credentials = {"username": username, "password": password}
        self.token: str | None = None

    def request(self, method: str, path: str, body: dict | None = None, attempts: int = 3) -> Any:
        """Call the API and return the decoded answer.

        Only idempotent calls go through here, so a timed-out call is retried: on SQLite the
        api-server can wait a while for the scheduler's writes. An expired token is renewed.
        """
        for attempt in range(1, attempts + 1):
            try:
                if self.token is None:
                    self.token = self._call("POST", "/auth/token", self.credentials)["access_token"]
                return self._call(method, path, body, {"Authorization": f"Bearer {self.token}"})
            except urllib.error.HTTPError as error:
                if error.code != 401 or attempt == attempts:
                    raise
                self.token = None
            except OSError:
                if attempt == attempts:
                    raise

    def _call(self, method: str, path: str, body: dict | None, headers: dict | None = None) -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def _all(self, path: str, key: str) -> list[dict]:
        items: list[dict] = []
        while True:
            page = self.request("GET", f"{path}?limit=100&offset={len(items)}")
            items += page[key]
            if not page[key] or len(items) >= page["total_entries"]:
                return items

    def dags(self) -> list[dict]:
        return self._all("/api/v2/dags", "dags")

    def import_errors(self) -> list[dict]:
        return self._all("/api/v2/importErrors", "import_errors")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{urllib.parse.quote(dag_id)}", {"is_paused": False})


def admin_password(config: StackConfig) -> str:
    """The Airflow admin's password: with `production_auth` the one generated into the stack secrets
    (the FAB user is created with it), else the one the api-server generated into the
    SimpleAuthManager passwords file."""
    if config.production_auth:
        return load_or_create_secrets(config.secrets_file)["airflow_admin_password"]
    return json.loads(config.passwords_file.read_text())[ADMIN_USER]


def airflowignore_patterns(dags_folder: Path) -> list[str]:
    """The glob patterns of `dags_folder/.airflowignore` (Airflow 3's default syntax), without comments."""
    ignore_file = dags_folder / ".airflowignore"
    if not ignore_file.exists():
        return []
    lines = (line.split("#", 1)[0].strip() for line in ignore_file.read_text().splitlines())
    return [line.rstrip("/") for line in lines if line]


def dag_files(dags_folder: Path) -> set[str]:
    """Files of `dags_folder` (relative paths) the DAG processor parses: Python files that mention both
    "airflow" and "dag" or "asset", Airflow's own safe-mode heuristic, outside what `.airflowignore`
    lists (the DAG-building helpers in `mlops_dags/`)."""
    ignored = airflowignore_patterns(dags_folder)
    files = set()
    for path in dags_folder.rglob("*.py"):
        relative = path.relative_to(dags_folder).as_posix()
        if any(fnmatch.fnmatch(relative, pattern) or relative.startswith(f"{pattern}/") for pattern in ignored):
            continue
        content = path.read_bytes().lower()
        if b"airflow" in content and (b"dag" in content or b"asset" in content):
            files.add(path.relative_to(dags_folder).as_posix())
    return files


def model_names(models_dir: Path) -> list[str]:
    """The demo models: one per model config file include/models/<model>.yaml."""
    return sorted(path.stem for path in models_dir.glob("*.yaml"))


def is_model_dag(dag_id: str, models: Iterable[str]) -> bool:
    """Whether `dag_id` belongs to one of `models` (DAG ids are `<model>__<stage>`)."""
    return any(dag_id.startswith(f"{model}__") for model in models)


def wait_for_dag_files_parsed(
    api: AirflowApi, dags_folder: Path, timeout: float, quiet: float
) -> tuple[list[dict], list[dict]]:
    """Wait until the DAG processor has parsed the DAG files; return (DAGs, import errors).

    Parsed means that every DAG file has produced a DAG or an import error. A file that produces
    neither (a module that merely mentions DAGs) would never let that happen, so the wait also ends
    once something is parsed and nothing has changed for `quiet` seconds, and after `timeout` seconds.
    """
    expected = dag_files(dags_folder)
    if not expected:
        print(f"Warning: no DAG files in {display(dags_folder)} yet.")
        return [], []
    print(f"Waiting for the DAG processor to parse {len(expected)} DAG file(s)...")
    deadline = time.monotonic() + timeout
    seen_before: set[str] = set()
    last_change = time.monotonic()
    while True:
        try:
            dags, errors = api.dags(), api.import_errors()
        except (OSError, ValueError):
            dags, errors = [], []
        seen = {dag["relative_fileloc"] for dag in dags} | {error["filename"] for error in errors}
        if seen != seen_before:
            seen_before, last_change = seen, time.monotonic()
        missing = expected - seen
        settled = bool(seen) and time.monotonic() - last_change >= quiet
        if not missing or settled or time.monotonic() >= deadline:
            if missing:
                print(
                    f"No DAG and no import error (yet) from {', '.join(sorted(missing))}; "
                    "the DAG processor keeps parsing the DAG folder while the stack runs."
                )
            return dags, errors
        time.sleep(3)


# --- up, down, status -------------------------------------------------------------------------------


def display(path: Path | str) -> str:
    """`path` relative to the working directory when it is below it (shorter to read)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def log_tail(path: Path | str, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def refuse_if_running(config: StackConfig) -> None:
    """Raise if a stack with this state folder is running, or left processes behind."""
    record = StackRecord.load(config.stack_file)
    if record and (record.supervisor_alive() or record.live_services()):
        raise StackError(
            f"The local stack is already running (started by pid {record.supervisor_pid}; "
            f"Airflow at {record.urls.get('Airflow')}). Stop it with `make stop` first."
        )
    leftovers = stack_processes(config.airflow_home, [s.pgid for s in record.services] if record else [])
    if leftovers:
        raise StackError(
            f"Processes of an earlier stack are still running (pids {leftovers}). "
            "Stop them with `make stop` first."
        )


def refuse_taken_ports(config: StackConfig, services: Iterable[Service]) -> None:
    """Raise if another program already listens on a port a service needs."""
    variables = {config.airflow_port: "AIRFLOW_PORT", config.mlflow_port: "MLFLOW_PORT"}
    variables[config.serving_port] = "SERVING_PORT"
    for service in services:
        if service.port is None:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((config.host, service.port))
            except OSError as error:
                raise StackError(
                    f"Port {service.port} on {config.host}, needed by {service.name}, is taken by another "
                    f"program ({error.strerror}). Stop that program or choose another port, e.g. "
                    f"`{variables[service.port]}={service.port + 1} make run`."
                ) from None


def ensure_airflow_db(config: StackConfig, env: Mapping[str, str], announce: TextIO = sys.stdout) -> None:
    """Create or upgrade the Airflow metadata database, unless this Airflow version already did it.

    `airflow db migrate` is idempotent but takes ~20 s, so a stamp per Airflow version skips it on restarts.
    """
    stamp = config.airflow_home / f".db-migrated-{version('apache-airflow')}"
    if stamp.exists() and (config.airflow_database_url or config.airflow_db.exists()):
        return
    log = config.logs_dir / "airflow-db-migrate.log"
    where = display(config.airflow_db) if config.airflow_database_url is None else "(PostgreSQL)"
    print(f"Preparing the Airflow database {where} (log: {display(log)})...", file=announce)
    with log.open("w") as output:
        result = subprocess.run(
            [str(VENV_BIN / "airflow"), "db", "migrate"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        raise StackError(
            f"`airflow db migrate` failed (exit {result.returncode}); {display(log)} ends with:\n"
            f"{log_tail(log)}"
        )
    stamp.touch()


def ensure_airflow_admin(config: StackConfig, env: Mapping[str, str], announce: TextIO = sys.stdout) -> None:
    """Create the FAB auth manager's admin user with the stack's generated password, unless it exists
    (`airflow users create` then says so and succeeds). Needs the migrated metadata database, whose
    `airflow db migrate` creates FAB's tables too."""
    log = config.logs_dir / "airflow-users-create.log"
    print(f"Creating the Airflow admin user {ADMIN_USER!r} unless it exists (log: {display(log)})...", file=announce)
    user = {"--role": "Admin", "--username": ADMIN_USER, "--password": admin_password(config),
            "--firstname": "Airflow", "--lastname": "Admin", "--email": f"{ADMIN_USER}@example.invalid"}
    with log.open("w") as output:
        result = subprocess.run([str(VENV_BIN / "airflow"), "users", "create", *flatten(user)], env=env,
                                stdout=output, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise StackError(
            f"`airflow users create` failed (exit {result.returncode}); {display(log)} ends with:\n{log_tail(log)}"
        )


def start_service(
    service: Service, config: StackConfig, env: Mapping[str, str]
) -> tuple[subprocess.Popen, ServiceProcess]:
    """Start `service` in a session of its own, its output appended to state/logs/<name>.log."""
    log = config.logs_dir / f"{service.name}.log"
    with log.open("a") as output:
        output.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(service.argv)}\n")
        output.flush()
        process = subprocess.Popen(
            service.argv,
            env={**env, **service.extra_env},
            cwd=config.root,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, ServiceProcess(
        name=service.name,
        pid=process.pid,
        pgid=os.getpgid(process.pid),
        started=process_start_time(process.pid),
        log=str(log),
        port=service.port,
        health_url=service.health_url,
        airflow_component=service.airflow_component,
    )


def raise_if_exited(started: Mapping[str, tuple[subprocess.Popen, ServiceProcess]]) -> None:
    """Raise, quoting the end of its log, if a service has exited: services never exit on their own."""
    for name, (process, record) in started.items():
        if process.poll() is not None:
            raise StackError(
                f"{name} exited with code {process.returncode}; {display(record.log)} ends with:\n"
                f"{log_tail(record.log)}"
            )


def wait_until_healthy(
    started: Mapping[str, tuple[subprocess.Popen, ServiceProcess]], t0: float, timeout: float
) -> None:
    """Wait until every started service is healthy, printing each as it becomes so.

    Raises, pointing at the log, as soon as a service exits, or when `timeout` seconds have passed.
    """
    pending = {name: record for name, (_, record) in started.items()}
    deadline = time.monotonic() + timeout
    while pending:
        raise_if_exited(started)
        for name, healthy in health_of(pending.values()).items():
            if healthy:
                print(f"  {name:<14} healthy after {time.monotonic() - t0:3.0f} s")
                del pending[name]
        if not pending:
            return
        if time.monotonic() >= deadline:
            tails = "\n".join(f"{display(r.log)} ends with:\n{log_tail(r.log)}" for r in pending.values())
            raise StackError(f"Not healthy after {timeout} s: {', '.join(pending)}.\n{tails}")
        time.sleep(2)


def start_services(
    config: StackConfig,
    env: Mapping[str, str],
    services: list[Service],
    start: Callable[[Service], None],
    started: Mapping[str, tuple[subprocess.Popen, ServiceProcess]],
    t0: float,
) -> None:
    """Start `services` with `start` (which adds each to `started`) and wait until all are healthy.

    MLflow, first in the list, boots while the Airflow database is prepared. The scheduler starts
    last, once the api-server answers: every task it starts first calls the api-server's execution
    API, and the DAGs that run as soon as they are created (`paused_on_start: false`) would
    otherwise fail their first tasks with "connection refused" while the api-server boots. Whatever
    was started stays in `started` when this raises, for the caller to stop.
    """
    mlflow, *airflow_and_serving = services
    if config.production_auth:
        write_mlflow_auth_config(config)
    start(mlflow)
    ensure_airflow_db(config, env)
    if config.production_auth:
        ensure_airflow_admin(config, env)
    for service in airflow_and_serving:
        if service.name != "scheduler":
            start(service)
    print(f"Started {', '.join(started)}; waiting until they are healthy...")
    wait_until_healthy({"api-server": started["api-server"]}, t0, HEALTH_TIMEOUT_S)
    for service in airflow_and_serving:
        if service.name == "scheduler":
            start(service)
            print("Started the scheduler, now that the api-server answers")
    wait_until_healthy({name: each for name, each in started.items() if name != "api-server"}, t0, HEALTH_TIMEOUT_S)


def print_ready(
    config: StackConfig,
    urls: Mapping[str, str],
    password: str,
    paused: list[str],
    import_errors: list[dict],
    seconds: float,
) -> None:
    """The banner: where everything is, how to log in, which DAGs are paused or failed to import, how to stop."""
    lines = [
        "",
        f"The local stack is ready (took {seconds:.0f} s).",
        "",
        f"  Airflow      {urls['Airflow']}   login: {ADMIN_USER} / {password}",
        f"  MLflow       {urls['MLflow']}",
    ]
    if "Prediction service" in urls:
        lines.append(f"  Predictions  {urls['Prediction service']}")
    lines += [
        f"  Logs         {display(config.logs_dir)}/<service>.log",
        f"  Task logs    {display(config.airflow_home / 'logs')}/",
        "  Airflow CLI  bin/airflow <command> runs Airflow's CLI with the stack's settings, e.g.",
        "               bin/airflow dags trigger credit_default__data_ingestion --conf '{...}'",
        "",
    ]
    if paused:
        lines.append(f"Paused {len(paused)} DAG(s), whose runs wait until you unpause them in the UI: "
                     f"{', '.join(sorted(paused))}")
    for error in import_errors:
        trace = error["stack_trace"].strip().splitlines()
        lines.append(f"Import error in {error['filename']}: {trace[-1] if trace else ''}")
    if import_errors:
        lines.append("  (full traces: the Airflow UI, or `bin/airflow dags list-import-errors`)")
    lines += ["Press Ctrl-C here, or run `make stop` in another terminal, to stop everything.", ""]
    print("\n".join(lines))


def supervise(started: Mapping[str, tuple[subprocess.Popen, ServiceProcess]]) -> NoReturn:
    """Stay in the foreground until asked to stop; raise when a service exits.

    The stack never pauses or unpauses a DAG: each model DAG is created unpaused, or paused when its
    config says `paused_on_start: true`, and then keeps whatever a person chooses in the UI.
    """
    while True:
        raise_if_exited(started)
        time.sleep(1)


def request_stop(signum: int, _frame: object) -> NoReturn:
    raise StopRequested(signal.Signals(signum).name)


def up(config: StackConfig) -> int:
    """Start the stack, wait until it is healthy and its DAGs are parsed, then run until stopped."""
    t0 = time.monotonic()
    services = stack_services(config)
    refuse_if_running(config)
    refuse_taken_ports(config, services)
    for folder in (config.airflow_home, config.logs_dir, config.mlflow_dir / "artifacts"):
        folder.mkdir(parents=True, exist_ok=True)
    env = airflow_environment(config, load_or_create_secrets(config.secrets_file), os.environ)
    urls = {"Airflow": config.airflow_url, "MLflow": config.mlflow_url}
    if any(service.name == "serving" for service in services):
        urls["Prediction service"] = config.serving_url
    started: dict[str, tuple[subprocess.Popen, ServiceProcess]] = {}

    def record() -> StackRecord:
        processes = tuple(process for _, process in started.values())
        return StackRecord(os.getpid(), process_start_time(os.getpid()), processes, urls)

    def start(service: Service) -> None:
        started[service.name] = start_service(service, config, env)
        record().save(config.stack_file)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    print(f"Starting the local stack (state in {display(config.state)}/, logs in {display(config.logs_dir)}/)")
    exit_code = 1
    try:
        start_services(config, env, services, start, started, t0)
        password = admin_password(config)
        api = AirflowApi(config.airflow_url, ADMIN_USER, password)
        models = model_names(config.models_dir)
        dags, errors = wait_for_dag_files_parsed(api, config.dags_folder, PARSE_TIMEOUT_S, PARSE_QUIET_S)
        if not any(is_model_dag(dag["dag_id"], models) for dag in dags):
            print(f"Warning: no DAG of the demo models ({', '.join(models) or 'none'}) is parsed yet.")
        paused = [dag["dag_id"] for dag in dags if dag["is_paused"]]
        print_ready(config, urls, password, paused, errors, time.monotonic() - t0)
        supervise(started)
    except StopRequested as stop:
        print(f"\n{stop} received.")
        exit_code = 0
    except StackError as error:
        print(f"Error: {error}", file=sys.stderr)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        stopped = stop_stack(config, record())
        for process, _ in started.values():
            process.poll()
        if stopped:
            config.stack_file.unlink(missing_ok=True)
    return exit_code if stopped else 1


def down(config: StackConfig) -> int:
    """Stop the stack recorded in state/stack.json and anything else carrying its environment.

    While the `up` process lives, it is asked to stop the stack itself (it then exits like after a
    Ctrl-C); whatever is left afterwards, or when `up` is gone, is stopped here.
    """
    record = StackRecord.load(config.stack_file)
    asked_up = bool(record and record.supervisor_alive())
    if record and asked_up:
        print(f"Asking the `up` process (pid {record.supervisor_pid}) to stop the stack...")
        signal_pids([record.supervisor_pid], signal.SIGTERM)
        if wait_until(lambda: not record.supervisor_alive(), 3 * STOP_GRACE_S):
            print("It has stopped the stack.")
        else:
            print("It did not finish in time; stopping the processes from here.")
    groups = [service.pgid for service in record.services] if record else []
    if not live_group_members(groups) and not stack_processes(config.airflow_home, groups):
        if not asked_up:
            print("The local stack is not running.")
        config.stack_file.unlink(missing_ok=True)
        return 0
    stopped = stop_stack(config, record)
    if stopped:
        config.stack_file.unlink(missing_ok=True)
    return 0 if stopped else 1


def status(config: StackConfig) -> int:
    """Print each service's process and health; exit 1 when the stack is only partly up."""
    record = StackRecord.load(config.stack_file)
    if record is None:
        print("The local stack is not running. Start it with `make run`.")
        return 0
    alive = {service.name for service in record.live_services()}
    healthy = health_of(service for service in record.services if service.name in alive)
    supervisor = "running" if record.supervisor_alive() else "gone"
    print(
        f"Local stack in {display(config.state)}, `up` process (pid {record.supervisor_pid}): {supervisor}"
    )
    for service in record.services:
        state = (
            "not running"
            if service.name not in alive
            else ("healthy" if healthy[service.name] else "running, not healthy")
        )
        print(f"  {service.name:<14} pid {service.pid:<8} {state}")
    for name, url in record.urls.items():
        print(f"  {name:<19} {url}")
    return 0 if all(healthy.get(service.name) for service in record.services) else 1


def run_airflow_cli(config: StackConfig, args: list[str]) -> NoReturn:
    """Replace this process by the venv's Airflow CLI with the stack's environment (bin/airflow)."""
    config.airflow_home.mkdir(parents=True, exist_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    env = airflow_environment(config, load_or_create_secrets(config.secrets_file), os.environ)
    if not config.airflow_db.exists():
        ensure_airflow_db(config, env, announce=sys.stderr)
    # Airflow logs this warning to stdout on every `dags` command, which breaks `--output json`.
    quiet_graphviz = "ignore:Could not import graphviz:UserWarning"
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), quiet_graphviz]))
    airflow = str(VENV_BIN / "airflow")
    os.execve(airflow, [airflow, *args], env)


def main(argv: list[str]) -> int:
    sys.stdout.reconfigure(line_buffering=True)
    try:
        config = StackConfig.from_environ()
        if argv[:1] == ["airflow"]:
            run_airflow_cli(config, argv[1:])
        parser = argparse.ArgumentParser(
            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        parser.add_argument("command", choices=["up", "down", "status"])
        command = parser.parse_args(argv).command
        return {"up": up, "down": down, "status": status}[command](config)
    except StackError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
