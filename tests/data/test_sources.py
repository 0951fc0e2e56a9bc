"""Landing a day's batch and labels from a source, and reading a landed batch back."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from include.core import settings, storage
from include.core.config import FilesSource, ModelConfig
from include.data import sources
from include.demo import data_world

DAY = dt.date(2026, 1, 10)


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    """The folder where a user drops one file a day."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    return folder


def files_config(config: ModelConfig, folder: Path, **changes) -> ModelConfig:
    source = FilesSource(
        kind="files", path=folder, pattern="applications_{day}.csv", start_date=dt.date(2026, 1, 1), **changes
    )
    return config.model_copy(update={"source": source})


def write_day_csv(config: ModelConfig, folder: Path, day: dt.date) -> Path:
    path = folder / f"applications_{day.isoformat()}.csv"
    data_world.feature_batch(config, day).to_csv(path, index=False)
    return path


def landing_files(model: str, day: dt.date) -> list[str]:
    return sorted(path.name for path in storage.landing_dir(model, day).iterdir())


# --- synthetic source ----------------------------------------------------------------------------


def test_landing_a_synthetic_day_writes_its_feature_batch_as_parquet(state_dir, demo_config):
    landed = sources.land_batch(demo_config, DAY)

    assert landed == storage.landing_dir("credit_default", DAY) / "batch.parquet"
    assert landed.is_relative_to(state_dir)
    pd.testing.assert_frame_equal(
        sources.read_batch(landed, demo_config.schema), data_world.feature_batch(demo_config, DAY)
    )


def test_relanding_a_day_replaces_its_batch_without_duplicates(state_dir, demo_config):
    first = sources.land_batch(demo_config, DAY)
    second = sources.land_batch(demo_config, DAY)

    assert first == second
    assert landing_files("credit_default", DAY) == ["batch.parquet"]
    assert len(sources.read_batch(second, demo_config.schema)) == demo_config.source.rows_per_day


def test_a_day_outside_the_synthetic_world_has_not_arrived(state_dir, demo_config):
    with pytest.raises(sources.BatchNotArrived, match="from 2026-01-01 to 2026-12-31"):
        sources.land_batch(demo_config, dt.date(2027, 1, 1))


def test_synthetic_labels_arrive_on_their_day_and_are_not_stored_before_validation(state_dir, demo_config):
    arrival = DAY + dt.timedelta(days=demo_config.target.label_delay_days)

    labels = sources.arrived_labels(demo_config, arrival)

    assert storage.label_days("credit_default") == []
    assert labels["event_timestamp"].dt.date.eq(DAY).all()
    assert list(labels["application_id"]) == list(data_world.feature_batch(demo_config, DAY)["application_id"])


def test_no_labels_arrive_before_the_first_delay_has_passed(state_dir, demo_config):
    assert sources.arrived_labels(demo_config, demo_config.source.start_date) is None


# --- files source --------------------------------------------------------------------------------


def test_the_files_source_lands_the_days_file_byte_for_byte_keeping_its_name(state_dir, demo_config, incoming):
    config = files_config(demo_config, incoming)
    delivered = write_day_csv(demo_config, incoming, DAY)

    landed = sources.land_batch(config, DAY)

    assert landed == storage.landing_dir("credit_default", DAY) / "applications_2026-01-10.csv"
    assert landed.read_bytes() == delivered.read_bytes()


def test_a_corrupt_file_is_landed_as_it_is_for_validation_to_quarantine(state_dir, demo_config, incoming):
    config = files_config(demo_config, incoming)
    garbage = b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe not a csv"
    (incoming / "applications_2026-01-10.csv").write_bytes(garbage)

    landed = sources.land_batch(config, DAY)

    assert landed.read_bytes() == garbage


def test_relanding_a_users_file_replaces_it(state_dir, demo_config, incoming):
    config = files_config(demo_config, incoming)
    delivered = incoming / "applications_2026-01-10.csv"
    delivered.write_text("first delivery\n")
    sources.land_batch(config, DAY)
    delivered.write_text("corrected delivery\n")

    landed = sources.land_batch(config, DAY)

    assert landed.read_text() == "corrected delivery\n"
    assert landing_files("credit_default", DAY) == ["applications_2026-01-10.csv"]


