"""Data sources: land what a source delivered for a day, read a landed batch back, and the day's labels.

Landing copies the delivery as it is into the model's landing store (`storage.landing_dir`),
without parsing it: a corrupt file must reach validation, which quarantines it with a report,
rather than fail somewhere upstream with a stack trace. Reading is a separate step
(`read_batch`), and a file that cannot be parsed raises `UnreadableBatch`.

Four kinds of source (`source.kind` in the model config):
- `synthetic`: the data world of `include.demo.data_world`, landed as `batch.parquet`.
- `files`: the user's CSV or Parquet files, one per batch interval, named by `pattern` (e.g.
  `applications_{day}.csv` with the interval's first day as YYYY-MM-DD), copied byte for byte
  keeping their name.
- `table`: one CSV or Parquet file, or a folder or glob of them, with many days of rows; the
  interval's rows are selected by the timestamp column and landed as `batch.parquet`.
- `sql`: a database table or query read through an Airflow Connection; the interval's rows are
  landed as `batch.parquet`.

`table` and `sql` are read by interval, [start, end) as tz-naive UTC datetimes; `land_batch` and
`arrived_labels` pass the bounds of the batch interval (`source.interval`: a day, a week, a month)
that holds the day they are given. A `table` row whose
timestamp is missing or does not parse belongs to no interval that can be known: it is landed with
every interval its file spans (all of them when no timestamp of the file parses), its timestamp
column as delivered, so validation quarantines the interval with a report and nothing is lost.
A `sql` source that cannot be read (no such connection, a failing query, columns the schema does
not name) raises `SqlSourceError` before anything is landed.

Re-landing a day replaces the landed file (an atomic rename), so retries never duplicate a batch.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa

from include.core import intervals, settings, storage
from include.core.config import FilesSource, ModelConfig, Schema, SqlSource, TableSource
from include.demo import data_world

SYNTHETIC_BATCH_FILE = "batch.parquet"
INTERVAL_BATCH_FILE = "batch.parquet"

_TEXT_BYTES = b"\t\n\r" + bytes(range(0x20, 0x100))
_CONTROL_BYTE = re.compile(rb"[^\t\n\r\x20-\xff]")


class SourceError(Exception):
    """A source could not deliver a usable batch."""


class BatchNotArrived(SourceError):
    """The day's batch is not there (yet): no file at the expected path, or a day outside the world."""


class UnreadableBatch(SourceError):
    """A landed file cannot be parsed as a table (corrupt, empty, not the format its name says)."""


class SqlSourceError(SourceError):
    """A `sql` source cannot deliver: no such connection, a failing query, or columns the schema does not name."""


def land_batch(config: ModelConfig, day: dt.date) -> Path:
    """Copy what the source delivered for the batch interval starting on `day` into the landing store.

    Returns:
        The landed file: `landing/day=…/batch.parquet` for the synthetic, table and sql sources,
        the user's file name for a files source (`day=` the interval's first day).

    Raises:
        BatchNotArrived: no file at the expected path, no row in the day, or a day outside the
            synthetic world.
        SqlSourceError: a sql source cannot be read; nothing is landed.
    """
    source = config.source
    folder = storage.landing_dir(config.name, day)
    if isinstance(source, (SqlSource, TableSource)):
        start, end = intervals.interval_bounds(source.interval, day)
        rows = sql_rows(config, start, end) if isinstance(source, SqlSource) else table_rows(config, start, end)
        return storage.write_parquet_atomically(rows, folder / INTERVAL_BATCH_FILE)
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
    """The labels that arrived in the batch interval starting on `day`, read but not stored: they
    are stored once validated.

    The labels frame has the entity column, the target column and, when known, the event
    timestamp and `label_timestamp` (when the label became known; when the source does not say,
    the midnight that starts the interval's last day: the day itself for a daily source).

    Returns:
        The labels, or None when no labels arrived that day.

    Raises:
        UnreadableBatch: the user's label file cannot be parsed or lacks the entity or target column.
        SqlSourceError: a sql source's labels query cannot be read.
    """
    source = config.source
    if isinstance(source, (SqlSource, TableSource)):
        start, end = intervals.interval_bounds(source.interval, day)
        if isinstance(source, SqlSource):
            labels = sql_labels(config, start, end)
        else:
            labels = table_labels(config, start, end)
        if labels is None:
            return None
    elif isinstance(source, FilesSource):
        if source.labels_path is None:
            return None
        delivered = _day_file(source.labels_path, source.labels_pattern, day)
        if not delivered.is_file():
            return None
        last_day = intervals.interval_days(source.interval, day)[-1]
        labels = _user_labels(config, read_batch(delivered, config.schema), delivered, last_day)
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


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The day as the half-open interval [00:00, next day 00:00), tz-naive UTC."""
    start = dt.datetime.combine(day, dt.time())
    return start, start + dt.timedelta(days=1)


# --- sql source ----------------------------------------------------------------------------------


def sql_rows(config: ModelConfig, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The feature rows a `sql` source holds for [start, end), timestamps as tz-naive UTC.

    `source.table` is read as `SELECT * … WHERE <timestamp column> >= start AND < end` (names
    double-quoted, bounds bound by the driver); `source.query` gets the bounds as the parameters
    `start` and `end`.

    Raises:
        BatchNotArrived: the interval has no rows (yet).
        SqlSourceError: no such connection, the query failed, or it returned columns the schema
            does not name; the message names the model, the connection id and the columns.
    """
    source, schema = config.source, config.schema
    hook = _sql_hook(config)
    if source.table is not None:
        column, mark = _quoted(schema.timestamp_column), hook.placeholder
        table = ".".join(_quoted(part) for part in source.table.split("."))
        sql = f"SELECT * FROM {table} WHERE {column} >= {mark} AND {column} < {mark}"
        parameters, key = (start, end), "table"
    else:
        sql, parameters, key = source.query, {"start": start, "end": end}, "query"
    rows = _read_sql(config, hook, key, sql, parameters)
    _refuse_unknown_columns(config, rows, key, list(schema.columns))
    if rows.empty:
        raise BatchNotArrived(
            f"model {config.name!r}: no rows in [{start}, {end}) from source.{key} on connection {source.conn_id!r}"
        )
    if schema.timestamp_column in rows:
        rows[schema.timestamp_column] = _utc_naive(rows[schema.timestamp_column])
    return rows


