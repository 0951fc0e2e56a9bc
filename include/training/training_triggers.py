"""Why a continuous-training run started, and whether it should train at all.

Google's Level 1 names five triggers; each run records which one started it:

    on_demand    a person (UI form, CLI `--conf`, REST API)
    schedule     the cron in `training.schedule`
    new_data     curated batches arrived (trains after every `training.every_n_batches` of them); a
                 history import's one event for a range is one run, whose days all count
    drift        the drift sensor's retrain request, reason "drift"
    performance  the drift sensor's retrain request, reason "performance"

The retrain request is an Asset event whose `extra` follows the contract in
`RETRAIN_REQUEST_KEYS`; the drift sensor emits it and this module reads it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from include.core import settings, storage
from include.core.config import ModelConfig

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
    "change_start": "YYYY-MM-DD, when the world changed as far as the check can tell; training learns from it",
}

REQUEST_PARAMS = {"reason", "window_days", "cutoff", "change_start", "hyperparameters"}
REQUESTED_TRIGGERS = ("drift", "performance")


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


def run_type_name(run_type: Any) -> str:
    """Airflow's run type as its plain value ("scheduled", "manual", "asset_triggered", ...).

    Inside a running task `dag_run.run_type` is the Task SDK's `DagRunType`, a str enum whose
    `str()` is "DagRunType.SCHEDULED"; its `.value` is what the scheduler and the REST API say.
    """
    return str(getattr(run_type, "value", run_type))


def describe_trigger(run_type: Any, asset_events: Mapping[str, list[Mapping]], conf_reason: str | None) -> dict:
    """Name the trigger of a run from its run type and the Asset events that started it.

    Args:
        run_type: Airflow's run type (see `run_type_name`): manual, scheduled, asset_triggered or backfill.
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
        extras = [extra for each in asset_events.values() for extra in each]
        days = sum(extra.get("days", 1) if "first_day" in extra else 1 for extra in extras)
        return {"trigger": "new_data", "reason": f"{days} new curated day(s) in {len(extras)} batch event(s)",
                "request": None}
    if run_type_name(run_type) == "scheduled":
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


# --- a change of the world: a request honoured, deferred until its labels arrive, remembered -------


def change_start_of(request: Mapping[str, Any]) -> dt.date:
    """The first day of the changed world a retrain request names: `change_start`, else `window.start`."""
    return dt.date.fromisoformat(request.get("change_start") or request["window"]["start"])


def _pending_path(model: str):
    return settings.state_dir() / "runs" / model / "pending_request.json"


def _change_point_path(model: str):
    return settings.state_dir() / "runs" / model / "change_point.json"


def _write(path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(content, sort_keys=True))
    os.replace(tmp, path)


def pending_request(model: str) -> dict | None:
    """The drift or performance request that waits for labels.

    {"reason", "change_start", "request", "deferred_on"}, and for a refit (a request already
    honoured, waiting for more labels of the changed world) "refit_at_rows": how many it waits for.
    """
    path = _pending_path(model)
    return json.loads(path.read_text()) if path.exists() else None


def defer_request(model: str, reason: str, change_start: dt.date, request: Mapping | None, day: dt.date,
                  refit: tuple[int, dt.date] | None = None) -> None:
    """Keep a request that cannot train yet; a newer request replaces it (it knows more).

    `refit`: (rows, day) for a request already honoured: it trains again once `rows` labelled rows
    exist from the change on, or on `day` (when the training window lies wholly after the change).
    """
    content = {"reason": reason, "change_start": change_start.isoformat(), "request": dict(request or {}),
               "deferred_on": day.isoformat()}
    if refit is not None:
        content["refit_at_rows"], content["refit_by"] = refit[0], refit[1].isoformat()
    _write(_pending_path(model), content)


def _is_due(config: ModelConfig, pending: Mapping, labelled: int, cutoff: dt.date) -> bool:
    """Whether a waiting request trains now: its labelled rows are there, or a refit's last day has come."""
    if "refit_at_rows" in pending:
        return labelled >= pending["refit_at_rows"] or cutoff >= dt.date.fromisoformat(pending["refit_by"])
    return labelled >= config.training.change_point.min_labelled_rows


def pending_request_ready(config: ModelConfig, cutoff: dt.date) -> bool:
    """Whether the waiting request (deferred, or a refit) trains at `cutoff` (see `plan_training`)."""
    pending = pending_request(config.name)
    if pending is None:
        return False
    return _is_due(config, pending, labelled_rows_since(config, dt.date.fromisoformat(pending["change_start"]),
                                                        cutoff), cutoff)


def _schedule_refit(config: ModelConfig, reason: str, change: dt.date, request: Mapping | None,
                    labelled: int, cutoff: dt.date) -> None:
    """After honouring a request, wait for `refit_growth` times its labelled rows, or for the first day the
    training window lies wholly after the change, whichever comes first; none once it does."""
    growth = config.training.change_point.refit_growth
    window_days = config.training.window_days
    if growth is not None and change > cutoff - dt.timedelta(days=window_days - 1):
        defer_request(config.name, reason, change, request, cutoff,
                      refit=(math.ceil(labelled * growth), change + dt.timedelta(days=window_days - 1)))


def clear_pending_request(model: str) -> None:
    _pending_path(model).unlink(missing_ok=True)


def remembered_change_point(model: str) -> dt.date | None:
    """The newest change of the world a retrain honoured; later trainings whose window holds it use it too."""
    path = _change_point_path(model)
    return dt.date.fromisoformat(json.loads(path.read_text())["change_start"]) if path.exists() else None