def test_a_missing_file_has_not_arrived_and_the_error_names_the_expected_path(state_dir, demo_config, incoming):
    config = files_config(demo_config, incoming)

    with pytest.raises(sources.BatchNotArrived) as raised:
        sources.land_batch(config, DAY)

    assert str(incoming / "applications_2026-01-10.csv") in str(raised.value)
    assert not storage.landing_dir("credit_default", DAY).exists()


def test_a_relative_files_path_starts_at_the_project_root(state_dir, demo_config):
    config = files_config(demo_config, Path("no_such_folder"))

    with pytest.raises(sources.BatchNotArrived) as raised:
        sources.land_batch(config, DAY)

    assert str(settings.PROJECT_ROOT / "no_such_folder" / "applications_2026-01-10.csv") in str(raised.value)


def test_the_files_source_reads_the_days_label_file(state_dir, demo_config, incoming, tmp_path):
    label_folder = tmp_path / "labels"
    label_folder.mkdir()
    config = files_config(demo_config, incoming, labels_path=label_folder, labels_pattern="labels_{day}.csv")
    truth = data_world.labels_arriving_on(demo_config, DAY)
    truth[["application_id", "default", "event_timestamp"]].to_csv(label_folder / "labels_2026-01-10.csv", index=False)

    labels = sources.arrived_labels(config, DAY)

    assert list(labels["application_id"]) == list(truth["application_id"])
    assert list(labels["default"]) == list(truth["default"])
    assert labels["label_timestamp"].eq(pd.Timestamp(DAY)).all()
    assert sources.arrived_labels(config, DAY + dt.timedelta(days=1)) is None


def test_a_files_source_without_labels_has_none(state_dir, demo_config, incoming):
    assert sources.arrived_labels(files_config(demo_config, incoming), DAY) is None


# --- reading a landed batch ----------------------------------------------------------------------


def test_a_csv_batch_reads_back_with_its_timestamps_parsed(state_dir, demo_config, incoming):
    path = write_day_csv(demo_config, incoming, DAY)

    batch = sources.read_batch(path, demo_config.schema)

    expected = data_world.feature_batch(demo_config, DAY)
    assert batch["event_timestamp"].dtype == "datetime64[ns]"
    pd.testing.assert_series_equal(batch["event_timestamp"], expected["event_timestamp"])
    pd.testing.assert_frame_equal(batch, expected, check_exact=False)


def test_timezone_aware_timestamps_read_as_naive_utc(tmp_path, demo_config):
    path = tmp_path / "batch.csv"
    path.write_text("application_id,event_timestamp\nA1,2026-01-10T10:00:00+02:00\nA2,2026-01-10T09:00:00Z\n")

    batch = sources.read_batch(path, demo_config.schema)

    assert list(batch["event_timestamp"]) == [pd.Timestamp("2026-01-10 08:00"), pd.Timestamp("2026-01-10 09:00")]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("batch.parquet", b"PAR1 truncated in transit", "magic bytes"),
        ("batch.parquet", b"", "0 bytes"),
        ("batch.csv", b"", "No columns"),
        ("batch.csv", b"application_id,region\nA1,\xff\xfe\xfd\n", "decode"),
        ("batch.csv", b"application_id,age\nA1,30\n\x00\x00\x00\x00\nA2,40\n", "control byte"),
        ("batch.csv", b"application_id,age\nA1,30\nA2,40,extra,fields\n", "Expected 2 fields"),
        ("batch.json", b"{}", "expected .csv or .parquet"),
    ],
)
def test_a_file_that_cannot_be_parsed_is_unreadable_and_the_error_names_it(
    tmp_path, demo_config, name, content, reason
):
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(sources.UnreadableBatch, match=reason) as raised:
        sources.read_batch(path, demo_config.schema)

    assert str(path) in str(raised.value)
