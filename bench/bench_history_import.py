"""How fast does a long history come in? The history import against daily ingestion, same run.

It generates a `files` source of 600 days (about 100k rows, one CSV of applications and one of
the labels that arrived per day, from the demo data world, with its two bad days) in a temporary
folder, with a temporary state folder, then times:

- the baseline, daily ingestion as its DAG runs a day: for a sample of days, one fresh process per
  day (an Airflow task is a process, so each day pays its imports) that lands, validates (with Data
  Docs), stores the labels and publishes; this is a lower bound of the DAG's cost, which runs
  four processes per day and adds the scheduler's gaps;
- the history import's library path as the DAG's mapped tasks run it: one fresh process per chunk
  (`history_import.import_chunk`), at most `--workers` at a time (2: the machine's cores);
- with `--dag DAYS`, a `dag.test()` of `<model>__history_import` over the first DAYS days (one
  process runs every mapped task in turn, so no parallelism).

It prints days per minute for each, the ratio to the baseline, whether the 600 days took at most
5 minutes, and the load average (the machine may be shared); and the CPU seconds per day of each
path (the child processes' own CPU time, which other load does not inflate much), from which the
wall time on idle cores follows.

Run: `.venv/bin/python bench/bench_history_import.py [--days 600] [--rows 100000] [--sample 6]
[--chunk-days 50] [--workers 2] [--dag 30]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from include.core.config import load_model_config  # noqa: E402
from include.demo import data_world  # noqa: E402

DEMO_CONFIG = ROOT / "include" / "models" / "credit_default.yaml"
FIRST_DAY = dt.date(2026, 1, 1)
TARGET_SECONDS = 300

DAILY = """
import datetime as dt, sys
from include.core.config import get_model_config
from include.data import ingestion
config, day = get_model_config("credit_default"), dt.date.fromisoformat(sys.argv[1])
ingestion.land_labels(config, day)
landed = ingestion.land(config, day)
try:
    validated = ingestion.validate(config, day, landed["batch_uri"])
except ingestion.BatchRejected:
    pass
else:
    ingestion.publish(config, day, validated["validated_uri"])
"""

CHUNK = """
import json, sys
from include.core.config import get_model_config
from include.data import history_import
print(json.dumps(history_import.import_chunk(get_model_config("credit_default"), sys.argv[1:])))
"""

DAG_TEST = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.utils import db
db.initdb()
bag = DagBag(dag_folder=sys.argv[1])
if bag.import_errors:
    raise SystemExit(str(bag.import_errors))
dag = bag.dags["credit_default__history_import"]
run = dag.test(logical_date=None, run_conf={"start": sys.argv[2], "end": sys.argv[3], "chunk_days": int(sys.argv[4])})
print(json.dumps({ti.task_id + str(ti.map_index): ti.state for ti in run.get_task_instances()}))
"""


