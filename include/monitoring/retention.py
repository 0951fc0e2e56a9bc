"""Retention: delete a model's derived artefacts older than its `retention` settings.

What the drift sensor's last task (`enforce_retention`) runs, per model, after each run's checks.
Three kinds of artefact are kept for a number of data days (`retention` in the model config; None
keeps all of them), each stored in one folder per day:

    reports_days            <reports>/<model>/drift/day=D/           the drift checks' reports
    logs_days               <data>/<model>/predictions/day=D/        the online prediction log
    batch_predictions_days  <data>/<model>/batch_predictions/day=D/  the batch predictions

These are derived artefacts, not data: the landing, curated, labels and quarantine stores, the
metrics history, the champion history and MLflow (whose drift-check runs keep each check's small
report files) are never touched.

Days are counted back from the newest day the drift sensor has checked (its metrics history), not
from the clock: a catch-up over months of history keeps the reports of the days it just checked,
and a day not yet checked is never deleted, so the sensor never misses an input it still needs.
For the same reason a setting shorter than what the sensor reads is raised to it (and the result
says so): the prediction logs and batch predictions of the label window it measures realized
performance on (`target.label_delay_days` plus up to `PERFORMANCE_MAX_DAYS` days), and the reports
of the days whose unsent retrain request it may re-send (`retrain_policy.cooldown_days`). A log
folder of today or yesterday (UTC) is never deleted: a serving process may still be appending to it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from include.core import settings
from include.delivery.prediction_log import BATCH_PREDICTIONS_FOLDER, PREDICTIONS_FOLDER
from include.monitoring.monitoring import PERFORMANCE_MAX_DAYS
from include.monitoring.retrain_policy import read_history

if TYPE_CHECKING:
    from include.core.config import ModelConfig

log = logging.getLogger(__name__)

DAY_PREFIX = "day="


def artefact_folders(model: str) -> dict[str, Path]:
    """Each kind of artefact retention applies to -> the folder holding its `day=D` folders."""
    return {
        "reports": settings.reports_dir() / model / "drift",
        "logs": settings.data_dir() / model / PREDICTIONS_FOLDER,
        "batch_predictions": settings.data_dir() / model / BATCH_PREDICTIONS_FOLDER,
    }


def days_kept(config: ModelConfig) -> dict[str, int | None]:
    """Kind -> the number of days kept: the setting, raised to what the drift sensor still reads; None keeps all."""
    label_window = config.target.label_delay_days + max(config.drift_window_days, PERFORMANCE_MAX_DAYS)
    needs = {
        "reports": config.monitoring.retrain_policy.cooldown_days + 1,
        "logs": label_window,
        "batch_predictions": label_window,
    }
    return {kind: None if days is None else max(days, needs[kind]) for kind, days in _settings(config).items()}


def _settings(config: ModelConfig) -> dict[str, int | None]:
    """Kind -> its `retention` setting as written in the config."""
    retention = config.retention
    return {"reports": retention.reports_days, "logs": retention.logs_days,
            "batch_predictions": retention.batch_predictions_days}


def newest_checked_day(model: str) -> dt.date | None:
    """The newest day the drift sensor checked (its metrics history), or None before its first check."""
    history = read_history(model)
    return pd.Timestamp(history["day"].max()).date() if len(history) else None


def enforce_retention(config: ModelConfig, today: dt.date | None = None) -> dict:
    """Delete the model's report, prediction-log and batch-prediction day folders older than its settings.

    Idempotent: a second run finds nothing more to delete.

    Args:
        today: the UTC date (default: now); log folders of it and the day before are never deleted.

    Returns:
        JSON-able {"newest_checked_day", "kept_days": {kind: days or None}, "deleted": {kind: [days]},
        "freed_bytes", "notes": [sentences]}.
    """
    today = today or dt.datetime.now(dt.UTC).date()
    kept = days_kept(config)
    anchor = newest_checked_day(config.name)
    result = {
        "newest_checked_day": anchor.isoformat() if anchor else None,
        "kept_days": kept,
        "deleted": {kind: [] for kind in kept},
        "freed_bytes": 0,
        "notes": [],
    }
    if anchor is None:
        result["notes"].append(f"{config.name}: the drift sensor has checked no day yet; nothing is deleted")
        return result
    for kind, setting in _settings(config).items():
        if setting is None or setting == kept[kind]:
            continue
        result["notes"].append(f"retention.{kind}_days = {setting} is raised to {kept[kind]}: the drift sensor "
                               f"still reads that many days")
    for kind, folder in artefact_folders(config.name).items():
        if kept[kind] is None:
            continue
        newest_deleted = anchor - dt.timedelta(days=kept[kind])
        if kind == "logs":
            newest_deleted = min(newest_deleted, today - dt.timedelta(days=2))
        for day, path in _day_folders(folder, lambda day, last=newest_deleted: day <= last):
            result["freed_bytes"] += _size(path)
            shutil.rmtree(path)
            result["deleted"][kind].append(day.isoformat())
    deleted = {kind: len(days) for kind, days in result["deleted"].items() if days}
    log.info("%s: retention from %s deleted %s (%d bytes)", config.name, anchor, deleted or "nothing",
             result["freed_bytes"])
    return result


def _day_folders(folder: Path, wanted: Callable[[dt.date], bool]) -> list[tuple[dt.date, Path]]:
    """The `day=YYYY-MM-DD` folders in `folder` whose day is `wanted`, oldest first (other names are left alone)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        if not (entry.name.startswith(DAY_PREFIX) and entry.is_dir(follow_symlinks=False)):
            continue
        try:
            day = dt.date.fromisoformat(entry.name.removeprefix(DAY_PREFIX))
        except ValueError:
            continue
        if wanted(day):
            found.append((day, Path(entry.path)))
    return sorted(found)


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
