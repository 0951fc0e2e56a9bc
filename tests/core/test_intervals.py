"""Batch intervals: what a run of each interval reads, which days it covers, and the config errors they bring."""

import datetime as dt

import pytest
import yaml

from include.core import intervals
from include.core.config import ConfigError, load_model_config
from include.core.settings import PROJECT_ROOT

TABLE_EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "loans_table.yaml"
WEDNESDAY = dt.date(2026, 1, 14)


@pytest.mark.parametrize(
    ("interval", "cron", "start", "end"),
    [
        ("hourly", "@hourly", dt.datetime(2026, 1, 14, 13), dt.datetime(2026, 1, 14, 14)),
        ("daily", "@daily", dt.datetime(2026, 1, 14), dt.datetime(2026, 1, 15)),
        ("weekly", "0 0 * * 1", dt.datetime(2026, 1, 12), dt.datetime(2026, 1, 19)),
        ("monthly", "0 0 1 * *", dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1)),
    ],
)
def test_an_interval_is_read_over_its_bounds_and_scheduled_by_its_cron(interval, cron, start, end):
    assert intervals.ingestion_cron(interval) == cron
    assert intervals.interval_bounds(interval, dt.datetime(2026, 1, 14, 13, 45)) == (start, end)


def test_a_week_starts_on_monday_and_covers_seven_days():
    days = intervals.interval_days("weekly", WEDNESDAY)

    assert days[0] == intervals.interval_first_day("weekly", WEDNESDAY) == dt.date(2026, 1, 12)
    assert days[0].weekday() == 0
    assert len(days) == 7 and days[-1] == dt.date(2026, 1, 18)


def test_a_month_covers_its_calendar_days_across_the_new_year():
    assert len(intervals.interval_days("monthly", dt.date(2024, 2, 10))) == 29
    assert intervals.interval_bounds("monthly", dt.date(2025, 12, 31)) == (
        dt.datetime(2025, 12, 1),
        dt.datetime(2026, 1, 1),
    )
    assert intervals.interval_days("hourly", dt.datetime(2026, 1, 14, 23)) == [WEDNESDAY]


def test_aware_moments_are_read_in_utc():
    moment = dt.datetime(2026, 1, 19, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # Sunday 22:30 UTC

    assert intervals.interval_first_day("weekly", moment) == dt.date(2026, 1, 12)


def test_the_intervals_of_a_range_cover_it_whole_intervals_at_a_time():
    starts = intervals.interval_starts("weekly", dt.date(2026, 1, 14), dt.date(2026, 2, 2))

    assert starts == [
        dt.datetime(2026, 1, 12),
        dt.datetime(2026, 1, 19),
        dt.datetime(2026, 1, 26),
        dt.datetime(2026, 2, 2),
    ]
    assert len(intervals.interval_starts("monthly", dt.date(2025, 11, 30), dt.date(2026, 1, 1))) == 3


def test_a_month_back_from_a_day_spans_that_month_length():
    assert intervals.days_in_interval_ending("monthly", dt.date(2026, 1, 31)) == 31
    assert intervals.days_in_interval_ending("monthly", dt.date(2026, 2, 28)) == 28
    assert intervals.days_in_interval_ending("weekly", WEDNESDAY) == 7
    assert intervals.longest_days("monthly") == 31


def test_an_unknown_interval_is_named():
    with pytest.raises(ValueError, match="unknown interval 'fortnightly'; expected one of hourly, daily"):
        intervals.ingestion_cron("fortnightly")


# --- source.interval in the model config --------------------------------------------------------


def table_variant(tmp_path, change):
    raw = yaml.safe_load(TABLE_EXAMPLE.read_text())
    change(raw)
    path = tmp_path / TABLE_EXAMPLE.name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_interval_defaults_to_daily_with_a_one_day_drift_window(tmp_path):
    config = load_model_config(table_variant(tmp_path, lambda raw: None))

    assert config.source.interval == "daily"
    assert config.drift_window_days == 1


def test_a_weekly_source_gets_a_week_long_drift_window_unless_one_is_set(tmp_path):
    weekly = load_model_config(table_variant(tmp_path, lambda raw: raw["source"].update(interval="weekly")))
    set_window = load_model_config(
        table_variant(
            tmp_path, lambda raw: (raw["source"].update(interval="weekly"), raw.update(monitoring={"window_days": 14}))
        )
    )

    assert weekly.drift_window_days == 7
    assert set_window.drift_window_days == 14


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda raw: raw.update(training={**raw["training"], "window_days": 20}), "training.window_days"),
        (lambda raw: raw.update(monitoring={"window_days": 7}), "monitoring.window_days"),
    ],
    ids=["training", "drift"],
)
def test_a_window_shorter_than_one_interval_is_a_config_error_naming_file_and_key(tmp_path, change, key):
    path = table_variant(tmp_path, lambda raw: (raw["source"].update(interval="monthly"), change(raw)))

    with pytest.raises(ConfigError) as error:
        load_model_config(path)

    message = str(error.value)
    assert str(path) in message
    assert f"{key}: " in message and "shorter than one monthly batch interval (31 days" in message


def test_the_synthetic_world_is_daily_only(demo_config, tmp_path):
    raw = yaml.safe_load((PROJECT_ROOT / "include" / "models" / "credit_default.yaml").read_text())
    raw["source"]["interval"] = "weekly"
    path = tmp_path / "credit_default.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    with pytest.raises(ConfigError, match=r"key 'source.interval': got 'weekly'; expected: Input should be 'daily'"):
        load_model_config(path)


def test_an_unsupported_interval_is_a_config_error(tmp_path):
    path = table_variant(tmp_path, lambda raw: raw["source"].update(interval="fortnightly"))

    with pytest.raises(ConfigError, match=r"key 'source.interval': got 'fortnightly'; expected: Input should be"):
        load_model_config(path)


def test_an_hourly_table_source_is_valid_but_an_hourly_files_source_is_a_config_error(tmp_path):
    hourly = load_model_config(table_variant(tmp_path, lambda raw: raw["source"].update(interval="hourly")))
    files = table_variant(
        tmp_path,
        lambda raw: raw.update(
            source={
                "kind": "files",
                "path": "data",
                "pattern": "{day}.csv",
                "start_date": "2024-01-01",
                "interval": "hourly",
            }
        ),
    )

    assert hourly.source.interval == "hourly" and hourly.drift_window_days == 1
    with pytest.raises(ConfigError, match=r"key 'source.interval': got 'hourly'; .*names each file by a day"):
        load_model_config(files)


def test_a_monthly_models_drift_check_compares_a_month_back_from_its_day(tmp_path):
    from include.monitoring.monitoring import window_of

    config = load_model_config(table_variant(tmp_path, lambda raw: raw["source"].update(interval="monthly")))

    assert window_of(config, dt.date(2026, 1, 31)) == (dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert window_of(config, dt.date(2026, 2, 28)) == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert config.drift_window_days == 31  # what lookbacks (retention, a drift streak's start) count on
