"""How fast are the MLOps pages? The fleet and a model page against a trivial route of the same app.

Builds 50 models with a year (365 days) of history each (`tests/status_world.py`: registry, champion
history, monitoring history, quarantine, reports, Data Docs) in a throw-away state folder, lists their
DAGs in a throw-away Airflow metadata database, and mounts the plugin in Airflow's real api app
(`create_app`) under its real SimpleAuthManager, logged in with a real token. Then it times, through
the whole app (auth, middlewares, plugin), the median of `REPEATS` requests of:

- `GET /mlops/ping`, the trivial route of the same app behind the same auth (the baseline);
- `GET /mlops/`, the fleet of 50 models;
- `GET /mlops/models/model_00`, a model page (365 checked days in its chart);

and prints each in ms, its ratio to the baseline, and whether it meets the targets: within 500 ms and
within 5x of the baseline. The first request of each page (status caches empty: MLflow and files read)
is printed too, for information, and so is a fleet request made after the status library's cache
TTL has passed (what a person opening the page after a pause waits).

Run: `.venv/bin/python bench/bench_ui.py` (about a minute; most of it builds the world).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS, DAYS, REPEATS = 50, 365, 30
TARGET_MS, TARGET_RATIO = 500.0, 5.0
STAGES = ("data_ingestion", "continuous_training", "model_deployment", "batch_prediction", "drift_sensor",
          "model_rollback", "level0_manual_training")
ROUTES = {"trivial route": "/mlops/ping", "fleet page": "/mlops/", "model page": "/mlops/models/model_00"}


def configure(folder: Path) -> None:
    """Point Airflow and the library at the throw-away folder (before Airflow is imported)."""
    state, airflow_home = folder / "state", folder / "airflow"
    (state / "mlflow").mkdir(parents=True)
    airflow_home.mkdir()
    os.environ.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "bench-" + "x" * 64,
        "MLOPS_STATE_DIR": str(state),
        "MLOPS_MODELS_DIR": str(folder / "models"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow' / 'mlflow.db'}",
        "GX_ANALYTICS_ENABLED": "False",
    })
    for path in (ROOT, ROOT / "plugins"):
        sys.path.insert(0, str(path))


def list_dags(models: list[str]) -> None:
    """The models' DAGs in Airflow's metadata database, unpaused, as the DAG processor leaves them."""
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(DagBundleModel(name="dags-folder"))
        session.flush()
        for model in models:
            for stage in STAGES:
                session.add(DagModel(dag_id=f"{model}__{stage}", bundle_name="dags-folder", is_stale=False,
                                     is_paused=False, max_active_tasks=16, max_consecutive_failed_dag_runs=0,
                                     has_task_concurrency_limits=False))


def timed(client, route: str) -> float:
    """Milliseconds for one request (which must succeed)."""
    started = time.perf_counter()
    answer = client.get(route)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise SystemExit(f"{route}: {answer.status_code} {answer.text[:300]}")
    return elapsed


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    try:
        configure(folder)
        measure(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(folder: Path) -> None:
    from airflow.api_fastapi.app import create_app
    from airflow.utils import db
    from starlette.testclient import TestClient

    from include.monitoring import model_status
    from tests.status_world import build_status_world

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; state in {folder}")
    started = time.perf_counter()
    db.initdb()
    configs = build_status_world(MODELS, DAYS)
    list_dags([config.name for config in configs])
    print(f"world: {MODELS} models x {DAYS} days, built in {time.perf_counter() - started:.0f} s")

    app = create_app(apps="core")
    password = json.loads((folder / "airflow" / "passwords.json").read_text())["viewer"]
    client = TestClient(app)
    token = client.post("/auth/token", json={"username": "viewer", "password": password}).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"

    model_status.clear_cache()
    first = {what: timed(client, route) for what, route in ROUTES.items()}
    samples: dict[str, list[float]] = {what: [] for what in ROUTES}
    for _ in range(REPEATS):
        for what, route in ROUTES.items():  # interleaved, so a busy moment of the machine hits all alike
            samples[what].append(timed(client, route))
    medians = {what: statistics.median(times) for what, times in samples.items()}
    baseline = medians["trivial route"]

    print(f"\n{'':<14} {'median ms':>10} {'x trivial':>10} {'first ms':>10}  target: <= {TARGET_MS:.0f} ms and "
          f"<= {TARGET_RATIO:g}x")
    for what, median in medians.items():
        ratio = median / baseline
        verdict = "" if what == "trivial route" else (
            "met" if median <= TARGET_MS and ratio <= TARGET_RATIO else "MISSED")
        print(f"{what:<14} {median:>10.1f} {ratio:>10.2f} {first[what]:>10.1f}  {verdict}")
    stale = []
    for _ in range(3):  # what a person opening a page after a pause waits: MLflow is read again
        time.sleep(model_status.TTL_SECONDS + 0.5)
        stale.append(timed(client, ROUTES["fleet page"]))
    print(f"fleet page after the status library's {model_status.TTL_SECONDS:g} s TTL: "
          f"median {statistics.median(stale):.0f} ms of {len(stale)}")
    sizes = {what: len(client.get(route).content) for what, route in ROUTES.items()}
    print(f"\npage sizes: fleet {sizes['fleet page'] / 1000:.0f} kB, model {sizes['model page'] / 1000:.0f} kB")


if __name__ == "__main__":
    main()
