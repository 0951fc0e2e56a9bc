"""A Feast feature store per model, generated from its config (`feature_store: feast`).

The model config is the single definition of the features: the Feast repository is generated from
it every time it is opened (`apply` is idempotent), so it can never drift from the YAML file.

- entity: `schema.entity_column` (its join key keeps the column's name, spaces and all);
- one feature view, named after the model, over the curated store: the Parquet files
  `<data>/<model>/curated/day=YYYY-MM-DD/batch.parquet`, read by Feast's DuckDB offline store, with
  `schema.timestamp_column` as its event timestamp. Its features are the model's feature columns
  plus the timestamp column, so a training set can say when each row happened;
- registry (SQLite, transactional, so a materialization and a training run may use it at once) and
  online store under `state/feast/<model>/`. The online store is SQLite locally, or Redis when
  `MLOPS_FEAST_REDIS` holds a Feast Redis connection string (`127.0.0.1:6379,db=1`), as in the
  production topology.

Airflow owns materialization: `materialize_range` loads exactly the curated days it is given into the
online store in one task, and records that explicit interval (never `materialize_incremental`,
which guesses from the registry), so a re-run writes the same rows again. `training_set` builds the
point-in-time correct training set with `get_historical_features`, with the same rows and values as
the project's own assembly (`include.training.training_data.assemble_training_set`).

Feast is imported inside the functions: it takes seconds to import and DAG files must stay cheap.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

from include.core import settings, storage
from include.core.storage import LABEL_TIMESTAMP

if TYPE_CHECKING:
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, RepoConfig

    from include.core.config import ModelConfig

REDIS_ENV = "MLOPS_FEAST_REDIS"
# The "as of" time of each entity in a historical retrieval: Feast takes an entity frame's only datetime
# column, and a name of its own never meets the model's columns (its timestamp column is a feature).
AS_OF = "feast_as_of"
_ONE_MICROSECOND = dt.timedelta(microseconds=1)
# Rows per online-store write: Feast turns every value of a write into a protobuf object first (about
# 12 KB a row), so a year of history is written in slices, in one task and with one open store.
WRITE_BATCH_ROWS = 10_000
PARTITION_KEY = "day"  # the curated store's partition folders: `day=YYYY-MM-DD` (storage.day_partition)


class FeatureStoreNotEnabled(ValueError):
    """The model's config does not say `feature_store: feast`."""


class NothingToMaterialize(LookupError):
    """The day has no curated batch (not ingested yet, or quarantined); the message says which."""


def uses_feature_store(config: ModelConfig) -> bool:
    """Does this model keep its features in Feast (`feature_store: feast` in its config)?"""
    return config.feature_store == "feast"


def repo_dir(model: str) -> Path:
    """The folder of the model's Feast registry and local online store: `state/feast/<model>/`."""
    return settings.state_dir() / "feast" / model


def feature_view_name(config: ModelConfig) -> str:
    return config.name


def curated_files(model: str) -> str:
    """The glob of every curated batch of the model: the feature view's offline source."""
    return str(storage.model_root(model) / "curated" / f"{PARTITION_KEY}=*" / storage.CURATED_FILE)


def online_store_kind() -> str:
    """`redis` when `MLOPS_FEAST_REDIS` is set, else `sqlite`."""
    return "redis" if os.environ.get(REDIS_ENV) else "sqlite"


def repo_settings(config: ModelConfig) -> dict:
    """The model's Feast settings, as `feature_store.yaml` holds them: SQLite registry, DuckDB offline
    store, SQLite or Redis online store."""
    root = repo_dir(config.name)
    redis = os.environ.get(REDIS_ENV)
    online = (
        {"type": "redis", "connection_string": redis}
        if redis
        else {"type": "sqlite", "path": str(root / "online_store.db")}
    )
    return {
        "project": config.name,
        "provider": "local",
        "registry": {"registry_type": "sql", "path": f"sqlite:///{root / 'registry.db'}", "cache_ttl_seconds": 0},
        "offline_store": {"type": "duckdb"},
        "online_store": online,
        "entity_key_serialization_version": 3,
    }


def repo_config(config: ModelConfig) -> RepoConfig:
    """The Feast `RepoConfig` of the model (`repo_settings`), rooted in its repository folder."""
    from feast import RepoConfig

    return RepoConfig(**repo_settings(config), repo_path=repo_dir(config.name))


def write_repo_file(config: ModelConfig) -> Path:
    """Write `feature_store.yaml` into the model's repository folder (replacing it), so that Feast's
    own CLI works there: `feast -c state/feast/<model> feature-views list`."""
    import yaml

    path = repo_dir(config.name) / "feature_store.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(repo_settings(config), sort_keys=False))
    os.replace(tmp, path)
    return path


