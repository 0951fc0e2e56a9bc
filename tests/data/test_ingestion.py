"""Ingestion keeps every bad batch in quarantine with its report, and lets good batches through."""

import datetime as dt
import json

import pandas as pd
import pytest

from include.core import storage
from include.core.storage import REPORT_FILE
from include.data import ingestion
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

    with pytest.raises(ingestion.BatchRejected, match="unreadable"):
        ingestion.validate(demo_config, GOOD_DAY, str(path))

    [folder] = storage.quarantined_batches(demo_config.name, GOOD_DAY)
    assert (folder / "batch.parquet").read_bytes() == b"PAR1 this is not parquet at all"
    assert "file_is_readable" in (folder / REPORT_FILE).read_text()
    assert path.exists(), "the landed file is kept too"


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
