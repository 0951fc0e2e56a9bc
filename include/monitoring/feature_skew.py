"""Training/serving skew: did the prediction service use the feature values a model learns from?

For a model with `feature_store: feast`, the drift sensor's check of a window also compares, for
every online prediction of the window's days (the prediction log, `include.delivery.prediction_log`,
without the deployment's own service checks), the feature values the service used with the feature
store's offline values of the same entity at the same time:

    prediction log ──► entity id, "as of", served values ──► Feast get_historical_features ──► per feature:
    (the window)       as of = the logged event timestamp,     the entity's newest offline row      the share of
                       else the time of the prediction         at or before "as of"                  mismatches

The offline values come from Feast's `get_historical_features`, the call that builds training sets
through the store (`include.features.feature_store.training_set`), over the curated store: what this
check calls offline is what a model trained through the store learns from, with Feast's own
point-in-time join and type handling, not a second reading of the Parquet files.

- A number mismatches when it differs by more than `RELATIVE_TOLERANCE` (plus `ABSOLUTE_TOLERANCE`):
  the log's JSON keeps a float exactly, the tolerance only forgives a caller that rounds in its last
  digits. Any other value mismatches when it is not equal. A null matches only a null.
- A prediction without an offline row (no entity id logged, an entity the store does not know, or an
  event newer than the curated store) is **unmatched**: counted apart, never as a mismatch.
- A feature's share is its mismatches over the matched predictions; a feature the log never carries
  is not compared.

What counts as skew is what a model would see differently in training and in serving, whatever the
cause: a caller computing a feature its own way, an online store lagging behind the curated store
(a prediction that logged no event time is judged as of its own time, against the newest offline
row by then), or an ingestion change after the values were served.

A share above `monitoring.skew_max_share` is a retrain-blocking alert, not a retrain trigger.
Retraining cannot mend a pipeline that serves a model other values than it learned from, and a
model retrained meanwhile learns (and is judged by the gate on) the offline side only, which may
be the broken one. So while the skew lasts the sensor raises an alert
(`include.monitoring.alerts.feature_skew_alert`) and withholds its retrain requests, saying why in
its log, its `check.json` and its MLflow run, and continuous training skips its automatic runs
(`include.training.training_triggers.plan_training`); a run a person starts still trains. The skew
lasts from a check over the threshold until a check that matched predictions finds every share
within it: a day without online predictions does not end it (`standing_skew`).

Each day's verdict is kept as one row in `<data>/<model>/monitoring/feature_skew.parquet` (a
re-check replaces it), and the check's Evidently report (`feature_skew`: the share of each feature
with a test against the threshold) is kept beside its drift reports when the skew is over the
threshold, or for every check with `monitoring.reports: every_check`.

Models without the store are left alone: `check_skew` returns None without reading anything.
Feast and Evidently are imported inside the functions that need them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.core import settings, storage
from include.core.jsonable import to_jsonable
from include.delivery import prediction_log
from include.features import feature_store

if TYPE_CHECKING:
    from include.core.config import ModelConfig

RELATIVE_TOLERANCE = 1e-6
ABSOLUTE_TOLERANCE = 1e-9
EXAMPLES_PER_FEATURE = 3
SKEW_FILE = "feature_skew.parquet"
REPORT_KIND = "feature_skew"
METRIC_PREFIX = "skew_share_"
MISMATCH_SUFFIX = " mismatch"
_ROW = "feast_skew_row"  # the prediction's position, carried through Feast (which reorders rows)
_NUMBERS = ("integer", "float")


@dataclass(frozen=True)
class SkewCheck:
    """The skew verdict on one window's online predictions."""

    day: dt.date
    window: tuple[dt.date, dt.date]
    threshold: float
    rows: int
    matched: int
    as_of_event_time: int
    compared: dict[str, int]
    mismatched: dict[str, int]
    examples: dict[str, list[dict]] = field(default_factory=dict)
    flags: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    """Per prediction: `<feature> mismatch` (1 mismatch, 0 match, NaN unmatched) and `unmatched` (0/1)."""

    @property
    def unmatched(self) -> int:
        return self.rows - self.matched

    @property
    def unmatched_share(self) -> float | None:
        return self.unmatched / self.rows if self.rows else None

    @property
    def shares(self) -> dict[str, float]:
        """Mismatched / matched predictions per compared feature."""
        return {name: self.mismatched[name] / count for name, count in self.compared.items() if count}

    @property
    def skewed_features(self) -> list[str]:
        return [name for name, share in self.shares.items() if share > self.threshold]

    @property
    def over_threshold(self) -> bool:
        return bool(self.skewed_features)

    def explanation(self) -> str:
        if not self.rows:
            return "no online predictions in the window: no skew verdict"
        if not self.matched:
            return f"none of the {self.rows} online predictions has an offline row to compare with: no skew verdict"
        if not self.over_threshold:
            return (
                f"the features of {self.matched} online predictions match the feature store's offline values "
                f"(largest share of mismatches {max(self.shares.values(), default=0.0):.2%}, at most "
                f"{self.threshold:.2%} allowed)"
            )
        return describe_skew(
            self.day, {name: self.shares[name] for name in self.skewed_features}, self.threshold, self.matched
        )

    def to_dict(self) -> dict:
        return {
            "day": self.day.isoformat(),
            "window": {"start": self.window[0].isoformat(), "end": self.window[1].isoformat()},
            "threshold": self.threshold,
            "rows": self.rows,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "unmatched_share": self.unmatched_share,
            "as_of_event_time": self.as_of_event_time,
            "compared": self.compared,
            "mismatched": self.mismatched,
            "shares": self.shares,
            "skewed_features": self.skewed_features,
            "over_threshold": self.over_threshold,
            "examples": self.examples,
            "explanation": self.explanation(),
        }


