"""The prediction log (online predictions, JSON Lines by day) and the batch prediction store."""

from __future__ import annotations

import datetime as dt
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from include.delivery.prediction_log import (
    SERVICE_CHECK_REQUEST_PREFIX,
    PredictionBatch,
    PredictionLogWriter,
    batch_predictions_path,
    predictions_dir,
    read_batch_predictions,
    read_prediction_log,
    write_batch_predictions,
)

MODEL = "credit_default"
DAY = dt.date(2026, 3, 1)


def batch(request_id: str, at: dt.datetime, rows: int = 1, version: str = "1") -> PredictionBatch:
    return PredictionBatch(
        model=MODEL,
        version=version,
        request_id=request_id,
        timestamp=at,
        inputs=[{"application_id": f"{request_id}-{i}", "age": 30 + i, "region": "north"} for i in range(rows)],
        probabilities=[0.1 * (i + 1) for i in range(rows)],
        labels=[0] * rows,
    )


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


@pytest.fixture
def writer(state_dir: Path):
    log = PredictionLogWriter(flush_seconds=60)
    yield log
    log.close()


def test_buffered_predictions_are_written_on_close(state_dir: Path) -> None:
    log = PredictionLogWriter(flush_seconds=60)
    log.append(batch("r1", at(DAY), rows=3))

    log.close()

    frame = read_prediction_log(MODEL, DAY, DAY)
    assert frame[["request_id", "index", "application_id", "probability"]].values.tolist() == [
        ["r1", 0, "r1-0", 0.1], ["r1", 1, "r1-1", 0.2], ["r1", 2, "r1-2", pytest.approx(0.3)],
    ]
    assert set(frame.columns) >= {"age", "region", "label", "model", "version", "timestamp"}


def test_predictions_are_written_in_the_background_without_close(state_dir: Path) -> None:
    log = PredictionLogWriter(flush_seconds=0.05)
    try:
        log.append(batch("r1", at(DAY)))
        deadline = time.monotonic() + 10
        while read_prediction_log(MODEL, DAY, DAY).empty and time.monotonic() < deadline:
            time.sleep(0.02)

        assert read_prediction_log(MODEL, DAY, DAY)["request_id"].tolist() == ["r1"]
    finally:
        log.close()


