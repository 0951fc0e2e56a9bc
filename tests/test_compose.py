"""The production topology (docker-compose.yaml, Dockerfile, .env.example) checked against the code.

No Docker engine runs where the tests run, so these tests read the files and check what `docker
compose up` relies on: every command is one the image can run (a real `airflow` subcommand, an
installed console script with options it accepts), every environment key is one the code or the
tool reads, every secret comes from `.env`, images are pinned, state lives in named volumes shared
by the services that need it, and every dependency can report that it is ready.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.parse
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from include.core import settings

ROOT = settings.PROJECT_ROOT
COMPOSE_FILE = ROOT / "docker-compose.yaml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DUMB_INIT = ["/usr/bin/dumb-init", "--"]


def _strings(node) -> list[str]:
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in (str(key), *_strings(value))]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return [str(node)]


COMPOSE_TEXT = "\n".join(_strings(COMPOSE))
"""Every key and value of the compose file (what compose interpolates; comments left out)."""
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|SECRET_KEY|TOKEN|FERNET_KEY)$")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; `$$` is compose's escaped `$`.
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
URL_CREDENTIALS = re.compile(r"://[^:/@\s]+:(?P<password>[^@\s]+)@")


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def variables(text: str) -> list[re.Match]:
    """The `${...}` references in compose text, leaving out `$${...}` (a `$` escaped for the shell)."""
    return list(VARIABLE.finditer(text.replace("$$", "")))


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation of `text` with `env` standing for `.env`."""
    def value(match: re.Match) -> str:
        name, op = match["name"], match["op"] or ""
        if name in env and (env[name] or ":" not in op):
            return env[name]
        if op.endswith("-"):
            return match["arg"]
        raise KeyError(f"${{{name}}} is not set")

    return VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


FAKE_ENV = {name: f"test-{name.lower().replace('_', '-')}" for name in env_example()}


def resolved(value: str) -> str:
    return interpolate(str(value), FAKE_ENV)


def service_env(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in (SERVICES[name].get("environment") or {}).items()}


def argv(value) -> list[str]:
    if value is None:
        return []
    return [resolved(part) for part in value] if isinstance(value, list) else shlex.split(resolved(value))


def mounts(name: str) -> dict[str, str]:
    """A service's volumes as {target path: source}."""
    pairs = (str(entry).split(":")[:2] for entry in SERVICES[name].get("volumes") or [])
    return {target: source for source, target in pairs}


def url_host_port(url: str) -> tuple[str, int]:
    match = re.match(r"^[a-z0-9+.-]+://(?:[^@/]*@)?(?P<host>[^:/]+):(?P<port>\d+)", url)
    assert match, f"{url!r} names no host:port"
    return match["host"], int(match["port"])


def airflow_invocations() -> dict[str, list[str]]:
    """Every `airflow` command the topology runs, by where it appears."""
    found = {}
    for name, service in SERVICES.items():
        entrypoint, command = argv(service.get("entrypoint")), argv(service.get("command"))
        if not entrypoint and service.get("build"):
            found[f"{name}: command"] = command
        if entrypoint == ["/bin/bash"] and command[:1] == ["-c"]:
            for number, line in enumerate(command[1].splitlines(), 1):
                if line.strip().startswith("airflow "):
                    found[f"{name}: script line {number}"] = shlex.split(line)[1:]
        test = (service.get("healthcheck") or {}).get("test") or []
        if test[:1] == ["CMD-SHELL"] and test[1].startswith("airflow "):
            found[f"{name}: healthcheck"] = shlex.split(test[1].replace("$$", "$"))[1:]
    return found


AIRFLOW_PROBE = """
import json, sys
from airflow.cli.cli_parser import get_parser
from airflow.configuration import conf

request = json.loads(sys.argv[1])
parser = get_parser()
bad = {}
for where, args in request["commands"].items():
    try:
        parser.parse_args(args)
    except SystemExit:
        bad[where] = args
described = conf.configuration_description
unknown = [key for key in request["keys"]
           if key.split("__")[2].lower() not in described.get(key.split("__")[1].lower(), {}).get("options", {})]
print(json.dumps({"bad_commands": bad, "unknown_options": unknown}))
"""


