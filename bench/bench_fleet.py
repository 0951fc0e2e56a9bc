"""A fleet of model configs: what each DAG file's parse costs per model, and the parser's memory.

Generates `--models` model configs (default 50) from the demo config, with a mix of data sources
(one small function per source kind in SOURCE_KINDS), into a temporary models folder
(`MLOPS_MODELS_DIR`), and parses every DAG file in `dags/` against it the way the DAG processor
does (bench/bench_dag_parse.py: Airflow imported once, heap frozen, a forked child per parse).
The trivial TaskFlow DAG is parsed in the same rounds, interleaved with the DAG files, so that
load from other processes on the machine weighs on both alike. It reports, for a fleet of 2 and of
`--models` models:

- each DAG file's median parse time, as a multiple of the trivial DAG and of the trivial DAG per
  model (target: within 2x per model, i.e. a file's cost grows with the model count no faster
  than one trivial DAG per model);
- memory: the RSS of the parent (the processor's manager), the peak RSS of the child that
  parsed each file, and that of one process that parsed every DAG file of the fleet;
- with `--scheduler`: how long a real `airflow scheduler` takes, after every model's ingestion DAG
  is unpaused at once, to queue the first task of each. It runs against a throwaway Airflow home,
  a PostgreSQL database of its own on 127.0.0.1:5432 (created, then dropped) and the
  CeleryExecutor with a Redis queue and key prefix of its own and no worker, so queued tasks stay
  queued and the figure is the scheduler's alone (the DAGs are serialized first with
  `airflow dags reserialize`, as the DAG processor would);
- the drift reports' storage per model and day (`--report-days` daily checks of one model, which
  stands for every model of the fleet: see `report_storage_per_model_day`), and the fleet's total.

    .venv/bin/python bench/bench_fleet.py [--models 50] [--repeat 5] [--scheduler] [--report-days 3]
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime as dt
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dag_parse import ROOT, TRIVIAL_DAG, parse_once, prepare_processor_parent  # noqa: E402

DEMO_CONFIG = ROOT / "include" / "models" / "credit_default.yaml"
START = dt.date(2026, 1, 1)
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


# --- the fleet's configs: one function per source kind ------------------------------------------


INTERVALS = ("hourly", "daily", "weekly", "monthly")


def synthetic_source(index: int, data_folder: Path) -> dict:
    """The seeded synthetic world, with a seed, length and volume of its own."""
    return {
        "kind": "synthetic",
        "seed": index,
        "start_date": START + dt.timedelta(days=index % 30),
        "days": 120 + 5 * index,
        "rows_per_day": 200 + 20 * index,
    }


def files_source(index: int, data_folder: Path) -> dict:
    """One CSV per day in a folder of the model's own (two small days are written)."""
    folder = data_folder / f"files_{index:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    for offset in range(2):
        day = START + dt.timedelta(days=offset)
        write_applications_csv(folder / f"applications_{day.isoformat()}.csv", [day], rows=20)
    return {"kind": "files", "path": str(folder), "pattern": "applications_{day}.csv", "start_date": START}


def table_source(index: int, data_folder: Path) -> dict:
    """One CSV of the model's own holding three days of rows, selected by the timestamp column."""
    path = data_folder / f"table_{index:02d}.csv"
    data_folder.mkdir(parents=True, exist_ok=True)
    write_applications_csv(path, [START + dt.timedelta(days=offset) for offset in range(3)], rows=20)
    return {"kind": "table", "path": str(path), "start_date": START}


def sql_source(index: int, data_folder: Path) -> dict:
    """A table behind an Airflow Connection that does not exist: parsing never connects."""
    return {
        "kind": "sql",
        "conn_id": f"fleet_warehouse_{index % 3}",
        "table": f"fleet.applications_{index:02d}",
        "start_date": START,
    }


SOURCE_KINDS: dict[str, Callable[[int, Path], dict]] = {
    "synthetic": synthetic_source,
    "files": files_source,
    "table": table_source,
    "sql": sql_source,
}


