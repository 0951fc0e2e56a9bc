"""The Great Expectations gate: what passes, what blocks, what only warns, and what it leaves behind."""

import datetime as dt
import json
import socket

import numpy as np
import pandas as pd
import pytest

from include.core.config import ConfigError, Expectation, ModelConfig
from include.data.validation import build_feature_suite, describe_failures, unreadable_report, validate_batch

DAY = dt.date(2026, 3, 12)
ROWS = 200


def applications(rows: int = ROWS, day: dt.date = DAY) -> pd.DataFrame:
    """A valid feature batch of the demo model for `day`, with tz-naive UTC timestamps like the data world's."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "application_id": [f"app-{day}-{index}" for index in range(rows)],
            "event_timestamp": pd.Timestamp(day) + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"),
            "age": rng.integers(18, 90, rows),
            "annual_income": rng.uniform(20_000, 150_000, rows),
            "loan_amount": rng.uniform(1_000, 50_000, rows),
            "loan_term_months": rng.choice([12, 24, 36, 60], rows),
            "credit_score": rng.integers(300, 851, rows),
            "debt_to_income": rng.uniform(0, 2, rows),
            "employment_type": rng.choice(["salaried", "self_employed", "unemployed", "retired", "student"], rows),
            "home_ownership": rng.choice(["own", "mortgage", "rent", "other"], rows),
            "region": rng.choice(["north", "south", "east", "west"], rows),
        }
    )


def labels(values: list) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "application_id": [f"app-{index}" for index in range(len(values))],
            "default": values,
            "event_timestamp": pd.Timestamp(DAY - dt.timedelta(days=7)),
        }
    )


def with_expectations(config: ModelConfig, *added: Expectation) -> ModelConfig:
    schema = config.schema.model_copy(update={"expectations": [*config.schema.expectations, *added]})
    return config.model_copy(update={"schema_": schema})


def rejected(config: ModelConfig, frame: pd.DataFrame, **kwargs) -> str:
    """Validate a batch that must fail, and return the task failure message."""
    outcome = validate_batch(config, frame, DAY, **kwargs)
    assert not outcome.passed
    assert outcome.summary["blocking_failed"] == len(outcome.blocking_failures) > 0
    return describe_failures(outcome)


# --- a good batch --------------------------------------------------------------------------------


def test_a_good_batch_passes_offline_and_keeps_its_data_docs(state_dir, demo_config, monkeypatch):
    connections = []

    def refuse(sock, address):
        connections.append(address)
        raise OSError("no network in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    outcome = validate_batch(demo_config, applications(), DAY)

    assert outcome.passed, describe_failures(outcome)
    assert (outcome.blocking_failures, outcome.warnings, outcome.skipped) == ([], [], [])
    assert outcome.summary["rows"] == ROWS
    assert outcome.summary["evaluated"] == outcome.summary["successful"] == 35
    assert connections == []
    site = state_dir / "reports" / "gx" / "credit_default" / "day=2026-03-12" / "features"
    assert outcome.data_docs_index == site / "index.html"
    assert outcome.data_docs_index.is_file()
    (page,) = site.glob("validations/**/*.html")
    assert "Succeeded" in page.read_text()
    json.dumps(outcome.to_dict())


def test_revalidating_a_day_replaces_its_data_docs_and_shares_static_assets(state_dir, demo_config):
    validate_batch(demo_config, applications(), DAY)
    outcome = validate_batch(demo_config, applications().drop(columns="region"), DAY)

    site = outcome.data_docs_index.parent
    (page,) = site.glob("validations/**/*.html")
    assert "Failed" in page.read_text()
    assert (site / "static").is_symlink()
    assert (site / "static" / "images" / "favicon.ico").is_file()
    assert [path.name for path in site.parent.iterdir()] == ["features"]


def test_nullable_integer_categorical_and_tz_aware_columns_pass_the_type_checks(state_dir, demo_config):
    frame = applications()
    frame["age"] = frame["age"].astype("Int64")
    frame["region"] = frame["region"].astype("category")
    frame["home_ownership"] = frame["home_ownership"].astype("string")
    frame["event_timestamp"] = frame["event_timestamp"].dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")

    outcome = validate_batch(demo_config, frame, DAY)

    assert outcome.passed, describe_failures(outcome)


# --- bad batches ---------------------------------------------------------------------------------


def test_an_empty_batch_fails_on_its_row_count(state_dir, demo_config):
    message = rejected(demo_config, applications().iloc[:0])

    assert message.endswith(
        "failed 1 blocking expectation: expect_table_row_count_to_be_between: 0 rows, expected [1, inf]"
    )


def test_a_missing_column_fails_naming_the_column_and_skips_its_checks(state_dir, demo_config):
    outcome = validate_batch(demo_config, applications().drop(columns="annual_income"), DAY)

    assert not outcome.passed
    assert describe_failures(outcome) == (
        "batch 2026-03-12 failed 1 blocking expectation: expect_table_columns_to_match_set: missing ['annual_income']"
    )
    assert {finding.column for finding in outcome.skipped} == {"annual_income"}
    assert {finding.expectation_type for finding in outcome.skipped} >= {"expect_column_mean_to_be_between"}


def test_an_extra_column_fails_naming_the_column(state_dir, demo_config):
    frame = applications().assign(income=50_000.0)

    assert "expect_table_columns_to_match_set: unexpected ['income']" in rejected(demo_config, frame)


def test_a_renamed_column_is_reported_as_missing_and_unexpected(state_dir, demo_config):
    frame = applications().rename(columns={"annual_income": "income"})

    assert "missing ['annual_income'], unexpected ['income']" in rejected(demo_config, frame)


def test_ages_as_strings_fail_the_type_check_with_a_row_count_and_samples(state_dir, demo_config):
    frame = applications().astype({"age": str})

    message = rejected(demo_config, frame)

    assert "expect_column_values_to_be_in_dtype_list(age): 200 of 200 rows not of type integer, e.g. ['" in message
    assert "between(age)" not in message


def test_nulls_in_a_required_column_fail_with_their_count(state_dir, demo_config):
    frame = applications().astype({"credit_score": "Int64"})
    frame.loc[:59, "credit_score"] = pd.NA

    message = rejected(demo_config, frame)

    assert message == (
        "batch 2026-03-12 failed 1 blocking expectation: "
        "expect_column_values_to_not_be_null(credit_score): 60 of 200 rows null"
    )


def test_out_of_range_values_fail_with_their_count_and_samples(state_dir, demo_config):
    frame = applications()
    frame.loc[:11, "age"] = 150

    assert "expect_column_values_to_be_between(age): 12 of 200 rows outside [18, 100], e.g. [150]" in rejected(
        demo_config, frame
    )


def test_an_unknown_category_fails_naming_the_value(state_dir, demo_config):
    frame = applications()
    frame.loc[:4, "region"] = "mars"

    message = rejected(demo_config, frame)

    assert (
        "expect_column_values_to_be_in_set(region): 5 of 200 rows not in ['north', 'south', 'east', 'west']" in message
    )
    assert "e.g. ['mars']" in message


def test_duplicate_entity_ids_fail_with_the_duplicated_rows(state_dir, demo_config):
    frame = applications()
    frame.loc[1:2, "application_id"] = frame.loc[0, "application_id"]

    assert "expect_column_values_to_be_unique(application_id): 3 of 200 rows duplicated" in rejected(demo_config, frame)


def test_timestamps_outside_the_day_fail_with_their_count(state_dir, demo_config):
    frame = applications()
    frame.loc[:5, "event_timestamp"] = pd.Timestamp(DAY + dt.timedelta(days=1))
    frame.loc[6:9, "event_timestamp"] = pd.Timestamp(DAY) - pd.Timedelta(seconds=1)

    assert (
        "expect_column_values_to_be_between(event_timestamp): 10 of 200 rows outside "
        "[2026-03-12T00:00:00, 2026-03-13T00:00:00)" in rejected(demo_config, frame)
    )


# --- warnings and hand-written expectations ------------------------------------------------------


def test_a_warn_only_column_out_of_range_passes_with_a_recorded_warning(state_dir, demo_config):
    frame = applications()
    frame.loc[:6, "debt_to_income"] = 42.0

    outcome = validate_batch(demo_config, frame, DAY)

    assert outcome.passed
    assert [str(warning) for warning in outcome.warnings] == [
        "expect_column_values_to_be_between(debt_to_income): 7 of 200 rows outside [0, 10], e.g. [42.0]"
    ]
    assert outcome.summary["warnings"] == 1
    assert "warning: expect_column_values_to_be_between(debt_to_income)" in describe_failures(outcome)


def test_hand_written_expectations_apply_with_their_severity(state_dir, demo_config):
    config = with_expectations(
        demo_config,
        Expectation(
            type="expect_column_max_to_be_between",
            kwargs={"column": "loan_amount", "max_value": 10_000},
            severity="warning",
        ),
    )
    frame = applications().assign(annual_income=lambda batch: batch["annual_income"] / 1000)

    outcome = validate_batch(config, frame, DAY)

    assert [failure.rule for failure in outcome.blocking_failures] == [
        "expect_column_mean_to_be_between(annual_income)"
    ]
    assert outcome.blocking_failures[0].detail.endswith("expected [10000, 500000]")
    assert [warning.rule for warning in outcome.warnings] == ["expect_column_max_to_be_between(loan_amount)"]


def test_a_hand_written_expectation_gx_does_not_know_is_a_config_error(demo_config):
    config = with_expectations(demo_config, Expectation(type="expect_column_to_be_lovely", kwargs={"column": "age"}))

    with pytest.raises(ConfigError, match=r"schema.expectations\[1\]'.*'expect_column_to_be_lovely'"):
        build_feature_suite(config)


# --- labels and unreadable files -----------------------------------------------------------------


def test_labels_with_a_missing_or_non_binary_value_fail(state_dir, demo_config):
    message = rejected(demo_config, labels([0, 1, None, 2]), suite_kind="labels")

    assert message == (
        "labels batch 2026-03-12 failed 2 blocking expectations: "
        "expect_column_values_to_not_be_null(default): 1 of 4 rows null; "
        "expect_column_values_to_be_in_set(default): 1 of 4 rows not in [0, 1], e.g. [2.0]"
    )


def test_a_day_without_labels_passes(state_dir, demo_config):
    outcome = validate_batch(demo_config, labels([]), DAY, suite_kind="labels")

    assert outcome.passed
    assert outcome.data_docs_index.parent.name == "labels"


def test_an_unreadable_file_gets_a_report_naming_the_error(tmp_path):
    report = unreadable_report(tmp_path / "2026-03-12.csv", ValueError("binary content at byte 12"), DAY)

    assert report["passed"] is False
    assert report["message"] == (
        "batch 2026-03-12 failed 1 blocking expectation: file_is_readable: ValueError: binary content at byte 12"
    )
    json.dumps(report)


# --- without Data Docs ---------------------------------------------------------------------------


def test_validating_without_data_docs_reaches_the_same_verdict_findings_and_order(state_dir, demo_config):
    frame = applications()
    frame.loc[frame.index[:5], "age"] = 150
    frame.loc[frame.index[:3], "region"] = "atlantis"

    with_docs = validate_batch(demo_config, frame, DAY)
    without = [validate_batch(demo_config, frame, DAY, data_docs=False) for _ in range(2)]

    for outcome in without:
        assert outcome.data_docs_index is None
        assert describe_failures(outcome) == describe_failures(with_docs)
        assert outcome.summary == with_docs.summary
        assert [result["expectation_config"]["type"] for result in outcome.report["results"]] == [
            result["expectation_config"]["type"] for result in with_docs.report["results"]
        ]
