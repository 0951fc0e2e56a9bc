"""History import: a long range curates day by day with the daily gate, a bad day goes to quarantine."""

import datetime as dt
import json

import pytest

from include.core import storage
from include.core.storage import REPORT_FILE
from include.data import history_import

MODEL = "credit_default"
BAD_DAY = dt.date(2026, 3, 5)  # the demo world's data-quality incident: nulls in credit_score
RANGE = (dt.date(2026, 3, 3), dt.date(2026, 3, 7))


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


def test_chunks_cover_the_range_in_order_without_overlap():
    chunks = history_import.plan_chunks("2026-01-01", "2026-01-10", 4)

    assert [len(chunk) for chunk in chunks] == [4, 4, 2]
    assert sum(chunks, []) == [day.isoformat() for day in days(dt.date(2026, 1, 1), dt.date(2026, 1, 10))]


@pytest.mark.parametrize(("start", "end", "chunk_days", "named"), [
    ("2026-01-10", "2026-01-01", 4, "end 2026-01-01 is before start 2026-01-10"),
    ("2026-01-01", "2026-01-10", 0, "chunk_days must be a whole number >= 1, got 0"),
])
def test_a_bad_range_is_refused_naming_the_parameter(start, end, chunk_days, named):
    with pytest.raises(ValueError, match=named):
        history_import.plan_chunks(start, end, chunk_days)


def test_a_bad_day_is_quarantined_with_its_report_and_the_others_curate(state_dir, demo_config):
    summary = history_import.import_range(demo_config, *RANGE, chunk_days=2)

    good = [day for day in days(*RANGE) if day != BAD_DAY]
    assert storage.curated_days(MODEL) == good
    assert summary["quarantined"] == [BAD_DAY.isoformat()]
    assert summary["days"] == len(good) and summary["missing"] == []
    assert summary["rows"] == sum(len(storage.read_curated(MODEL, day, day)) for day in good)
    [folder] = storage.quarantined_batches(MODEL, BAD_DAY)
    report = json.loads((folder / REPORT_FILE).read_text())
    assert ("expect_column_values_to_not_be_null", "credit_score") in {
        (failure["expectation_type"], failure["column"]) for failure in report["blocking_failures"]
    }
    assert "credit_score" in summary["errors"][BAD_DAY.isoformat()]
    assert storage.label_days(MODEL) == days(*RANGE)
    problems = history_import.describe_problems(summary)
    assert "1 day(s) quarantined: 2026-03-05" in problems and "4 day(s) curated" in problems


def test_importing_a_range_again_replaces_its_partitions_without_duplicates(state_dir, demo_config):
    first = history_import.import_range(demo_config, *RANGE, chunk_days=3)
    curated = {day: storage.read_curated(MODEL, day, day) for day in storage.curated_days(MODEL)}

    again = history_import.import_range(demo_config, *RANGE, chunk_days=2)

    assert {key: again[key] for key in ("days", "rows", "quarantined")} == {
        key: first[key] for key in ("days", "rows", "quarantined")
    }
    for day, frame in curated.items():
        assert storage.read_curated(MODEL, day, day).equals(frame)
    assert len(storage.quarantined_batches(MODEL, BAD_DAY)) == 1
    assert storage.label_days(MODEL) == days(*RANGE)


def test_a_day_the_source_never_delivered_is_reported_missing(state_dir, demo_config):
    last_day = demo_config.source.end_date
    summary = history_import.import_range(demo_config, last_day, last_day + dt.timedelta(days=1))

    assert summary["missing"] == [(last_day + dt.timedelta(days=1)).isoformat()]
    assert storage.curated_days(MODEL) == [last_day]
    assert "1 day(s) had no batch" in history_import.describe_problems(summary)
