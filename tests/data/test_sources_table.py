"""A `table` source: one CSV or Parquet file, or a folder or glob of them, cut into days by its timestamp column."""

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from include.core import settings, storage
from include.core.config import Column, ConfigError, ModelConfig, TableSource, load_model_config
from include.core.storage import REPORT_FILE
from include.data import ingestion, sources
from include.demo import data_world

DAYS = [dt.date(2026, 1, 9), dt.date(2026, 1, 10), dt.date(2026, 1, 11)]
DAY = DAYS[1]
ODD_REGION = "far east €"


@pytest.fixture
def config(demo_config: ModelConfig) -> ModelConfig:
    """The demo model with one more region, written with a space and a euro sign."""
    schema = demo_config.schema
    region = schema.columns["region"]
    columns = {**schema.columns, "region": Column(**{**region.model_dump(), "allowed": [*region.allowed, ODD_REGION]})}
    return demo_config.model_copy(update={"schema_": schema.model_copy(update={"columns": columns})})


@pytest.fixture
def applications(config: ModelConfig) -> pd.DataFrame:
    """Three days of applications, every fifth of them from the odd region, in no particular order."""
    frame = pd.concat([data_world.feature_batch(config, day) for day in DAYS], ignore_index=True)
    frame.loc[frame.index[::5], "region"] = ODD_REGION
    return frame.sample(frac=1, random_state=0).reset_index(drop=True)


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    """Where the user keeps the files (apart from the state folder, which is also under tmp_path)."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    return folder


def table_config(config: ModelConfig, path: Path, **source) -> ModelConfig:
    return config.model_copy(
        update={"source": TableSource(kind="table", path=str(path), start_date=DAYS[0], **source)}
    )


def of_day(frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return frame[frame["event_timestamp"].dt.date == day].sort_values("application_id").reset_index(drop=True)


def curate(config: ModelConfig, day: dt.date) -> dict:
    landed = ingestion.land(config, day)
    validated = ingestion.validate(config, day, landed["batch_uri"], data_docs=False)
    return ingestion.publish(config, day, validated["validated_uri"])


def curated_rows(day: dt.date) -> pd.DataFrame:
    return storage.read_curated("credit_default", day, day).sort_values("application_id").reset_index(drop=True)


def test_a_folder_of_parquet_files_is_cut_into_days_by_the_timestamp_column(
    state_dir, config, applications, incoming
):
    folder = incoming / "extracts"
    (folder / "part=b").mkdir(parents=True)
    applications.iloc[:1200].to_parquet(folder / "a.parquet", index=False)
    applications.iloc[1200:].to_parquet(folder / "part=b" / "b.parquet", index=False)
    config = table_config(config, folder)

    published = curate(config, DAY)

    assert published["rows"] == 1000
    pd.testing.assert_frame_equal(curated_rows(DAY), of_day(applications, DAY), check_dtype=False)
    assert ODD_REGION in set(curated_rows(DAY)["region"])


def test_timezone_aware_parquet_and_csv_in_one_folder_are_selected_by_their_utc_day(
    state_dir, config, applications, incoming
):
    berlin = applications["event_timestamp"].dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin")
    applications.assign(event_timestamp=berlin).iloc[:1500].to_parquet(incoming / "first.parquet", index=False)
    applications.iloc[1500:].to_csv(incoming / "rest.csv", index=False)

    curate(table_config(config, incoming), DAY)

    assert set(curated_rows(DAY)["application_id"]) == set(of_day(applications, DAY)["application_id"])


def test_a_single_csv_with_odd_values_lands_the_days_rows_as_they_were(state_dir, config, applications, incoming):
    path = incoming / "applications.csv"
    applications.to_csv(path, index=False)

    curate(table_config(config, path), DAY)

    curated = curated_rows(DAY)
    expected = of_day(applications, DAY)
    pd.testing.assert_frame_equal(curated, expected, check_dtype=False)
    assert (curated["region"] == ODD_REGION).sum() == (expected["region"] == ODD_REGION).sum() > 0


def test_a_glob_selects_the_files_it_matches(state_dir, config, applications, incoming):
    for day in DAYS:
        of_day(applications, day).to_csv(incoming / f"applications_{day:%Y%m%d}.csv", index=False)
    decoy = of_day(applications, DAY).assign(application_id=lambda frame: frame["application_id"] + "-decoy")
    decoy.to_csv(incoming / "old_applications.csv", index=False)

    published = curate(table_config(config, incoming / "applications_*.csv"), DAY)

    assert published["rows"] == 1000
    assert not curated_rows(DAY)["application_id"].str.endswith("-decoy").any()


def test_a_timestamp_that_does_not_parse_quarantines_the_interval_of_its_file(
    state_dir, config, applications, incoming
):
    for day in DAYS:
        of_day(applications, day).to_csv(incoming / f"applications_{day}.csv", index=False)
    broken = of_day(applications, DAY).astype({"event_timestamp": str})
    broken.loc[3, "event_timestamp"] = "10/01/2026 25:61"
    broken.to_csv(incoming / f"applications_{DAY}.csv", index=False)
    config = table_config(config, incoming)

    with pytest.raises(ingestion.BatchRejected, match="Quarantined in"):
        curate(config, DAY)
    curate(config, DAYS[0])
    curate(config, DAYS[2])

    assert storage.curated_days("credit_default") == [DAYS[0], DAYS[2]]
    [folder] = storage.quarantined_batches("credit_default", DAY)
    report = json.loads((folder / REPORT_FILE).read_text())
    assert any("event_timestamp" in json.dumps(failure) for failure in report["blocking_failures"])
    landed = pd.read_parquet(folder / "batch.parquet")
    assert len(landed) == 1000
    assert "10/01/2026 25:61" in set(landed["event_timestamp"])


def test_a_file_without_any_timestamp_that_parses_is_landed_with_every_day(state_dir, config, applications, incoming):
    of_day(applications, DAYS[0]).to_csv(incoming / "good.csv", index=False)
    of_day(applications, DAYS[2]).assign(event_timestamp="yesterday").to_csv(incoming / "bad.csv", index=False)
    config = table_config(config, incoming)

    for day in DAYS:
        landed = pd.read_parquet(sources.land_batch(config, day))
        assert (landed["event_timestamp"] == "yesterday").sum() == 1000


def test_a_day_without_rows_has_not_arrived(state_dir, config, applications, incoming):
    applications.to_parquet(incoming / "applications.parquet", index=False)

    with pytest.raises(sources.BatchNotArrived, match="no rows in \\[2026-02-01 00:00:00, 2026-02-02"):
        sources.land_batch(table_config(config, incoming / "applications.parquet"), dt.date(2026, 2, 1))


def test_a_path_without_files_has_not_arrived_and_the_error_names_it(state_dir, config, incoming):
    with pytest.raises(sources.BatchNotArrived, match="source.path .*nowhere"):
        sources.land_batch(table_config(config, incoming / "nowhere"), DAY)


def test_labels_are_the_rows_whose_arrival_time_falls_in_the_day(state_dir, config, applications, incoming):
    labels = pd.concat(
        [data_world.labels_arriving_on(config, day + dt.timedelta(days=7)) for day in DAYS], ignore_index=True
    ).rename(columns={data_world.LABEL_TIMESTAMP: "known_at"})
    labels.to_csv(incoming / "labels.csv", index=False)
    applications.to_parquet(incoming / "applications.parquet", index=False)
    config = table_config(
        config, incoming / "applications.parquet", labels_path=str(incoming / "labels.csv"),
        labels_timestamp_column="known_at",
    )
    arrival = DAY + dt.timedelta(days=7)

    stored = ingestion.land_labels(config, arrival, data_docs=False)

    landed = pd.read_parquet(stored["labels_uri"])
    assert stored["rows"] == 1000
    assert set(landed["application_id"]) == set(of_day(applications, DAY)["application_id"])
    assert landed[data_world.LABEL_TIMESTAMP].dt.date.eq(arrival).all()
    assert sources.arrived_labels(config, DAY) is None


def test_label_arrival_times_that_do_not_parse_are_refused_naming_the_values(state_dir, config, incoming):
    labels = data_world.labels_arriving_on(config, DAY).astype({data_world.LABEL_TIMESTAMP: str})
    labels.loc[0, data_world.LABEL_TIMESTAMP] = "soon"
    labels.to_csv(incoming / "labels.csv", index=False)
    config = table_config(config, incoming / "nothing.csv", labels_path=str(incoming / "labels.csv"))

    with pytest.raises(sources.UnreadableBatch, match="'label_timestamp' has values that are not ISO 8601.*'soon'"):
        sources.arrived_labels(config, DAY)


def test_a_table_source_without_a_path_names_the_file_and_the_key(tmp_path):
    raw = yaml.safe_load((settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml").read_text())
    raw["source"] = {"kind": "table", "start_date": "2026-01-01"}
    path = tmp_path / "credit_default.yaml"
    path.write_text(yaml.safe_dump(raw))

    with pytest.raises(ConfigError, match="key 'source.path': got missing"):
        load_model_config(path)


def test_the_worked_example_curates_a_day_of_its_parquet_folder(state_dir, incoming):
    example = load_model_config(settings.PROJECT_ROOT / "docs" / "examples" / "loans_table.yaml")
    config = example.model_copy(update={"source": example.source.model_copy(
        update={"path": str(incoming / "applications"), "labels_path": str(incoming / "outcomes.csv")}
    )})
    submitted = pd.date_range("2024-03-01", periods=96, freq="90min")
    applications = pd.DataFrame({
        "application_id": [f"a{number}" for number in range(96)],
        "submitted_at": submitted,
        "amount": [1000.0 + number for number in range(96)],
        "purpose": ["car", "home improvement", "studies €"] * 32,
    })
    (incoming / "applications" / "2024-03").mkdir(parents=True)
    applications.to_parquet(incoming / "applications" / "2024-03" / "export.parquet", index=False)
    outcomes = applications[["application_id"]].assign(
        defaulted=[0, 1] * 48, decided_at=(submitted + pd.Timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    outcomes.to_csv(incoming / "outcomes.csv", index=False)

    published = curate(config, dt.date(2024, 3, 2))
    labels = ingestion.land_labels(config, dt.date(2024, 3, 9), data_docs=False)

    curated = storage.read_curated("loans_table", dt.date(2024, 3, 2), dt.date(2024, 3, 2))
    assert published["rows"] == labels["rows"] == 16
    assert set(curated["purpose"]) == {"car", "home improvement", "studies €"}
    assert curated["submitted_at"].dt.date.eq(dt.date(2024, 3, 2)).all()
