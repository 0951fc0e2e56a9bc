"""The retrain policy: when drift or a performance drop is worth a new model, and its memory.

Google's Level 1 retrains on data drift and on performance degradation, but a sensor that fires
on one noisy day, or every day while a retrain is under way, floods the pipeline. The policy
(`monitoring.retrain_policy` in the model config) asks for:

- enough rows: a window with fewer than `min_rows` rows (labeled rows, for performance) gets no
  verdict; it neither extends nor breaks a drift streak;
- drift that lasts: the dataset drifted in the last `consecutive_windows` windows with a verdict,
  today's included, all measured against the same champion version and after the last request
  (a request consumes the evidence it was made on);
- or a performance drop: today's realized primary metric is more than `performance_drop` worse
  than the champion's holdout value; this fires on its own, without a streak;
- rest: no request within `cooldown_days` of the last one, and at most `max_retrains` requests in
  any `period_days` days.

`decide_retrain` is pure logic over check records. `record_check` is what the sensor calls: it
reads the history, decides, and stores today's record with its decision in
`<data>/<model>/monitoring/history.parquet`, one row per (day, model version): re-running a check
replaces its row, and a re-run sees the same history, so it reaches the same decision.

The retrain request (the metadata of the Asset `<model>__retrain_request`, read by continuous
training), as built by `retrain_request_metadata`:

    reason           "drift" | "performance"
    window           {"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}: the window that was checked
    drifted_columns  [column, ...]: the columns whose drift verdict was positive
    scores           {column: score}: p-value for tests (ks, chisquare), distance for psi/wasserstein
    methods          {column: method}: how to read each score
    drift_share      drifted columns / configured features
    metric           the primary metric's name, e.g. "roc_auc"
    realized_metric  its realized value on the labeled window, or null
    report_uri       the Evidently snapshot of the window (the MLOps UI shows it as HTML), or null
    model_version    the champion version the window was compared with
    explanation      the policy's sentence on why it fired
    change_start     "YYYY-MM-DD": when the world changed, as far as the check can tell
                     (`monitoring.change_start`); continuous training learns from it
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from include.core import champion_history, settings, storage
from include.core.config import ModelConfig, RetrainPolicy
from include.monitoring.drift import DriftResult

HISTORY_FILE = "history.parquet"
SCORE_PREFIX = "score__"


@dataclass(frozen=True)
class CheckRecord:
    """One check of one window: its drift verdict, its realized performance, and the decision."""

    day: dt.date
    model_version: str
    rows: int
    dataset_drifted: bool | None = None
    drift_share: float | None = None
    drifted_columns: list[str] = field(default_factory=list)
    column_scores: dict[str, float] = field(default_factory=dict)
    quality_issues: list[str] = field(default_factory=list)
    prediction_score: float | None = None
    prediction_drifted: bool | None = None
    realized_metric: float | None = None
    metric_drop: float | None = None
    labeled_rows: int = 0
    retrain: bool = False
    reason: str | None = None
    explanation: str = ""


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str | None
    explanation: str
    withheld: str | None = None
    """The reason of a request the policy would have made, held back by training/serving skew."""

    def to_dict(self) -> dict:
        return {"retrain": self.retrain, "reason": self.reason, "explanation": self.explanation,
                "withheld": self.withheld}


def check_record(
    day: dt.date,
    model_version: str | int,
    drift: DriftResult | dict | None,
    realized: dict | None = None,
    metric_drop: float | None = None,
) -> CheckRecord:
    """The record of today's check, from `detect_drift`'s and `realized_performance`'s results."""
    drift = drift.to_dict() if isinstance(drift, DriftResult) else drift
    prediction = (drift or {}).get("prediction") or {}
    return CheckRecord(
        day=day,
        model_version=str(model_version),
        rows=drift["rows"] if drift else 0,
        dataset_drifted=drift["dataset_drifted"] if drift else None,
        drift_share=drift["drift_share"] if drift else None,
        drifted_columns=list(drift["drifted_columns"]) if drift else [],
        column_scores={name: column["score"] for name, column in drift["columns"].items()} if drift else {},
        quality_issues=sorted(drift["quality_issues"]) if drift else [],
        prediction_score=prediction.get("score"),
        prediction_drifted=prediction.get("drifted"),
        realized_metric=(realized or {}).get("value"),
        metric_drop=metric_drop,
        labeled_rows=(realized or {}).get("rows_joined", 0),
    )


