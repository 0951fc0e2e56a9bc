"""Parse time of each DAG file, and of all DAGs of one model, next to a trivial TaskFlow DAG.

Airflow's DAG processor parses each file in a fresh child of a process that has already imported
Airflow and frozen its heap (`gc.freeze()`, so a child's garbage collection does not walk, and
copy, the parent's objects), so this does the same: it imports Airflow (and its TaskFlow
decorators) once, freezes, then forks a child per parse and times `DagBag(<file>)` there. Each
figure is the median of --repeat parses; the ratio is against the trivial DAG measured in the
same run. Target: every file within 2x of the trivial DAG. bench/bench_fleet.py does the same for
a fleet of generated model configs.

    .venv/bin/python bench/bench_dag_parse.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import atexit
import gc
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "dags")]  # as the DAG processor: the bundle folder is on sys.path

TRIVIAL_DAG = """
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
"""


def _parse_in_child(path: str, queue) -> None:
    import resource

    from airflow.dag_processing.dagbag import DagBag

    started, cpu_started = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=path)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((seconds, cpu_seconds, len(bag.dags), len(bag.import_errors), peak_rss_mb))


def parse_once(path: Path) -> tuple[float, float, int, float]:
    """Parse `path` in a forked child: wall and CPU seconds, DAGs found, the child's peak RSS in MB.

    CPU seconds are what a shared machine disturbs least: other processes stretch the wall time.
    """
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_parse_in_child, args=(str(path), queue))
    child.start()
    seconds, cpu_seconds, dag_count, errors, peak_rss_mb = queue.get(timeout=600)
    child.join()
    if errors:
        raise SystemExit(f"{path} has import errors; fix them before benchmarking")
    return seconds, cpu_seconds, dag_count, peak_rss_mb


def median_parse_seconds(path: Path, repeat: int) -> tuple[float, int]:
    """Median wall time of parsing `path` in a forked child, and how many DAGs it yields."""
    times, dag_count = [], 0
    for _ in range(repeat):
        seconds, _, dag_count, _ = parse_once(path)
        times.append(seconds)
    return statistics.median(times), dag_count


def prepare_processor_parent(trivial: Path) -> None:
    """Make this process what the DAG processor's manager is when it forks a parse: Airflow and
    the TaskFlow decorators imported (one warm parse) and the heap frozen.

    Bytecode is cached (in a temporary folder), as in the image, where imports write `__pycache__`:
    with PYTHONDONTWRITEBYTECODE set, every parse would compile each module it imports again.
    """
    from airflow.dag_processing.dagbag import DagBag

    sys.dont_write_bytecode = False
    sys.pycache_prefix = tempfile.mkdtemp(prefix="bench-pycache-")
    atexit.register(shutil.rmtree, sys.pycache_prefix, True)

    DagBag(dag_folder=str(trivial))
    gc.freeze()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    with tempfile.TemporaryDirectory() as folder:
        trivial = Path(folder) / "trivial_taskflow.py"
        trivial.write_text(TRIVIAL_DAG)
        prepare_processor_parent(trivial)
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
