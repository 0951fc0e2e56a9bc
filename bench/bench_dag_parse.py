"""Parse time of each DAG file, and of all DAGs of one model, next to a trivial TaskFlow DAG.

Airflow's DAG processor parses each file in a fresh child of a process that has already imported
Airflow, so this does the same: it imports Airflow (and its TaskFlow decorators) once, then forks
a child per parse and times `DagBag(<file>)` there. Each figure is the median of --repeat
parses; the ratio is against the trivial DAG measured in the same run. Target: every file within 2x of the trivial DAG.

    .venv/bin/python bench/bench_dag_parse.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "dags")]  # as the DAG processor: the bundle folder is on sys.path

TRIVIAL_DAG = '''
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), tags=["bench"])
def trivial_taskflow():
    @task
    def extract() -> dict:
        return {"a": 1}

    @task
    def load(data: dict) -> None:
        print(data)

    load(extract())


trivial_taskflow()
'''


def _parse_in_child(path: str, queue) -> None:
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=path)
    queue.put((time.perf_counter() - started, len(bag.dags), len(bag.import_errors)))


def median_parse_seconds(path: Path, repeat: int) -> tuple[float, int]:
    """Median wall time of parsing `path` in a forked child, and how many DAGs it yields."""
    context = multiprocessing.get_context("fork")
    times, dag_count = [], 0
    for _ in range(repeat):
        queue = context.Queue()
        child = context.Process(target=_parse_in_child, args=(str(path), queue))
        child.start()
        seconds, dag_count, errors = queue.get(timeout=120)
        child.join()
        if errors:
            raise SystemExit(f"{path} has import errors; fix them before benchmarking")
        times.append(seconds)
    return statistics.median(times), dag_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    from airflow.dag_processing.dagbag import DagBag

    with tempfile.TemporaryDirectory() as folder:
        trivial = Path(folder) / "trivial_taskflow.py"
        trivial.write_text(TRIVIAL_DAG)
        DagBag(dag_folder=str(trivial))  # warm: Airflow's own imports are paid once, as in the processor
        baseline, _ = median_parse_seconds(trivial, args.repeat)

    print(f"{'DAG file':<34}{'DAGs':>6}{'median ms':>12}{'x trivial':>11}")
    print(f"{'(trivial TaskFlow DAG)':<34}{1:>6}{baseline * 1000:>12.1f}{1.0:>11.2f}")
    total, worst = 0.0, 0.0
    for path in sorted((ROOT / "dags").glob("*.py")):
        seconds, dags = median_parse_seconds(path, args.repeat)
        total += seconds
        worst = max(worst, seconds / baseline)
        print(f"{path.name:<34}{dags:>6}{seconds * 1000:>12.1f}{seconds / baseline:>11.2f}")
    print(f"{'all DAG files (one model)':<34}{'':>6}{total * 1000:>12.1f}{total / baseline:>11.2f}")
    print(f"worst file: {worst:.2f}x the trivial DAG (target: within 2x)")


if __name__ == "__main__":
    main()