def decide_retrain(
    policy: RetrainPolicy,
    history: list[CheckRecord],
    now_day: dt.date,
    last_retrain_day: dt.date | None,
    retrains_in_period: int,
    withheld_by: str | None = None,
) -> Decision:
    """Whether today's check should request a retrain, and why (or why not) in one sentence.

    Args:
        policy: the model's retrain policy.
        history: check records, today's included (the newest record of `now_day` is today's).
        now_day: the day of the check.
        last_retrain_day: the day of the last retrain request, if any.
        retrains_in_period: requests made in the `policy.period_days` days before `now_day`.
        withheld_by: training/serving skew that lasts (`feature_skew.standing_skew`'s sentence): a
            request is withheld while it does, since retraining cannot mend it; the evidence is kept.
    """
    today = [record for record in history if record.day == now_day]
    if not today:
        return Decision(False, None, f"no check recorded for {now_day}")
    current = today[-1]
    trigger, evidence = _trigger(policy, history, current, last_retrain_day)
    if trigger is None:
        return Decision(False, None, f"no retrain: {evidence}")
    if withheld_by:
        return Decision(False, None, f"{evidence}, but the retrain request is withheld: {withheld_by}; retraining "
                                     "cannot mend skew, fix the features first", withheld=trigger)
    if last_retrain_day is not None and (now_day - last_retrain_day).days < policy.cooldown_days:
        until = last_retrain_day + dt.timedelta(days=policy.cooldown_days)
        return Decision(
            False, None, f"{evidence}, but the last request was on {last_retrain_day}: cooling down until {until}"
        )
    if retrains_in_period >= policy.max_retrains:
        return Decision(
            False,
            None,
            f"{evidence}, but {retrains_in_period} retrains were already requested in the last "
            f"{policy.period_days} days (at most {policy.max_retrains})",
        )
    return Decision(True, trigger, evidence)


def _trigger(
    policy: RetrainPolicy, history: list[CheckRecord], current: CheckRecord, last_retrain_day: dt.date | None
) -> tuple[str | None, str]:
    """The reason to retrain ("performance" before "drift"), with the evidence as a sentence."""
    performance = _performance_evidence(policy, current)
    if current.metric_drop is not None and current.labeled_rows >= policy.min_rows:
        if current.metric_drop > policy.performance_drop:
            return "performance", performance
    streak = _drift_windows(policy, history, current, last_retrain_day)
    needed = policy.consecutive_windows
    if current.dataset_drifted and current.rows >= policy.min_rows and len(streak) == needed and all(streak):
        return "drift", f"the dataset drifted in {needed} consecutive windows (columns {current.drifted_columns})"
    if current.rows < policy.min_rows:
        drift = f"{current.rows} rows is below the {policy.min_rows} a drift verdict needs"
    else:
        drift = f"drift in {sum(streak)} of the last {needed} windows with a verdict (needs {needed} in a row)"
    return None, f"{drift}; {performance}"


def _drift_windows(
    policy: RetrainPolicy, history: list[CheckRecord], current: CheckRecord, last_retrain_day: dt.date | None
) -> list[bool]:
    """Drift verdicts of the newest `consecutive_windows` windows that count, newest first."""
    by_day = {}
    for record in history:
        comparable = record.model_version == current.model_version and record.day <= current.day
        after_request = last_retrain_day is None or record.day > last_retrain_day
        if comparable and after_request and record.rows >= policy.min_rows and record.dataset_drifted is not None:
            by_day[record.day] = record
    newest = sorted(by_day, reverse=True)[: policy.consecutive_windows]
    return [bool(by_day[day].dataset_drifted) for day in newest]


def _performance_evidence(policy: RetrainPolicy, record: CheckRecord) -> str:
    if record.metric_drop is None:
        return "no realized performance yet"
    if record.labeled_rows < policy.min_rows:
        return f"{record.labeled_rows} labeled rows is below the {policy.min_rows} a performance verdict needs"
    relation = "more than" if record.metric_drop > policy.performance_drop else "within"
    direction = "worse" if record.metric_drop > 0 else "better"
    return (
        f"realized metric {record.realized_metric:.4f} is {abs(record.metric_drop):.4f} {direction} than the "
        f"champion's holdout, {relation} the allowed drop of {policy.performance_drop}"
    )


# --- the history store ---------------------------------------------------------------------------


def history_path(model: str) -> Path:
    return settings.data_dir() / model / "monitoring" / HISTORY_FILE


def read_history(model: str) -> pd.DataFrame:
    """Every recorded check of the model, oldest first, one row per (day, model version).

    Per-column drift scores are columns `score__<column>`, ready to plot; `drifted_columns` and
    `quality_issues` are JSON lists.
    """
    path = history_path(model)
    if not path.exists():
        return pd.DataFrame(columns=[f.name for f in dataclasses.fields(CheckRecord) if f.name != "column_scores"])
    return pd.read_parquet(path)


def read_records(model: str) -> list[CheckRecord]:
    """The history as `CheckRecord`s, oldest first."""
    return [_from_row(row) for row in read_history(model).to_dict("records")]


