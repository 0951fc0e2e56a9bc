"""How much storage do the drift sensor's reports take per model and day? Before (HTML pages) vs after (snapshots).

On the demo world (the demo config, 1,000 rows a day, a real `@champion` trained by continuous
training's own steps, SQLite MLflow in a temporary state folder), it runs N daily checks
(`include.monitoring.monitoring.run_check`) with `monitoring.reports: every_check`, so every check
writes both Evidently reports (data drift and prediction drift), and then measures, per model-day:

- after: the bytes of the report folders (`<reports>/<model>/drift/day=D/`) and of the drift-check
  runs' MLflow artifacts, as the checks left them (compressed snapshots, results JSON, `check.json`);
- before: what the earlier version wrote for the same checks: every report's standalone HTML page
  (rendered here from its snapshot: the same widgets and data, so the same size as `save_html`
  wrote) beside the same JSON files, in the report folder and again in MLflow.

The target is at most 100 KB of reports per model and day. `report_storage(config)` is the
measuring function; other benches (the fleet bench) import it and call it on their own state.

Run: `.venv/bin/python bench/bench_report_storage.py [--days N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from include.core import registry, settings  # noqa: E402
from include.core.config import ModelConfig  # noqa: E402
from include.monitoring.evidently_reports import SNAPSHOT_SUFFIX, render_html  # noqa: E402

TARGET_BYTES_PER_DAY = 100 * 1024
ROWS_PER_DAY = 1_000
FIRST_CHECKED = 33
"""The world's day the checks start on: the champion is trained on the 30 days before."""


def report_storage(config: ModelConfig, with_html_equivalent: bool = True) -> dict:
    """The drift reports' storage of one model in the current state folder and MLflow, per checked day.

    Returns:
        {"days": checked days with a report folder, "reports_bytes", "mlflow_bytes",
         "reports_bytes_per_day", "mlflow_bytes_per_day", and with `with_html_equivalent`:
         "html_bytes": what the same reports weigh as standalone HTML pages,
         "before_reports_bytes_per_day", "before_mlflow_bytes_per_day"}.
    """
    root = settings.reports_dir() / config.name / "drift"
    day_folders = sorted(root.glob("day=*")) if root.exists() else []
    files = [path for folder in day_folders for path in folder.rglob("*") if path.is_file()]
    reports_bytes = sum(path.stat().st_size for path in files)
    mlflow_bytes = _mlflow_report_bytes(config)
    days = max(len(day_folders), 1)
    result = {
        "days": len(day_folders),
        "reports_bytes": reports_bytes,
        "mlflow_bytes": mlflow_bytes,
        "reports_bytes_per_day": reports_bytes / days,
        "mlflow_bytes_per_day": mlflow_bytes / days,
    }
    if with_html_equivalent:
        snapshots = [path for path in files if path.name.endswith(SNAPSHOT_SUFFIX)]
        snapshot_bytes = sum(path.stat().st_size for path in snapshots)
        html_bytes = sum(len(render_html(path).encode("utf-8")) for path in snapshots)
        result.update({
            "html_bytes": html_bytes,
            "before_reports_bytes_per_day": (reports_bytes - snapshot_bytes + html_bytes) / days,
            "before_mlflow_bytes_per_day": (mlflow_bytes - snapshot_bytes + html_bytes) / days,
        })
    return result


def _mlflow_report_bytes(config: ModelConfig) -> int:
    """The bytes of every drift-check run's `drift_report` artifacts (as the tracking server lists them)."""
    from include.monitoring.monitoring import monitoring_runs

    client = registry.client()
    total = 0
    for run in monitoring_runs(config):
        pending = ["drift_report"]
        while pending:
            for item in client.list_artifacts(run.info.run_id, pending.pop()):
                if item.is_dir:
                    pending.append(item.path)
                else:
                    total += item.file_size or 0
    return total


def run_daily_checks(days: int) -> ModelConfig:
    """The demo world with a champion, and `days` daily checks that each write both reports."""
    from include.core.config import load_model_config
    from include.monitoring import monitoring
    from tests.monitoring_world import day, make_champion, monitored_world

    demo = load_model_config(settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml")
    config = monitored_world(settings.state_dir(), demo, days=FIRST_CHECKED + days, rows_per_day=ROWS_PER_DAY)
    make_champion(config, day(FIRST_CHECKED - 3))
    config = config.model_copy(update={"monitoring": config.monitoring.model_copy(update={"reports": "every_check"})})
    for offset in range(FIRST_CHECKED, FIRST_CHECKED + days):
        started = time.perf_counter()
        result = monitoring.run_check(config, day(offset))
        print(f"  checked {result['day']}: {len(result['reports'])} report files, "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    return config


def _isolated_state() -> Path:
    """A temporary state folder with the demo config, as the tests' `state_dir` makes it."""
    base = Path(tempfile.mkdtemp(prefix="bench-report-storage-"))
    state, models = base / "state", base / "models"
    models.mkdir(parents=True)
    shutil.copy(settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml", models)
    os.environ.update({"MLOPS_STATE_DIR": str(state), "MLOPS_MODELS_DIR": str(models), "OMP_NUM_THREADS": "1",
                       "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"})
    for name in ("MLOPS_DATA_DIR", "MLOPS_REPORTS_DIR"):
        os.environ.pop(name, None)
    (state / "mlflow").mkdir(parents=True)
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7, help="daily checks to run (default 7)")
    args = parser.parse_args()
    base = _isolated_state()
    try:
        print(f"{args.days} daily checks of the demo world ({ROWS_PER_DAY} rows a day), reports every check:")
        config = run_daily_checks(args.days)
        measured = report_storage(config)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    kib = 1024
    print(json.dumps(measured, indent=2))
    print("\nper model-day        reports         MLflow artifacts")
    print(f"before (HTML pages)  {measured['before_reports_bytes_per_day'] / kib:9.1f} KiB   "
          f"{measured['before_mlflow_bytes_per_day'] / kib:9.1f} KiB")
    print(f"after (snapshots)    {measured['reports_bytes_per_day'] / kib:9.1f} KiB   "
          f"{measured['mlflow_bytes_per_day'] / kib:9.1f} KiB")
    ratio = measured["before_reports_bytes_per_day"] / max(measured["reports_bytes_per_day"], 1)
    verdict = "within" if measured["reports_bytes_per_day"] <= TARGET_BYTES_PER_DAY else "OVER"
    print(f"after is 1/{ratio:.0f} of before; {verdict} the target of {TARGET_BYTES_PER_DAY // kib} KiB a model-day")


if __name__ == "__main__":
    main()
