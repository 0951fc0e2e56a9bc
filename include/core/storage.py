"""The file stores of one model: landing, curated, quarantine and labels, each partitioned by day.

Layout under the data folder (`settings.data_dir()`), one tree per model:

    <model>/landing/day=YYYY-MM-DD/<file>          what a source delivered, before validation
    <model>/validated/day=YYYY-MM-DD/<sha>/        the bytes validation read, with its report once passed
    <model>/curated/day=YYYY-MM-DD/batch.parquet   a batch that passed validation
    <model>/quarantine/day=YYYY-MM-DD/<sha>/       a batch that failed, with its validation report
    <model>/labels/day=YYYY-MM-DD/labels.parquet   labels that arrived on that day and passed validation

A batch is kept under the first day of its interval (`source.interval`); an hourly batch under
`day=YYYY-MM-DD/hour=HH/` in the landing, validated and quarantine stores. Curated rows and labels
are always stored by day.

Writes are atomic (a temporary file renamed into place), so re-running a task replaces its
partition and never leaves a duplicate or a half-written file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from include.core import settings

if TYPE_CHECKING:
    import pandas as pd

CURATED_FILE = "batch.parquet"
LABELS_FILE = "labels.parquet"
REPORT_FILE = "validation.json"
# When a label became known; training joins only labels known by its cutoff.
LABEL_TIMESTAMP = "label_timestamp"


def day_partition(day: dt.date) -> str:
    """`day=YYYY-MM-DD`, or for an hourly batch (a datetime) `day=YYYY-MM-DD/hour=HH`."""
    if isinstance(day, dt.datetime):
        return f"day={day.date().isoformat()}/hour={day.hour:02d}"
    return f"day={day.isoformat()}"


def model_root(model: str) -> Path:
    return settings.data_dir() / model


def landing_dir(model: str, day: dt.date) -> Path:
    return model_root(model) / "landing" / day_partition(day)


def _day(day: dt.date) -> dt.date:
    return day.date() if isinstance(day, dt.datetime) else day


def curated_path(model: str, day: dt.date) -> Path:
    return model_root(model) / "curated" / day_partition(_day(day)) / CURATED_FILE


def labels_path(model: str, day: dt.date) -> Path:
    return model_root(model) / "labels" / day_partition(_day(day)) / LABELS_FILE


def quarantine_root(model: str, day: dt.date) -> Path:
    return model_root(model) / "quarantine" / day_partition(day)


def validated_root(model: str, day: dt.date) -> Path:
    return model_root(model) / "validated" / day_partition(day)


def write_parquet_atomically(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` to `path` through a temporary file, replacing what was there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_curated_batch(model: str, day: dt.date, frame: pd.DataFrame) -> Path:
    """Store a validated batch as the day's curated partition (replacing an earlier one)."""
    return write_parquet_atomically(frame, curated_path(model, day))


def write_labels(model: str, day: dt.date, frame: pd.DataFrame) -> Path:
    """Store the labels that arrived on `day` (replacing an earlier write for that day)."""
    return write_parquet_atomically(frame, labels_path(model, day))


def _days_in(folder: Path, file_name: str) -> list[dt.date]:
    if not folder.exists():
        return []
    days = []
    for partition in folder.glob(f"day=*/{file_name}"):
        days.append(dt.date.fromisoformat(partition.parent.name.removeprefix("day=")))
    return sorted(days)


def curated_days(model: str) -> list[dt.date]:
    """Days that have a curated batch, oldest first."""
    return _days_in(model_root(model) / "curated", CURATED_FILE)


def label_days(model: str) -> list[dt.date]:
    """Days on which labels arrived, oldest first."""
    return _days_in(model_root(model) / "labels", LABELS_FILE)


def _read_partitions(paths: list[Path]) -> pd.DataFrame:
    import pandas as pd

    frames = [pd.read_parquet(path) for path in paths]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def read_curated(model: str, first_day: dt.date, last_day: dt.date) -> pd.DataFrame:
    """All curated rows of the days from `first_day` to `last_day` inclusive."""
    days = [day for day in curated_days(model) if first_day <= day <= last_day]
    return _read_partitions([curated_path(model, day) for day in days])