@pytest.fixture(scope="module")
def airflow_probe(tmp_path_factory) -> dict:
    """The installed Airflow's verdict on the topology's commands and config keys.

    Runs in a fresh process with the compose file's (non-secret) Airflow settings, because the CLI's
    commands depend on them (`airflow celery` exists only with the CeleryExecutor).
    """
    airflow_env = service_env("airflow-scheduler")
    keys = sorted({key for name in SERVICES for key in service_env(name) if key.startswith("AIRFLOW__")})
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env |= {key: value for key, value in airflow_env.items() if key.startswith("AIRFLOW__") and "${" not in value}
    env["AIRFLOW_HOME"] = str(tmp_path_factory.mktemp("airflow-home"))
    request = json.dumps({"commands": airflow_invocations(), "keys": keys})
    done = subprocess.run([sys.executable, "-c", AIRFLOW_PROBE, request], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the services and their commands -------------------------------------------------------------


def test_the_topology_has_every_component_and_runs_airflow_with_celery():
    expected = {"postgres", "redis", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "mlflow", "serving"}
    assert expected <= set(SERVICES)
    assert service_env("airflow-worker")["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert argv(SERVICES["airflow-worker"]["command"]) == ["celery", "worker"]


def test_every_airflow_command_is_a_real_airflow_cli_command(airflow_probe):
    commands = airflow_invocations()
    for where in ("airflow-apiserver: command", "airflow-scheduler: command", "airflow-dag-processor: command",
                  "airflow-triggerer: command", "airflow-worker: command", "airflow-init: script line 2"):
        assert where in commands, f"{where} not found among {sorted(commands)}"
    assert airflow_probe["bad_commands"] == {}


def test_every_airflow_setting_in_compose_is_an_option_airflow_knows(airflow_probe):
    assert airflow_probe["unknown_options"] == []


def click_context(args: list[str]):
    """Parse a console script's command line the way it would (click), without running it."""
    import click

    scripts = [ep for ep in entry_points(group="console_scripts") if ep.name == args[0]]
    assert scripts, f"{args[0]!r} is not a console script installed from requirements.txt"
    assert len({ep.value for ep in scripts}) == 1, f"{args[0]!r} means different things: {scripts}"
    script = scripts[0]
    command, rest, name = script.load(), args[1:], args[0]
    while isinstance(command, click.Group):
        name, rest = rest[0], rest[1:]
        command = command.get_command(click.Context(command), name)
        assert command is not None, f"{args[0]} has no subcommand {name!r}"
    return command.make_context(name, list(rest))


def test_non_airflow_services_run_installed_console_scripts_with_options_they_accept():
    others = {name: service for name, service in SERVICES.items() if service.get("build") and service.get("entrypoint")
              and argv(service["entrypoint"]) != ["/bin/bash"]}
    assert set(others) == {"mlflow", "serving"}
    for name, service in others.items():
        assert argv(service["entrypoint"]) == DUMB_INIT, name  # not the image's `airflow` entrypoint
        click_context(argv(service["command"]))  # raises on an unknown command or option


def test_mlflow_serves_artifacts_from_its_volume_with_a_postgresql_backend():
    params = click_context(argv(SERVICES["mlflow"]["command"])).params

    assert params["backend_store_uri"].startswith("postgresql+psycopg2://")
    assert params["serve_artifacts"] is True
    assert mounts("mlflow")[params["artifacts_destination"]] in COMPOSE["volumes"]
    assert "mlflow:5000" in params["allowed_hosts"].split(",")


def test_the_prediction_service_app_is_importable_as_uvicorn_imports_it(tmp_path):
    params = click_context(argv(SERVICES["serving"]["command"])).params
    assert params["app"] == "include.delivery.serving:app"
    assert re.search(r"^WORKDIR /opt/airflow$", DOCKERFILE, re.M) and "PYTHONPATH=/opt/airflow" in DOCKERFILE
    env = {**os.environ, **{key: resolved(value) for key, value in service_env("serving").items()}}
    env |= {"MLOPS_STATE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    probe = ("from fastapi import FastAPI; from uvicorn.importer import import_from_string; "
             f"assert isinstance(import_from_string({params['app']!r}), FastAPI)")
    subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, check=True, timeout=120)


def test_the_worker_healthcheck_pings_the_celery_app_of_the_installed_provider():
    import importlib.util

    test = SERVICES["airflow-worker"]["healthcheck"]["test"]
    app_module = re.search(r"--app (\S+)\.app\b", test[1])[1]
    assert importlib.util.find_spec(app_module) is not None, app_module
    assert [ep for ep in entry_points(group="console_scripts") if ep.name == "celery"]


# --- environment and secrets ---------------------------------------------------------------------


def source_text(*folders: str) -> str:
    return "\n".join(path.read_text() for folder in folders for path in sorted((ROOT / folder).rglob("*.py")))


def test_every_mlops_and_mlflow_key_set_in_compose_is_read_by_the_code_or_by_mlflow():
    import mlflow.environment_variables

    ours = source_text("include", "scripts")
    mlflow_knows = {getattr(var, "name", None) for var in vars(mlflow.environment_variables).values()}
    keys = {key for name in SERVICES for key in service_env(name) if key.startswith(("MLOPS_", "MLFLOW_"))}
    assert keys, "compose sets no MLOPS_/MLFLOW_ key at all"
    unread = sorted(key for key in keys if key not in ours and (key.startswith("MLOPS_") or key not in mlflow_knows))
    assert unread == []


def test_the_services_that_need_a_setting_get_it():
    needs = {
        "airflow-worker": {"MLFLOW_TRACKING_URI", "MLOPS_STATE_DIR", "MLOPS_SERVING_URL", "MLOPS_SERVING_ADMIN_TOKEN"},
        "airflow-scheduler": {"MLFLOW_TRACKING_URI", "MLOPS_STATE_DIR"},
        "airflow-dag-processor": {"MLOPS_SERVING_URL"},  # model_deployment.py reads it when parsed
        "serving": {"MLFLOW_TRACKING_URI", "MLOPS_STATE_DIR", "MLOPS_SERVING_ADMIN_TOKEN", "MLOPS_FEAST_REDIS"},
    }
    for name, keys in needs.items():
        assert keys <= set(service_env(name)), f"{name} lacks {sorted(keys - set(service_env(name)))}"
    token = {service_env(name)["MLOPS_SERVING_ADMIN_TOKEN"] for name in ("airflow-worker", "serving")}
    assert len(token) == 1, "the workers and the prediction service must share one admin token"
    redis = {name: service_env(name)["MLOPS_FEAST_REDIS"] for name in ("airflow-worker", "serving")}
    online_store = {tuple(value.split(",")[:2]) for value in redis.values()}
    assert len(online_store) == 1, "the service must read the online store (host, db) that materialization writes"


def listening_port(name: str) -> int:
    command = argv(SERVICES[name].get("command"))
    return int(command[command.index("--port") + 1])


def test_every_service_url_points_at_the_service_listening_there():
    env = service_env("airflow-worker")
    for key, service in (("MLFLOW_TRACKING_URI", "mlflow"), ("MLOPS_SERVING_URL", "serving"),
                         ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "airflow-apiserver")):
        assert url_host_port(env[key]) == (service, listening_port(service)), key
    assert url_host_port(resolved(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))[0] == "postgres"
    assert url_host_port(env["AIRFLOW__CELERY__BROKER_URL"]) == ("redis", 6379)