def sql_labels(config: ModelConfig, start: dt.datetime, end: dt.datetime) -> pd.DataFrame | None:
    """The labels `source.labels_query` returns for the arrival interval [start, end); None without a query.

    Raises:
        SqlSourceError: as `sql_rows`, or the labels lack the entity or target column.
    """
    source, schema = config.source, config.schema
    if source.labels_query is None:
        return None
    labels = _read_sql(config, _sql_hook(config), "labels_query", source.labels_query, {"start": start, "end": end})
    expected = [schema.entity_column, config.target.column]
    _refuse_unknown_columns(
        config, labels, "labels_query", [*expected, schema.timestamp_column, data_world.LABEL_TIMESTAMP]
    )
    missing = [name for name in expected if name not in labels]
    if missing:
        raise SqlSourceError(
            f"model {config.name!r}: source.labels_query on connection {source.conn_id!r} returned no "
            f"column {missing}; labels need at least {expected}"
        )
    return _interval_labels(config, labels, max(start, end - dt.timedelta(days=1)))


def _sql_hook(config: ModelConfig):
    """The SQL hook of the source's Airflow Connection (imported here: only a sql source needs Airflow)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    conn_id = config.source.conn_id
    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise SqlSourceError(
            f"model {config.name!r}: source.conn_id {conn_id!r} names no Airflow connection; define it "
            f"(Admin > Connections, `airflow connections add {conn_id} …`, the environment variable "
            f"AIRFLOW_CONN_{conn_id.upper()}, or a secrets backend)"
        ) from exc
    try:
        hook = connection.get_hook()
    except Exception as exc:  # noqa: BLE001 - unknown type or a provider that fails to import: say which
        raise SqlSourceError(
            f"model {config.name!r}: connection {conn_id!r} (type {connection.conn_type!r}) has no usable "
            f"hook: {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(hook, "get_df"):
        raise SqlSourceError(
            f"model {config.name!r}: connection {conn_id!r} is of type {connection.conn_type!r}, "
            "which is no SQL database (its hook cannot run a query)"
        )
    return hook


def _read_sql(config: ModelConfig, hook, key: str, sql: str, parameters) -> pd.DataFrame:
    try:
        return hook.get_df(sql, parameters=parameters)
    except Exception as exc:  # noqa: BLE001 - each driver raises its own classes; the message is what matters
        raise SqlSourceError(
            f"model {config.name!r}: source.{key} on connection {config.source.conn_id!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _refuse_unknown_columns(config: ModelConfig, frame: pd.DataFrame, key: str, known: list[str]) -> None:
    unknown = [str(name) for name in frame.columns if name not in known]
    if unknown:
        raise SqlSourceError(
            f"model {config.name!r}: source.{key} on connection {config.source.conn_id!r} returned columns "
            f"the schema does not name: {unknown}; expected only {known}. Select only those columns "
            "(with source.query), or add them to schema.columns"
        )


def _quoted(name: str) -> str:
    """A SQL identifier in standard double quotes (MySQL needs ANSI_QUOTES, or `source.query`)."""
    return '"' + name.replace('"', '""') + '"'


# --- table source --------------------------------------------------------------------------------


def table_rows(config: ModelConfig, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The feature rows of a `table` source whose timestamp falls in [start, end).

    Rows whose timestamp is missing or not ISO 8601 come along with every interval their file
    spans, the column then as delivered (text), so validation quarantines the interval.

    Raises:
        BatchNotArrived: no file at `source.path`, or no row in the interval.
        UnreadableBatch: a file cannot be parsed; the message names it.
    """
    source = config.source
    files = _table_files(config, source.path, "source.path")
    rows, _ = _rows_in_interval(files, config.schema, config.schema.timestamp_column, start, end)
    if rows.empty:
        raise BatchNotArrived(f"model {config.name!r}: no rows in [{start}, {end}) in {source.path}")
    return rows