def test_predictions_are_partitioned_by_the_utc_day_they_were_made(writer: PredictionLogWriter) -> None:
    late_evening_in_new_york = dt.datetime(2026, 3, 1, 21, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    writer.append(batch("r1", late_evening_in_new_york))
    writer.append(batch("r2", at(DAY, hour=1)))

    writer.flush()

    assert read_prediction_log(MODEL, DAY, DAY)["request_id"].tolist() == ["r2"]
    next_day = DAY + dt.timedelta(days=1)
    assert read_prediction_log(MODEL, next_day, next_day)["request_id"].tolist() == ["r1"]
    assert (predictions_dir(MODEL, next_day) / writer.file_name).exists()


def test_each_process_writes_its_own_file_named_after_host_and_pid(writer: PredictionLogWriter) -> None:
    import os
    import socket

    writer.append(batch("r1", at(DAY)))
    writer.flush()

    assert [path.name for path in predictions_dir(MODEL, DAY).iterdir()] == [
        f"{socket.gethostname()}-{os.getpid()}.jsonl"
    ]


def test_reading_gives_one_row_per_prediction_oldest_first_across_files(
    state_dir: Path, writer: PredictionLogWriter
) -> None:
    writer.append(batch("late", at(DAY, hour=15)))
    writer.flush()
    other_process = predictions_dir(MODEL, DAY) / "other-host-1.jsonl"
    other_process.write_text(batch("early", at(DAY, hour=9), rows=2).to_lines())

    frame = read_prediction_log(MODEL, DAY, DAY)

    assert frame["request_id"].tolist() == ["early", "early", "late"]
    assert str(frame["timestamp"].dt.tz) == "UTC"


def test_the_deployments_smoke_and_load_test_predictions_are_not_read_as_production_traffic(
    writer: PredictionLogWriter,
) -> None:
    writer.append(batch("customer-request", at(DAY)))
    writer.append(replace(batch(f"{SERVICE_CHECK_REQUEST_PREFIX}load-7", at(DAY)), service_check=True))
    writer.flush()

    assert read_prediction_log(MODEL, DAY, DAY)["request_id"].tolist() == ["customer-request"]
    checks = read_prediction_log(MODEL, DAY, DAY, include_service_checks=True)
    assert checks["service_check"].tolist() == [False, True]


def test_a_request_id_with_the_service_check_prefix_alone_is_read_as_production_traffic(
    writer: PredictionLogWriter,
) -> None:
    writer.append(batch(f"{SERVICE_CHECK_REQUEST_PREFIX}forged", at(DAY)))
    writer.flush()

    assert read_prediction_log(MODEL, DAY, DAY)["request_id"].tolist() == [f"{SERVICE_CHECK_REQUEST_PREFIX}forged"]


def test_a_partial_last_line_is_skipped_when_reading(state_dir: Path, writer: PredictionLogWriter) -> None:
    writer.append(batch("complete", at(DAY)))
    writer.flush()
    path = predictions_dir(MODEL, DAY) / writer.file_name
    with path.open("a") as handle:
        handle.write(batch("cut", at(DAY)).to_lines()[:40])

    assert read_prediction_log(MODEL, DAY, DAY)["request_id"].tolist() == ["complete"]


def test_a_new_writer_does_not_glue_its_first_line_to_a_partial_one(state_dir: Path) -> None:
    crashed = PredictionLogWriter(flush_seconds=60)
    path = predictions_dir(MODEL, DAY) / crashed.file_name
    path.parent.mkdir(parents=True)
    path.write_text(batch("before", at(DAY, hour=10)).to_lines() + batch("cut", at(DAY)).to_lines()[:40])
    crashed.close()
    restarted = PredictionLogWriter(flush_seconds=60)

    restarted.append(batch("after", at(DAY, hour=11)))
    restarted.close()

    assert read_prediction_log(MODEL, DAY, DAY)["request_id"].tolist() == ["before", "after"]


def test_appends_from_many_threads_are_all_written(state_dir: Path) -> None:
    log = PredictionLogWriter(flush_seconds=0.01, flush_rows=50)

    def send(thread: int) -> None:
        for i in range(200):
            log.append(batch(f"t{thread}-{i}", at(DAY)))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()

    frame = read_prediction_log(MODEL, DAY, DAY)
    assert len(frame) == 800 and frame["request_id"].is_unique
    assert log.written_rows == 800 and log.pending_rows == 0


def test_a_failed_write_keeps_the_predictions_for_the_next_flush(
    state_dir: Path, writer: PredictionLogWriter
) -> None:
    blocker = predictions_dir(MODEL, DAY).parent
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the folder should be")
    writer.append(batch("r1", at(DAY)))

    writer.flush()

    assert writer.last_error is not None and writer.pending_rows == 1
    blocker.unlink()
    writer.flush()
    assert writer.last_error is None
    assert read_prediction_log(MODEL, DAY, DAY)["request_id"].tolist() == ["r1"]


@contextmanager
def files_cannot_grow_beyond(size: int) -> Iterator[None]:
    """The kernel refuses to grow any file of this process beyond `size` bytes (RLIMIT_FSIZE): a
    write crossing the limit writes what fits, the next one fails with EFBIG, as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_write_that_fails_half_way_is_retried_without_losing_the_row(
    state_dir: Path, writer: PredictionLogWriter
) -> None:
    writer.append(batch("first", at(DAY)))
    writer.flush()
    path = predictions_dir(MODEL, DAY) / writer.file_name
    writer.append(batch("second", at(DAY, hour=13)))

    with files_cannot_grow_beyond(path.stat().st_size + 40):
        writer.flush()
    failed_with = writer.last_error
    writer.flush()

    assert failed_with is not None and "File too large" in failed_with
    assert writer.last_error is None and writer.written_rows == 2
    assert read_prediction_log(MODEL, DAY, DAY)["request_id"].tolist() == ["first", "second"]


def test_predictions_beyond_the_buffer_limit_are_dropped_and_counted(state_dir: Path) -> None:
    log = PredictionLogWriter(flush_seconds=60, max_pending_rows=3)
    log.append(batch("kept", at(DAY), rows=2))

    log.append(batch("dropped", at(DAY), rows=2))
    log.close()

    assert log.dropped_rows == 2
    assert set(read_prediction_log(MODEL, DAY, DAY)["request_id"]) == {"kept"}


def test_appending_after_close_still_writes(state_dir: Path) -> None:
    log = PredictionLogWriter(flush_seconds=60)
    log.close()

    log.append(batch("late", at(DAY)))

    assert read_prediction_log(MODEL, DAY, DAY)["request_id"].tolist() == ["late"]


def test_reading_days_without_predictions_gives_an_empty_frame_with_the_log_columns(state_dir: Path) -> None:
    frame = read_prediction_log(MODEL, DAY, DAY)

    assert frame.empty
    assert {"probability", "label", "version", "timestamp", "request_id"} <= set(frame.columns)


def test_rewriting_a_days_batch_predictions_replaces_them(state_dir: Path) -> None:
    first = pd.DataFrame({"application_id": ["a", "b"], "probability": [0.1, 0.9], "version": ["1", "1"]})
    second = pd.DataFrame({"application_id": ["a", "b"], "probability": [0.2, 0.8], "version": ["2", "2"]})
    write_batch_predictions(MODEL, DAY, first)

    path = write_batch_predictions(MODEL, DAY, second)

    assert path == batch_predictions_path(MODEL, DAY)
    assert path.parent.name == "day=2026-03-01" and path.parent.parent.name == "batch_predictions"
    pd.testing.assert_frame_equal(read_batch_predictions(MODEL, DAY, DAY), second)
    assert [p.name for p in path.parent.iterdir()] == ["predictions.parquet"]


def test_batch_predictions_are_read_for_a_range_of_days(state_dir: Path) -> None:
    for offset in range(3):
        day = DAY + dt.timedelta(days=offset)
        write_batch_predictions(MODEL, day, pd.DataFrame({"day": [day.isoformat()], "probability": [0.5]}))

    frame = read_batch_predictions(MODEL, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=5))

    assert frame["day"].tolist() == ["2026-03-02", "2026-03-03"]
