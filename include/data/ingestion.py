"""Data ingestion, step by step: land an interval's batch, validate it with GX, then publish or quarantine.

A batch is what the source delivered in one batch interval (`source.interval`: an hour, a day, a
week or a month), keyed in the landing, validated and quarantine stores by the interval's first day
(an hour: by its start). It is validated once, so a blocking failure quarantines the whole interval.
Publish splits a weekly or monthly batch by its timestamp column's UTC date into the days' curated
partitions, and merges an hour into its day's partition: everything downstream works on days.

Each step takes the model config, the day and file URIs, and returns a small JSON-able dict, so
the Airflow tasks that call them pass URIs, never DataFrames. Validation reads a snapshot of the
landed file named by its content (`storage.snapshot_batch`), and publish writes only a snapshot
that passed: two runs of one day cannot publish bytes that replaced the landing file after they
were checked. A batch that fails a blocking expectation, or cannot even be read, is moved from
landing to quarantine beside its validation report and `BatchRejected` names every failed rule;
nothing is deleted and nothing reaches the curated store. Labels are checked before they are
stored, so training never joins a label that fails.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from include.core import intervals, storage
from include.core.config import ModelConfig
from include.data import sources, validation


class BatchRejected(Exception):
    """A batch failed validation (or could not be read) and was quarantined."""


class BatchNotValidated(Exception):
    """Publish was asked for bytes that no validation of the day passed (the file changed since)."""


def batch_day(config: ModelConfig, day: dt.date) -> dt.date:
    """The key of the batch interval holding `day` in the stores: its first day, or an hour's start
    (a tz-naive UTC datetime) for an hourly source."""
    if config.source.interval == "hourly":
        return intervals.interval_bounds("hourly", day)[0]
    return intervals.interval_first_day(config.source.interval, day)


def parse_batch_key(text: str) -> dt.date:
    """A batch's key from its ISO form (as `land` returns it): a day, or an hourly batch's datetime."""
    return dt.datetime.fromisoformat(text) if "T" in text else dt.date.fromisoformat(text)


def land(config: ModelConfig, day: dt.date) -> dict:
    """Copy what the source delivered in the batch interval holding `day` into the landing zone.

    Returns:
        {"day": the interval's first day, "batch_uri"}.
    """
    day = batch_day(config, day)
    path = sources.land_batch(config, day)
    return {"day": day.isoformat(), "batch_uri": str(path)}


def _already_quarantined(config: ModelConfig, day: dt.date, landed: Path) -> BatchRejected | FileNotFoundError:
    """Why the landed file is gone: a re-run of validate after quarantine says so again, as the first run did."""
    folders = [folder for folder in storage.quarantined_batches(config.name, day) if (folder / landed.name).is_file()]
    if not folders:
        return FileNotFoundError(f"no landed batch at {landed}: land the day's batch first")
    newest = max(folders, key=lambda folder: (folder / storage.REPORT_FILE).stat().st_mtime)
    return BatchRejected(f"batch {day} was rejected and moved to quarantine: see {newest / storage.REPORT_FILE}")


def _read_or_quarantine(config: ModelConfig, day: dt.date, snapshot: Path, landed: Path):
    try:
        return sources.read_batch(snapshot, config.schema)
    except sources.UnreadableBatch as exc:
        # The snapshot moves to quarantine: the report and the message name the file that was delivered.
        error = sources.UnreadableBatch(str(exc).replace(str(snapshot), str(landed)))
        report = validation.unreadable_report(landed, error, day)
        folder = storage.quarantine_batch(config.name, day, snapshot, report, landed=landed)
        raise BatchRejected(f"batch {day} is unreadable: {error}. Quarantined in {folder}") from exc


def validate(config: ModelConfig, day: dt.date, batch_uri: str, *, data_docs: bool = True) -> dict:
    """Validate the landed batch against the model's GX suite (`data_docs`: also build its Data Docs site).

    Returns:
        The validation summary, warnings included, when no blocking expectation failed, and
        `validated_uri`: the snapshot of the bytes that passed, which `publish` writes.

    Raises:
        BatchRejected: after moving the batch from landing to quarantine with its GX result (also
            on a re-run that finds it already there).
    """
    landed = Path(batch_uri)
    if not landed.is_file():
        raise _already_quarantined(config, day, landed)
    snapshot = storage.snapshot_batch(config.name, day, landed)
    frame = _read_or_quarantine(config, day, snapshot, landed)
    outcome = validation.validate_batch(config, frame, day, data_docs=data_docs)
    if not outcome.passed:
        folder = storage.quarantine_batch(config.name, day, snapshot, outcome.to_dict(), landed=landed)
        raise BatchRejected(f"{validation.describe_failures(outcome)}. Quarantined in {folder}")
    storage.mark_validated(snapshot, outcome.to_dict())
    return {
        "summary": outcome.summary,
        "warnings": [warning.to_dict() for warning in outcome.warnings],
        "data_docs": str(outcome.data_docs_index) if outcome.data_docs_index else None,
        "validated_uri": str(snapshot),
    }


def publish(config: ModelConfig, day: dt.date, batch_uri: str) -> dict:
    """Write a validated batch to the curated store, replacing the day's earlier version.

    A weekly or monthly batch is split by its timestamp column's UTC date, each day written to its
    own partition (`publish_interval`).

    Args:
        day: the batch's day (a weekly or monthly batch's: its interval's first day).
        batch_uri: `validate`'s `validated_uri`, or a landed file: then the snapshot that passed
            with the same bytes is published.

    Returns:
        A daily batch: {"day", "curated_uri", "rows"}; else `publish_interval`'s range.

    Raises:
        BatchNotValidated: no validation of the day passed these bytes (the landed file was
            replaced after its check); nothing is published.
    """
    snapshot = storage.validated_snapshot(config.name, day, Path(batch_uri))
    if snapshot is None:
        raise BatchNotValidated(
            f"batch {day} at {batch_uri} is not the one that passed validation (it changed since, or was "
            "never validated): nothing published; validate the day again"
        )
    frame = sources.read_batch(snapshot, config.schema)
    if config.source.interval == "hourly":
        return publish_hour(config, day, frame)
    if config.source.interval != "daily":
        return publish_interval(config, day, frame)
    path = storage.write_curated_batch(config.name, day, frame)
    return {"day": day.isoformat(), "curated_uri": str(path), "rows": len(frame)}


def _rows_by_day(frame: pd.DataFrame, column: str, days: list[dt.date]) -> dict[dt.date, pd.DataFrame]:
    """The rows of `frame` by the UTC date of `column` (tz-naive UTC), oldest first.

    A date outside `days` counts on the nearest of them and a missing one on the last, so every
    row lands in the interval it was delivered with.
    """
    dates = pd.to_datetime(frame[column], errors="coerce").dt.date
    dates = dates.map(lambda date: days[-1] if pd.isna(date) else min(max(date, days[0]), days[-1]))
    return {day: rows.reset_index(drop=True) for day, rows in frame.groupby(dates, sort=True)}


def publish_interval(config: ModelConfig, day: dt.date, frame: pd.DataFrame) -> dict:
    """Write a validated weekly or monthly batch to the curated store, one partition per day of its rows.

    Returns:
        The range, as the history import announces one: {"model", "interval", "first_day",
        "last_day" (the interval's), "days" (curated days), "rows", "quarantined" ([]), "missing"
        (the interval's days without a row), "curated_days"}; consumers expand it with `event_days`.
    """
    days = intervals.interval_days(config.source.interval, day)
    by_day = _rows_by_day(frame, config.schema.timestamp_column, days)
    for each, rows in by_day.items():
        storage.write_curated_batch(config.name, each, rows)
    return {
        "model": config.name,
        "interval": config.source.interval,
        "first_day": days[0].isoformat(),
        "last_day": days[-1].isoformat(),
        "days": len(by_day),
        "rows": len(frame),
        "quarantined": [],
        "missing": [each.isoformat() for each in days if each not in by_day],
        "curated_days": [each.isoformat() for each in by_day],
    }


def _merge_hour(path: Path, frame: pd.DataFrame, column: str, hour: dt.datetime) -> pd.DataFrame:
    """The day's partition at `path` with its rows of the hour (by `column`) replaced by `frame`, sorted by `column`."""
    start, end = intervals.interval_bounds("hourly", hour)
    if not path.is_file():
        return frame.sort_values(column, kind="stable").reset_index(drop=True)
    kept = pd.read_parquet(path)
    kept = kept[~((kept[column] >= start) & (kept[column] < end))]
    merged = pd.concat([kept, frame], ignore_index=True) if len(kept) else frame
    return merged.sort_values(column, kind="stable").reset_index(drop=True)


def publish_hour(config: ModelConfig, hour: dt.datetime, frame: pd.DataFrame) -> dict:
    """Merge a validated hour into its day's curated partition: the day's earlier rows of that hour
    are replaced (a re-run publishes it again, never twice), the others kept. Runs of one model must
    not publish at once (the hourly ingestion DAG runs one at a time).

    Returns:
        {"hour", "curated_uri", "rows" (the hour's), "curated_days" ([its day])}.
    """
    path = storage.curated_path(config.name, hour.date())
    storage.write_parquet_atomically(_merge_hour(path, frame, config.schema.timestamp_column, hour), path)
    return {"hour": hour.isoformat(), "curated_uri": str(path), "rows": len(frame),
            "curated_days": [hour.date().isoformat()]}


def hours_of_day(config: ModelConfig, day: dt.date) -> dict:
    """What an hourly source's day holds so far, as its curated-batch Asset event says it.

    Returns:
        {"day", "rows" (curated), "hours_curated", "hours_quarantined" (a batch in quarantine and
        no curated row), "hours_missing" (neither): hours as 0-23}.
    """
    path = storage.curated_path(config.name, day)
    rows = pd.read_parquet(path, columns=[config.schema.timestamp_column]) if path.is_file() else pd.DataFrame()
    curated = sorted({int(hour) for hour in rows[config.schema.timestamp_column].dt.hour}) if len(rows) else []
    quarantine = storage.quarantine_root(config.name, day)
    quarantined = sorted(hour for hour in range(24) if hour not in curated
                         and (quarantine / f"hour={hour:02d}").is_dir())
    return {"day": day.isoformat(), "rows": len(rows), "hours_curated": curated, "hours_quarantined": quarantined,
            "hours_missing": [hour for hour in range(24) if hour not in curated and hour not in quarantined]}


def land_labels(config: ModelConfig, day: dt.date, *, data_docs: bool = True) -> dict:
    """Store the labels that arrived in the batch interval holding `day` once they pass the labels
    suite (and build its Data Docs).

    Labels that fail go to quarantine with their report and never reach the labels store (what
    it held for the interval stays), so training never joins them; `BatchRejected` names the
    failed rules. A weekly or monthly interval's labels are stored per arrival day (the UTC date
    of `label_timestamp`).

    Returns:
        {"day" (the interval's first day), "labels_uri" (of its first stored day, or None), "rows"}.
    """
    day = batch_day(config, day)
    labels = sources.arrived_labels(config, day)
    if labels is None:
        return {"day": day.isoformat(), "labels_uri": None, "rows": 0}
    outcome = validation.validate_batch(config, labels, day, suite_kind="labels", data_docs=data_docs)
    if not outcome.passed:
        folder = storage.quarantine_labels(config.name, day, labels, outcome.to_dict())
        raise BatchRejected(f"labels of {day}: {validation.describe_failures(outcome)}. Quarantined in {folder}")
    if config.source.interval == "hourly":
        path = storage.labels_path(config.name, day)
        merged = _merge_hour(path, labels, storage.LABEL_TIMESTAMP, day)
        paths = [storage.write_parquet_atomically(merged, path)]
    elif config.source.interval == "daily":
        paths = [storage.write_labels(config.name, day, labels)]
    else:
        days = intervals.interval_days(config.source.interval, day)
        by_day = _rows_by_day(labels, storage.LABEL_TIMESTAMP, days)
        paths = [storage.write_labels(config.name, each, rows) for each, rows in by_day.items()]
    return {"day": day.isoformat(), "labels_uri": str(paths[0]) if paths else None, "rows": len(labels)}
