"""Benchmark: a replay's wall time per replayed day against a bare scikit-learn fit of the same window.

The replay (`include.replay.runner.replay`) runs the demo world from its first day through the
first training window and `--days` days after it, under `--policies`, `--jobs` processes at a
time, in a throw-away state. The baseline, in this process and on the same data, is what one day
of the cheapest possible "retrain every day" would cost: reading nothing, validating nothing,
logging nothing, one `fit` of the config's Pipeline on one training window of rows
(`training.window_days` days of the data world, labels joined). The ratio says how many bare fits
one replayed day costs, all policies and their bookkeeping (ingestion with its GX gate, batch
prediction, drift checks, MLflow, the gate) included.

    .venv/bin/python bench/bench_replay.py                          # 30 days after the first window
    .venv/bin/python bench/bench_replay.py --days 305               # the demo's whole year
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="credit_default")
    parser.add_argument("--days", type=int, default=30, help="days replayed after the first training window")
    parser.add_argument("--policies", default=None, help="comma-separated (default: every policy the config offers)")
    parser.add_argument("--jobs", type=int, default=None, help="processes at once (default: the CPU count)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary state folder with the report")
    return parser.parse_args()


def bare_fit_seconds(config, first_day: dt.date) -> tuple[float, int]:
    """Wall seconds of one fit of the config's Pipeline on a training window of the data world, and its rows."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from include.demo import data_world
    from include.training import training

    window = [first_day + dt.timedelta(days=n) for n in range(config.training.window_days)]
    features = pd.concat([data_world.feature_batch(config, day) for day in window], ignore_index=True)
    labels = pd.concat([data_world.labels_arriving_on(config, day + dt.timedelta(days=config.target.label_delay_days))
                        for day in window], ignore_index=True)
    entity, target = config.schema.entity_column, config.target.column
    frame = features.merge(labels[[entity, target]], on=entity)
    columns = [*config.features.numeric, *config.features.categorical]
    times = []
    with threadpool_limits(1):
        for _ in range(3):
            model = training.build_model(config)
            started = time.perf_counter()
            model.fit(frame[columns], frame[target])
            times.append(time.perf_counter() - started)
    return sorted(times)[1], len(frame)


def main() -> int:
    args = parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    os.environ["MLOPS_STATE_DIR"] = str(state)
    from include.replay.runner import model_config, replay

    config = model_config(args.model)
    start = config.source.start_date
    end = start + dt.timedelta(days=config.training.window_days - 1 + args.days)
    fit_seconds, rows = bare_fit_seconds(config, start)

    started = time.perf_counter()
    done = replay(args.model, start, end, args.policies, jobs=args.jobs)
    elapsed = time.perf_counter() - started
    replayed = (end - start).days + 1
    policies = list(done.summary["policies"])
    per_day = elapsed / replayed

    print(f"replay of {args.model}, {start} to {end} ({replayed} days; {args.days} after the first window), "
          f"policies {', '.join(policies)}, {args.jobs or os.cpu_count()} processes")
    print(f"  wall time                {elapsed:8.1f} s")
    print(f"  per replayed day         {per_day:8.2f} s")
    print(f"  bare fit of one window   {fit_seconds:8.2f} s  ({rows} rows, 1 thread)")
    print(f"  ratio                    {per_day / fit_seconds:8.1f} bare fits per replayed day")
    for name, kept in done.summary["policies"].items():
        print(f"  {name:<12} {kept['retrains']:4d} retrains  {kept['train_cpu_seconds']:8.1f} training CPU s")
    if args.keep:
        print(f"  report: {done.folder / 'report.md'}")
    else:
        shutil.rmtree(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