def _feast_type(config: ModelConfig, column: str):
    from feast import types

    kinds = {
        "integer": types.Int64,
        "float": types.Float64,
        "string": types.String,
        "category": types.String,
        "boolean": types.Bool,
        "timestamp": types.UnixTimestamp,
    }
    return kinds[config.schema.columns[column].type]


def definitions(config: ModelConfig) -> tuple[Entity, FeatureView]:
    """The Feast entity and feature view generated from the model config.

    Raises:
        ValueError: the entity column's type cannot be a Feast join key (only string, category
            and integer columns can); the message names the model, the column and its type.
    """
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.data_format import ParquetFormat

    schema = config.schema
    columns = [schema.timestamp_column, *config.features.all]
    if PARTITION_KEY in {schema.entity_column, *columns}:
        raise ValueError(
            f"model {config.name}: a column named {PARTITION_KEY!r} cannot be kept in the feature store: DuckDB "
            f"reads the curated store's partition folders ({PARTITION_KEY}=YYYY-MM-DD) as a column of that name, "
            "which would replace the column's values; rename the column"
        )
    entity_type = schema.columns[schema.entity_column].type
    value_types = {"string": ValueType.STRING, "category": ValueType.STRING, "integer": ValueType.INT64}
    if entity_type not in value_types:
        raise ValueError(
            f"model {config.name}: schema.entity_column {schema.entity_column!r} is of type {entity_type}; "
            f"a Feast entity needs one of {sorted(value_types)}"
        )
    entity = Entity(name=config.name, join_keys=[schema.entity_column], value_type=value_types[entity_type])
    source = FileSource(
        name=f"{config.name}__curated",
        path=curated_files(config.name),
        file_format=ParquetFormat(),
        timestamp_field=schema.timestamp_column,
    )
    view = FeatureView(
        name=feature_view_name(config),
        entities=[entity],
        ttl=dt.timedelta(0),  # no expiry: a training set's window is chosen per call, not per view
        source=source,
        schema=[
            Field(name=schema.entity_column, dtype=_feast_type(config, schema.entity_column)),
            *(Field(name=column, dtype=_feast_type(config, column)) for column in columns),
        ],
        description=f"The curated features of model {config.name}, generated from include/models/{config.name}.yaml",
    )
    return entity, view


def open_store(config: ModelConfig) -> FeatureStore:
    """The model's feature store, with the definitions of its current config applied and its
    `feature_store.yaml` written.

    Raises:
        FeatureStoreNotEnabled: the config does not say `feature_store: feast`.
    """
    if not uses_feature_store(config):
        raise FeatureStoreNotEnabled(
            f"model {config.name} does not use the feature store: its config has no `feature_store: feast`"
        )
    from feast import FeatureStore

    write_repo_file(config)
    store = FeatureStore(config=repo_config(config))
    store.apply(list(definitions(config)))
    return store