def table_labels(config: ModelConfig, start: dt.datetime, end: dt.datetime) -> pd.DataFrame | None:
    """The labels of a `table` source whose `labels_timestamp_column` falls in [start, end); None without labels.

    Raises:
        UnreadableBatch: a label file cannot be parsed, lacks the entity or target column, or has
            arrival times that do not parse (the message names the file and the values).
    """
    source, schema = config.source, config.schema
    if source.labels_path is None:
        return None
    column = source.labels_timestamp_column
    files = _table_files(config, source.labels_path, "source.labels_path", missing_ok=True)
    labels, unplaceable = _rows_in_interval(files, schema, column, start, end)
    if unplaceable:
        raise UnreadableBatch(
            f"model {config.name!r}: {source.labels_path}: source.labels_timestamp_column {column!r} has "
            f"values that are not ISO 8601 timestamps: {unplaceable}"
        )
    if labels.empty:
        return None
    expected = [schema.entity_column, config.target.column]
    missing = [name for name in expected if name not in labels]
    if missing:
        raise UnreadableBatch(f"{source.labels_path}: labels lack the columns {missing}; expected at least {expected}")
    known = max(start, end - dt.timedelta(days=1))
    return _interval_labels(config, labels.rename(columns={column: data_world.LABEL_TIMESTAMP}), known)


def _table_files(config: ModelConfig, where: str, key: str, *, missing_ok: bool = False) -> list[Path]:
    """The CSV and Parquet files `where` names: a file, a folder (searched recursively) or a glob."""
    path = Path(where) if Path(where).is_absolute() else settings.PROJECT_ROOT / where
    if glob.has_magic(str(path)):
        found = [Path(name) for name in glob.glob(str(path), recursive=True)]
    elif path.is_dir():
        found = [name for name in path.rglob("*") if not name.name.startswith(".")]
    else:
        found = [path] if path.is_file() else []
    files = sorted(name for name in found if name.is_file() and name.suffix.lower() in (".csv", ".parquet"))
    if not files and not missing_ok:
        raise BatchNotArrived(f"model {config.name!r}: no .csv or .parquet file at {key} {where} ({path})")
    return files


def _rows_in_interval(
    files: list[Path], schema: Schema, column: str, start: dt.datetime, end: dt.datetime
) -> tuple[pd.DataFrame, list[str]]:
    """The rows of `files` whose `column` falls in [start, end), and a sample of unplaceable values landed with them.

    Parquet files whose column is a timestamp are filtered by pyarrow (row groups and files
    outside the interval are skipped by their statistics); the others are read whole and their
    column parsed as ISO 8601. When unplaceable rows come along, the column is text throughout.
    """
    parquet = [path for path in files if path.suffix.lower() == ".parquet"]
    typed, rest = _split_typed_parquet(parquet, column, start, end)
    parts = [_typed_parquet_rows(typed, column, start, end)] if typed else []
    unplaceable: list[str] = []
    for path in rest + [path for path in files if path.suffix.lower() == ".csv"]:
        part, bad = _file_rows(read_batch(path, schema), column, start, end)
        parts.append(part)
        unplaceable += bad
    parts = [part for part in parts if not part.empty]
    if not parts:
        return pd.DataFrame(), unplaceable
    if unplaceable:
        parts = [part.assign(**{column: _as_text(part[column])}) if column in part else part for part in parts]
    rows = pd.concat(parts, ignore_index=True)
    if not unplaceable and column in rows:
        rows[column] = _utc_naive(rows[column])
    return rows, unplaceable[:5]


