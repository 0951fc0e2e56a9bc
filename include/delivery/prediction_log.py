"""The prediction log (every online prediction) and the batch prediction store, partitioned by day.

Layout under the data folder (`settings.data_dir()`), beside the stores of `include.core.storage`:

    <model>/predictions/day=YYYY-MM-DD/<hostname>-<pid>.jsonl       online predictions, append-only
    <model>/batch_predictions/day=YYYY-MM-DD/predictions.parquet    the batch scoring of one day

The online log is JSON Lines, one file per serving process and day (the day of the prediction, in
UTC), so that processes never write to the same file. One line per prediction:

    {"timestamp": "2026-03-01T12:00:00.123456+00:00", "model": "credit_default", "version": "3",
     "request_id": "9f1c…", "index": 0,
     "inputs": {"application_id": "A-17", "age": 41, "annual_income": 52000.0, …},
     "probability": 0.1234, "label": 0, "service_check": false}

`inputs` holds what the caller sent: the model's features and any other schema column it passed
(the entity id, needed to join the labels that arrive later, and the event timestamp). `index` is
the record's position in its request; `(request_id, index)` identifies a prediction.
For a model with `feature_store: feast`, `inputs` holds the feature values the model was given: the
ones sent and the ones the service read from the online store, which a line names in
`"looked_up": ["age", …]` (left out when every feature was sent, so such lines are as before).

`PredictionLogWriter` buffers predictions in memory and appends them from a background thread, so
a request never opens or syncs a file; `close()` writes what is left. `read_prediction_log` returns
one row per prediction and skips a line that is not complete JSON (the last line of a file that
is being written, or one cut short by a crash), logging a warning for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.core import settings
from include.core.storage import day_partition, write_parquet_atomically

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

PREDICTIONS_FOLDER = "predictions"
BATCH_PREDICTIONS_FOLDER = "batch_predictions"
BATCH_PREDICTIONS_FILE = "predictions.parquet"

SERVICE_CHECK_REQUEST_PREFIX = "service-check-"
"""Request ids of the deployment's smoke and load tests. The id alone proves nothing (any caller can
send it): the service marks a prediction `service_check` only when the request also carries its
admin token, and only marked predictions are left out of monitoring."""
LOG_COLUMNS = (
    "probability", "label", "model", "version", "timestamp", "request_id", "index", "service_check", "looked_up",
)
"""Columns the log adds to the inputs; a schema column with one of these names cannot be logged."""


def predictions_dir(model: str, day: dt.date, data_dir: Path | None = None) -> Path:
    """The folder holding the online predictions of `model` made on `day` (UTC)."""
    return (data_dir or settings.data_dir()) / model / PREDICTIONS_FOLDER / day_partition(day)


def batch_predictions_path(model: str, day: dt.date) -> Path:
    return settings.data_dir() / model / BATCH_PREDICTIONS_FOLDER / day_partition(day) / BATCH_PREDICTIONS_FILE


@dataclass(frozen=True)
class PredictionBatch:
    """The predictions of one request, as handed to the log writer (one line each when written)."""

    model: str
    version: str
    request_id: str
    timestamp: dt.datetime
    inputs: Sequence[dict[str, Any]]
    probabilities: Sequence[float]
    labels: Sequence[int]
    service_check: bool = False
    looked_up: Sequence[Sequence[str]] | None = None
    """Per record, the features read from the online store (None: every record sent every feature)."""

    def to_lines(self) -> str:
        stamp = self.timestamp.isoformat()
        looked_up = self.looked_up or [()] * len(self.inputs)
        return "".join(
            json.dumps(
                {
                    "timestamp": stamp,
                    "model": self.model,
                    "version": self.version,
                    "request_id": self.request_id,
                    "index": index,
                    "inputs": record,
                    "probability": probability,
                    "label": label,
                    "service_check": self.service_check,
                    **({"looked_up": list(names)} if names else {}),
                },
                separators=(",", ":"),
                default=str,
            )
            + "\n"
            for index, (record, probability, label, names) in enumerate(
                zip(self.inputs, self.probabilities, self.labels, looked_up, strict=True)
            )
        )


class PredictionLogWriter:
    """Thread-safe, buffered writer of the online prediction log.

    `append` only puts the request's predictions in a list; a background thread writes the list
    every `flush_seconds` (or sooner once `flush_rows` predictions are waiting), one append and one
    fsync per day file. If a write fails (disk full, permissions) the predictions stay buffered and
    are retried on the next flush (the part of a write that failed half-way is cut off first; when
    another day's file of the same flush was written, the retry repeats its lines, which share
    their `request_id` and `index`); beyond `max_pending_rows` new predictions are dropped and
    counted in `dropped_rows`, so a broken disk degrades the log instead of the service's memory.
    `close()` stops the thread and writes everything still buffered; predictions appended after
    `close()` are written at once.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        flush_seconds: float = 1.0,
        flush_rows: int = 5_000,
        max_pending_rows: int = 1_000_000,
    ) -> None:
        self.data_dir = data_dir or settings.data_dir()
        self.file_name = f"{socket.gethostname()}-{os.getpid()}.jsonl"
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.max_pending_rows = max_pending_rows
        self.dropped_rows = 0
        self.written_rows = 0
        self.last_error: str | None = None
        self._pending: list[PredictionBatch] = []
        self._pending_rows = 0
        self._buffer_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._files_checked: set[Path] = set()
        self._thread = threading.Thread(target=self._flush_periodically, name="prediction-log", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def append(self, batch: PredictionBatch) -> None:
        """Buffer the predictions of one request (written within `flush_seconds`)."""
        rows = len(batch.probabilities)
        with self._buffer_lock:
            if self._pending_rows + rows > self.max_pending_rows:
                self.dropped_rows += rows
                logger.error("prediction log: %d predictions dropped, the buffer is full", rows)
                return
            self._pending.append(batch)
            self._pending_rows += rows
            pending_rows = self._pending_rows
        if self._closed:
            self.flush()
        elif pending_rows >= self.flush_rows:
            self._wake.set()

    def flush(self, timeout: float | None = None) -> None:
        """Write every buffered prediction to its day file now.

        Args:
            timeout: Give up (logging how many predictions were not written) when another flush
                holds the files longer than this many seconds; None waits for it.
        """
        if not self._write_lock.acquire(timeout=-1 if timeout is None else timeout):
            logger.error("prediction log: %d predictions not written: a write did not finish within %g s",
                         self._pending_rows, timeout)
            return
        try:
            with self._buffer_lock:
                batches, self._pending, self._pending_rows = self._pending, [], 0
            if not batches:
                return
            try:
                self._write(batches)
            except OSError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.error("prediction log: write failed, will retry: %s", self.last_error)
                with self._buffer_lock:
                    self._pending[:0] = batches
                    self._pending_rows += sum(len(batch.probabilities) for batch in batches)
            else:
                self.last_error = None
                self.written_rows += sum(len(batch.probabilities) for batch in batches)
        finally:
            self._write_lock.release()

    def close(self, timeout: float | None = None) -> None:
        """Stop the background thread and write what is still buffered, within `timeout` seconds if given."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._closed = True
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        self.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _flush_periodically(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def _write(self, batches: list[PredictionBatch]) -> None:
        by_file: dict[Path, list[str]] = defaultdict(list)
        for batch in batches:
            day = batch.timestamp.astimezone(dt.UTC).date()
            by_file[predictions_dir(batch.model, day, self.data_dir) / self.file_name].append(batch.to_lines())
        for path, chunks in by_file.items():
            self._append_text(path, "".join(chunks))

    def _append_text(self, path: Path, text: str) -> None:
        """Append `text` to `path` whole, or leave the file as it was and raise `OSError`.

        A write can fail half-way (disk full): the part already written is cut off again, and the
        file is checked for a partial last line before the next append (in case the cut failed
        too), so a retry never glues its first line to a fragment.
        """
        if path not in self._files_checked:
            path.parent.mkdir(parents=True, exist_ok=True)
            text = _newline_if_cut_short(path) + text
        data = memoryview(text.encode("utf-8"))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError:
            self._files_checked.discard(path)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
        finally:
            os.close(fd)
        self._files_checked.add(path)


def _newline_if_cut_short(path: Path) -> str:
    """A newline when `path` ends in a partial line (an earlier process with our pid crashed mid-write).

    Without it our first line would be glued to the partial one and both would be unreadable.
    """
    if not path.exists() or path.stat().st_size == 0:
        return ""
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return "" if handle.read(1) == b"\n" else "\n"


def _log_days(model: str, first_day: dt.date, last_day: dt.date) -> list[Path]:
    root = settings.data_dir() / model / PREDICTIONS_FOLDER
    if not root.exists():
        return []
    folders = []
    for folder in root.glob("day=*"):
        day = dt.date.fromisoformat(folder.name.removeprefix("day="))
        if first_day <= day <= last_day:
            folders.append(folder)
    return sorted(folders)


def _read_log_file(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                entry = json.loads(line)
                entry.setdefault("service_check", False)  # lines written before the field existed
                entry.setdefault("looked_up", [])  # every feature sent (the field is left out then)
                rows.append({**entry["inputs"], **{column: entry[column] for column in LOG_COLUMNS}})
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                logger.warning("prediction log: skipped incomplete line %d of %s", number, path)
    return rows


def read_prediction_log(
    model: str, first_day: dt.date, last_day: dt.date, include_service_checks: bool = False
) -> pd.DataFrame:
    """Every online prediction of `model` made from `first_day` to `last_day` (UTC, inclusive).

    Predictions of the deployment's own smoke and load tests (marked `service_check` by the service,
    see `SERVICE_CHECK_REQUEST_PREFIX`) are left out unless `include_service_checks`.

    Returns:
        One row per prediction, oldest first: the inputs (features as scored, and the entity
        id and event timestamp when sent) and `probability`, `label`, `model`, `version`,
        `timestamp` (UTC datetime of the prediction), `request_id`, `index`, `service_check`, and
        `looked_up` (the list of features read from the online store; empty when all were sent).
    """
    import pandas as pd

    rows = []
    for folder in _log_days(model, first_day, last_day):
        for path in sorted(folder.glob("*.jsonl")):
            rows.extend(_read_log_file(path))
    if not rows:
        return pd.DataFrame(columns=list(LOG_COLUMNS))
    frame = pd.DataFrame.from_records(rows)
    if not include_service_checks:
        frame = frame[~frame["service_check"].astype(bool)]
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return frame.sort_values(["timestamp", "request_id", "index"], kind="stable", ignore_index=True)


def write_batch_predictions(model: str, day: dt.date, frame: pd.DataFrame) -> Path:
    """Store the batch predictions of `day`, replacing an earlier run's (idempotent per day)."""
    return write_parquet_atomically(frame, batch_predictions_path(model, day))


def read_batch_predictions(model: str, first_day: dt.date, last_day: dt.date) -> pd.DataFrame:
    """All batch predictions of the days from `first_day` to `last_day` inclusive."""
    import pandas as pd

    root = settings.data_dir() / model / BATCH_PREDICTIONS_FOLDER
    paths = sorted(
        path
        for path in root.glob(f"day=*/{BATCH_PREDICTIONS_FILE}")
        if first_day <= dt.date.fromisoformat(path.parent.name.removeprefix("day=")) <= last_day
    )
    frames = [pd.read_parquet(path) for path in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
