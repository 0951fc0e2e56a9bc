"""What does the feature store cost? Feast's materialization and training sets against the project's own.

On the demo world (1,000 applications a day) in a temporary state folder, with a curated history of
`--history` days (each size given), it times, best of `--repeat`:

- the baseline: writing one day's curated batch (`storage.write_curated_batch`, what ingestion's
  publish step does);
- `feature_store.materialize_day` of that day into the SQLite online store (the store opened and
  the registry's definitions applied again, as every run does), the same with an open store reused,
  and Feast's own `materialize` of the day for comparison (its DuckDB query reads every curated day);
- `feature_store.materialize_range` of the whole history in one write (a history import's run), per day;
- `feature_store.training_set` against `training_data.assemble_training_set` for a 60-day window
  ending at the last day (labels 7 days late, as the demo's).

and prints wall and CPU times and the ratios. The target (issue 15): materializing one day takes at
most 2x writing its curated batch. Feast's import (seconds) is paid once per process, before timing.
Other processes share the machine's cores, so the load average is printed too.

Run: `make bench`, or `.venv/bin/python bench/bench_feature_store.py [--history 60 365] [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.core import storage  # noqa: E402
from include.core.config import load_model_config  # noqa: E402
from include.core.settings import PROJECT_ROOT  # noqa: E402

FIRST_DAY = dt.date(2026, 1, 1)
TARGET_RATIO = 2.0


def best_of(repeat: int, action: Callable[[], object]) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run) of `repeat` runs of `action`."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def line(name: str, timing: tuple[float, float], baseline: tuple[float, float] | None = None) -> str:
    wall, cpu = timing
    ratio = f"  {wall / baseline[0]:6.1f}x wall  {cpu / baseline[1]:6.1f}x CPU" if baseline else ""
    return f"  {name:<44} {wall * 1000:9.1f} ms wall {cpu * 1000:9.1f} ms CPU{ratio}"


def fill(config, days: int) -> None:
    """`days` curated batches and their labels (7 days late), from the demo world."""
    from include.demo import data_world

    schema, target = config.schema, config.target
    delay = dt.timedelta(days=target.label_delay_days)
    for offset in range(days):
        day = FIRST_DAY + dt.timedelta(days=offset)
        applications = data_world.applications_for_day(config, day)
        storage.write_curated_batch(config.name, day, applications[list(schema.columns)])
        labels = applications[[schema.entity_column, target.column, schema.timestamp_column]].copy()
        labels[storage.LABEL_TIMESTAMP] = labels[schema.timestamp_column] + delay
        storage.write_labels(config.name, day + delay, labels)


def bench_history(config, days: int, repeat: int) -> bool:
    """Time one history size; True when materialization meets the target."""
    import pandas as pd

    from include.features import feature_store
    from include.training.training_data import assemble_training_set

    with tempfile.TemporaryDirectory(prefix="bench-feast-") as state:
        os.environ["MLOPS_STATE_DIR"] = state
        os.environ.pop("MLOPS_DATA_DIR", None)
        os.environ.pop(feature_store.REDIS_ENV, None)
        fill(config, days)
        day = FIRST_DAY + dt.timedelta(days=days - 1)
        batch = pd.read_parquet(storage.curated_path(config.name, day))
        store = feature_store.open_store(config)
        start, end = feature_store.range_bounds(day, day)
        end -= dt.timedelta(microseconds=1)  # Feast's materialize includes its end

        write = best_of(repeat, lambda: storage.write_curated_batch(config.name, day, batch))
        materialize = best_of(repeat, lambda: feature_store.materialize_day(config, day))
        reused = best_of(repeat, lambda: feature_store.materialize_day(config, day, store))
        feast_materialize = best_of(repeat, lambda: store.materialize(start, end, feature_views=[config.name]))
        whole = best_of(1, lambda: feature_store.materialize_range(config, FIRST_DAY, day, store))
        window = min(60, days)
        assembled = best_of(repeat, lambda: assemble_training_set(config, day, window))
        from_feast = best_of(repeat, lambda: feature_store.training_set(config, day, window))
        rows = len(assemble_training_set(config, day, window))

    print(f"\n{days} days of curated history, {len(batch)} rows a day:")
    print(line("write the day's curated batch (baseline)", write))
    print(line("materialize_day (open the store + write)", materialize, write))
    print(line("materialize_day, open store reused", reused, write))
    print(line("Feast's store.materialize of the day", feast_materialize, write))
    per_day = (whole[0] / days, whole[1] / days)
    print(line(f"materialize_range of {days} days, per day", per_day, write))
    print(line(f"assemble_training_set, {window}-day window (baseline)", assembled))
    print(line(f"feature_store.training_set ({rows} rows)", from_feast, assembled))
    met = reused[0] <= TARGET_RATIO * write[0]
    verdict = "meets" if met else "misses"
    ratio = reused[0] / write[0]
    print(f"  materializing a day takes {ratio:.1f}x writing it: {verdict} the {TARGET_RATIO:.0f}x target")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, nargs="+", default=[60, 365], help="days of curated history")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    demo = load_model_config(PROJECT_ROOT / "include" / "models" / "credit_default.yaml")
    config = demo.model_copy(update={"feature_store": "feast"})  # whether or not the demo turns it on
    started = time.perf_counter()
    import feast  # noqa: F401  (its import is paid once per process, not per materialization)

    print(f"feast import: {time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.2f}")
    results = [bench_history(config, days, args.repeat) for days in args.history]
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    # A miss is reported, not an exit status: the target is for later (issue 15) and the runs go on.
    print("target met for every history" if all(results) else "target missed (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
