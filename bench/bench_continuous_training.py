"""Benchmark: the continuous-training steps against a bare scikit-learn fit + evaluate.

Both run in this process on the same curated Parquet store and labels (generated with the
synthetic data world, vectorised), with the same estimator and preprocessing:

- bare: read the curated and label partitions with pandas, join, split by time, fit the Pipeline,
  score the holdout (ROC AUC, average precision, Brier);
- steps: `continuous_training.assemble`, `validate` (GX), `train` (MLflow run, datasets, params,
  train/validation metrics, model logged with signature), `evaluate` (holdout metrics, slices,
  plots, golden examples, gate) and `register`, on a local SQLite MLflow store. The ratio is
  given without and with `register`.

Memory is the peak resident set size (the kernel's high-water mark, the counter `ru_maxrss`
reports, read as VmHWM from /proc/self/status and reset before each phase via
/proc/self/clear_refs) minus the resident size when the phase starts, relative to the deep
in-memory size of the assembled training frame. Freed heap is handed back to the OS between
phases (malloc_trim) so that one phase's leftovers do not hide the next one's peak.

Imports and the creation of the MLflow database happen once, before timing, and are printed apart.

    .venv/bin/python bench/bench_continuous_training.py               # 1M training rows
    .venv/bin/python bench/bench_continuous_training.py --rows 50000  # a quick run
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import math
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TIME_TARGET = 1.5
MEMORY_TARGET = 3.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="labelled rows in the training set")
    parser.add_argument("--window-days", type=int, default=60, help="days in the training window")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="OpenMP/BLAS threads for both contestants (default 1: on a shared machine, OpenMP threads "
             "competing with other processes make timings swing several-fold; 0 = all cores)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary state folder")
    return parser.parse_args()


# --- measuring -----------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_freed_memory() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextmanager
def measured(results: dict, name: str):
    """Time a phase and record its peak RSS growth (MiB) above the RSS it started with."""
    _release_freed_memory()
    Path("/proc/self/clear_refs").write_text("5")
    start_rss = _status_kib("VmRSS")
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    results[name] = {"seconds": seconds, "peak_growth_mib": max(peak - start_rss, 0) / 1024}


# --- the data ------------------------------------------------------------------------------------


def write_world(config, rows: int, window_days: int) -> tuple[object, dt.date]:
    """Curated batches of a whole window, and labels arriving `label_delay_days` after each day.

    Returns:
        The config with the needed rows per day, and the cutoff (last day of the window).
    """
    from include.core import storage
    from include.demo import data_world
    from include.training.training_data import LABEL_TIMESTAMP

    delay = config.target.label_delay_days
    labelled_days = window_days - delay
    if labelled_days < 1:
        raise SystemExit(f"--window-days must exceed the label delay ({delay} days)")
    config = data_world.with_rows_per_day(config, math.ceil(rows / labelled_days))
    schema, target = config.schema, config.target
    first_day = config.source.start_date
    for offset in range(window_days):
        day = first_day + dt.timedelta(days=offset)
        applications = data_world.applications_for_day(config, day)
        storage.write_curated_batch(config.name, day, applications[list(schema.columns)])
        labels = applications[[schema.entity_column, target.column, schema.timestamp_column]]
        labels = labels.assign(**{LABEL_TIMESTAMP: labels[schema.timestamp_column] + dt.timedelta(days=delay)})
        storage.write_labels(config.name, day + dt.timedelta(days=delay), labels)
    return config, first_day + dt.timedelta(days=window_days - 1)


# --- the two contestants -------------------------------------------------------------------------


def bare_fit_and_evaluate(config, cutoff: dt.date, window_days: int) -> dict:
    """What a data scientist would write: pandas + scikit-learn, nothing else."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from include.core import settings

    root = settings.data_dir() / config.name
    first_day = cutoff - dt.timedelta(days=window_days - 1)
    curated = pd.concat(
        [pd.read_parquet(path) for path in sorted((root / "curated").glob("day=*/batch.parquet"))
         if first_day.isoformat() <= path.parent.name.removeprefix("day=") <= cutoff.isoformat()],
        ignore_index=True,
    )
    labels = pd.concat(
        [pd.read_parquet(path) for path in sorted((root / "labels").glob("day=*/labels.parquet"))
         if path.parent.name.removeprefix("day=") <= cutoff.isoformat()],
        ignore_index=True,
    )
    schema, target = config.schema, config.target.column
    labels = labels[[schema.entity_column, target]]
    frame = curated.merge(labels, on=schema.entity_column).sort_values(schema.timestamp_column, ignore_index=True)
    del curated, labels
    rows = len(frame)
    holdout_start = rows - round(rows * config.training.split.holdout_fraction)
    train_end = holdout_start - round(rows * config.training.split.validation_fraction)
    features = config.features.all
    preprocess = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), config.features.numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="__missing__"),
                    SimpleImputer(missing_values=None, strategy="constant", fill_value="__missing__"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                config.features.categorical,
            ),
        ]
    )
    model = Pipeline(
        [("preprocess", preprocess), ("estimator", HistGradientBoostingClassifier(**config.training.estimator.params))]
    )
    model.fit(frame[features].iloc[:train_end], frame[target].iloc[:train_end])
    holdout = frame.iloc[holdout_start:]
    scores = model.predict_proba(holdout[features])[:, 1]
    truth = holdout[target].to_numpy()
    return {
        "rows": rows,
        "frame_mib": frame.memory_usage(deep=True).sum() / 2**20,
        "roc_auc": roc_auc_score(truth, scores),
        "average_precision": average_precision_score(truth, scores),
        "brier_score": brier_score_loss(truth, np.clip(scores, 0, 1)),
    }


