"""Ingestion keeps every bad batch in quarantine with its report, and lets good batches through."""

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from include.core import storage
from include.core.config import FilesSource, ModelConfig
from include.core.storage import REPORT_FILE
from include.data import ingestion, validation
from include.demo import data_world

GOOD_DAY = dt.date(2026, 1, 10)


def corrupt(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    frame = frame.copy()
    if how == "empty batch":
        return frame.iloc[0:0]
    if how == "missing column":
        return frame.drop(columns=["credit_score"])
    if how == "extra column":
        return frame.assign(favourite_colour="blue")
    if how == "wrong dtype":
        return frame.assign(age=frame["age"].astype(str) + " years")
    if how == "nulls in a required column":
        frame["loan_amount"] = frame["loan_amount"].astype("float64")
        frame.loc[frame.index[:25], "loan_amount"] = None
        return frame
    if how == "out-of-range values":
        frame.loc[frame.index[:7], "age"] = 150
        return frame
    if how == "unknown category":
        frame.loc[frame.index[:3], "region"] = "atlantis"
        return frame
    if how == "duplicate entity ids":
        frame.loc[frame.index[1:4], "application_id"] = frame["application_id"].iloc[0]
        return frame
    raise ValueError(how)


EXPECTED_RULE = {
    "empty batch": "expect_table_row_count_to_be_between",
    "missing column": "expect_table_columns_to_match_set",
    "extra column": "expect_table_columns_to_match_set",
    "wrong dtype": "(age)",
    "nulls in a required column": "expect_column_values_to_not_be_null(loan_amount)",
    "out-of-range values": "expect_column_values_to_be_between(age)",
    "unknown category": "expect_column_values_to_be_in_set(region)",
    "duplicate entity ids": "expect_column_values_to_be_unique(application_id)",
}


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    """The folder where a user drops one file a day (and, under labels/, one label file a day)."""
    folder = tmp_path / "incoming"
    (folder / "labels").mkdir(parents=True)
    return folder


def files_config(config: ModelConfig, folder: Path) -> ModelConfig:
    source = FilesSource(
        kind="files", path=folder, pattern="applications_{day}.csv", start_date=dt.date(2026, 1, 1),
        labels_path=folder / "labels", labels_pattern="labels_{day}.csv",
    )
    return config.model_copy(update={"source": source})


def land_frame(config, frame: pd.DataFrame) -> str:
    path = storage.landing_dir(config.name, GOOD_DAY) / "batch.parquet"
    storage.write_parquet_atomically(frame, path)
    return str(path)


@pytest.mark.parametrize("how", sorted(EXPECTED_RULE))
def test_bad_batch_is_quarantined_with_its_report_naming_the_rule(state_dir, demo_config, how):
    batch_uri = land_frame(demo_config, corrupt(data_world.feature_batch(demo_config, GOOD_DAY), how))

    with pytest.raises(ingestion.BatchRejected) as rejected:
        ingestion.validate(demo_config, GOOD_DAY, batch_uri)

    assert EXPECTED_RULE[how] in str(rejected.value)
    [folder] = storage.quarantined_batches(demo_config.name, GOOD_DAY)
    report = json.loads((folder / REPORT_FILE).read_text())
    assert report["passed"] is False
    assert (folder / "batch.parquet").exists()
    assert storage.curated_days(demo_config.name) == []


def test_unreadable_file_is_quarantined_not_deleted(state_dir, demo_config):
    path = storage.landing_dir(demo_config.name, GOOD_DAY) / "batch.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 this is not parquet at all")

    with pytest.raises(ingestion.BatchRejected, match=re.escape(f"unreadable: {path}: ")):
        ingestion.validate(demo_config, GOOD_DAY, str(path))

    [folder] = storage.quarantined_batches(demo_config.name, GOOD_DAY)
    assert (folder / "batch.parquet").read_bytes() == b"PAR1 this is not parquet at all"
    assert "file_is_readable" in (folder / REPORT_FILE).read_text()
    assert not path.exists(), "the batch was moved out of landing"


