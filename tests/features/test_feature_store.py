"""The Feast feature store generated from a model config: repository, materialization, training sets.

Real Feast on real files: the curated store written by the project's own storage functions, Feast's
DuckDB offline store over it, its SQLite registry and online store in the test's state folder, and
the Redis on 127.0.0.1:6379 for the production topology's online store.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from include.core import storage
from include.core.config import ModelConfig
from include.demo import data_world
from include.features import feature_store
from include.training.training_data import assemble_training_set
from tests.ct_world import fill_stores
from tests.dags.test_dags import SECOND_MODEL

DAY = dt.date(2026, 1, 6)


def online_rows(config: ModelConfig) -> list[tuple]:
    """Every row of the model's SQLite online store (entity key, feature, value, event time), sorted."""
    path = feature_store.repo_dir(config.name) / "online_store.db"
    table = f"{config.name}_{feature_store.feature_view_name(config)}"
    with sqlite3.connect(path) as db:
        return sorted(db.execute(f'SELECT entity_key, feature_name, value, event_ts FROM "{table}"').fetchall())


def online_values(config: ModelConfig, entity_ids: list[str], features: list[str]) -> dict[str, list]:
    store = feature_store.open_store(config)
    view = feature_store.feature_view_name(config)
    rows = [{config.schema.entity_column: entity_id} for entity_id in entity_ids]
    return store.get_online_features(features=[f"{view}:{name}" for name in features], entity_rows=rows).to_dict()


def write_day(config: ModelConfig, day: dt.date, rows: int | None = None) -> pd.DataFrame:
    """The demo world's applications of `day`, written as the day's curated batch."""
    world = data_world.with_rows_per_day(config, rows) if rows else config
    batch = data_world.applications_for_day(world, day)[list(config.schema.columns)]
    storage.write_curated_batch(config.name, day, batch)
    return batch


@pytest.fixture
def odd_config(state_dir) -> ModelConfig:
    """A files-based model whose columns have spaces, a '€' and upper case in their names."""
    raw = yaml.safe_load(SECOND_MODEL.read_text())
    raw.update(name="odd_names", feature_store="feast")
    raw["schema"] = {
        "entity_column": "Transaction ID",
        "timestamp_column": "Booked At",
        "columns": {
            "Transaction ID": {"type": "string", "unique": True},
            "Booked At": {"type": "timestamp"},
            "Amount €": {"type": "float", "min": 0, "nullable": True},
            "MCC": {"type": "integer"},
            "merchant kind": {"type": "category", "allowed": ["grocery", "travel", "online"]},
        },
    }
    raw["features"] = {"numeric": ["Amount €", "MCC"], "categorical": ["merchant kind"]}
    return ModelConfig.model_validate(raw)


# --- the repository ------------------------------------------------------------------------------


def test_the_repository_is_generated_from_the_model_config(state_dir, demo_config):
    store = feature_store.open_store(demo_config)

    [view] = store.list_feature_views()
    assert view.name == "credit_default"
    assert view.entities == ["credit_default"]
    assert store.get_entity("credit_default").join_key == "application_id"
    assert view.batch_source.timestamp_field == "event_timestamp"
    assert [field.name for field in view.features] == ["event_timestamp", *demo_config.features.all]
    assert {field.name: str(field.dtype) for field in view.features}["region"] == "String"
    assert (state_dir / "feast" / "credit_default" / "registry.db").is_file()


def test_opening_the_store_again_applies_the_same_definitions_once(state_dir, demo_config):
    feature_store.open_store(demo_config)
    store = feature_store.open_store(demo_config)

    assert [view.name for view in store.list_feature_views()] == ["credit_default"]
    assert [entity.name for entity in store.list_entities()] == ["credit_default"]


