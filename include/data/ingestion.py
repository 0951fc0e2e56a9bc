"""Data ingestion, step by step: land a day's batch, validate it with GX, then publish or quarantine.

Each step takes the model config, the day and file URIs, and returns a small JSON-able dict, so
the Airflow tasks that call them pass URIs, never DataFrames. A batch that fails a blocking
expectation, or cannot even be read, is kept in quarantine beside its validation report and
`BatchRejected` names every failed rule; nothing is deleted and nothing reaches the curated store.
Labels are checked before they are stored, so training never joins a label that fails.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from include.core import storage
from include.core.config import ModelConfig
from include.data import sources, validation


class BatchRejected(Exception):
    """A batch failed validation (or could not be read) and was quarantined."""


def land(config: ModelConfig, day: dt.date) -> dict:
    """Copy what the source delivered for `day` into the landing zone."""
    path = sources.land_batch(config, day)
    return {"day": day.isoformat(), "batch_uri": str(path)}


def _read_or_quarantine(config: ModelConfig, day: dt.date, path: Path):
    try:
        return sources.read_batch(path, config.schema)
    except sources.UnreadableBatch as exc:
        report = validation.unreadable_report(path, exc, day)
        folder = storage.quarantine_batch(config.name, day, path, report)
        raise BatchRejected(f"batch {day} is unreadable: {exc}. Quarantined in {folder}") from exc


def validate(config: ModelConfig, day: dt.date, batch_uri: str, *, data_docs: bool = True) -> dict:
    """Validate the landed batch against the model's GX suite (`data_docs`: also build its Data Docs site).

    Returns:
        The validation summary, warnings included, when no blocking expectation failed.

    Raises:
        BatchRejected: after quarantining the batch with its GX result.
    """
    path = Path(batch_uri)
    frame = _read_or_quarantine(config, day, path)
    outcome = validation.validate_batch(config, frame, day, data_docs=data_docs)
    if not outcome.passed:
        folder = storage.quarantine_batch(config.name, day, path, outcome.to_dict())
        raise BatchRejected(f"{validation.describe_failures(outcome)}. Quarantined in {folder}")
    return {
        "summary": outcome.summary,
        "warnings": [warning.to_dict() for warning in outcome.warnings],
        "data_docs": str(outcome.data_docs_index) if outcome.data_docs_index else None,
    }


def publish(config: ModelConfig, day: dt.date, batch_uri: str) -> dict:
    """Write a validated batch to the curated store, replacing the day's earlier version."""
    frame = sources.read_batch(Path(batch_uri), config.schema)
    path = storage.write_curated_batch(config.name, day, frame)
    return {"day": day.isoformat(), "curated_uri": str(path), "rows": len(frame)}


def land_labels(config: ModelConfig, day: dt.date, *, data_docs: bool = True) -> dict:
    """Store the labels that arrived on `day` once they pass the labels suite (and build its Data Docs).

    Labels that fail go to quarantine with their report and never reach the labels store (what
    it held for the day stays), so training never joins them; `BatchRejected` names the failed rules.
    """
    labels = sources.arrived_labels(config, day)
    if labels is None:
        return {"day": day.isoformat(), "labels_uri": None, "rows": 0}
    outcome = validation.validate_batch(config, labels, day, suite_kind="labels", data_docs=data_docs)
    if not outcome.passed:
        folder = storage.quarantine_labels(config.name, day, labels, outcome.to_dict())
        raise BatchRejected(f"labels of {day}: {validation.describe_failures(outcome)}. Quarantined in {folder}")
    path = storage.write_labels(config.name, day, labels)
    return {"day": day.isoformat(), "labels_uri": str(path), "rows": len(labels)}
