"""Data sources: land what a source delivered for a day, read a landed batch back, and the day's labels.

Landing copies the delivery as it is into the model's landing store (`storage.landing_dir`),
without parsing it: a corrupt file must reach validation, which quarantines it with a report,
rather than fail somewhere upstream with a stack trace. Reading is a separate step
(`read_batch`), and a file that cannot be parsed raises `UnreadableBatch`.

Two kinds of source (`source.kind` in the model config):
- `synthetic`: the data world of `include.demo.data_world`, landed as `batch.parquet`.
- `files`: the user's CSV or Parquet files, one per day, named by `pattern` (e.g.
  `applications_{day}.csv` with the day as YYYY-MM-DD), copied byte for byte keeping their name.

Re-landing a day replaces the landed file (an atomic rename), so retries never duplicate a batch.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa

from include.core import settings, storage
from include.core.config import FilesSource, ModelConfig, Schema
from include.demo import data_world

SYNTHETIC_BATCH_FILE = "batch.parquet"

_TEXT_BYTES = b"\t\n\r" + bytes(range(0x20, 0x100))
_CONTROL_BYTE = re.compile(rb"[^\t\n\r\x20-\xff]")


class SourceError(Exception):
    """A source could not deliver a usable batch."""


class BatchNotArrived(SourceError):
    """The day's batch is not there (yet): no file at the expected path, or a day outside the world."""


class UnreadableBatch(SourceError):
    """A landed file cannot be parsed as a table (corrupt, empty, not the format its name says)."""


def land_batch(config: ModelConfig, day: dt.date) -> Path:
    """Copy what the source delivered for `day` into the landing store.

    Returns:
        The landed file: `landing/day=…/batch.parquet` for the synthetic source, the user's file
        name for a files source.

    Raises:
        BatchNotArrived: no file at the expected path, or a day outside the synthetic world.
    """
    source = config.source
    folder = storage.landing_dir(config.name, day)
    if isinstance(source, FilesSource):
        delivered = _day_file(source.path, source.pattern, day)
        if not delivered.is_file():
            raise BatchNotArrived(
                f"model {config.name!r}: no batch for {day}: expected the file {delivered} "
                f"(source.path {source.path}, source.pattern {source.pattern!r})"
            )
        return _copy_atomically(delivered, folder / delivered.name)
    if not data_world.in_world(source, day):
        raise BatchNotArrived(
            f"model {config.name!r}: no batch for {day}: the synthetic world has data from "
            f"{source.start_date} to {source.end_date}"
        )
    batch = data_world.feature_batch(config, day)
    return storage.write_parquet_atomically(batch, folder / SYNTHETIC_BATCH_FILE)


def arrived_labels(config: ModelConfig, day: dt.date) -> pd.DataFrame | None:
    """The labels that arrived on `day`, read but not stored: they are stored once validated.

    The labels frame has the entity column, the target column and, when known, the event
    timestamp and `label_timestamp` (when the label became known; the day's midnight when a
    user's file does not say).

    Returns:
        The labels, or None when no labels arrived that day.

    Raises:
        UnreadableBatch: the user's label file cannot be parsed or lacks the entity or target column.
    """
    source = config.source
    if isinstance(source, FilesSource):
        if source.labels_path is None:
            return None
        delivered = _day_file(source.labels_path, source.labels_pattern, day)
        if not delivered.is_file():
            return None
        labels = _user_labels(config, read_batch(delivered, config.schema), delivered, day)
    else:
        labels = data_world.labels_arriving_on(config, day)
    return None if labels.empty else labels


def read_batch(path: str | Path, schema: Schema) -> pd.DataFrame:
    """Read a landed CSV or Parquet file (by its extension) into a frame.

    CSV has no types, so the schema's string and category columns are read as text and its
    timestamp column is parsed. In either format timestamps come back tz-naive in UTC (the data
    world's convention); a timestamp column that does not parse is left as text for validation to
    report.

    Raises:
        FileNotFoundError: there is no file at `path`.
        UnreadableBatch: the file cannot be parsed; the message names the file and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no batch file at {path}")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise UnreadableBatch(
            f"{path}: cannot read a {suffix or 'suffix-less'} file; expected .csv or .parquet"
        )
    try:
        frame = pd.read_parquet(path) if suffix == ".parquet" else _read_csv(path, schema)
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise UnreadableBatch(f"{path}: unreadable {suffix[1:]} file: {type(exc).__name__}: {exc}") from exc
    if schema.timestamp_column in frame:
        frame[schema.timestamp_column] = _utc_naive(frame[schema.timestamp_column])
    return frame


def delivered_days(source: FilesSource) -> list[dt.date]:
    """The days a `files` source has a feature file for, oldest first (names that are no day are ignored)."""
    folder = source.path if source.path.is_absolute() else settings.PROJECT_ROOT / source.path
    prefix, suffix = source.pattern.split("{day}")
    days = []
    for path in folder.glob(source.pattern.replace("{day}", "*")):
        try:
            days.append(dt.date.fromisoformat(path.name.removeprefix(prefix).removesuffix(suffix)))
        except ValueError:
            continue
    return sorted(days)


def _day_file(folder: Path, pattern: str, day: dt.date) -> Path:
    folder = folder if folder.is_absolute() else settings.PROJECT_ROOT / folder
    return folder / pattern.replace("{day}", day.isoformat())


def _copy_atomically(source: Path, target: Path) -> Path:
    """Copy the bytes of `source` to `target` through a temporary file, replacing what was there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _read_csv(path: Path, schema: Schema) -> pd.DataFrame:
    """Parse a CSV file, refusing binary content that pandas would otherwise read as odd text."""
    _refuse_binary(path)
    text = [name for name, column in schema.columns.items() if column.type in ("string", "category")]
    return pd.read_csv(path, dtype=dict.fromkeys(text, str), encoding="utf-8", encoding_errors="strict")


def _refuse_binary(path: Path) -> None:
    """Raise ValueError at the first control byte (NUL and the like), which no CSV text contains.

    pandas reads such bytes without complaint (a NUL silently turns a row into nulls), so a
    corrupt file would otherwise pass as a batch of strange values.
    """
    offset = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            if chunk.translate(None, _TEXT_BYTES):
                found = _CONTROL_BYTE.search(chunk)
                raise ValueError(
                    f"binary content: control byte {found.group()!r} at byte offset {offset + found.start()}"
                )
            offset += len(chunk)


def _utc_naive(values: pd.Series) -> pd.Series:
    """Timestamps as tz-naive UTC; values that are not timestamps are returned unchanged."""
    try:
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif not pd.api.types.is_datetime64_dtype(values):
            values = pd.to_datetime(values, utc=True, format="ISO8601").dt.tz_localize(None)
        return values.astype("datetime64[ns]")
    except (ValueError, TypeError):
        return values


def _user_labels(config: ModelConfig, labels: pd.DataFrame, path: Path, day: dt.date) -> pd.DataFrame:
    entity, target = config.schema.entity_column, config.target.column
    missing = [name for name in (entity, target) if name not in labels]
    if missing:
        raise UnreadableBatch(
            f"{path}: label file lacks the columns {missing}; expected at least {[entity, target]}"
        )
    if data_world.LABEL_TIMESTAMP not in labels:
        labels[data_world.LABEL_TIMESTAMP] = pd.Timestamp(day)
    else:
        labels[data_world.LABEL_TIMESTAMP] = _utc_naive(labels[data_world.LABEL_TIMESTAMP])
    return labels