@pytest.mark.slow  # a fresh process imports Feast: about 30 s on a busy machine
def test_feasts_own_cli_reads_the_generated_repository(state_dir, demo_config):
    feature_store.open_store(demo_config)

    feast = Path(sys.executable).parent / "feast"
    listed = subprocess.run(
        [str(feast), "-c", str(state_dir / "feast" / "credit_default"), "feature-views", "list"],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert listed.returncode == 0, listed.stderr
    assert "credit_default" in listed.stdout


def test_a_model_without_the_feature_store_is_refused_naming_it(state_dir, demo_config):
    config = demo_config.model_copy(update={"feature_store": None})

    with pytest.raises(feature_store.FeatureStoreNotEnabled, match="credit_default .*feature_store: feast"):
        feature_store.open_store(config)


def test_odd_column_names_go_through_the_store_unchanged(odd_config):
    batch = pd.DataFrame(
        {
            "Transaction ID": ["t 1", "t€2", "T3"],
            "Booked At": pd.to_datetime(
                ["2026-02-01 08:00", "2026-02-01 12:30", "2026-02-01 23:59:59.999"], format="ISO8601"
            ),
            "Amount €": [12.5, None, 99.0],
            "MCC": [5411, 4511, 5999],
            "merchant kind": ["grocery", "travel", "online"],
        }
    )
    day = dt.date(2026, 2, 1)
    storage.write_curated_batch(odd_config.name, day, batch)

    store = feature_store.open_store(odd_config)
    feature_store.materialize_day(odd_config, day)

    assert [field.name for field in store.get_feature_view("odd_names").features] == [
        "Booked At",
        "Amount €",
        "MCC",
        "merchant kind",
    ]
    assert store.get_entity("odd_names").join_key == "Transaction ID"
    online = online_values(odd_config, ["t€2", "T3", "t 1"], ["Amount €", "MCC", "merchant kind"])
    assert online == {
        "Transaction ID": ["t€2", "T3", "t 1"],
        "Amount €": [None, 99.0, 12.5],
        "MCC": [4511, 5999, 5411],
        "merchant kind": ["travel", "online", "grocery"],
    }


def test_an_entity_column_feast_cannot_key_on_is_refused_naming_model_column_and_type(demo_config):
    schema = demo_config.schema
    columns = {**schema.columns, "application_id": schema.columns["annual_income"]}
    config = demo_config.model_copy(update={"schema_": schema.model_copy(update={"columns": columns})})

    with pytest.raises(ValueError, match="credit_default: schema.entity_column 'application_id' is of type float"):
        feature_store.definitions(config)


def test_a_column_named_like_the_curated_partitions_is_refused_before_its_values_are_replaced(odd_config):
    raw = odd_config.model_dump(by_alias=True)
    raw["schema"]["columns"]["day"] = raw["schema"]["columns"].pop("MCC")
    raw["features"]["numeric"] = ["Amount €", "day"]
    config = type(odd_config).model_validate(raw)

    with pytest.raises(ValueError, match="odd_names: a column named 'day' cannot be kept in the feature store"):
        feature_store.definitions(config)


# --- materialization -----------------------------------------------------------------------------


def test_materializing_a_day_loads_its_curated_batch_and_no_other_day(state_dir, demo_config):
    config = data_world.with_rows_per_day(demo_config, 200)
    before, batch, after = (write_day(config, DAY + dt.timedelta(days=offset)) for offset in (-1, 0, 1))

    result = feature_store.materialize_day(config, DAY)

    assert result == {
        "first_day": "2026-01-06",
        "last_day": "2026-01-06",
        "start": "2026-01-06T00:00:00+00:00",
        "end": "2026-01-07T00:00:00+00:00",
        "days": ["2026-01-06"],
        "skipped_days": [],
        "curated_rows": 200,
        "entities": 200,
        "online_store": "sqlite",
    }
    assert len(online_rows(config)) == 200 * (1 + len(config.features.all))
    first, last = batch.iloc[0], batch.iloc[-1]
    online = online_values(
        config,
        [first.application_id, last.application_id, before.application_id.iloc[-1], after.application_id.iloc[0]],
        ["credit_score", "region", "event_timestamp"],
    )
    assert online["credit_score"] == [first.credit_score, last.credit_score, None, None]
    assert online["region"] == [first.region, last.region, None, None]
    # Feast keeps a timestamp feature online in whole seconds (its Value proto's unix_timestamp_val).
    assert [stamp.replace(tzinfo=None) for stamp in online["event_timestamp"][:2]] == [
        first.event_timestamp.floor("s"),
        last.event_timestamp.floor("s"),
    ]


def test_materializing_the_same_day_again_leaves_the_online_store_as_it_was(state_dir, demo_config):
    config = data_world.with_rows_per_day(demo_config, 200)
    write_day(config, DAY)
    feature_store.materialize_day(config, DAY)
    once = online_rows(config)

    feature_store.materialize_day(config, DAY)

    assert online_rows(config) == once
    assert len(once) == 200 * (1 + len(config.features.all))


def test_a_range_is_loaded_as_its_days_one_by_one_would_be_and_again_changes_nothing(
    state_dir, demo_config, monkeypatch
):
    monkeypatch.setattr(feature_store, "WRITE_BATCH_ROWS", 128)  # the range's 300 rows in three writes
    config = data_world.with_rows_per_day(demo_config, 100)
    days = [DAY + dt.timedelta(days=offset) for offset in range(4)]
    batches = [write_day(config, day) for day in days if day != days[2]]  # the third day is quarantined
    repeat = batches[0].iloc[[0]].assign(event_timestamp=batches[-1].event_timestamp.max(), credit_score=301)
    storage.write_curated_batch(config.name, days[-1], pd.concat([batches[-1], repeat], ignore_index=True))
    for day in days:  # the reference: the days loaded one by one, oldest first
        if day != days[2]:
            feature_store.materialize_day(config, day)
    one_by_one = online_rows(config)
    (feature_store.repo_dir(config.name) / "online_store.db").unlink()

    result = feature_store.materialize_range(config, days[0], days[-1])
    once = online_rows(config)
    feature_store.materialize_range(config, days[0], days[-1])

    assert result["days"] == ["2026-01-06", "2026-01-07", "2026-01-09"]
    assert result["skipped_days"] == ["2026-01-08"]
    assert (result["curated_rows"], result["entities"]) == (301, 300)
    assert once == one_by_one
    assert online_rows(config) == once
    assert online_values(config, [repeat.application_id.iloc[0]], ["credit_score"])["credit_score"] == [301]
    *_, (start, end) = feature_store.open_store(config).get_feature_view("credit_default").materialization_intervals
    assert (start.isoformat(), end.isoformat()) == ("2026-01-06T00:00:00+00:00", "2026-01-10T00:00:00+00:00")


def test_a_range_without_any_curated_batch_has_nothing_to_materialize_and_says_which(state_dir, demo_config):
    write_day(demo_config, DAY, rows=10)

    with pytest.raises(feature_store.NothingToMaterialize, match="no curated batch for 2026-01-07 to 2026-01-09"):
        feature_store.materialize_range(demo_config, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=3))