def test_quarantining_the_same_bad_batch_twice_keeps_one_copy(state_dir, demo_config):
    batch_uri = land_frame(demo_config, corrupt(data_world.feature_batch(demo_config, GOOD_DAY), "missing column"))

    for _ in range(2):
        with pytest.raises(ingestion.BatchRejected):
            ingestion.validate(demo_config, GOOD_DAY, batch_uri)

    assert len(storage.quarantined_batches(demo_config.name, GOOD_DAY)) == 1


def test_good_batch_is_published_and_republishing_replaces_it(state_dir, demo_config):
    landed = ingestion.land(demo_config, GOOD_DAY)
    validated = ingestion.validate(demo_config, GOOD_DAY, landed["batch_uri"])
    assert validated["summary"]["blocking_failed"] == 0

    first = ingestion.publish(demo_config, GOOD_DAY, landed["batch_uri"])
    second = ingestion.publish(demo_config, GOOD_DAY, landed["batch_uri"])

    assert first == second
    assert storage.curated_days(demo_config.name) == [GOOD_DAY]
    assert len(storage.read_curated(demo_config.name, GOOD_DAY, GOOD_DAY)) == first["rows"] == 1000


def test_labels_that_arrived_are_stored_for_training(state_dir, demo_config):
    day = GOOD_DAY + dt.timedelta(days=demo_config.target.label_delay_days)

    landed = ingestion.land_labels(demo_config, day)

    labels = storage.read_labels_arrived_by(demo_config.name, day)
    assert landed["rows"] == len(labels) == 1000
    assert set(labels["default"].unique()) <= {0, 1}


# --- a bad batch is moved to quarantine ---------------------------------------------------------