def write_applications_csv(path: Path, days: list[dt.date], rows: int) -> None:
    """`rows` valid rows a day with the demo schema's columns."""
    employment = ["salaried", "self_employed", "unemployed", "retired", "student"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "application_id",
                "event_timestamp",
                "age",
                "annual_income",
                "loan_amount",
                "loan_term_months",
                "credit_score",
                "debt_to_income",
                "employment_type",
                "home_ownership",
                "region",
            ]
        )
        for day in days:
            for row in range(rows):
                writer.writerow(
                    [
                        f"{day:%Y%m%d}-{row}",
                        f"{day}T12:00:00",
                        20 + row,
                        30000 + 1000 * row,
                        5000,
                        36,
                        600 + row,
                        0.3,
                        employment[row % 5],
                        "rent",
                        "north",
                    ]
                )


def supported_interval(kind: str, interval: str) -> str:
    """`interval`, or daily for a kind that cannot have it."""
    if kind == "synthetic" or (kind == "files" and interval == "hourly"):
        return "daily"
    return interval


def write_fleet(models_folder: Path, data_folder: Path, count: int) -> list[str]:
    """Write `count` valid model configs; returns their names.

    Source kinds are taken in turn, and each round of kinds takes the next value of INTERVALS as
    its `source.interval`, so every kind meets every interval it supports (the synthetic world is
    daily only; `files` are named by day, so not hourly). The drift window is left to its default,
    one interval, since the demo's one day is shorter than a week.
    """
    template = yaml.safe_load(DEMO_CONFIG.read_text())
    kinds = list(SOURCE_KINDS)
    models_folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        name = f"fleet_{index:02d}_{kind}"
        config = copy.deepcopy(template)
        config["name"] = name
        config["paused_on_start"] = True
        config["source"] = SOURCE_KINDS[kind](index, data_folder)
        interval = INTERVALS[(index // len(kinds)) % len(INTERVALS)]
        config["source"]["interval"] = supported_interval(kind, interval)
        config["monitoring"].pop("window_days", None)
        (models_folder / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        names.append(name)
    return names


# --- measures ------------------------------------------------------------------------------------


def interleaved_medians(trivial: Path, paths: list[Path], repeat: int) -> tuple[tuple, dict[Path, tuple]]:
    """Median parse times of the trivial DAG and of each path, parsed in interleaved rounds.

    Returns the trivial DAG's (median wall seconds, median CPU seconds) and, per path, (median
    wall seconds, median CPU seconds, DAGs, peak child RSS in MB).
    """
    runs = {path: [] for path in [trivial, *paths]}
    for _ in range(repeat):
        for path in runs:
            runs[path].append(parse_once(path))
    medians = {
        path: (
            statistics.median(r[0] for r in results),
            statistics.median(r[1] for r in results),
            results[-1][2],
            max(r[3] for r in results),
        )
        for path, results in runs.items()
    }
    return medians.pop(trivial)[:2], medians


def own_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report_parse(models: int, trivial: Path, repeat: int) -> None:
    (wall_baseline, cpu_baseline), results = interleaved_medians(trivial, DAG_FILES, repeat)
    print(
        f"\n{models} models: trivial TaskFlow DAG {cpu_baseline * 1000:.1f} ms CPU, {wall_baseline * 1000:.1f} ms "
        f"wall (medians of {repeat}); ratios are of CPU time"
    )
    print(
        f"{'DAG file':<30}{'DAGs':>6}{'CPU ms':>9}{'wall ms':>9}{'x trivial':>11}{'x trivial/model':>17}"
        f"{'child MB':>10}"
    )
    worst = 0.0
    for path, (wall, cpu, dags, rss) in results.items():
        per_model = cpu / (cpu_baseline * models)
        if dags:
            worst = max(worst, per_model)
        print(
            f"{path.name:<30}{dags:>6}{cpu * 1000:>9.1f}{wall * 1000:>9.1f}{cpu / cpu_baseline:>11.2f}"
            f"{per_model:>17.2f}{rss:>10.0f}"
        )
    total = sum(cpu for _, cpu, _, _ in results.values())
    print(
        f"{'all DAG files':<30}{'':>6}{total * 1000:>9.1f}{'':>9}{total / cpu_baseline:>11.2f}"
        f"{total / (cpu_baseline * models):>17.2f}"
    )
    print(f"worst DAG file: {worst:.2f}x the trivial DAG per model (target: within 2x)")


def report_memory(models: int, trivial: Path) -> None:
    trivial_rss = parse_once(trivial)[3]
    _, _, dags, all_rss = parse_once(ROOT / "dags")
    print(
        f"\nmemory, {models} models: processor parent {own_rss_mb():.0f} MB; child parsing the trivial DAG "
        f"{trivial_rss:.0f} MB peak; one process parsing every DAG file ({dags} DAGs) {all_rss:.0f} MB peak"
    )


# --- report storage ------------------------------------------------------------------------------


def report_storage_per_model_day(models: int, days: int) -> None:
    """The drift reports' storage per model and day, measured on one model, and what the fleet adds up to.

    One model is a fair sample of the fleet: every generated config has the demo's schema, and what
    a drift check stores (Evidently's compressed snapshots of those columns, their results JSON,
    `check.json`, the same files in MLflow) depends on the columns and the reports written, not on
    the source kind, the interval or the model's name. The checks run as in
    bench/bench_report_storage.py, with reports at every check (the most a model can write).
    """
    import shutil

    import bench_report_storage as storage

    base = storage._isolated_state()
    try:
        measured = storage.report_storage(storage.run_daily_checks(days), with_html_equivalent=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    per_day = measured["reports_bytes_per_day"] + measured["mlflow_bytes_per_day"]
    verdict = "within" if measured["reports_bytes_per_day"] <= storage.TARGET_BYTES_PER_DAY else "OVER"
    print(
        f"\nreport storage per model-day ({measured['days']} daily checks of one model, reports every check): "
        f"{measured['reports_bytes_per_day'] / 1024:.1f} KiB of reports ({verdict} the target of "
        f"{storage.TARGET_BYTES_PER_DAY // 1024} KiB) and {measured['mlflow_bytes_per_day'] / 1024:.1f} KiB "
        f"of MLflow artifacts"
    )
    print(
        f"  {models} models: {models * per_day / 2**20:.1f} MiB a day, {365 * models * per_day / 2**30:.2f} GiB "
        f"a year before retention"
    )


# --- the scheduler ---------------------------------------------------------------------------------

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379"
AIRFLOW = Path(sys.executable).parent / "airflow"


def run_sql(*statements: str) -> None:
    import psycopg2

    connection = psycopg2.connect(dbname="postgres", connect_timeout=5, **POSTGRES)
    connection.autocommit = True  # CREATE / DROP DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


@contextmanager
def own_database_and_queue() -> Iterator[tuple[str, str, str]]:
    """A new PostgreSQL database and a Redis key prefix, both `bench_fleet_<random>`; the database
    is dropped and the keys deleted afterwards. Yields (database, Redis URL, token)."""
    import redis

    token = f"bench_fleet_{secrets.token_hex(4)}"
    redis_url = f"{REDIS_URL}/0"
    run_sql(f'CREATE DATABASE "{token}"')
    try:
        yield token, redis_url, token
    finally:
        run_sql(f'DROP DATABASE IF EXISTS "{token}" WITH (FORCE)')
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{token}:*"))
        if keys:
            client.delete(*keys)


def scheduler_environment(home: Path, database: str, redis_url: str, token: str) -> dict[str, str]:
    url = f"postgresql+psycopg2://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{database}"
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        # No slot limit: with no worker, queued tasks never free their slots, and the default pool's
        # 128 would stop the queueing after ~40 models; the figure is the scheduler's own pace.
        "AIRFLOW__CORE__PARALLELISM": "1024",
        "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "1024",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{url}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": token,
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"{token}:",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


def first_queued(database: str, stage: str = "data_ingestion") -> dict[str, dt.datetime]:
    """When each DAG of `stage` first had a task queued (or later), by DAG id."""
    import psycopg2

    with psycopg2.connect(dbname=database, connect_timeout=5, **POSTGRES) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT dag_id, MIN(queued_dttm) FROM task_instance WHERE dag_id LIKE %s "
            "AND queued_dttm IS NOT NULL GROUP BY dag_id",
            (f"%\\_\\_{stage}",),
        )
        return dict(cursor.fetchall())


def unpaused_count(database: str, stage: str = "data_ingestion") -> int:
    import psycopg2

    with psycopg2.connect(dbname=database, connect_timeout=5, **POSTGRES) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM dag WHERE dag_id LIKE %s AND NOT is_paused", (f"%\\_\\_{stage}",))
        return cursor.fetchone()[0]


def scheduler_running(database: str) -> bool:
    import psycopg2

    with psycopg2.connect(dbname=database, connect_timeout=5, **POSTGRES) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM job WHERE job_type = 'SchedulerJob' AND state = 'running'")
        return cursor.fetchone()[0] > 0


def report_scheduler(models_folder: Path, models: int, state: Path, timeout: float) -> None:
    with (
        own_database_and_queue() as (database, redis_url, token),
        tempfile.TemporaryDirectory(prefix="bench-fleet-airflow-") as home,
    ):
        env = {
            **scheduler_environment(Path(home), database, redis_url, token),
            "MLOPS_MODELS_DIR": str(models_folder),
            "MLOPS_STATE_DIR": str(state),
        }
        started = time.monotonic()
        for command in (["db", "migrate"], ["dags", "reserialize"]):
            subprocess.run([str(AIRFLOW), *command], env=env, check=True, capture_output=True, timeout=900)
        prepared = time.monotonic() - started
        log = (Path(home) / "scheduler.log").open("w")
        scheduler = subprocess.Popen(
            [str(AIRFLOW), "scheduler"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 300
            while not scheduler_running(database):
                if time.monotonic() > deadline or scheduler.poll() is not None:
                    raise SystemExit(f"the scheduler did not start; see {log.name}")
                time.sleep(1)
            unpause = subprocess.Popen(
                [str(AIRFLOW), "dags", "unpause", "--treat-dag-id-as-regex", "-y", "__data_ingestion$"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while unpaused_count(database) < models:  # the moment the unpause is committed
                if unpause.poll() not in (None, 0):
                    raise SystemExit("airflow dags unpause failed")
                time.sleep(0.2)
            unpaused = dt.datetime.now(dt.UTC)
            unpause.wait(timeout=300)
            queued: dict[str, dt.datetime] = {}
            deadline = time.monotonic() + timeout
            while len(queued) < models and time.monotonic() < deadline:
                time.sleep(1)
                queued = first_queued(database)
        finally:
            os.killpg(scheduler.pid, signal.SIGTERM)
            try:
                scheduler.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(scheduler.pid, signal.SIGKILL)
            log.close()
    delays = sorted((when - unpaused).total_seconds() for when in queued.values())
    print(
        f"\nscheduler, {models} models (db migrate + reserialize took {prepared:.0f} s): "
        f"{len(queued)} of {models} ingestion DAGs had a task queued within {timeout:.0f} s of the unpause"
    )
    if delays:
        print(
            f"  first queued after {delays[0]:.1f} s, median {statistics.median(delays):.1f} s, "
            f"every model's after {delays[-1]:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scheduler", action="store_true", help="also measure a real scheduler's queue time")
    parser.add_argument("--no-parse", action="store_true", help="skip the parse and memory measures")
    parser.add_argument(
        "--report-days", type=int, default=3, help="daily drift checks for the report storage figure (0 skips it)"
    )
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    print(f"load average at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as folder:
        folder = Path(folder)
        trivial = folder / "trivial_taskflow.py"
        trivial.write_text(TRIVIAL_DAG)
        os.environ["MLOPS_STATE_DIR"] = str(folder / "state")
        os.environ["MLOPS_DATA_DIR"] = str(folder / "state" / "data")
        prepare_processor_parent(trivial)
        for models in sorted({2, args.models}):
            models_folder = folder / f"models_{models}"
            write_fleet(models_folder, folder / "sources", models)
            os.environ["MLOPS_MODELS_DIR"] = str(models_folder)
            if not args.no_parse:
                report_parse(models, trivial, args.repeat)
                report_memory(models, trivial)
        if args.scheduler:
            report_scheduler(folder / f"models_{args.models}", args.models, folder / "state", timeout=600)
    if args.report_days:
        report_storage_per_model_day(args.models, args.report_days)
    print(f"\nload average at end: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
