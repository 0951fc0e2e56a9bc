"""Why a continuous-training run started, and whether it should train at all.

Google's Level 1 names five triggers; each run records which one started it:

    on_demand    a person (UI form, CLI `--conf`, REST API)
    schedule     the cron in `training.schedule`
    new_data     curated batches arrived (trains after every `training.every_n_batches` of them)
    drift        the drift sensor's retrain request, reason "drift"
    performance  the drift sensor's retrain request, reason "performance"

The retrain request is an Asset event whose `extra` follows the contract in
`RETRAIN_REQUEST_KEYS`; the drift sensor emits it and this module reads it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from typing import Any

from include import settings, storage
from include.config import ModelConfig

TRIGGERS = ("on_demand", "schedule", "new_data", "drift", "performance")

RETRAIN_REQUEST_KEYS = {
    "reason": '"drift" or "performance"',
    "window": '{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}, the monitored window',
    "drifted_columns": "list of column names that drifted",
    "scores": "per-column drift scores, {column: score}",
    "drift_share": "share of monitored columns that drifted",
    "realized_metric": "the primary metric on delayed labels, or null",
    "report_uri": "where the Evidently HTML/JSON report of the check is kept",
    "model_version": "the champion version that was monitored",
}

REQUEST_PARAMS = {"reason", "window_days", "cutoff", "hyperparameters"}


class InvalidTrainingRequest(ValueError):
    """The trigger's conf is not a valid training request; the message names the key."""


def check_request(conf: Mapping[str, Any]) -> None:
    """Reject a manual trigger's conf with unknown keys or an empty window before any work.

    Types are already checked by the DAG's Params when the run is created; unknown keys are not,
    and a typo such as `window_day` would otherwise be silently ignored.
    """
    unknown = sorted(set(conf) - REQUEST_PARAMS)
    if unknown:
        raise InvalidTrainingRequest(
            f"unknown key(s) {unknown} in the run's conf; expected some of {sorted(REQUEST_PARAMS)}"
        )
    window = conf.get("window_days")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise InvalidTrainingRequest(f"window_days must be a whole number of days >= 1, got {window!r}")
    hyperparameters = conf.get("hyperparameters")
    if hyperparameters is not None and not isinstance(hyperparameters, Mapping):
        raise InvalidTrainingRequest(f"hyperparameters must be a mapping, got {hyperparameters!r}")


def describe_trigger(run_type: str, asset_events: Mapping[str, list[Mapping]], conf_reason: str | None) -> dict:
    """Name the trigger of a run from its run type and the Asset events that started it.

    Args:
        run_type: Airflow's run type: manual, scheduled, asset_triggered or backfill.
        asset_events: the triggering events' `extra` dicts, by asset name.
        conf_reason: the `reason` a person typed, for manual runs.

    Returns:
        {"trigger": one of TRIGGERS, "reason": free text, "request": the retrain request or None}
    """
    requests = [extra for name, extras in asset_events.items() if name.endswith("__retrain_request")
                for extra in extras]
    if requests:
        request = requests[-1]
        trigger = request.get("reason") if request.get("reason") in ("drift", "performance") else "drift"
        return {"trigger": trigger, "reason": f"retrain requested: {trigger}", "request": request}
    if asset_events:
        batches = sum(len(extras) for extras in asset_events.values())
        return {"trigger": "new_data", "reason": f"{batches} new curated batch event(s)", "request": None}
    if run_type == "scheduled":
        return {"trigger": "schedule", "reason": "scheduled retraining", "request": None}
    return {"trigger": "on_demand", "reason": conf_reason or "manual", "request": None}


def _marker_path(model: str):
    return settings.state_dir() / "runs" / model / "last_training.json"


def last_training_cutoff(model: str) -> dt.date | None:
    """The last day of data the most recent completed training used, if any."""
    path = _marker_path(model)
    if not path.exists():
        return None
    return dt.date.fromisoformat(json.loads(path.read_text())["cutoff"])


def record_training(model: str, cutoff: dt.date, run_id: str) -> None:
    """Remember the data cutoff of a completed training run (for the every-N-batches rule)."""
    path = _marker_path(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"cutoff": cutoff.isoformat(), "run_id": run_id}))
    os.replace(tmp, path)


def new_batches_since_last_training(config: ModelConfig) -> int:
    """How many curated days are newer than the last training's cutoff."""
    last = last_training_cutoff(config.name)
    return sum(1 for day in storage.curated_days(config.name) if last is None or day > last)


def should_train(config: ModelConfig, trigger: str) -> tuple[bool, str]:
    """Whether this run trains: always, except a new-data run before `every_n_batches` batches arrived."""
    if trigger != "new_data":
        return True, f"trigger {trigger} always trains"
    waiting = new_batches_since_last_training(config)
    needed = config.training.every_n_batches
    if waiting < needed:
        return False, f"{waiting} new curated batch(es) since the last training; training waits for {needed}"
    return True, f"{waiting} new curated batches since the last training (threshold {needed})"


def resolve_cutoff(config: ModelConfig, requested: str | None) -> dt.date:
    """The last day of data to train on: the requested one, else the newest curated day."""
    if requested:
        return dt.date.fromisoformat(requested)
    days = storage.curated_days(config.name)
    if not days:
        raise InvalidTrainingRequest(f"no curated data for {config.name} yet: run data ingestion first")
    return days[-1]