def test_a_day_whose_curated_batch_was_replaced_is_materialized_with_its_new_values(state_dir, demo_config):
    config = data_world.with_rows_per_day(demo_config, 50)
    batch = write_day(config, DAY)
    feature_store.materialize_day(config, DAY)

    batch["credit_score"] = 300
    storage.write_curated_batch(config.name, DAY, batch)
    feature_store.materialize_day(config, DAY)

    assert set(online_values(config, list(batch.application_id), ["credit_score"])["credit_score"]) == {300}


def test_a_day_without_a_curated_batch_has_nothing_to_materialize_and_says_which(state_dir, demo_config):
    write_day(demo_config, DAY, rows=10)

    with pytest.raises(feature_store.NothingToMaterialize, match="credit_default: no curated batch for 2026-01-07"):
        feature_store.materialize_day(demo_config, DAY + dt.timedelta(days=1))


def redis_rows(connection: str, project: str) -> dict[bytes, dict[bytes, bytes]]:
    """Every hash Feast keeps for `project` in Redis (its keys end with the project's name), by key."""
    import redis

    host, _, options = connection.partition(",")
    client = redis.Redis(host=host.split(":")[0], port=int(host.split(":")[1]), db=int(options.removeprefix("db=")))
    return {key: client.hgetall(key) for key in client.scan_iter(match=f"*{project}")}


def test_with_redis_configured_the_online_store_is_redis_and_a_range_loaded_again_changes_nothing(
    state_dir, demo_config, monkeypatch
):
    # The machine's Redis, as the production topology's online store. A project of its own, so that the
    # test's keys never meet a real model's; database 0, since the topology test claims an empty one of 1-15.
    connection = "127.0.0.1:6379,db=0"
    config = data_world.with_rows_per_day(demo_config, 20).model_copy(update={"name": f"redis_{uuid.uuid4().hex[:8]}"})
    monkeypatch.setenv(feature_store.REDIS_ENV, connection)
    batch = pd.concat([write_day(config, DAY), write_day(config, DAY + dt.timedelta(days=1))], ignore_index=True)
    store = feature_store.open_store(config)
    try:
        result = feature_store.materialize_range(config, DAY, DAY + dt.timedelta(days=1), store)
        loaded = redis_rows(connection, config.name)
        feature_store.materialize_range(config, DAY, DAY + dt.timedelta(days=1), store)

        online = online_values(config, list(batch.application_id.iloc[[0, 39]]), ["age", "region"])
        assert result["online_store"] == "redis"
        assert online["age"] == list(batch.age.iloc[[0, 39]])
        assert online["region"] == list(batch.region.iloc[[0, 39]])
        assert len(loaded) == 40
        assert redis_rows(connection, config.name) == loaded
        assert not (feature_store.repo_dir(config.name) / "online_store.db").exists()
    finally:
        store.teardown()
    assert redis_rows(connection, config.name) == {}


# --- training sets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cutoff", "window_days"),
    [(dt.date(2026, 1, 24), 14), (dt.date(2026, 1, 20), 30)],
    ids=["earlier-events-labelled-in-the-window", "window-before-the-first-day"],
)
def test_the_training_set_from_feast_equals_the_projects_own_assembly(state_dir, demo_config, cutoff, window_days):
    fill_stores(demo_config, days=24)

    from_feast = feature_store.training_set(demo_config, cutoff, window_days)
    assembled = assemble_training_set(demo_config, cutoff, window_days)

    assert len(assembled) > 5000
    pd.testing.assert_frame_equal(from_feast, assembled)


def test_a_training_set_from_feast_uses_no_label_that_arrived_after_the_cutoff(state_dir, demo_config):
    config = data_world.with_rows_per_day(demo_config, 100)
    fill_stores(config, days=20)

    frame = feature_store.training_set(config, dt.date(2026, 1, 15), window_days=15)

    assert frame["label_timestamp"].max() < pd.Timestamp("2026-01-16")
    assert frame["event_timestamp"].max() < pd.Timestamp("2026-01-09")  # labels arrive 7 days after the event
    assert len(frame) == 8 * 100


def test_a_window_without_labels_gives_an_empty_training_set_with_the_training_columns(state_dir, demo_config):
    write_day(demo_config, DAY, rows=10)

    frame = feature_store.training_set(demo_config, DAY)

    assert frame.empty
    assert list(frame.columns) == list(assemble_training_set(demo_config, DAY).columns)