def read_labels_arrived_by(model: str, cutoff: dt.date, since: dt.date | None = None) -> pd.DataFrame:
    """Every label that had arrived by the end of `cutoff` (point-in-time correct for training).

    Args:
        since: read only the labels that arrived on or after this day. A label arrives after its
            event, so the labels of the events from `since` on are all there, and a training
            window reads its own days instead of every label since the model's first day.
    """
    days = [day for day in label_days(model) if (since is None or since <= day) and day <= cutoff]
    return _read_partitions([labels_path(model, day) for day in days])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_report(folder: Path, report: dict) -> None:
    report_path = folder / REPORT_FILE
    tmp = report_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    os.replace(tmp, report_path)


def snapshot_batch(model: str, day: dt.date, landed: Path) -> Path:
    """Copy a landed batch to `validated/day=…/<first 12 hex of its sha256>/`, the copy validation reads.

    The copy is named by its own content, so it never changes once written: publishing it publishes
    exactly the bytes validation checked, whatever replaces the landing file in between (another
    run of the same day re-landing it, a user re-delivering it).

    Returns:
        The copy, under the landed file's name.
    """
    root = validated_root(model, day)
    root.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=root, prefix=f".{landed.name}.", suffix=".tmp")
    os.close(handle)
    try:
        shutil.copyfile(landed, tmp)
        folder = root / file_sha256(Path(tmp))[:12]
        folder.mkdir(exist_ok=True)
        os.replace(tmp, folder / landed.name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder / landed.name


def mark_validated(snapshot: Path, report: dict) -> None:
    """Record beside a snapshot that it passed validation (publish reads only marked snapshots)."""
    _write_report(snapshot.parent, report)


def validated_snapshot(model: str, day: dt.date, batch_file: Path) -> Path | None:
    """The snapshot of the day that passed validation with the same bytes as `batch_file`, if any."""
    snapshot = validated_root(model, day) / file_sha256(batch_file)[:12] / batch_file.name
    return snapshot if snapshot.is_file() and (snapshot.parent / REPORT_FILE).is_file() else None


def _move_to_quarantine(model: str, day: dt.date, batch_file: Path, name: str, report: dict) -> Path:
    """Move `batch_file` to `quarantine/day=…/<first 12 hex of its sha256>/<name>` beside its report."""
    folder = quarantine_root(model, day) / file_sha256(batch_file)[:12]
    folder.mkdir(parents=True, exist_ok=True)
    _write_report(folder, report)
    shutil.move(batch_file, folder / name)
    return folder


def quarantine_batch(model: str, day: dt.date, batch_file: Path, report: dict, *, landed: Path | None = None) -> Path:
    """Move a failed batch into quarantine beside its validation report; nothing is deleted.

    The batch goes to `quarantine/day=…/<first 12 hex of its sha256>/` beside `validation.json`,
    so quarantining the same bytes twice lands in the same folder (no duplicates) while a different
    batch for the same day is kept next to it.

    Args:
        batch_file: the file that failed; it is moved.
        landed: the landing file `batch_file` is a snapshot of. It leaves landing too when it still
            holds the same bytes; a newer delivery that replaced it in the meantime stays.

    Returns:
        The quarantine folder of this batch.
    """
    name = landed.name if landed is not None else batch_file.name
    folder = _move_to_quarantine(model, day, batch_file, name, report)
    if landed is not None and landed.is_file() and file_sha256(landed) == file_sha256(folder / name):
        landed.unlink()
    return folder


def quarantine_labels(model: str, day: dt.date, frame: pd.DataFrame, report: dict) -> Path:
    """Keep labels that failed validation in quarantine, as `labels.parquet` beside their report."""
    root = quarantine_root(model, day)
    written = write_parquet_atomically(frame, root / f".{LABELS_FILE}.{uuid.uuid4().hex}.failed")
    return _move_to_quarantine(model, day, written, LABELS_FILE, report)


def quarantined_batches(model: str, day: dt.date) -> list[Path]:
    """The quarantine folders of a day, one per distinct failed batch."""
    root = quarantine_root(model, day)
    return sorted(path for path in root.iterdir() if path.is_dir()) if root.exists() else []