def generate_source(folder: Path, days: int, rows: int) -> Path:
    """Write the applications and label files of `days` days (about `rows` rows) and a files config; its path."""
    demo = load_model_config(DEMO_CONFIG)
    world = demo.model_copy(update={"source": demo.source.model_copy(
        update={"days": days, "rows_per_day": max(1, rows // days)})})
    (folder / "labels").mkdir(parents=True)
    for offset in range(days):
        day = FIRST_DAY + dt.timedelta(days=offset)
        data_world.feature_batch(world, day).to_csv(folder / f"applications_{day}.csv", index=False)
        labels = data_world.labels_arriving_on(world, day)
        if not labels.empty:
            labels.to_csv(folder / "labels" / f"labels_{day}.csv", index=False)
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["source"] = {"kind": "files", "path": str(folder), "pattern": "applications_{day}.csv",
                     "start_date": FIRST_DAY.isoformat(), "labels_path": str(folder / "labels"),
                     "labels_pattern": "labels_{day}.csv"}
    models = folder.parent / "models"
    models.mkdir()
    (models / DEMO_CONFIG.name).write_text(yaml.safe_dump(raw, sort_keys=False))
    return models


def run_python(code: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"a measured process failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done


def environment(base: Path, models: Path, name: str) -> dict:
    """A fresh state folder per measurement, so no path finds another's curated days."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "dags")]),
            "MLOPS_STATE_DIR": str(base / f"state-{name}"), "MLOPS_MODELS_DIR": str(models),
            "GX_ANALYTICS_ENABLED": "False",
            "AIRFLOW_HOME": str(base / f"airflow-{name}"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{base / f'airflow-{name}.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")}


def per_minute(days: int, seconds: float) -> float:
    return days / seconds * 60


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of the finished child processes: the work, whatever else loads the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=600)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=6, help="days ingested the daily way (the baseline)")
    parser.add_argument("--chunk-days", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dag", type=int, default=0, help="also dag.test() the DAG over this many days")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-history-"))
    started = time.perf_counter()
    models = generate_source(base / "incoming", args.days, args.rows)
    print(f"generated {args.days} days (~{args.rows} rows) in {time.perf_counter() - started:.0f} s under {base}")
    print(f"load before: {os.getloadavg()}")

    env = environment(base, models, "daily")
    sample = [FIRST_DAY + dt.timedelta(days=offset * (args.days // args.sample)) for offset in range(args.sample)]
    started, cpu = time.perf_counter(), children_cpu_seconds()
    for day in sample:
        run_python(DAILY, day.isoformat(), env=env)
    daily_seconds = time.perf_counter() - started
    daily_cpu = (children_cpu_seconds() - cpu) / len(sample)
    daily_rate = per_minute(len(sample), daily_seconds)
    print(f"daily ingestion, a process per day: {len(sample)} days in {daily_seconds:.1f} s = "
          f"{daily_rate:.1f} days/min (600 days: {600 / daily_rate:.0f} min); {daily_cpu:.1f} CPU s per day")

    sys.path.insert(0, str(ROOT))
    from include.data import history_import

    env = environment(base, models, "history")
    last = FIRST_DAY + dt.timedelta(days=args.days - 1)
    chunks = history_import.plan_chunks(FIRST_DAY, last, args.chunk_days)
    started, cpu = time.perf_counter(), children_cpu_seconds()
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda chunk: json.loads(run_python(CHUNK, *chunk, env=env).stdout.splitlines()[-1]),
                                chunks))
    history_seconds = time.perf_counter() - started
    history_cpu = (children_cpu_seconds() - cpu) / args.days
    summary = history_import.summarize(load_model_config(models / DEMO_CONFIG.name), results)
    history_rate = per_minute(args.days, history_seconds)
    projected = history_seconds / args.days * 600
    verdict = f"600 days would take {projected:.0f} s: {'within' if projected <= TARGET_SECONDS else 'OVER'}"
    print(f"history import, {len(chunks)} chunks of {args.chunk_days} days, {args.workers} at a time: "
          f"{args.days} days / {summary['rows']} rows in {history_seconds:.1f} s = {history_rate:.1f} days/min, "
          f"{history_rate / daily_rate:.1f}x daily ingestion; {verdict} the {TARGET_SECONDS} s target")
    print(f"  {history_cpu:.2f} CPU s per day ({daily_cpu / history_cpu:.1f}x less than daily ingestion); on "
          f"{args.workers} idle cores 600 days would take about {600 * history_cpu / args.workers:.0f} s")
    print(f"  curated {summary['days']} days, quarantined {summary['quarantined']}, missing {summary['missing']}, "
          f"labels quarantined {summary['labels_quarantined']}")
    print(f"load after: {os.getloadavg()}")

    if args.dag:
        env = environment(base, models, "dag")
        Path(env["AIRFLOW_HOME"]).mkdir()
        last = FIRST_DAY + dt.timedelta(days=args.dag - 1)
        started = time.perf_counter()
        states = run_python(DAG_TEST, str(ROOT / "dags" / "history_import.py"), FIRST_DAY.isoformat(),
                            last.isoformat(), str(args.chunk_days), env=env).stdout.splitlines()[-1]
        dag_seconds = time.perf_counter() - started
        print(f"dag.test() of {args.dag} days (one process, chunks in turn, Airflow's DB set-up included): "
              f"{dag_seconds:.1f} s = {per_minute(args.dag, dag_seconds):.1f} days/min; task states {states}")


if __name__ == "__main__":
    main()