def range_bounds(first_day: dt.date, last_day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The first instant of `first_day` and the first instant after `last_day`, in UTC: [start, end)."""
    start = dt.datetime(first_day.year, first_day.month, first_day.day, tzinfo=dt.UTC)
    end = dt.datetime(last_day.year, last_day.month, last_day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    return start, end


def latest_per_entity(config: ModelConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Each entity's latest event of `frame` (the later row wins a tie): what Feast's `materialize` keeps
    of an interval, and what the online store holds after the interval's days are loaded oldest first."""
    timestamp, entity = config.schema.timestamp_column, config.schema.entity_column
    ordered = frame.sort_values(timestamp, kind="stable")
    return ordered.drop_duplicates(entity, keep="last").reset_index(drop=True)


def materialize_range(config: ModelConfig, first_day: dt.date, last_day: dt.date, store=None) -> dict:
    """Load the curated batches of the days from `first_day` to `last_day` into the online store, with one
    open store: a history import of a year pays Feast's import and the store's opening once.

    The rows are the curated files of those days themselves, each entity's latest event
    (`latest_per_entity`), written with `FeatureStore.write_to_online_store` (`WRITE_BATCH_ROWS` at a
    time): the values Feast's
    `materialize` over [start of `first_day`, end of `last_day`] would write, without its DuckDB query
    over every curated day, whose cost grows with the history. The interval is then recorded in the
    registry as materialized, as `materialize` does, so Feast's own tools (`feast ui`) show it.

    A re-run writes the same rows again (the online store keeps one row per entity and feature, and
    the bytes of a row depend only on its values), and a day whose curated batch was replaced since is
    loaded with its new values. Days of the range without a curated batch (quarantined, or not
    ingested) hold nothing to load and are listed in `skipped_days`.

    Args:
        store: the model's open `FeatureStore`, to reuse; opened (`open_store`) when None.

    Returns:
        {"first_day", "last_day", "start", "end" (the interval, end excluded), "days" (loaded),
        "skipped_days", "curated_rows", "entities" (rows written), "online_store"}.

    Raises:
        ValueError: `last_day` is before `first_day`.
        NothingToMaterialize: no day of the range has a curated batch.
    """
    if last_day < first_day:
        raise ValueError(f"model {config.name}: materialize from {first_day} to {last_day}: the range is empty")
    days = [day for day in storage.curated_days(config.name) if first_day <= day <= last_day]
    if not days:
        where = storage.model_root(config.name) / "curated"
        span = str(first_day) if first_day == last_day else f"{first_day} to {last_day}"
        raise NothingToMaterialize(
            f"model {config.name}: no curated batch for {span} under {where} (not ingested yet, or "
            "quarantined): nothing to materialize"
        )
    curated = storage.read_curated(config.name, first_day, last_day)
    rows = latest_per_entity(config, curated)
    store = store or open_store(config)
    view = store.get_feature_view(feature_view_name(config))
    for first in range(0, len(rows), WRITE_BATCH_ROWS):
        store.write_to_online_store(view.name, rows.iloc[first : first + WRITE_BATCH_ROWS])
    start, end = range_bounds(first_day, last_day)
    store.registry.apply_materialization(view, store.project, start, end)
    wanted = (last_day - first_day).days + 1
    loaded = set(days)
    return {
        "first_day": first_day.isoformat(),
        "last_day": last_day.isoformat(),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days": [day.isoformat() for day in days],
        "skipped_days": [
            (first_day + dt.timedelta(days=offset)).isoformat()
            for offset in range(wanted)
            if first_day + dt.timedelta(days=offset) not in loaded
        ],
        "curated_rows": len(curated),
        "entities": len(rows),
        "online_store": online_store_kind(),
    }


def materialize_day(config: ModelConfig, day: dt.date, store=None) -> dict:
    """Load the day's curated batch into the online store: `materialize_range` of that day alone.

    Raises:
        NothingToMaterialize: the day has no curated batch.
    """
    return materialize_range(config, day, day, store)


def training_set(config: ModelConfig, cutoff: dt.date, window_days: int | None = None) -> pd.DataFrame:
    """The point-in-time correct training set of the window ending at `cutoff`, from Feast.

    The same contract as `assemble_training_set`: the labels that had arrived by the end of
    `cutoff` (each entity's latest), joined with the features Feast knew for the entity at the
    end of `cutoff` (`get_historical_features` with that instant as every entity's "as of" time),
    keeping events from the window's first day on. Where an entity has one event (an application, a
    transaction) the two are equal; an entity with several events in the window gets its latest here,
    every one of them in `assemble_training_set`.

    Args:
        cutoff: the last day of the window; no event and no label after the end of this day is used.
        window_days: days in the window, `training.window_days` when None.

    Returns:
        The `training_columns(config)`, one row per labelled entity, oldest event first (the entity
        breaks ties). Empty when nothing matches.
    """
    import pandas as pd

    from include.training.training_data import end_of_day, training_columns

    window_days = window_days or config.training.window_days
    if window_days < 1:
        raise ValueError(f"window_days: got {window_days}; expected at least 1")
    schema, target = config.schema, config.target
    entity, timestamp = schema.entity_column, schema.timestamp_column
    first_day = cutoff - dt.timedelta(days=window_days - 1)
    known_by = end_of_day(cutoff)
    columns = training_columns(config)
    empty = pd.DataFrame({name: pd.Series(dtype=object) for name in columns})

    labels = storage.read_labels_arrived_by(config.name, cutoff, since=first_day)
    if labels.empty:
        return empty
    missing = [name for name in (entity, target.column, LABEL_TIMESTAMP) if name not in labels.columns]
    if missing:
        raise ValueError(
            f"labels store of model {config.name} lacks the columns {missing}; it has {sorted(labels.columns)}"
        )
    labels = labels.loc[labels[LABEL_TIMESTAMP] < known_by, [entity, target.column, LABEL_TIMESTAMP]]
    latest_labels = labels.sort_values(LABEL_TIMESTAMP, kind="stable").drop_duplicates(entity, keep="last")
    if latest_labels.empty:
        return empty

    view = feature_view_name(config)
    as_of = pd.Timestamp(known_by - _ONE_MICROSECOND, tz="UTC")
    entity_df = pd.DataFrame({entity: latest_labels[entity].to_numpy(), AS_OF: as_of})
    features = (
        open_store(config)
        .get_historical_features(
            entity_df=entity_df, features=[f"{view}:{name}" for name in [timestamp, *config.features.all]]
        )
        .to_df()
    )
    features[timestamp] = features[timestamp].dt.tz_convert(None).astype("datetime64[ns]")
    in_window = features[timestamp].notna() & (features[timestamp] >= pd.Timestamp(first_day))
    frame = features.loc[in_window].merge(latest_labels, on=entity, how="inner")
    frame = frame.sort_values([timestamp, entity], kind="stable", ignore_index=True)
    return frame[columns]