def describe_skew(day: dt.date | str, shares: dict[str, float], threshold: float, matched: int | None = None) -> str:
    """The sentence for skew over the threshold: which features, how much, where to look."""
    listed = ", ".join(f"{name} {share:.1%}" for name, share in shares.items())
    of = f" of {matched} online predictions" if matched is not None else ""
    return (
        f"training/serving skew (the check of {day}): the service used other values than the feature "
        f"store's offline ones for {listed}{of}, over the {threshold:.1%} allowed (monitoring.skew_max_share)"
    )


# --- the check -----------------------------------------------------------------------------------


def check_skew(config: ModelConfig, day: dt.date, first: dt.date, last: dt.date) -> SkewCheck | None:
    """Compare the features of the online predictions made from `first` to `last` with the offline values.

    Returns:
        The verdict of the window ending on `day`; None for a model without the feature store.
    """
    if not feature_store.uses_feature_store(config):
        return None
    served = served_features(config, first, last)
    offline = offline_features(config, served)
    return compare(config, day, (first, last), served, offline)


def served_features(config: ModelConfig, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The window's online predictions: the entity id, the "as of" time, the logged feature values.

    "As of" is the event timestamp the prediction logged (`schema.timestamp_column`), else the
    time of the prediction: the offline row to compare with is the entity's newest at that time.

    Returns:
        One row per prediction: the entity column (None when not logged), `feast_as_of` (UTC),
        `as_of_event_time` (bool) and the feature columns the log carries.
    """
    schema = config.schema
    log = prediction_log.read_prediction_log(config.name, first, last).reset_index(drop=True)
    frame = pd.DataFrame(index=log.index)
    frame[schema.entity_column] = log[schema.entity_column] if schema.entity_column in log else None
    event_time = (
        pd.to_datetime(log[schema.timestamp_column], utc=True, errors="coerce", format="ISO8601")
        if schema.timestamp_column in log
        else pd.Series(pd.NaT, index=log.index, dtype="datetime64[ns, UTC]")
    )
    frame["as_of_event_time"] = event_time.notna()
    frame[feature_store.AS_OF] = event_time.fillna(log["timestamp"]) if len(log) else event_time
    for name in config.features.all:
        if name in log:
            frame[name] = log[name]
    return frame


def offline_features(config: ModelConfig, served: pd.DataFrame) -> pd.DataFrame:
    """The feature store's values for each served prediction, point in time (Feast `get_historical_features`).

    Returns:
        Indexed like `served`: the feature columns and the timestamp column, which is null where
        the store has no row for the entity at that time (or the prediction logged no usable id).
    """
    schema = config.schema
    columns = [schema.timestamp_column, *config.features.all]
    keys = served[schema.entity_column]
    if schema.columns[schema.entity_column].type == "integer":
        keys = pd.to_numeric(keys, errors="coerce")
        usable = keys.notna() & (keys == keys.round())
        keys = keys[usable].astype("int64")
    else:
        usable = keys.notna()
        keys = keys[usable].astype(str)
    empty = pd.DataFrame({name: pd.Series(dtype=object) for name in columns}, index=served.index)
    if not usable.any():
        return empty
    entity_df = pd.DataFrame(
        {
            schema.entity_column: keys,
            feature_store.AS_OF: served.loc[usable, feature_store.AS_OF].dt.tz_convert("UTC"),
            _ROW: keys.index,
        }
    ).reset_index(drop=True)
    view = feature_store.feature_view_name(config)
    found = (
        feature_store.open_store(config)
        .get_historical_features(entity_df=entity_df, features=[f"{view}:{name}" for name in columns])
        .to_df()
    )
    found = found.set_index(_ROW)[columns]
    return found.reindex(served.index)


def compare(
    config: ModelConfig, day: dt.date, window: tuple[dt.date, dt.date], served: pd.DataFrame, offline: pd.DataFrame
) -> SkewCheck:
    """The skew verdict from the served values and their offline counterparts (indexed alike)."""
    matched = offline[config.schema.timestamp_column].notna()
    flags = pd.DataFrame({"unmatched": (~matched).astype(float)}, index=served.index)
    compared, mismatched, examples = {}, {}, {}
    for name in config.features.all:
        if name not in served:
            continue
        differs = mismatches(config, name, served.loc[matched, name], offline.loc[matched, name])
        flags[f"{name}{MISMATCH_SUFFIX}"] = differs.astype(float).reindex(served.index)
        compared[name], mismatched[name] = int(matched.sum()), int(differs.sum())
        if mismatched[name]:
            examples[name] = [
                {
                    "entity": to_jsonable(served.at[row, config.schema.entity_column]),
                    "as_of": served.at[row, feature_store.AS_OF].isoformat(),
                    "served": to_jsonable(_plain(served.at[row, name])),
                    "offline": to_jsonable(_plain(offline.at[row, name])),
                }
                for row in differs[differs].index[:EXAMPLES_PER_FEATURE]
            ]
    return SkewCheck(
        day=day,
        window=window,
        threshold=config.monitoring.skew_max_share,
        rows=len(served),
        matched=int(matched.sum()),
        as_of_event_time=int(served["as_of_event_time"].sum()) if len(served) else 0,
        compared=compared,
        mismatched=mismatched,
        examples=examples,
        flags=flags,
    )


def mismatches(config: ModelConfig, column: str, served: pd.Series, offline: pd.Series) -> pd.Series:
    """Per row: does the served value differ from the offline one (see the module's rules)?"""
    kind = config.schema.columns[column].type
    both_null = served.isna().to_numpy() & offline.isna().to_numpy()
    if kind in _NUMBERS:
        left = pd.to_numeric(served, errors="coerce").to_numpy(dtype="float64")
        right = pd.to_numeric(offline, errors="coerce").to_numpy(dtype="float64")
        equal = np.isclose(left, right, rtol=RELATIVE_TOLERANCE, atol=ABSOLUTE_TOLERANCE)
    elif kind == "timestamp":
        left = pd.to_datetime(served, utc=True, errors="coerce", format="ISO8601")
        right = pd.to_datetime(offline, utc=True, errors="coerce")
        equal = (left == right).to_numpy()
    else:
        equal = (served.map(_as_text) == offline.map(_as_text)).to_numpy()
    return pd.Series(~(both_null | equal), index=served.index)


def _as_text(value: Any) -> str | None:
    return None if _is_null(value) else str(value)


def _is_null(value: Any) -> bool:
    return value is None or (not isinstance(value, str | bool) and bool(pd.isna(value)))


def _plain(value: Any) -> Any:
    return None if _is_null(value) else value


# --- the verdicts of past days -------------------------------------------------------------------


def skew_history_path(model: str) -> Path:
    return settings.data_dir() / model / "monitoring" / SKEW_FILE


def read_skew_history(model: str) -> pd.DataFrame:
    """Every day's skew verdict, oldest first: day, rows, matched, threshold, over_threshold, and
    `shares` and `skewed_features` as JSON."""
    path = skew_history_path(model)
    if not path.exists():
        return pd.DataFrame(
            columns=["day", "rows", "matched", "threshold", "over_threshold", "shares", "skewed_features"]
        )
    return pd.read_parquet(path)


def record_skew(config: ModelConfig, check: SkewCheck) -> Path:
    """Keep the verdict of `check.day`, replacing an earlier one of that day."""
    row = pd.DataFrame(
        [
            {
                "day": check.day,
                "rows": check.rows,
                "matched": check.matched,
                "threshold": check.threshold,
                "over_threshold": check.over_threshold,
                "shares": json.dumps(check.shares),
                "skewed_features": json.dumps(check.skewed_features),
            }
        ]
    )
    history = read_skew_history(config.name)
    if len(history):
        row = pd.concat([history[history["day"] != check.day], row], ignore_index=True)
    row = row.sort_values("day", kind="stable", ignore_index=True)
    return storage.write_parquet_atomically(row, skew_history_path(config.name))


def standing_skew(config: ModelConfig, up_to: dt.date | None = None) -> dict | None:
    """The skew that lasts on `up_to` (None: now): the newest verdict up to then that compared
    predictions, when it was over the threshold.

    Returns:
        {"day", "shares" (of the skewed features), "threshold", "explanation"}, or None: no skew
        lasts, or the model does not use the feature store.
    """
    if not feature_store.uses_feature_store(config):
        return None
    history = read_skew_history(config.name)
    if not len(history):
        return None
    days = pd.to_datetime(history["day"]).dt.date
    judged = history[(history["matched"] > 0) & ((days <= up_to) if up_to is not None else True)]
    if not len(judged):
        return None
    newest = judged.iloc[-1]
    if not bool(newest["over_threshold"]):
        return None
    shares = json.loads(newest["shares"])
    skewed = {name: shares[name] for name in json.loads(newest["skewed_features"])}
    day = pd.Timestamp(newest["day"]).date()
    threshold = float(newest["threshold"])
    return {
        "day": day.isoformat(),
        "shares": skewed,
        "threshold": threshold,
        "explanation": describe_skew(day, skewed, threshold),
    }


# --- for people: the report and the MLflow numbers -----------------------------------------------


def wants_report(config: ModelConfig, check: SkewCheck) -> bool:
    """An Evidently report for a verdict over the threshold, or for every check (`monitoring.reports`)."""
    return check.rows > 0 and (check.over_threshold or config.monitoring.reports == "every_check")


def write_report(config: ModelConfig, check: SkewCheck, folder: Path) -> dict[str, str]:
    """Evidently's report of the check: the share of mismatches of each feature (`MeanValue` of its
    0/1 mismatch column over the matched predictions) tested against `monitoring.skew_max_share`,
    the share of unmatched predictions, and the count of predictions.

    Returns:
        {"feature_skew_snapshot", "feature_skew_json"}.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue, RowCount
    from evidently.tests import lte

    from include.monitoring.evidently_reports import save_report

    flags = check.flags
    features = [name for name in flags.columns if name.endswith(MISMATCH_SUFFIX) and flags[name].notna().any()]
    metrics = [RowCount(), MeanValue(column="unmatched", tests=[])]
    metrics += [MeanValue(column=name, tests=[lte(check.threshold)]) for name in features]
    report = Report(metrics, include_tests=True, metadata={"model": config.name, "check": "feature_skew"})
    snapshot = report.run(
        Dataset.from_pandas(
            flags[["unmatched", *features]], data_definition=DataDefinition(numerical_columns=["unmatched", *features])
        ),
        None,
    )
    written = save_report(snapshot, folder, REPORT_KIND)
    return {f"{REPORT_KIND}_snapshot": written["snapshot"], f"{REPORT_KIND}_json": written["json"]}


def run_metrics(check: dict | None) -> dict[str, float]:
    """The MLflow metrics of a verdict (`SkewCheck.to_dict()`): `skew_share_<feature>` for each
    compared feature, and `skew_rows`, `skew_matched_rows`, `skew_unmatched_share`."""
    if not check:
        return {}
    metrics = {"skew_rows": check["rows"], "skew_matched_rows": check["matched"]}
    if check["unmatched_share"] is not None:
        metrics["skew_unmatched_share"] = check["unmatched_share"]
    metrics.update({f"{METRIC_PREFIX}{metric_safe(name)}": share for name, share in check["shares"].items()})
    return metrics


def metric_safe(name: str) -> str:
    """A column name as MLflow takes it in a metric key (letters, digits, `_ - . /` and spaces)."""
    return re.sub(r"[^\w\-. /]", "_", name)
