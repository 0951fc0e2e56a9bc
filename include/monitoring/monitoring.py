"""Monitoring: the checks of the drift sensor, end to end, one window each.

What `<model>__drift_sensor` runs. A check of the day D (window W = `monitoring.window_days`):

    champion of D ──► reference profile ──► drift ──────────────┐
    (the version      (its training set,     (curated rows of    ├─► retrain policy ──► retrain request
     that served D,    found through          D-W+1 … D vs the   │   (history,            (Asset event
     from the          MLflow, built once     reference; scores   │    cooldown, cap)       metadata)
     champion          per version)           vs the reference's) │
     history)                               performance ──────────┘
                                            (predictions of the events whose labels have arrived
                                             by D, i.e. event days D-delay-W+1 … D-delay, against
                                             the champion's holdout metric)

and for people: `check.json` (the verdict and its numbers) and, for a window whose data or
predictions drifted or that requested a retrain (or every window, `monitoring.reports:
every_check`), Evidently's reports (data drift, and prediction drift) as compressed (xz) snapshots that
the MLOps UI renders to HTML when a person opens one, with their results JSON
(`include.monitoring.evidently_reports`), all in `<reports>/<model>/drift/day=D/version=V/`;
the same small files and the numbers on an MLflow run of
the model's experiment (tag `mlops_run_kind = drift_check`), and one row in the metrics history
(`include.monitoring.retrain_policy.read_history`).

For a model with `feature_store: feast` the check also compares the features the prediction service
used in the window with the feature store's offline values (`include.monitoring.feature_skew`):
shares of mismatches per feature in `check.json`, on the MLflow run (`skew_share_<feature>`) and in
a `feature_skew` Evidently report; skew over `monitoring.skew_max_share` withholds the retrain
request while it lasts (`retrain_policy.decide_retrain`), and the DAG raises an alert.

Point in time. D is judged against the version that was `@champion` on D
(`include.core.champion_history.champion_on`), not today's: its scores, its reference profile, its
holdout metric. A day no version served is not checked (`NoChampion`). Its realized performance
is measured on event days after the newest day it was trained on only. So a sensor that runs
behind training, or a re-run months later, judges each day as the live sensor did, and reaches
the same decision (the policy reads, of each earlier day, the check of the version that served it).

Where the inputs come from:

- the window's inputs are the curated store (validated batches; ingestion quarantines broken
  ones, so a data-quality incident never reaches the check, and a day whose batch was
  quarantined is reported as such, never as drift);
- the window's scores are the batch predictions the champion made for those days, and where it
  made none, the champion scores the rows here;
- scored rows are the batch predictions and the online prediction log of the label window,
  joined with the labels that had arrived by D (point-in-time, as training does).

The reference is the champion's training split (the rows it was fitted on), found through MLflow
lineage: the champion version's run, its dataset input of context `training`, that dataset's
source. The reference scores are the champion's scores on the validation and holdout splits,
rows it never saw: scores on its own training rows are more confident than on new data, so they
would look like prediction drift on every ordinary day.

One run of the sensor (`run_checks`) checks every day that is due, oldest first
(`days_to_check`), in one process: a sensor that fell behind ingestion catches up in one run.

Re-running a window is idempotent: the history row of (day, champion version) is replaced, the
MLflow run of that window and version is found again by its tags, the reports are overwritten,
and the retrain request is emitted once (`mark_request_emitted`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.core import champion_history, registry, settings, storage
from include.core.jsonable import write_json_atomically
from include.delivery import prediction_log
from include.delivery.batch_prediction import positive_probabilities
from include.monitoring import feature_skew
from include.monitoring.drift import (
    REPORT_SAMPLE_ROWS,
    DriftResult,
    ReferenceProfile,
    build_reference_profile,
    detect_drift,
    reference_profile_path,
    write_evidently_report,
)
from include.monitoring.performance import performance_dropped, realized_performance
from include.monitoring.retrain_policy import (
    Decision,
    check_record,
    read_history,
    record_check,
    retrain_request_metadata,
)

if TYPE_CHECKING:
    from include.core.config import ModelConfig

log = logging.getLogger(__name__)

TAG_RUN_KIND = "mlops_run_kind"
RUN_KIND = "drift_check"
TAG_WINDOW_START = "monitoring_window_start"
TAG_WINDOW_END = "monitoring_window_end"
TAG_MONITORED_VERSION = "monitored_version"
TAG_RETRAIN = "retrain_requested"
TAG_REQUEST_EMITTED = "retrain_request_emitted"
TRAINING_CONTEXT = "training"
CHECK_FILE = "check.json"
REQUEST_FILE = "request.json"
PREDICTION_COLUMN = "prediction"
SCORED_COLUMNS = ("probability", "version")
"""Besides the entity column: what realized performance needs of a prediction."""
PERFORMANCE_MIN_ROWS = 3_000
PERFORMANCE_MAX_DAYS = 7
MISSING_AFTER_DAYS = 5
"""A batch still neither curated nor quarantined when one this many days newer is curated is given up."""


class WindowNotReady(LookupError):
    """The checked day has neither a curated nor a quarantined batch yet: nothing to check."""


class NoChampion(LookupError):
    """No version holds `@champion`: there is no reference to compare with."""


# --- the champion and its reference --------------------------------------------------------------


@dataclass(frozen=True)
class Champion:
    """The monitored version: where its training set is, what it scored on its holdout, and the
    newest event day it learned from (its realized performance is measured on later days only)."""

    version: str
    run_id: str
    training_set: Path
    holdout_metric: float | None
    trained_through: dt.date | None = None


def champion_version(config: ModelConfig, version: str) -> Champion:
    """One registered version as a monitored champion: its training set (through MLflow lineage),
    its holdout metric and the newest event day of its training set."""
    model_version = registry.client().get_model_version(config.name, str(version))
    run = registry.client().get_run(model_version.run_id)
    holdout = run.data.metrics.get(f"holdout_{config.evaluation.primary_metric}")
    training_set = training_set_of(run)
    return Champion(str(version), model_version.run_id, training_set, holdout, trained_through(training_set))


def current_champion(config: ModelConfig) -> Champion:
    """The `@champion` version now (see `champion_version`).

    Raises:
        NoChampion: no version holds the alias yet.
    """
    version = registry.get_champion_version(config.name)
    if version is None:
        raise NoChampion(f"{config.name} has no @{registry.CHAMPION} yet: there is nothing to monitor")
    return champion_version(config, str(version.version))


def champion_of_day(config: ModelConfig, day: dt.date, history: list | None = None) -> str:
    """The version that served `day` (`champion_history.champion_on`): the one its window is judged against.

    Raises:
        NoChampion: no version served `day`, so there is nothing to monitor on it.
    """
    version = champion_history.champion_on(config.name, day, history)
    if version is None:
        raise NoChampion(f"{champion_history.why_none_served(config.name, day)}: there is nothing to monitor on {day}")
    return version


def trained_through(training_set: Path) -> dt.date | None:
    """The newest event day of a training set (from its manifest), None when it has no manifest."""
    from include.training.continuous_training import read_manifest

    try:
        newest = read_manifest(training_set)["event_time_range"][1]
    except (FileNotFoundError, KeyError, IndexError, TypeError):
        return None
    return pd.Timestamp(newest).date()


def training_set_of(run) -> Path:
    """The folder of the training set a run was fitted on, from its MLflow dataset inputs.

    Continuous training logs each split as a dataset input (context `training`, `validation`,
    `holdout`) whose source is the split's Parquet file; the training split's folder holds all
    three. The run's `training_set_uri` tag is the fallback for runs logged without datasets.

    Raises:
        LookupError: the run records no training set.
    """
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        contexts = {tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context"}
        if TRAINING_CONTEXT not in contexts:
            continue
        source = json.loads(dataset_input.dataset.source or "{}")
        uri = source.get("uri") or source.get("path")
        if uri:
            return Path(uri.removeprefix("file://")).parent
    tagged = run.data.tags.get("training_set_uri")
    if tagged:
        return Path(tagged)
    raise LookupError(f"MLflow run {run.info.run_id} records no training dataset (no lineage to a reference)")


def reference_profile(config: ModelConfig, champion: Champion, model: Any | None = None) -> ReferenceProfile:
    """The champion's reference profile: loaded when saved, else built once and saved.

    Args:
        model: the champion's loaded model, when the caller has it (else it is loaded from the
            registry, only when the profile must be built).
    """
    path = reference_profile_path(config.name, champion.version)
    if path.exists():
        return ReferenceProfile.load(path)
    train = pd.read_parquet(champion.training_set / "train.parquet")
    unseen = [champion.training_set / f"{split}.parquet" for split in ("validation", "holdout")]
    unseen = pd.concat([pd.read_parquet(part) for part in unseen if part.exists()], ignore_index=True)
    inputs = reference_inputs(config, champion.training_set, train, unseen)
    model = model if model is not None else registry.load_model_version(config.name, champion.version)
    scores = positive_probabilities(config, model, unseen) if len(unseen) else None
    profile = build_reference_profile(config, inputs, scores, model_version=champion.version)
    profile.save(path)
    log.info("%s: built the reference profile of version %s from %s (%d rows) into %s",
             config.name, champion.version, champion.training_set, len(inputs), path)
    return profile


def reference_inputs(
    config: ModelConfig, training_set: Path, train: pd.DataFrame, unseen: pd.DataFrame
) -> pd.DataFrame:
    """The inputs a version's drift is measured against: its training split, or, when it was
    trained for a changed world (its manifest's `change_start`), every row of its training set
    from that change on.

    A version trained after a covariate shift still learned from the older rows of its window
    (weighted down), but it was made for the new inputs: measured against the whole window it
    would see the very shift it absorbed as drift, and request retrains for it again and again.
    """
    from include.training.continuous_training import read_manifest

    try:
        change = read_manifest(training_set).get("change_start")
    except FileNotFoundError:
        change = None
    if not change:
        return train
    timestamp = config.schema.timestamp_column
    rows = pd.concat([train, unseen], ignore_index=True)
    return rows[rows[timestamp] >= pd.Timestamp(change)].reset_index(drop=True)


# --- the window ----------------------------------------------------------------------------------


def window_of(config: ModelConfig, day: dt.date) -> tuple[dt.date, dt.date]:
    """The days whose inputs the check of `day` compares: the `monitoring.window_days` up to `day`."""
    return day - dt.timedelta(days=config.monitoring.window_days - 1), day


def label_window_of(config: ModelConfig, day: dt.date) -> tuple[dt.date, dt.date]:
    """The newest event days whose labels have arrived by `day`: the window, `label_delay_days` earlier."""
    delay = dt.timedelta(days=config.target.label_delay_days)
    first, last = window_of(config, day)
    return first - delay, last - delay


def performance_window(
    config: ModelConfig, day: dt.date, scored_on: Callable[[dt.date], pd.DataFrame], version: str,
    trained_through: dt.date | None = None,
) -> tuple[tuple[dt.date, dt.date], pd.DataFrame]:
    """The event days whose predictions the realized performance of `day` is measured on, and those predictions.

    The label window (`label_window_of`), widened into older days while it holds fewer than
    `PERFORMANCE_MIN_ROWS` predictions of the monitored version, up to `PERFORMANCE_MAX_DAYS` days:
    a ranking metric on a few hundred rows moves by more than the allowed drop from one ordinary
    day to the next, and would request retrains on noise. Event days up to `trained_through` (the
    newest day the version learned from) are left out: a model scored on its own training rows
    looks better than it is.

    Args:
        scored_on: the predictions (entity, probability, version) made for one event day.
    """
    first, last = label_window_of(config, day)
    if trained_through is not None and first <= trained_through:
        first = trained_through + dt.timedelta(days=1)
    frames = [scored_on(when) for when in _days(first, last)]
    rows = sum(int((frame["version"].astype(str) == version).sum()) for frame in frames)
    older_allowed = trained_through is None or first - dt.timedelta(days=1) > trained_through
    while rows < PERFORMANCE_MIN_ROWS and (last - first).days + 1 < PERFORMANCE_MAX_DAYS and older_allowed:
        first -= dt.timedelta(days=1)
        older = scored_on(first)
        frames.insert(0, older)
        rows += int((older["version"].astype(str) == version).sum())
        older_allowed = trained_through is None or first - dt.timedelta(days=1) > trained_through
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return (first, last), pd.DataFrame(columns=[config.schema.entity_column, *SCORED_COLUMNS])
    return (first, last), pd.concat(frames, ignore_index=True)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


def batch_settled(config: ModelConfig, day: dt.date) -> bool:
    """Has ingestion dealt with the batch of `day`: curated it, or quarantined it?"""
    return storage.curated_path(config.name, day).exists() or bool(storage.quarantined_batches(config.name, day))


def quarantined_days(config: ModelConfig, first: dt.date, last: dt.date) -> list[dt.date]:
    """Days of the window whose batch ingestion quarantined and never curated."""
    return [
        day for day in _days(first, last)
        if not storage.curated_path(config.name, day).exists() and storage.quarantined_batches(config.name, day)
    ]


def _read_days(paths: list[Path], columns: list[str] | None = None) -> pd.DataFrame:
    frames = [pd.read_parquet(path, columns=columns) for path in paths if path.exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns or [])


def window_scores(
    config: ModelConfig, version: str, days: list[dt.date], window: pd.DataFrame, load_model
) -> np.ndarray:
    """The champion's scores on the window's rows: its batch predictions where it made them.

    Days the champion did not score in batch (or scored with another version) are scored here.
    """
    scores, unscored = [], []
    for day in days:
        path = prediction_log.batch_predictions_path(config.name, day)
        stored = pd.read_parquet(path, columns=["probability", "version"]) if path.exists() else None
        if stored is not None and len(stored) and (stored["version"].astype(str) == version).all():
            scores.append(stored["probability"].to_numpy(dtype="float64"))
        elif storage.curated_path(config.name, day).exists():
            unscored.append(day)
    if unscored:
        timestamp = config.schema.timestamp_column
        stamps = pd.to_datetime(window[timestamp]).dt.date if timestamp in window else None
        rows = window if stamps is None else window[stamps.isin(unscored)]
        if len(rows):
            scores.append(positive_probabilities(config, load_model(), rows))
    return np.concatenate(scores) if scores else np.array([], dtype="float64")


def scored_on(config: ModelConfig, day: dt.date) -> pd.DataFrame:
    """Entity, probability and version of every prediction (batch and online) made for the day."""
    entity = config.schema.entity_column
    columns = [entity, *SCORED_COLUMNS]
    batch = _read_days([prediction_log.batch_predictions_path(config.name, day)], columns)
    online = prediction_log.read_prediction_log(config.name, day, day)
    online = online[columns] if entity in online.columns and len(online) else pd.DataFrame(columns=columns)
    frames = [frame for frame in (batch, online) if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def champion_scored_on(config: ModelConfig, day: dt.date, version: str, load_model: Callable[[], Any]) -> pd.DataFrame:
    """The champion's predictions for the day's applications: the ones it made (batch and online),
    else, when it made none (it became champion after that day was scored), its scores now.

    Without the fallback a new champion's realized performance could not be measured until its
    own predictions had waited out the label delay; a deployed model scores a row the same way
    whenever it is asked, so scoring the curated batch now gives the predictions it would have made.
    """
    made = scored_on(config, day)
    own = made[made["version"].astype(str) == version]
    path = storage.curated_path(config.name, day)
    if len(own) or not path.exists():
        return own
    batch = pd.read_parquet(path)
    return pd.DataFrame({
        config.schema.entity_column: batch[config.schema.entity_column],
        "probability": positive_probabilities(config, load_model(), batch),
        "version": version,
    })


def arrived_labels(config: ModelConfig, first_event_day: dt.date, day: dt.date) -> pd.DataFrame:
    """Labels that arrived from `first_event_day` to `day` (none arrives before its event)."""
    columns = [config.schema.entity_column, config.target.column]
    days = [when for when in storage.label_days(config.name) if first_event_day <= when <= day]
    return _read_days([storage.labels_path(config.name, when) for when in days], columns)


# --- the verdict ---------------------------------------------------------------------------------


@dataclass
class WindowCheck:
    """The verdicts on one window and the policy's decision (what `assess_window` returns)."""

    day: dt.date
    window: tuple[dt.date, dt.date]
    model_version: str
    drift: DriftResult | None
    realized: dict | None
    metric_drop: float | None
    decision: Decision

    def to_dict(self) -> dict:
        return {
            "day": self.day.isoformat(),
            "window": {"start": self.window[0].isoformat(), "end": self.window[1].isoformat()},
            "model_version": self.model_version,
            "drift": None if self.drift is None else self.drift.to_dict(),
            "realized": self.realized,
            "metric_drop": self.metric_drop,
            "decision": self.decision.to_dict(),
        }


def assess_window(
    config: ModelConfig,
    day: dt.date,
    profile: ReferenceProfile,
    window: pd.DataFrame,
    scores: np.ndarray | None,
    scored: pd.DataFrame,
    labels: pd.DataFrame,
    holdout_metric: float | None,
    withheld_by: str | None = None,
) -> WindowCheck:
    """Drift and realized performance of one window, decided on and recorded in the history.

    The sensor's verdict without its reports: the detection-quality simulation calls this for
    every day of the data world, the sensor calls it through `run_check`.

    Args:
        profile: the champion's reference profile (its version is the monitored version).
        window: the window's curated rows (may be empty: no drift verdict then).
        scores: the champion's scores on the window's rows, for prediction drift.
        scored: predictions (entity, probability, version) of the label window.
        labels: the labels that have arrived (entity, target).
        holdout_metric: the champion's primary metric on its holdout.
        withheld_by: training/serving skew that lasts: a retrain request is withheld (see `decide_retrain`).
    """
    version = str(profile.model_version)
    drift = detect_drift(config, profile, window, scores if scores is not None and len(scores) else None) \
        if len(window) else None
    realized, drop = None, None
    if len(scored) and len(labels):
        realized = realized_performance(config, scored, labels, model_version=version)
        _, drop = performance_dropped(config, realized, holdout_metric)
    decision = record_check(config, check_record(day, version, drift, realized, drop), withheld_by)
    return WindowCheck(day, window_of(config, day), version, drift, realized, drop, decision)


# --- one check, end to end -----------------------------------------------------------------------


class MonitoredVersions:
    """The versions a sequence of checks judges against, each looked up (MLflow) and loaded once."""

    def __init__(self, config: ModelConfig):
        self.config = config
        self._champions: dict[str, Champion] = {}
        self._models: dict[str, Any] = {}

    def champion(self, version: str) -> Champion:
        if version not in self._champions:
            self._champions[version] = champion_version(self.config, version)
        return self._champions[version]

    def model(self, version: str) -> Any:
        if version not in self._models:
            self._models[version] = registry.load_model_version(self.config.name, version)
        return self._models[version]


def run_check(
    config: ModelConfig,
    day: dt.date,
    airflow_ids: dict[str, str] | None = None,
    versions: MonitoredVersions | None = None,
) -> dict:
    """Check the window ending on `day` against the version that served `day`, keep the reports,
    decide on a retrain.

    The version is the champion of that day in the champion history (`champion_history.champion_on`),
    not today's `@champion`: a re-run of an old day, or a sensor running behind training, judges
    the day against the model that served it, with that model's scores, reference profile and
    holdout metric, and reaches the decision the live check reached.

    Args:
        airflow_ids: {"dag_id", "run_id"} of the Airflow run, recorded on the MLflow run.
        versions: the versions already looked up by earlier checks of the same run.

    Returns:
        JSON-able {"day", "window", "model_version", "rows", "quarantined_days", "drift_share",
        "drifted_columns", "dataset_drifted", "prediction_drifted", "realized_metric",
        "metric_drop", "labeled_rows", "decision": {"retrain", "reason", "explanation"},
        "reports": {name: path}, "mlflow_run_id", "request": the retrain-request metadata or
        None, "request_already_emitted": bool, "feature_skew": the window's skew verdict
        (`SkewCheck.to_dict()`) or None without the feature store, "standing_skew": the skew that
        lasts (`feature_skew.standing_skew`) or None}.

    Raises:
        NoChampion: no version served `day`.
        WindowNotReady: the day's batch has been neither curated nor quarantined yet.
    """
    versions = versions or MonitoredVersions(config)
    version = champion_of_day(config, day)
    first, last = window_of(config, day)
    days = _days(first, last)
    quarantined = quarantined_days(config, first, last)
    if not batch_settled(config, day):
        raise WindowNotReady(f"{config.name}: the batch of {day} has not been ingested yet; nothing to check")
    champion = versions.champion(version)

    def load_model() -> Any:
        return versions.model(version)

    profile_exists = reference_profile_path(config.name, champion.version).exists()
    profile = reference_profile(config, champion, None if profile_exists else load_model())
    window = storage.read_curated(config.name, first, last)
    scores = window_scores(config, champion.version, days, window, load_model) if len(window) else None
    (label_first, _), scored = performance_window(
        config, day, lambda when: champion_scored_on(config, when, champion.version, load_model), champion.version,
        champion.trained_through,
    )
    labels = arrived_labels(config, label_first, day) if len(scored) else pd.DataFrame()
    skew = feature_skew.check_skew(config, day, first, last)
    if skew is not None:
        feature_skew.record_skew(config, skew)
    standing = feature_skew.standing_skew(config, day)
    check = assess_window(config, day, profile, window, scores, scored, labels, champion.holdout_metric,
                          standing["explanation"] if standing else None)

    folder = _report_folder(config, day, champion.version)
    folder.mkdir(parents=True, exist_ok=True)
    reports = write_reports(config, profile, window, scores, folder) if wants_reports(config, check) else {}
    if skew is not None and feature_skew.wants_report(config, skew):
        reports.update(feature_skew.write_report(config, skew, folder))
    summary = _summary(check, quarantined, champion, skew, standing)
    write_json_atomically(folder / CHECK_FILE, {**summary, "check": check.to_dict()})
    reports["check"] = str(folder / CHECK_FILE)

    run_id, already_emitted = log_monitoring_run(config, check, summary, folder, airflow_ids or {})
    request = None
    if check.decision.retrain:
        request = retrain_request_metadata(
            check.decision, check.window, check.drift, reports.get("data_drift_snapshot"), check.realized,
            model_version=champion.version,
        )
        request["change_start"] = change_start(config, day, check.decision.reason).isoformat()
        request["monitoring_run_id"] = run_id
        write_json_atomically(folder / REQUEST_FILE, request)
    log.info("%s: check of %s against version %s: %s", config.name, day, champion.version,
             check.decision.explanation)
    return {
        **summary,
        "reports": reports,
        "mlflow_run_id": run_id,
        "request": request,
        "request_already_emitted": already_emitted,
    }


def change_start(config: ModelConfig, day: dt.date, reason: str) -> dt.date:
    """When the world changed, as far as the check of `day` can tell: what a retrain should learn from.

    Drift is seen in the inputs, so the change began at the first window of the drifted streak
    (`retrain_policy.consecutive_windows` windows ending on `day`). A performance drop is seen in
    labels, which arrive `target.label_delay_days` late: the change began with the events whose
    labels have just arrived (the first day of `label_window_of`).
    """
    if reason == "performance":
        return label_window_of(config, day)[0]
    windows = config.monitoring.retrain_policy.consecutive_windows * config.monitoring.window_days
    return day - dt.timedelta(days=windows - 1)


def days_to_check(config: ModelConfig, up_to: dt.date) -> tuple[list[dt.date], list[str]]:
    """The days one run of the sensor checks, oldest first, and why the others are left for later.

    Every day up to `up_to` that a version served (`champion_history`), whose batch has settled
    (curated or quarantined) and that has no check of its version in the metrics history yet,
    then `up_to` itself even when checked (a re-check replaces its record and reaches the same
    decision). The days are checked in order, because each decision reads the earlier days'
    records: the list stops at the first day whose batch has not settled yet, unless a batch
    `MISSING_AFTER_DAYS` days newer is already curated (ingestion failed on it; it is given up
    rather than stopping the sensor). With no recorded champion history (an alias set by hand)
    only `up_to` is checked.

    Returns:
        (days to check, sentences about the days left out).
    """
    history = champion_history.read_history(config.name)
    notes: list[str] = []
    first_served = champion_history.first_served_day(history) if history else up_to
    if first_served is None or first_served > up_to:
        return [], [f"{champion_history.why_none_served(config.name, up_to)}: there is nothing to monitor"]
    checked = {
        (pd.Timestamp(row["day"]).date(), str(row["model_version"]))
        for row in read_history(config.name)[["day", "model_version"]].to_dict("records")
    }
    curated = storage.curated_days(config.name)
    newest = curated[-1] if curated else None
    days = []
    for day in _days(first_served, up_to):
        version = champion_history.champion_on(config.name, day, history)
        if version is None or ((day, version) in checked and day != up_to):
            continue
        if not batch_settled(config, day):
            if newest is not None and (newest - day).days >= MISSING_AFTER_DAYS:
                notes.append(f"the batch of {day} was never curated nor quarantined while {newest} was: "
                             "ingestion failed on it; it is not checked")
                continue
            notes.append(f"the batch of {day} has not been ingested yet: it and the days after it are "
                         "checked by a later run")
            break
        days.append(day)
    return days, notes


FOLLOW_PASSES = 5
"""How many times one run of the sensor goes back for batches published while it worked."""


def run_checks(config: ModelConfig, up_to: dt.date | None = None, airflow_ids: dict[str, str] | None = None) -> dict:
    """One run of the drift sensor: check every day `days_to_check` finds, oldest first.

    A sensor that fell behind ingestion catches up in one run, loading each version, its model
    and the heavy libraries once, instead of paying a run per day.

    Args:
        up_to: the newest day to check; None = the newest curated day, followed while the run
            works: batches that ingestion publishes meanwhile are checked in the same run (up to
            `FOLLOW_PASSES` more passes), a fraction of the cost of a run of their own.

    Returns:
        JSON-able {"up_to", "checked": [per day: "day", "model_version", "rows", "dataset_drifted",
        "drift_share", "drifted_columns", "realized_metric", "metric_drop", "decision",
        "mlflow_run_id", "request_already_emitted"], "requests": [per request: "day", "request" (the
        retrain-request metadata, its check's MLflow run as "monitoring_run_id"), "already_emitted"
        (an earlier run of that window emitted it)], "notes": [why days were left out]}.
    """
    follow = up_to is None
    if follow:
        curated = storage.curated_days(config.name)
        if not curated:
            return {"up_to": None, "checked": [], "requests": [], "notes": [f"{config.name} has no curated batch yet"]}
        up_to = curated[-1]
    days, notes = days_to_check(config, up_to)
    versions = MonitoredVersions(config)
    checked, requests = [], []
    for passes in range(FOLLOW_PASSES + 1):
        for day in days:
            result = run_check(config, day, airflow_ids, versions)
            checked.append({key: result[key] for key in (
                "day", "model_version", "rows", "dataset_drifted", "drift_share", "drifted_columns",
                "realized_metric", "metric_drop", "decision", "mlflow_run_id", "request_already_emitted",
                "feature_skew", "standing_skew")})
            if result["request"] is not None:
                requests.append({"day": result["day"], "request": result["request"],
                                 "already_emitted": result["request_already_emitted"]})
        newest = storage.curated_days(config.name)[-1] if follow else up_to
        if newest <= up_to or passes == FOLLOW_PASSES:
            break
        up_to = newest
        days, more_notes = days_to_check(config, up_to)
        notes += more_notes
    unsent = unsent_request(config, up_to)
    if unsent is not None and unsent["day"] not in {made["day"] for made in requests}:
        requests.insert(0, unsent)
    return {"up_to": up_to.isoformat(), "checked": checked, "requests": requests, "notes": notes}


def unsent_request(config: ModelConfig, up_to: dt.date) -> dict | None:
    """The newest retrain request up to `up_to` that was decided but never went out, if it is recent.

    A run that decided a request and then failed on a later day never emitted it, and its retry
    does not check that day again. The policy's cooldown allows at most one request in
    `cooldown_days`, so only the newest request of those last days (of the version that served
    its day) can be waiting; it is read back from its `request.json`.

    Returns:
        {"day", "request", "already_emitted": False}, or None.
    """
    history = read_history(config.name)
    since = up_to - dt.timedelta(days=config.monitoring.retrain_policy.cooldown_days)
    fired = history[history["retrain"].astype(bool)] if len(history) else history
    changes = champion_history.read_history(config.name)
    for row in reversed(fired.to_dict("records")):
        day, version = pd.Timestamp(row["day"]).date(), str(row["model_version"])
        if not since <= day <= up_to:
            continue
        if changes and champion_history.champion_on(config.name, day, changes) != version:
            continue
        run = find_monitoring_run(config, day, version)
        path = _report_folder(config, day, version) / REQUEST_FILE
        if run is None or run.data.tags.get(TAG_REQUEST_EMITTED) == "true" or not path.exists():
            return None
        return {"day": day.isoformat(), "request": json.loads(path.read_text()), "already_emitted": False}
    return None


def _report_folder(config: ModelConfig, day: dt.date, version: str) -> Path:
    return settings.reports_dir() / config.name / "drift" / f"day={day.isoformat()}" / f"version={version}"


def _summary(
    check: WindowCheck, quarantined: list[dt.date], champion: Champion,
    skew: feature_skew.SkewCheck | None = None, standing: dict | None = None,
) -> dict:
    drift = check.drift
    prediction = drift.prediction if drift is not None else None
    realized = check.realized or {}
    explanation = check.decision.explanation
    if quarantined:
        explanation += (
            f"; ingestion quarantined the batch of {', '.join(day.isoformat() for day in quarantined)}: "
            "a data-quality failure, not drift, so it was left out of the window"
        )
    if standing is not None and check.decision.withheld is None:
        explanation += f"; {standing['explanation']}: a retrain request would be withheld while it lasts"
    return {
        "day": check.day.isoformat(),
        "window": {"start": check.window[0].isoformat(), "end": check.window[1].isoformat()},
        "model_version": check.model_version,
        "rows": 0 if drift is None else drift.rows,
        "quarantined_days": [day.isoformat() for day in quarantined],
        "drift_share": None if drift is None else drift.drift_share,
        "drifted_columns": [] if drift is None else drift.drifted_columns,
        "dataset_drifted": None if drift is None else drift.dataset_drifted,
        "scores": {} if drift is None else drift.scores,
        "quality_issues": {} if drift is None else drift.quality_issues,
        "prediction_drift_score": None if prediction is None else prediction.score,
        "prediction_drifted": None if prediction is None else prediction.drifted,
        "metric": realized.get("metric"),
        "realized_metric": realized.get("value"),
        "champion_holdout_metric": champion.holdout_metric,
        "metric_drop": check.metric_drop,
        "labeled_rows": realized.get("rows_joined", 0),
        "decision": {**check.decision.to_dict(), "explanation": explanation},
        "feature_skew": None if skew is None else skew.to_dict(),
        "standing_skew": standing,
    }


# --- reports for people --------------------------------------------------------------------------


def wants_reports(config: ModelConfig, check: WindowCheck) -> bool:
    """Does the check get Evidently's reports (`monitoring.reports`): when it requested a retrain
    (`on_request`, the evidence behind every request), also when its data or predictions drifted
    (`on_drift`), or always (`every_check`).

    Importing Evidently and rendering a report costs more than the check itself: on a catch-up
    over a drifting period, reports for every drifted day make the sensor fall behind ingestion.
    """
    if config.monitoring.reports == "every_check" or check.decision.retrain:
        return True
    if config.monitoring.reports == "on_request":
        return False
    drift = check.drift
    return drift is not None and (drift.dataset_drifted or (drift.prediction is not None and drift.prediction.drifted))


def write_reports(
    config: ModelConfig, profile: ReferenceProfile, window: pd.DataFrame, scores: np.ndarray | None, folder: Path
) -> dict[str, str]:
    """Evidently's data drift report of the window and its prediction drift report: snapshot and results JSON.

    Returns:
        {"data_drift_snapshot", "data_drift_json", "prediction_drift_snapshot", "prediction_drift_json"}
        for the reports that could be made (none for an empty window).
    """
    folder.mkdir(parents=True, exist_ok=True)
    reports: dict[str, str] = {}
    if len(window):
        written = write_evidently_report(config, profile.sample, window, folder)
        reports.update({"data_drift_snapshot": written["snapshot"], "data_drift_json": written["json"]})
    if scores is not None and len(scores) and profile.scores is not None:
        written = write_prediction_drift_report(config, profile.scores.sorted_values, scores, folder)
        reports.update({"prediction_drift_snapshot": written["snapshot"], "prediction_drift_json": written["json"]})
    return reports


def write_prediction_drift_report(
    config: ModelConfig, reference_scores: np.ndarray, scores: np.ndarray, folder: Path,
    max_rows: int = REPORT_SAMPLE_ROWS,
) -> dict[str, str]:
    """Evidently's `ValueDrift` of the model's output, the champion's scores on unseen rows as reference.

    The reference is kept as sorted values, so evenly spaced order statistics stand for it; the
    window's scores are sampled with a fixed seed. The method is the one `detect_drift` uses for
    scores (the config's default when it fits numbers, else K-S).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    from include.monitoring.drift import _prediction_method
    from include.monitoring.evidently_reports import save_report

    chosen = _prediction_method(config)
    positions = np.linspace(0, len(reference_scores) - 1, min(max_rows, len(reference_scores))).round()
    reference = pd.DataFrame({PREDICTION_COLUMN: reference_scores[positions.astype(np.int64)]})
    rng = np.random.default_rng(0)
    picked = scores if len(scores) <= max_rows else scores[np.sort(rng.choice(len(scores), max_rows, replace=False))]
    current = pd.DataFrame({PREDICTION_COLUMN: picked})
    definition = DataDefinition(numerical_columns=[PREDICTION_COLUMN])
    report = Report(
        [ValueDrift(column=PREDICTION_COLUMN, method=chosen.method, threshold=chosen.threshold)],
        include_tests=True,
        metadata={"model": config.name},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    return save_report(snapshot, folder, "prediction_drift")


# --- the MLflow monitoring run -------------------------------------------------------------------


def find_monitoring_run(config: ModelConfig, day: dt.date, version: str, experiment_id: str | None = None):
    """The MLflow run of the check of `day` against `version`, if one was made."""
    import mlflow

    experiment_id = experiment_id or registry.ensure_experiment(config.name)
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=(
            f"tags.{TAG_RUN_KIND} = '{RUN_KIND}' and tags.{TAG_WINDOW_END} = '{day.isoformat()}' "
            f"and tags.{TAG_MONITORED_VERSION} = '{registry.quoted(version)}'"
        ),
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    return runs[0] if runs else None


def monitoring_runs(config: ModelConfig) -> list:
    """Every drift-check run of the model, oldest window first."""
    import mlflow

    experiment_id = registry.ensure_experiment(config.name)
    return mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.{TAG_RUN_KIND} = '{RUN_KIND}'",
        order_by=[f"tags.{TAG_WINDOW_END} ASC"],
        output_format="list",
    )


def log_monitoring_run(
    config: ModelConfig, check: WindowCheck, summary: dict, folder: Path, airflow_ids: dict[str, str]
) -> tuple[str, bool]:
    """Log the check on the MLflow run of its window and version (created once, then reused).

    Returns:
        (run id, whether an earlier run of this window already emitted the retrain request).
    """
    from mlflow.entities import Metric

    mlflow_client = registry.client()
    experiment_id = registry.ensure_experiment(config.name)
    existing = find_monitoring_run(config, check.day, check.model_version, experiment_id)
    emitted = existing is not None and existing.data.tags.get(TAG_REQUEST_EMITTED) == "true"
    tags = {
        TAG_RUN_KIND: RUN_KIND,
        TAG_WINDOW_START: check.window[0].isoformat(),
        TAG_WINDOW_END: check.window[1].isoformat(),
        TAG_MONITORED_VERSION: check.model_version,
        TAG_RETRAIN: str(check.decision.retrain).lower(),
        "retrain_reason": check.decision.reason or "",
        "explanation": summary["decision"]["explanation"][:4000],
        "drifted_columns": ", ".join(summary["drifted_columns"]),
        **({"feature_skew": (summary["standing_skew"] or {}).get("explanation", "none")[:4000]}
           if summary["feature_skew"] is not None or summary["standing_skew"] else {}),
        **({registry.TAG_AIRFLOW_DAG_ID: airflow_ids["dag_id"]} if airflow_ids.get("dag_id") else {}),
        **({registry.TAG_AIRFLOW_RUN_ID: airflow_ids["run_id"]} if airflow_ids.get("run_id") else {}),
    }
    if existing is None:
        run = mlflow_client.create_run(
            experiment_id, run_name=f"drift-check-{check.day.isoformat()}-v{check.model_version}", tags=tags
        )
        run_id = run.info.run_id
    else:
        run_id = existing.info.run_id
        for key, value in tags.items():
            mlflow_client.set_tag(run_id, key, value)
    values = {
        "rows": summary["rows"],
        "drift_share": summary["drift_share"],
        "drifted_columns_count": len(summary["drifted_columns"]),
        "prediction_drift_score": summary["prediction_drift_score"],
        f"realized_{config.evaluation.primary_metric}": summary["realized_metric"],
        "metric_drop": summary["metric_drop"],
        "labeled_rows": summary["labeled_rows"],
        "retrain": float(check.decision.retrain),
        **{f"drift_score.{name}": score for name, score in summary["scores"].items()},
        **feature_skew.run_metrics(summary["feature_skew"]),
    }
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    metrics = [Metric(key, float(value), now, 0) for key, value in values.items() if value is not None]
    mlflow_client.log_batch(run_id, metrics=metrics)
    if existing is None:
        mlflow_client.log_param(run_id, "window_days", config.monitoring.window_days)
    mlflow_client.log_artifacts(run_id, str(folder), artifact_path="drift_report")
    mlflow_client.set_terminated(run_id)
    return run_id, emitted


def mark_request_emitted(run_id: str) -> None:
    """Remember on the check's MLflow run that its retrain request went out (a re-run will not resend it)."""
    registry.client().set_tag(run_id, TAG_REQUEST_EMITTED, "true")