def _split_typed_parquet(
    files: list[Path], column: str, start: dt.datetime, end: dt.datetime
) -> tuple[dict[Path, pa.Schema], list[Path]]:
    """Parquet files to filter with pyarrow, with their schemas, and the files to read whole.

    Only the files' footers are read. A file whose `column` is a timestamp without nulls is
    filtered by pyarrow, and left out when its statistics show no row in [start, end); the
    others (a text column, nulls, no such column) are read whole and parsed.
    """
    import pyarrow.parquet as pq

    typed, rest = {}, []
    for path in files:
        try:
            metadata = pq.read_metadata(path)
        except (OSError, pa.ArrowException) as exc:
            raise UnreadableBatch(f"{path}: unreadable parquet file: {type(exc).__name__}: {exc}") from exc
        schema = metadata.schema.to_arrow_schema()
        index = schema.get_field_index(column)
        if index < 0 or not pa.types.is_timestamp(schema.field(index).type):
            rest.append(path)
            continue
        statistics = _column_statistics(metadata, column)
        if any(chunk is None or not chunk.has_null_count or chunk.null_count for chunk in statistics):
            rest.append(path)
        elif _may_hold(statistics, start, end):
            typed[path] = schema
    return typed, rest


def _column_statistics(metadata, column: str) -> list:
    """The statistics of `column` in each row group (None where the writer kept none)."""
    found = []
    for group in range(metadata.num_row_groups):
        chunks = metadata.row_group(group)
        for index in range(chunks.num_columns):
            if chunks.column(index).path_in_schema == column:
                found.append(chunks.column(index).statistics)
    return found


def _may_hold(statistics: list, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether some row group may hold a timestamp in [start, end) (no min/max: it may)."""
    for chunk in statistics:
        if not chunk.has_min_max:
            return True
        low, high = (_naive_utc(pd.Timestamp(value)) for value in (chunk.min, chunk.max))
        if low < pd.Timestamp(end) and high >= pd.Timestamp(start):
            return True
    return False


def _naive_utc(value: pd.Timestamp) -> pd.Timestamp:
    return value.tz_convert("UTC").tz_localize(None) if value.tzinfo else value


def _typed_parquet_rows(
    files: dict[Path, pa.Schema], column: str, start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    import pyarrow.dataset as ds

    schema = pa.unify_schemas(list(files.values()), promote_options="permissive")
    kind = schema.field(column).type
    utc = dt.UTC if kind.tz else None
    low, high = (pa.scalar(bound.replace(tzinfo=utc), type=kind) for bound in (start, end))
    dataset = ds.dataset([str(path) for path in files], schema=schema, format="parquet")
    return dataset.to_table(filter=(ds.field(column) >= low) & (ds.field(column) < high)).to_pandas()


def _file_rows(
    frame: pd.DataFrame, column: str, start: dt.datetime, end: dt.datetime
) -> tuple[pd.DataFrame, list[str]]:
    """One file's rows in [start, end); its unplaceable rows too when the interval lies within its span."""
    if column not in frame:
        return frame, [f"(no column {column!r})"] if len(frame) else []
    delivered = frame[column]
    parsed = _parsed_timestamps(delivered)
    placeable = parsed.notna()
    inside = placeable & (parsed >= start) & (parsed < end)
    if placeable.all():
        return frame[inside].assign(**{column: parsed[inside]}), []
    known = parsed[placeable]
    spans = known.empty or (known.min() < pd.Timestamp(end) and known.max() >= pd.Timestamp(start))
    if not spans:
        return frame[inside].assign(**{column: parsed[inside]}), []
    return frame[inside | ~placeable], [str(value) for value in delivered[~placeable].head(5)]


def _parsed_timestamps(values: pd.Series) -> pd.Series:
    """ISO 8601 timestamps as tz-naive UTC, NaT where a value is missing or does not parse."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        return _utc_naive(values)
    parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _as_text(values: pd.Series) -> pd.Series:
    """Timestamps and other values as text, missing values kept missing (a landed column of one type)."""
    return values.map(lambda value: None if pd.isna(value) else
                      value.isoformat() if isinstance(value, dt.datetime) else str(value)).astype(object)


def _interval_labels(config: ModelConfig, labels: pd.DataFrame, known: dt.datetime) -> pd.DataFrame:
    """Labels with `label_timestamp` (`known` when the source does not say) and timestamps as naive UTC."""
    labels = labels.copy()
    if data_world.LABEL_TIMESTAMP not in labels:
        labels[data_world.LABEL_TIMESTAMP] = pd.Timestamp(known)
    else:
        labels[data_world.LABEL_TIMESTAMP] = _utc_naive(labels[data_world.LABEL_TIMESTAMP])
    if config.schema.timestamp_column in labels:
        labels[config.schema.timestamp_column] = _utc_naive(labels[config.schema.timestamp_column])
    return labels