def test_every_secret_comes_from_env_example_and_none_is_committed():
    example = env_example()
    required = {match["name"] for match in variables(COMPOSE_TEXT) if not (match["op"] or "").endswith("-")}
    assert required - set(example) == set(), "set in compose from .env but missing from .env.example"
    for name in SERVICES:
        for key, value in service_env(name).items():
            if SECRET_NAME.search(key):
                match = VARIABLE.fullmatch(value)
                assert match and match["name"] in example, f"{name}: {key} must be ${{VAR}} from .env, got {value!r}"
    for match in URL_CREDENTIALS.finditer(COMPOSE_TEXT):
        assert VARIABLE.fullmatch(match["password"]), f"a password written into compose: {match[0]!r}"
    assert {key: value for key, value in example.items() if value} == {}, ".env.example must hold no secret"
    assert "/.env" in (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()


# --- images, volumes, dependencies, ports --------------------------------------------------------


def test_every_image_is_pinned_to_a_version():
    for name, service in SERVICES.items():
        image = resolved(service["image"])
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image!r} is not pinned to a version"


def test_the_dockerfile_builds_on_the_locked_airflow_and_python():
    [base] = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.M)
    match = re.fullmatch(r"apache/airflow:(?P<airflow>\d+\.\d+\.\d+)-python(?P<python>\d+\.\d+)", base)
    assert match, f"FROM {base} is not a pinned apache/airflow:<version>-python<version>"
    locked = re.search(r"^apache-airflow==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)[1]
    assert match["airflow"] == locked
    requires = re.search(r'requires-python = ">=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text())[1]
    assert match["python"] == requires
    assert re.search(r"pip install .*-r \S*requirements\.txt -c \S*constraints\.txt", DOCKERFILE)


def test_the_image_holds_the_code_the_services_import():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copied = {}
    for line in re.findall(r"^COPY\s+(.+)$", DOCKERFILE, re.M):
        *sources, target = [part for part in line.split() if not part.startswith("--")]
        for source in sources:
            copied[source.rstrip("/")] = target
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the project"
            assert not any(fnmatch.fnmatch(source.rstrip("/"), pattern) for pattern in ignored), source
    for folder in ("include", "dags", "plugins"):
        assert copied.get(folder, "").rstrip("/") == f"/opt/airflow/{folder}", folder


def test_state_lives_in_named_volumes():
    declared = set(COMPOSE["volumes"])
    for name in SERVICES:
        for target, source in mounts(name).items():
            assert source in declared, f"{name}: {source}:{target} is not a named volume"
    assert mounts("postgres")["/var/lib/postgresql/data"] in declared


def test_workers_scheduler_and_serving_share_the_state_volume_where_the_code_looks():
    shared = set()
    for name in ("airflow-worker", "airflow-scheduler", "serving"):
        state = service_env(name)["MLOPS_STATE_DIR"]
        assert state in mounts(name), f"{name}: MLOPS_STATE_DIR {state} is not a mounted volume"
        assert "MLOPS_DATA_DIR" not in service_env(name) and "MLOPS_REPORTS_DIR" not in service_env(name)
        shared.add(mounts(name)[state])
    assert len(shared) == 1, f"data and reports must be one volume, got {sorted(shared)}"


def test_every_dependency_exists_and_can_say_it_is_ready():
    for name, service in SERVICES.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on must name a condition"
        for target, rule in depends.items():
            assert target in SERVICES, f"{name} depends on undefined {target}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target}, which has no healthcheck"
            else:
                assert rule["condition"] == "service_completed_successfully", f"{name} -> {target}"
                assert SERVICES[target].get("restart") == "no", f"{target} must run once"
    long_running = [name for name, service in SERVICES.items() if service.get("restart") != "no"]
    assert [name for name in long_running if "healthcheck" not in SERVICES[name]] == []


def test_published_ports_listen_on_loopback_only():
    published = {name: service["ports"] for name, service in SERVICES.items() if service.get("ports")}
    assert set(published) == {"airflow-apiserver", "mlflow", "serving", "statsd-exporter"}
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_interpolation_helpers_read_compose_syntax():
    assert interpolate("a${X:-d}b$${Y}", {}) == "ad" + "b${Y}"
    assert interpolate("${X:?set X}", {"X": "v"}) == "v"
    with pytest.raises(KeyError):
        interpolate("${X:?set X}", {"X": ""})
    assert [match["name"] for match in variables("$${HOSTNAME} ${A} ${B:-1}")] == ["A", "B"]
    assert Path(COMPOSE_FILE).name == "docker-compose.yaml"


def test_airflow_sends_its_statsd_metrics_to_the_exporter_that_prometheus_scrapes():
    exporter = SERVICES["statsd-exporter"]
    flags = dict(flag.split("=", 1) for flag in argv(exporter["command"]))
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                 "airflow-worker"):
        env = service_env(name)
        assert env["AIRFLOW__METRICS__STATSD_ON"] == "true", name
        assert (env["AIRFLOW__METRICS__STATSD_HOST"], f":{env['AIRFLOW__METRICS__STATSD_PORT']}") == (
            "statsd-exporter", flags["--statsd.listen-udp"]), name
    import statsd  # noqa: F401  (Airflow's StatsD client must be in the image, or statsd_on fails at start)

    assert "127.0.0.1:9102:9102" in exporter["ports"] and flags["--web.listen-address"] == ":9102"


# --- logins: Airflow's FAB auth manager, MLflow's basic-auth app ---------------------------------


AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker")


def init_script_command(*words: str) -> list[str]:
    """The arguments of the airflow-init script's `airflow <words…>` line."""
    found = [args for where, args in airflow_invocations().items()
             if where.startswith("airflow-init: script") and args[:len(words)] == list(words)]
    assert len(found) == 1, f"airflow-init runs `airflow {' '.join(words)}` {len(found)} times"
    return found[0]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_airflow_runs_the_fab_auth_manager_of_the_installed_provider():
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

    for name in AIRFLOW_SERVICES:
        env = service_env(name)
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == f"{FabAuthManager.__module__}.FabAuthManager", name
        assert not any(key.startswith("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER") for key in env), name


def test_airflow_init_creates_the_admin_with_the_password_from_env_after_migrating(airflow_probe):
    script = argv(SERVICES["airflow-init"]["command"])[1].splitlines()
    create = init_script_command("users", "create")
    reset = init_script_command("users", "reset-password")

    assert (option(create, "--role"), option(create, "--username"), option(reset, "--username")) == (
        "Admin", "admin", "admin")
    for args in (create, reset):  # the shell expands it from the service's environment, set from .env
        assert option(args, "--password") == "$AIRFLOW_ADMIN_PASSWORD"
    assert resolved(service_env("airflow-init")["AIRFLOW_ADMIN_PASSWORD"]) == FAKE_ENV["AIRFLOW_ADMIN_PASSWORD"]
    lines = [line.strip() for line in script]
    assert lines.index("airflow db migrate") < lines.index(next(line for line in lines if "users create" in line))
    assert script[0].strip() == "set -euo pipefail", "a failed step must fail the init, not start the services"
    assert airflow_probe["bad_commands"] == {}


def test_mlflow_runs_the_basic_auth_app_with_the_configuration_airflow_init_writes():
    from mlflow.server.auth import is_unprotected_route

    params = click_context(argv(SERVICES["mlflow"]["command"])).params
    env = service_env("mlflow")
    config_path = env["MLFLOW_AUTH_CONFIG_PATH"]

    assert params["app_name"] == "basic-auth"
    assert service_env("airflow-init")["MLFLOW_AUTH_CONFIG_PATH"] == config_path
    folder = str(Path(config_path).parent)
    assert mounts("mlflow")[folder] == mounts("airflow-init")[folder] in COMPOSE["volumes"]
    assert {key: resolved(env[key]) for key in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD")} == {
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin", "MLFLOW_AUTH_ADMIN_PASSWORD": FAKE_ENV["MLFLOW_ADMIN_PASSWORD"]}
    assert resolved(env["MLFLOW_FLASK_SERVER_SECRET_KEY"]) == FAKE_ENV["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    health = SERVICES["mlflow"]["healthcheck"]["test"][-1]
    assert is_unprotected_route(urllib.parse.urlparse(health).path), f"{health} asks for a login"


def test_every_mlflow_client_logs_in_as_the_mlflow_admin():
    server = {key: resolved(value) for key, value in service_env("mlflow").items()}
    clients = [name for name in SERVICES if "MLFLOW_TRACKING_URI" in service_env(name)]

    assert set(AIRFLOW_SERVICES) | {"serving"} <= set(clients)
    for name in clients:
        env = {key: resolved(value) for key, value in service_env(name).items()}
        assert (env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")) == (
            server["MLFLOW_AUTH_ADMIN_USERNAME"], server["MLFLOW_AUTH_ADMIN_PASSWORD"]), name


class FakePostgres:
    """Stands in for psycopg2 in airflow-init's script: the `mlflow` database exists already."""

    autocommit = False

    @staticmethod
    def connect(**_params):
        return FakePostgres()

    def cursor(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return False

    def execute(self, _statement):
        pass

    def fetchone(self):
        return (1,)


def test_airflow_init_writes_the_basic_auth_configuration_mlflow_reads(tmp_path, monkeypatch):
    from mlflow.server.auth.config import read_auth_config

    script = argv(SERVICES["airflow-init"]["command"])[1]
    python = script.split("python - <<'PY'\n", 1)[1].split("\nPY", 1)[0]
    env = {key: resolved(value) for key, value in service_env("airflow-init").items()}
    path = tmp_path / Path(env["MLFLOW_AUTH_CONFIG_PATH"]).name
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(path))
    monkeypatch.setitem(sys.modules, "psycopg2", FakePostgres)

    exec(compile(python, "airflow-init", "exec"), {})  # noqa: S102 - the compose file's own script
    auth = read_auth_config()

    password = FAKE_ENV["POSTGRES_PASSWORD"]
    assert auth.database_uri == f"postgresql+psycopg2://airflow:{password}@postgres:5432/mlflow"
    assert auth.default_permission == "READ"
    assert auth.auth_cache_ttl_seconds > 0, "without the cache each request costs a scrypt hash (~0.2 s of CPU)"
    assert path.stat().st_mode & 0o077 == 0, "it holds the PostgreSQL password"