def remember_change_point(model: str, change_start: dt.date) -> None:
    _write(_change_point_path(model), {"change_start": change_start.isoformat()})


def labelled_rows_since(config: ModelConfig, change_start: dt.date, cutoff: dt.date) -> int:
    """Curated rows with an event from `change_start` to `cutoff` whose label had arrived by `cutoff`."""
    from include.training.training_data import assemble_training_set

    if change_start > cutoff:
        return 0
    return len(assemble_training_set(config, cutoff, (cutoff - change_start).days + 1))


def plan_training(
    config: ModelConfig,
    trigger: Mapping[str, Any],
    cutoff: str | dt.date | None = None,
    change_start: str | dt.date | None = None,
) -> dict:
    """Whether this run trains now, for what, on data up to when, and from which change of the world.

    - A drift or performance request names when the world changed (`change_start_of`). It trains
      once `training.change_point.min_labelled_rows` labelled rows exist from then on; before
      that it is deferred (kept, not dropped: `pending_request`). A newer request while one waits
      keeps the earlier change (the same change, seen again) and takes the newer reason.
    - Any later run that finds enough labels for the waiting request trains for it, under the
      request's trigger name; until then the other runs train as they would have.
    - A request honoured waits again, as a refit, for `training.change_point.refit_growth` times
      the labelled rows it trained on, or for the first day the window lies wholly after the
      change, whichever comes first; a new request with its own change point replaces a waiting
      refit.
    - A person may name `change_start` too; with too few labels after it the run fails, naming them.
    - Any other run trains as `should_train` says, on the remembered change point (if any).
    - While training/serving skew lasts (`include.monitoring.feature_skew.standing_skew`) no
      automatic run trains (schedule, new data, requests; a request is kept as deferred): a model
      retrained then learns the offline values and is served others, and the gate, which reads
      offline values only, cannot see it. A run a person starts trains, told about the skew.

    Returns:
        {"train": bool, "trigger", "reason", "cutoff": ISO day, "change_start": ISO day or None,
        "why": the sentence for the log (or for the skip)}.

    Raises:
        InvalidTrainingRequest: no curated data yet, or a person's change point with too few labels.
    """
    resolved = resolve_cutoff(config, cutoff.isoformat() if isinstance(cutoff, dt.date) else cutoff)
    needed = config.training.change_point.min_labelled_rows
    pending = pending_request(config.name)
    pending_change = dt.date.fromisoformat(pending["change_start"]) if pending else None

    def plan(train: bool, why: str, change_point: dt.date | None, name: str = trigger["trigger"],
             reason: str = trigger["reason"]) -> dict:
        return {"train": train, "trigger": name, "reason": reason, "cutoff": resolved.isoformat(),
                "change_start": change_point.isoformat() if change_point else None, "why": why}

    def counted(change: dt.date) -> tuple[int, str]:
        labelled = labelled_rows_since(config, change, resolved)
        return labelled, f"{labelled} labelled rows from the change on {change} (labels known by {resolved})"

    def honour(change: dt.date, why: str, labelled: int, asked: str, request: Mapping | None, **named) -> dict:
        clear_pending_request(config.name)
        remember_change_point(config.name, change)
        _schedule_refit(config, asked, change, request, labelled, resolved)
        return plan(True, why, change, **named)

    request = trigger.get("request")
    from include.monitoring.feature_skew import standing_skew

    skew = standing_skew(config)
    if skew is not None and trigger["trigger"] != "on_demand":
        if trigger["trigger"] in REQUESTED_TRIGGERS and request and pending is None:
            defer_request(config.name, trigger["trigger"], change_start_of(request), request, resolved)
        return plan(False, f"not training automatically while there is {skew['explanation']}: a model retrained "
                           "now would learn the offline values and be served others; a person may train on demand",
                    None)
    if trigger["trigger"] in REQUESTED_TRIGGERS and request:
        refit = pending is not None and "refit_at_rows" in pending
        change = change_start_of(request) if refit else min(filter(None, (change_start_of(request), pending_change)))
        labelled, sentence = counted(change)
        if labelled >= needed:
            return honour(change, f"{trigger['trigger']}: {sentence}", labelled, trigger["trigger"], request)
        defer_request(config.name, trigger["trigger"], change, request, resolved)
        return plan(False, f"deferred: {sentence}; training for the changed world needs {needed} "
                           "(training.change_point.min_labelled_rows); it trains as soon as they have arrived", change)
    if change_start:
        change = change_start if isinstance(change_start, dt.date) else dt.date.fromisoformat(change_start)
        labelled, sentence = counted(change)
        if labelled < needed:
            raise InvalidTrainingRequest(f"{sentence}; training for the changed world needs {needed} "
                                         "(training.change_point.min_labelled_rows)")
        remember_change_point(config.name, change)
        return plan(True, f"{trigger['trigger']}: {sentence}", change)
    waiting = ""
    if pending:
        labelled, sentence = counted(pending_change)
        waits_for = pending.get("refit_at_rows", needed)
        if _is_due(config, pending, labelled, resolved):
            kind = "refit of the" if "refit_at_rows" in pending else "deferred"
            reason = f"{pending['reason']} request ({kind} {pending['deferred_on']}; this run: {trigger['trigger']})"
            return honour(pending_change, f"{pending['reason']}: {sentence}", labelled, pending["reason"],
                          pending["request"], name=pending["reason"], reason=reason)
        waiting = f"; a {pending['reason']} request waits for labels ({sentence}, needs {waits_for})"
    train, why = should_train(config, trigger["trigger"])
    if skew is not None:
        why += f"; beware: {skew['explanation']}"
    return plan(train, why + waiting, remembered_change_point(config.name))