def continuous_training_steps(config, cutoff: dt.date, window_days: int, results: dict) -> dict:
    from include.training import continuous_training as ct

    ctx = ct.RunContext(dag_id=f"{config.name}__continuous_training", run_id="bench__1", trigger="manual")
    with measured(results, "assemble"):
        assembled = ct.assemble(config, ctx, cutoff, window_days)
    uri = assembled["training_set_uri"]
    with measured(results, "validate"):
        ct.validate(config, ctx, uri)
    with measured(results, "train"):
        trained = ct.train(config, ctx, uri)
    with measured(results, "evaluate"):
        evaluated = ct.evaluate(config, ctx, uri, trained["mlflow_run_id"])
    with measured(results, "register"):
        ct.register(config, ctx, trained["mlflow_run_id"])
    return {"rows": assembled["rows"], "fit_seconds": trained["fit_seconds"], **evaluated["metrics"]}


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-ct-"))
    os.environ["MLOPS_STATE_DIR"] = str(state)
    os.environ.pop("MLOPS_DATA_DIR", None)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    (state / "mlflow").mkdir(parents=True)
    sys.path.insert(0, str(PROJECT_ROOT))

    started = time.perf_counter()
    import great_expectations  # noqa: F401 - heavy imports happen once per process, before timing
    import matplotlib.pyplot  # noqa: F401
    import mlflow.sklearn  # noqa: F401
    import skops.io  # noqa: F401
    from threadpoolctl import threadpool_limits

    from include.core import registry
    from include.core.config import load_model_config
    from include.training import continuous_training  # noqa: F401

    registry.ensure_experiment("warm_up")  # creates the MLflow database: once per deployment
    print(f"imports and MLflow database setup (not timed below): {time.perf_counter() - started:.1f}s")

    config = load_model_config(PROJECT_ROOT / "include" / "models" / "credit_default.yaml")
    started = time.perf_counter()
    config, cutoff = write_world(config, args.rows, args.window_days)
    print(f"generated {args.window_days} days x {config.source.rows_per_day} rows in "
          f"{time.perf_counter() - started:.1f}s (state: {state})")

    results: dict[str, dict] = {}
    with threadpool_limits(args.threads or None):
        with measured(results, "bare"):
            bare = bare_fit_and_evaluate(config, cutoff, args.window_days)
        steps = continuous_training_steps(config, cutoff, args.window_days, results)

    report(args, bare, steps, results)
    if not args.keep:
        shutil.rmtree(state, ignore_errors=True)


def report(args, bare: dict, steps: dict, results: dict) -> None:
    frame_mib = bare["frame_mib"]
    step_names = ["assemble", "validate", "train", "evaluate", "register"]
    print(f"\ntraining set: {bare['rows']:,} rows (steps: {steps['rows']:,}), {frame_mib:,.0f} MiB in memory; "
          f"OpenMP threads: {args.threads or os.cpu_count()}")
    print(f"{'phase':<10} {'seconds':>9} {'peak RSS growth MiB':>21} {'x frame':>8}")
    for name in ["bare", *step_names]:
        numbers = results[name]
        print(f"{name:<10} {numbers['seconds']:>9.1f} {numbers['peak_growth_mib']:>21,.0f} "
              f"{numbers['peak_growth_mib'] / frame_mib:>8.2f}")
    print(f"(the train step's own fit took {steps['fit_seconds']:.1f}s)")
    without_register = sum(results[name]["seconds"] for name in step_names[:-1])
    with_register = without_register + results["register"]["seconds"]
    steps_peak = max(results[name]["peak_growth_mib"] for name in step_names)
    time_ratio = without_register / results["bare"]["seconds"]
    memory_ratio = steps_peak / frame_mib
    print(f"\nwall time, steps / bare: {time_ratio:.2f}x without register, "
          f"{with_register / results['bare']['seconds']:.2f}x with register (target <= {TIME_TARGET}x)")
    print(f"peak memory of the steps: {memory_ratio:.2f}x the training frame "
          f"(bare: {results['bare']['peak_growth_mib'] / frame_mib:.2f}x; target <= {MEMORY_TARGET}x)")
    print(f"holdout ROC AUC: bare {bare['roc_auc']:.4f}, steps {steps['roc_auc']:.4f}")
    verdicts = [("time", time_ratio <= TIME_TARGET), ("memory", memory_ratio <= MEMORY_TARGET)]
    print("targets: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in verdicts))


if __name__ == "__main__":
    main()
