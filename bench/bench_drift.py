"""How fast and how lean is the drift check? `detect_drift` against the numpy floor, same process.

For windows of 10k, 100k and 1M rows over the demo config's feature columns, it times:

- `detect_drift` as the sensor runs it (windows above 100k rows tested on a 100k-row sample);
- `detect_drift` on every row (`max_rows=None`), to show the cost of the implementation itself;
- the floor: a bare numpy K-S of each numeric column against its pre-sorted reference, plus a
  pandas `value_counts` of each categorical column, on every row;

and prints each one's best-of-3 wall and CPU times, its peak of traced memory (numpy and pandas
allocations, excluding the window itself), and its CPU-time ratio to the floor. Then it times Evidently's
`DataDriftPreset` report on the bounded samples the sensor gives it.

Last, the whole check the drift sensor runs (`include.monitoring.monitoring.run_check`) on a daily window of
1M rows: read the curated batch and the champion's batch predictions, `detect_drift`, realized
performance on 1M scored rows joined with their 1M arrived labels, both Evidently reports, the
MLflow run (SQLite store) and the history row. It runs in a fresh process per measurement, whose
wall time (imports included, and the check alone) and peak RSS are printed, once with the
reference profile still to build (the first check of a new champion) and once with it saved.

The budget is 15 s and 2 GB for 1M rows. Other processes share the machine's two cores, so the
load average is printed too.

Run: `make bench`, or `.venv/bin/python bench/bench_drift.py` (`--whole-check` for the last part only).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from include.core.config import ModelConfig, get_model_config  # noqa: E402
from include.demo import data_world  # noqa: E402
from include.monitoring.drift import (  # noqa: E402
    REPORT_SAMPLE_ROWS,
    ReferenceProfile,
    build_reference_profile,
    detect_drift,
    write_evidently_report,
)

SIZES = (10_000, 100_000, 1_000_000)
REFERENCE_DAYS = 60
WINDOW_DAY = dt.date(2026, 2, 20)
REPEATS = 3
BUDGET_SECONDS, BUDGET_BYTES = 15.0, 2 * 1024**3


def measure(work: Callable[[], object]) -> tuple[float, float, int]:
    """Best-of-`REPEATS` wall and CPU times, and the peak traced memory of one run.

    The CPU time is the steadier figure when other processes compete for the cores.
    """
    timings = [_timed(work) for _ in range(REPEATS)]
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return min(wall for wall, _ in timings), min(cpu for _, cpu in timings), peak


def _timed(work: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def numpy_floor(config: ModelConfig, profile: ReferenceProfile, window: pd.DataFrame) -> list[float]:
    """The least work a K-S check of the window can do: sort, two searchsorted, one max."""
    statistics = []
    for name in config.features.numeric:
        reference = profile.numeric[name].sorted_values
        values = window[name].to_numpy(dtype="float64", na_value=np.nan)
        current = np.sort(values[~np.isnan(values)])
        grid = np.concatenate([reference, current])
        gap = np.searchsorted(reference, grid, side="right") / len(reference) - np.searchsorted(
            current, grid, side="right"
        ) / len(current)
        statistics.append(float(np.abs(gap).max()))
    for name in config.features.categorical:
        window[name].value_counts()
    return statistics


def main() -> None:
    config = get_model_config("credit_default")
    start = config.source.start_date
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; columns {config.features.all}")

    reference = pd.concat(
        [data_world.feature_batch(config, start + dt.timedelta(days=offset)) for offset in range(REFERENCE_DAYS)],
        ignore_index=True,
    )
    seconds, _, peak = measure(lambda: build_reference_profile(config, reference, model_version=1))
    profile = build_reference_profile(config, reference, model_version=1)
    print(f"reference profile of {len(reference):,} rows (once per champion): {seconds:.3f} s, "
          f"peak {peak / 1e6:.0f} MB")

    largest = data_world.feature_batch(data_world.with_rows_per_day(config, max(SIZES)), WINDOW_DAY)
    print(f"\n{'rows':>10} {'what':<26} {'wall s':>7} {'cpu s':>7} {'peak MB':>8} {'x floor':>8}")
    for rows in SIZES:
        window = largest.iloc[:rows].copy()
        floor = measure(lambda window=window: numpy_floor(config, profile, window))
        runs = {
            "numpy floor (all rows)": floor,
            "detect_drift (sensor)": measure(lambda window=window: detect_drift(config, profile, window)),
            "detect_drift (all rows)": measure(
                lambda window=window: detect_drift(config, profile, window, max_rows=None)
            ),
        }
        for what, (seconds, cpu, peak) in runs.items():
            print(f"{rows:>10,} {what:<26} {seconds:>7.3f} {cpu:>7.3f} {peak / 1e6:>8.1f} {cpu / floor[1]:>8.2f}")
        sensor_seconds, _, sensor_peak = runs["detect_drift (sensor)"]
        if rows == max(SIZES):
            within = sensor_seconds <= BUDGET_SECONDS and sensor_peak <= BUDGET_BYTES
            print(f"{'':>10} budget 15 s / 2 GB for 1M rows: {'met' if within else 'MISSED'}")

    wall, cpu = time.perf_counter(), time.process_time()
    import evidently  # noqa: F401 - timed on purpose: the report task pays this import

    print(f"\nimport evidently: {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s cpu")
    with tempfile.TemporaryDirectory() as folder:
        seconds, cpu, peak = measure(lambda: write_evidently_report(config, profile.sample, largest, Path(folder)))
    print(
        f"Evidently DataDriftPreset report on {REPORT_SAMPLE_ROWS:,} + {REPORT_SAMPLE_ROWS:,} rows "
        f"(HTML + JSON): {seconds:.2f} s wall, {cpu:.2f} s cpu, peak {peak / 1e6:.0f} MB"
    )
    print(f"\nprocess max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


WHOLE_CHECK_ROWS = 1_000_000
CHAMPION_DAYS = 30


def prepare_whole_check(state: Path) -> dt.date:
    """A state folder with a champion (trained on 30 small days) and a day of 1M rows to check.

    Returns:
        The day to check: its curated batch and batch predictions hold 1M rows, and so do the
        batch predictions and labels of the event day whose labels arrive on it.
    """
    os.environ.update({
        "MLOPS_STATE_DIR": str(state),
        "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow' / 'mlflow.db'}",
    })
    (state / "mlflow").mkdir(parents=True, exist_ok=True)
    from include.core import registry, storage
    from include.delivery import batch_prediction
    from include.training import continuous_training as ct
    from include.training.training_data import LABEL_TIMESTAMP

    config = get_model_config("credit_default")
    start = config.source.start_date
    delay = dt.timedelta(days=config.target.label_delay_days)

    def land(day: dt.date, world: ModelConfig) -> None:
        applications = data_world.applications_for_day(world, day)
        storage.write_curated_batch(config.name, day, applications[list(config.schema.columns)])
        labels = applications[[config.schema.entity_column, config.target.column, config.schema.timestamp_column]]
        labels = labels.assign(**{LABEL_TIMESTAMP: labels[config.schema.timestamp_column] + delay})
        storage.write_labels(config.name, day + delay, labels)

    small = data_world.with_rows_per_day(config, 1_000)
    for offset in range(CHAMPION_DAYS + 7):
        land(start + dt.timedelta(days=offset), small)
    run_ctx = ct.RunContext(dag_id="bench", run_id="bench__champion", trigger="on_demand")
    assembled = ct.assemble(config, run_ctx, start + dt.timedelta(days=CHAMPION_DAYS + 6), CHAMPION_DAYS + 6)
    trained = ct.train(config, run_ctx, assembled["training_set_uri"])
    ct.evaluate(config, run_ctx, assembled["training_set_uri"], trained["mlflow_run_id"])
    version = ct.register(config, run_ctx, trained["mlflow_run_id"])["version"]
    registry.client().set_registered_model_alias(config.name, registry.CHAMPION, version)

    big = data_world.with_rows_per_day(config, WHOLE_CHECK_ROWS)
    checked = WINDOW_DAY
    for day in (checked - delay, checked):
        land(day, big)
        batch_prediction.score_day(config, day)
    return checked


CHECK_PROBE = """
import datetime as dt, json, resource, sys, time
started = time.perf_counter()
from include.monitoring import monitoring
from include.core.config import get_model_config
config = get_model_config("credit_default")
check_started = time.perf_counter()
result = monitoring.run_check(config, dt.date.fromisoformat(sys.argv[1]))
done = time.perf_counter()
print(json.dumps({"total": done - started, "check": done - check_started, "rows": result["rows"],
                  "labeled_rows": result["labeled_rows"],
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def whole_check() -> None:
    """Time `run_check` on a 1M-row day in fresh processes: first check of a champion, then a re-check."""
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as folder:
        state = Path(folder)
        setup = time.perf_counter()
        day = prepare_whole_check(state)
        print(f"\nwhole check (include.monitoring.monitoring.run_check) on {WHOLE_CHECK_ROWS:,} rows "
              f"(setup {time.perf_counter() - setup:.0f} s)")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
        for what in ("first check (builds the reference profile)", "re-check (profile saved)"):
            done = subprocess.run([sys.executable, "-c", CHECK_PROBE, day.isoformat()], env=env, check=True,
                                  capture_output=True, text=True)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            within = figures["total"] <= BUDGET_SECONDS and figures["max_rss_mb"] * 1024**2 <= BUDGET_BYTES
            print(f"  {what}: {figures['total']:.1f} s with imports, {figures['check']:.1f} s for the check; "
                  f"peak RSS {figures['max_rss_mb']:.0f} MB; {figures['rows']:,} rows, "
                  f"{figures['labeled_rows']:,} labeled; budget 15 s / 2 GB: {'met' if within else 'MISSED'}")


if __name__ == "__main__":
    if "--whole-check" not in sys.argv:
        main()
    whole_check()