def append_check(model: str, record: CheckRecord) -> Path:
    """Store one check, replacing an earlier record of the same day and model version."""
    frame = pd.DataFrame([_to_row(record)])
    path = history_path(model)
    if path.exists():
        history = pd.read_parquet(path)
        same = (history["day"] == record.day) & (history["model_version"] == record.model_version)
        frame = pd.concat([history[~same], frame], ignore_index=True)
    frame = frame.sort_values(["day", "model_version"], kind="stable").reset_index(drop=True)
    return storage.write_parquet_atomically(frame, history_path(model))


def record_check(config: ModelConfig, record: CheckRecord, withheld_by: str | None = None) -> Decision:
    """Decide on today's check against the stored history, then store the check with its decision.

    Only checks of earlier days count as history, and of each earlier day only the check of the
    version that served it (`champion_history.champion_on`; every check when no champion change
    was ever recorded). So re-running a day's check reaches the same decision and replaces that
    day's record, whatever was recorded since: later days, checks of other versions (a sensor
    that once judged a day against a later champion), or a re-check of an old day.
    """
    earlier = [past for past in read_records(config.name) if past.day < record.day]
    changes = champion_history.read_history(config.name)
    if changes:
        earlier = [past for past in earlier if past.model_version == champion_history.champion_on(
            config.name, past.day, changes)]
    policy = config.monitoring.retrain_policy
    requests = [past.day for past in earlier if past.retrain]
    in_period = sum((record.day - day).days < policy.period_days for day in requests)
    decision = decide_retrain(policy, [*earlier, record], record.day, max(requests, default=None), in_period,
                              withheld_by)
    append_check(
        config.name,
        dataclasses.replace(
            record, retrain=decision.retrain, reason=decision.reason, explanation=decision.explanation
        ),
    )
    return decision


def _to_row(record: CheckRecord) -> dict:
    row = dataclasses.asdict(record)
    scores = row.pop("column_scores")
    row["drifted_columns"] = json.dumps(row["drifted_columns"])
    row["quality_issues"] = json.dumps(row["quality_issues"])
    row.update({f"{SCORE_PREFIX}{name}": score for name, score in scores.items()})
    return row


def _from_row(row: dict) -> CheckRecord:
    def present(value):
        return None if pd.isna(value) else value

    scores = {
        name.removeprefix(SCORE_PREFIX): float(value)
        for name, value in row.items()
        if name.startswith(SCORE_PREFIX) and present(value) is not None
    }
    values = {f.name: present(row.get(f.name)) for f in dataclasses.fields(CheckRecord) if f.name != "column_scores"}
    values["day"] = pd.Timestamp(values["day"]).date()
    values["drifted_columns"] = json.loads(values["drifted_columns"] or "[]")
    values["quality_issues"] = json.loads(values["quality_issues"] or "[]")
    values["labeled_rows"] = int(values["labeled_rows"] or 0)
    values["rows"] = int(values["rows"])
    values["explanation"] = values["explanation"] or ""
    for flag in ("dataset_drifted", "prediction_drifted"):
        values[flag] = None if values[flag] is None else bool(values[flag])
    values["retrain"] = bool(values["retrain"])
    return CheckRecord(**values, column_scores=scores)


# --- the retrain request -------------------------------------------------------------------------


def retrain_request_metadata(
    decision: Decision | dict,
    window: tuple[dt.date | str, dt.date | str],
    drift_result: DriftResult | dict | None,
    report_uri: str | None,
    realized: dict | None = None,
    model_version: str | int | None = None,
) -> dict:
    """The metadata of the retrain-request Asset event (the contract in this module's docstring).

    Accepts the results as objects or as the dicts DAG tasks pass to each other. `model_version`
    defaults to the version the drift result was measured against.

    Raises:
        ValueError: the decision was not to retrain.
    """
    decision = decision.to_dict() if isinstance(decision, Decision) else decision
    if not decision["retrain"]:
        raise ValueError(f"no retrain request to make: {decision['explanation']}")
    drift = drift_result.to_dict() if isinstance(drift_result, DriftResult) else drift_result
    columns = (drift or {}).get("columns", {})
    start, end = (day if isinstance(day, str) else day.isoformat() for day in window)
    return {
        "reason": decision["reason"],
        "window": {"start": start, "end": end},
        "drifted_columns": list((drift or {}).get("drifted_columns", [])),
        "scores": {name: column["score"] for name, column in columns.items()},
        "methods": {name: column["method"] for name, column in columns.items()},
        "drift_share": (drift or {}).get("drift_share"),
        "metric": (realized or {}).get("metric"),
        "realized_metric": (realized or {}).get("value"),
        "report_uri": report_uri,
        "model_version": str(model_version) if model_version is not None else (drift or {}).get("model_version"),
        "explanation": decision["explanation"],
    }