def deliver(folder: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(folder / f"applications_{GOOD_DAY.isoformat()}.csv", index=False)


def test_a_bad_batch_moves_from_landing_to_quarantine_and_a_rerun_of_the_day_keeps_it_there(
    state_dir, demo_config, incoming
):
    config = files_config(demo_config, incoming)
    deliver(incoming, corrupt(data_world.feature_batch(demo_config, GOOD_DAY), "missing column"))

    for _ in range(2):
        landed = ingestion.land(config, GOOD_DAY)
        with pytest.raises(ingestion.BatchRejected, match="expect_table_columns_to_match_set"):
            ingestion.validate(config, GOOD_DAY, landed["batch_uri"])
    with pytest.raises(ingestion.BatchRejected, match="moved to quarantine"):
        ingestion.validate(config, GOOD_DAY, landed["batch_uri"])

    assert list(storage.landing_dir(config.name, GOOD_DAY).iterdir()) == []
    [folder] = storage.quarantined_batches(config.name, GOOD_DAY)
    assert sorted(path.name for path in folder.iterdir()) == ["applications_2026-01-10.csv", REPORT_FILE]
    assert json.loads((folder / REPORT_FILE).read_text())["passed"] is False


def test_a_good_redelivery_of_a_quarantined_day_is_ingested_and_the_bad_one_stays_in_quarantine(
    state_dir, demo_config, incoming
):
    config = files_config(demo_config, incoming)
    good = data_world.feature_batch(demo_config, GOOD_DAY)
    deliver(incoming, corrupt(good, "missing column"))
    with pytest.raises(ingestion.BatchRejected):
        ingestion.validate(config, GOOD_DAY, ingestion.land(config, GOOD_DAY)["batch_uri"])

    deliver(incoming, good)
    landed = ingestion.land(config, GOOD_DAY)
    validated = ingestion.validate(config, GOOD_DAY, landed["batch_uri"])
    published = ingestion.publish(config, GOOD_DAY, validated["validated_uri"])

    assert published["rows"] == 1000
    assert storage.curated_days(config.name) == [GOOD_DAY]
    assert len(storage.quarantined_batches(config.name, GOOD_DAY)) == 1


# --- publish writes what was validated ----------------------------------------------------------


def replace_landed_batch(config, batch_uri: str) -> None:
    """What a second run of the same day does between this run's validate and publish: land another batch."""
    replacement = corrupt(data_world.feature_batch(config, GOOD_DAY), "out-of-range values").iloc[:10]
    storage.write_parquet_atomically(replacement, Path(batch_uri))


def test_publish_writes_the_validated_batch_even_when_the_landing_file_was_replaced_since(state_dir, demo_config):
    landed = ingestion.land(demo_config, GOOD_DAY)
    validated = ingestion.validate(demo_config, GOOD_DAY, landed["batch_uri"])
    replace_landed_batch(demo_config, landed["batch_uri"])

    published = ingestion.publish(demo_config, GOOD_DAY, validated["validated_uri"])

    curated = storage.read_curated(demo_config.name, GOOD_DAY, GOOD_DAY)
    assert published["rows"] == 1000
    pd.testing.assert_frame_equal(curated, data_world.feature_batch(demo_config, GOOD_DAY))


def test_publishing_a_landing_file_that_changed_after_its_validation_is_refused(state_dir, demo_config):
    landed = ingestion.land(demo_config, GOOD_DAY)
    ingestion.validate(demo_config, GOOD_DAY, landed["batch_uri"])
    replace_landed_batch(demo_config, landed["batch_uri"])

    with pytest.raises(ingestion.BatchNotValidated, match="not the one that passed validation"):
        ingestion.publish(demo_config, GOOD_DAY, landed["batch_uri"])

    assert storage.curated_days(demo_config.name) == []


# --- labels are validated before they are stored ------------------------------------------------


def deliver_labels(config: ModelConfig, folder: Path, day: dt.date, default) -> pd.DataFrame:
    labels = data_world.labels_arriving_on(config, day)[["application_id", "default", "event_timestamp"]]
    labels["default"] = default
    labels.to_csv(folder / "labels" / f"labels_{day.isoformat()}.csv", index=False)
    return labels


def test_training_sees_no_label_of_a_batch_while_it_is_being_validated(state_dir, demo_config, monkeypatch):
    day = GOOD_DAY + dt.timedelta(days=demo_config.target.label_delay_days)
    seen_by_training = []

    def validate_batch(config, frame, day, **options):
        seen_by_training.append(len(storage.read_labels_arrived_by(config.name, day)))
        return real_validate_batch(config, frame, day, **options)

    real_validate_batch = validation.validate_batch
    monkeypatch.setattr(validation, "validate_batch", validate_batch)

    landed = ingestion.land_labels(demo_config, day)

    assert seen_by_training == [0]
    assert len(storage.read_labels_arrived_by(demo_config.name, day)) == landed["rows"] == 1000


def test_labels_that_fail_go_to_quarantine_and_the_days_stored_labels_stay(state_dir, demo_config, incoming):
    config = files_config(demo_config, incoming)
    day = GOOD_DAY + dt.timedelta(days=demo_config.target.label_delay_days)
    good = deliver_labels(demo_config, incoming, day, data_world.labels_arriving_on(demo_config, day)["default"])
    ingestion.land_labels(config, day)
    deliver_labels(demo_config, incoming, day, 7)

    with pytest.raises(ingestion.BatchRejected, match=r"expect_column_values_to_be_in_set\(default\)"):
        ingestion.land_labels(config, day)

    stored = storage.read_labels_arrived_by(config.name, day)
    assert list(stored["default"]) == list(good["default"])
    [folder] = storage.quarantined_batches(config.name, day)
    assert pd.read_parquet(folder / "labels.parquet")["default"].eq(7).all()
    assert json.loads((folder / REPORT_FILE).read_text())["suite_kind"] == "labels"
