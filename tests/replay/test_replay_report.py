"""The replay report (include/replay/report.py) on a hand-built 40-day replay of three policies.

The world, from 2026-03-01 (day 0) to 2026-04-09 (day 39); every model serves from day 2:

- `every_day` (the reference) holds a 7-day metric of 0.80 (0.79 on day 32);
- `level0` drops to 0.70 at the concept drift (day 10) and stays there;
- `triggered` drops to 0.75 at the drift, bounces back for 3 days (15-17: too short to count),
  drops again (18-19), is level from day 20 (a day without a value, 22, in the middle), then
  falls behind briefly at the base-rate change (days 30-31) and is level from day 32.
"""

import datetime as dt
import json
import math

import pandas as pd
import pytest

from include.core.config import Scenario
from include.core.jsonable import to_jsonable
from include.replay.report import NO_GROUND_TRUTH, summarize, write_outputs

START = dt.date(2026, 3, 1)
DAYS = 40
POLICIES = [
    {"name": "level0", "description": "train once, never retrain", "listens_to_requests": False},
    {"name": "triggered", "description": "retrain on drift or performance requests", "listens_to_requests": True},
    {"name": "every_day", "description": "retrain every day, no gate", "listens_to_requests": False},
]
SCENARIOS = [
    Scenario(name="stable_start", kind="stable", start=START, end=dt.date(2026, 3, 9)),
    Scenario(name="crisis", kind="concept_drift", start=dt.date(2026, 3, 11)),
    Scenario(name="defaults", kind="base_rate_change", start=dt.date(2026, 3, 31), end=dt.date(2026, 4, 4)),
    Scenario(name="next_year", kind="covariate_shift", start=dt.date(2026, 5, 1)),
]
HEADER = {"Model": "credit_default", "Days replayed": "2026-03-01 .. 2026-04-09 (40)", "Elapsed": "3 s"}


def day(index: int) -> str:
    return (START + dt.timedelta(days=index)).isoformat()


def weekly_metric(policy: str, index: int) -> float:
    if index < 2:
        return math.nan
    if policy == "every_day":
        return 0.79 if index == 32 else 0.80
    if policy == "level0":
        return 0.80 if index < 10 else 0.70
    if index == 22:
        return math.nan
    if 10 <= index <= 14 or 18 <= index <= 19:
        return 0.75
    if index in (30, 31):
        return 0.77
    return 0.79 if index >= 32 else 0.80


# day -> (retrain trigger, gate, promoted version, training CPU seconds)
TRAININGS = {
    "level0": {0: ("on_demand", "no gate", "1", 1.04), 1: ("", "", "", 1.03)},
    "triggered": {
        0: ("on_demand", "passed", "1", 1.2),
        13: ("drift", "rejected", "", 1.2),
        16: ("drift", "passed", "2", 1.2),
        34: ("performance", "passed", "3", 1.2),
    },
    "every_day": {index: ("schedule", "no gate", str(index + 1), 1.5) for index in range(DAYS)},
}
REQUESTS = {"triggered": {8: "drift", 12: "drift", 33: "performance"}}


def build_days(value=lambda v: v) -> pd.DataFrame:
    """The replay's rows; `value` maps every metric value (to turn the metric's direction around)."""
    rows = []
    for policy in ("level0", "triggered", "every_day"):
        for index in range(DAYS):
            weekly = weekly_metric(policy, index)
            daily = 0.72 if policy == "every_day" and index == 32 else weekly
            retrain, gate, promoted, cpu = TRAININGS[policy].get(index, ("", "", "", 0.0))
            rows.append(
                {
                    "policy": policy,
                    "day": day(index),
                    "curated": True,
                    "served_by": "" if index < 2 else "1",
                    "rows_scored": 0 if index < 2 else 100,
                    "labelled_rows": 0 if index < 2 else 100,
                    "realized_metric": value(daily),
                    "realized_metric_7d": value(weekly),
                    "request": REQUESTS.get(policy, {}).get(index, ""),
                    "retrain": retrain,
                    "retrain_why": f"{retrain} training" if retrain else "",
                    "trained_version": promoted,
                    "gate": gate,
                    "promoted_version": promoted,
                    "train_cpu_seconds": cpu,
                }
            )
    return pd.DataFrame(rows)


def summary_of(days: pd.DataFrame, greater_is_better: bool = True, scenarios=SCENARIOS) -> dict:
    return summarize(
        days, metric="roc_auc", greater_is_better=greater_is_better, policies=POLICIES, scenarios=scenarios
    )


@pytest.fixture(scope="module")
def summary() -> dict:
    return summary_of(build_days())


def test_each_policy_reports_its_mean_worst_week_retrains_promotions_and_training_cpu(summary):
    level0, triggered, every_day = (summary["policies"][name] for name in ("level0", "triggered", "every_day"))
    assert list(summary["policies"]) == ["level0", "triggered", "every_day"]
    assert level0["mean_metric"] == pytest.approx(round((8 * 0.80 + 30 * 0.70) / 38, 4))
    assert (level0["worst_7day_metric"], level0["worst_7day_on"]) == (0.70, "2026-03-11")
    assert (level0["retrains"], level0["promotions"], level0["train_cpu_seconds"]) == (1, 1, 2.1)
    assert (triggered["retrains"], triggered["promotions"], triggered["train_cpu_seconds"]) == (4, 3, 4.8)
    assert triggered["days_scored"] == 37
    assert every_day["mean_metric"] == pytest.approx(round((37 * 0.80 + 0.72) / 38, 4))
    assert (every_day["worst_7day_metric"], every_day["worst_7day_on"]) == (0.79, "2026-04-02")
    assert (every_day["retrains"], every_day["promotions"], every_day["train_cpu_seconds"]) == (40, 40, 60.0)
    assert summary["first_scored_day"] == "2026-03-03"


def test_a_policy_that_falls_behind_recovers_only_once_level_for_seven_days(summary):
    crisis = summary["scenarios"]["crisis"]
    # back within tolerance on 03-16..03-18, behind again on 03-19: the bounce does not count;
    # level from 03-21 on, the day without a value (03-23) does not break the run
    assert crisis["triggered"]["fell_behind_on"] == "2026-03-11"
    assert crisis["triggered"]["recovered_on"] == "2026-03-21"
    assert crisis["level0"] == {
        "first_request": None,
        "first_request_reason": None,
        "fell_behind_on": "2026-03-11",
        "recovered_on": None,
        "mean_metric": 0.70,
    }
    assert crisis["every_day"]["fell_behind_on"] is None
    assert crisis["every_day"]["recovered_on"] == crisis["onset"] == "2026-03-11"


def test_recovery_is_judged_within_the_scenario_period_only(summary):
    defaults = summary["scenarios"]["defaults"]
    assert defaults["triggered"]["fell_behind_on"] == "2026-03-31"
    assert defaults["triggered"]["recovered_on"] == "2026-04-02"
    # the crisis's period ends the day before the next onset: the dip of 03-31 is not the crisis's
    assert summary["scenarios"]["crisis"]["triggered"]["recovered_on"] == "2026-03-21"


def test_a_policy_exactly_tolerance_below_the_reference_is_level():
    days = build_days()
    days.loc[(days["policy"] == "triggered") & (days["day"] >= day(32)), "realized_metric_7d"] = 0.78
    defaults = summary_of(days)["scenarios"]["defaults"]["triggered"]
    assert (defaults["fell_behind_on"], defaults["recovered_on"]) == ("2026-03-31", "2026-04-02")


def test_a_recovery_whose_seven_days_run_past_the_period_does_not_count():
    days = build_days()
    late = (days["policy"] == "triggered") & days["day"].between(day(20), day(25))
    days.loc[late, "realized_metric_7d"] = 0.75  # level only from 03-27: 4 days before the next onset
    crisis = summary_of(days)["scenarios"]["crisis"]["triggered"]
    assert (crisis["fell_behind_on"], crisis["recovered_on"]) == ("2026-03-11", None)


def test_first_request_is_the_first_after_the_onset_and_before_the_next_scenario(summary):
    assert summary["scenarios"]["crisis"]["triggered"]["first_request"] == "2026-03-13"  # not 03-09's
    assert summary["scenarios"]["crisis"]["triggered"]["first_request_reason"] == "drift"
    assert summary["scenarios"]["defaults"]["triggered"]["first_request"] == "2026-04-03"
    days = build_days()
    days.loc[(days["policy"] == "triggered") & (days["day"] == day(12)), "request"] = ""
    # without its request of 03-13 the crisis has none: the one of 04-03 belongs to the next scenario
    assert summary_of(days)["scenarios"]["crisis"]["triggered"]["first_request"] is None


def test_a_scenario_mean_runs_to_its_end_not_to_the_next_onset(summary):
    crisis_days = [weekly_metric("triggered", index) for index in range(10, DAYS)]
    expected = sum(v for v in crisis_days if not math.isnan(v)) / sum(not math.isnan(v) for v in crisis_days)
    assert summary["scenarios"]["crisis"]["triggered"]["mean_metric"] == pytest.approx(round(expected, 4))
    assert summary["scenarios"]["defaults"]["triggered"]["mean_metric"] == pytest.approx(
        round((0.77 * 2 + 0.79 * 3) / 5, 4)
    )
    assert summary["scenarios"]["defaults"]["end"] == "2026-04-04"
    assert summary["scenarios"]["crisis"]["end"] is None


def test_scenarios_before_the_first_scored_day_or_after_the_last_day_are_named_in_the_note(summary):
    assert list(summary["scenarios"]) == ["crisis", "defaults"]
    assert "stable_start, next_year" in summary["scenarios_note"]
    assert "2026-03-03" in summary["scenarios_note"]


def test_a_source_without_ground_truth_leaves_the_scenarios_out_with_a_note():
    summary = summary_of(build_days(), scenarios=None)
    assert summary["scenarios"] is None
    assert summary["scenarios_note"] == NO_GROUND_TRUTH
    assert summary["policies"]["level0"]["retrains"] == 1


def test_without_the_reference_policy_recovery_is_left_empty_and_the_note_says_why():
    days = build_days()
    summary = summary_of(days[days["policy"] != "every_day"])
    assert list(summary["policies"]) == ["level0", "triggered"]
    assert summary["first_scored_day"] == "2026-03-03"
    assert "recovery needs the reference policy `every_day`" in summary["scenarios_note"]
    for scenario in summary["scenarios"].values():
        for name in ("level0", "triggered"):
            assert scenario[name]["fell_behind_on"] is None
            assert scenario[name]["recovered_on"] is None
    assert summary["scenarios"]["crisis"]["triggered"]["first_request"] == "2026-03-13"


def test_when_lower_is_better_the_highest_week_is_the_worst_and_higher_is_behind():
    flipped = build_days(lambda v: round(1 - v, 4))
    lower = summary_of(flipped, greater_is_better=False)
    assert (lower["policies"]["level0"]["worst_7day_metric"], lower["policies"]["level0"]["worst_7day_on"]) == (
        0.30,
        "2026-03-11",
    )
    assert lower["scenarios"]["crisis"]["level0"]["fell_behind_on"] == "2026-03-11"
    assert lower["scenarios"]["crisis"]["triggered"]["recovered_on"] == "2026-03-21"
    # read as greater-is-better, the same numbers put level0 ahead of the reference: never behind
    higher = summary_of(flipped, greater_is_better=True)
    assert higher["policies"]["level0"]["worst_7day_metric"] == 0.20
    assert higher["scenarios"]["crisis"]["level0"]["fell_behind_on"] is None
    assert higher["scenarios"]["crisis"]["level0"]["recovered_on"] == "2026-03-11"


def test_outputs_are_a_csv_a_json_a_png_and_a_report(summary, tmp_path):
    days = build_days()
    paths = write_outputs(days, summary, tmp_path / "run", HEADER, SCENARIOS)
    assert {name: path.name for name, path in paths.items()} == {
        "days": "days.csv",
        "summary": "summary.json",
        "plot": "replay.png",
        "report": "report.md",
    }

    png = paths["plot"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000

    with paths["summary"].open() as file:
        written = json.load(file)
    assert written["run"] == HEADER
    assert {key: value for key, value in written.items() if key != "run"} == to_jsonable(summary)

    # days.csv read back (empty strings come back as NaN) summarizes the same
    assert summary_of(pd.read_csv(paths["days"])) == summary


def test_the_report_lists_the_run_the_policies_and_each_scenario_outcome(summary, tmp_path):
    report = write_outputs(build_days(), summary, tmp_path, HEADER, SCENARIOS)["report"].read_text()
    lines = report.splitlines()
    assert lines[0] == "# Replay of credit_default: what each retraining policy buys"
    assert "- **Days replayed**: 2026-03-01 .. 2026-04-09 (40)" in lines
    assert "| policy | what it does | mean roc_auc | worst 7-day | retrains | promotions | training CPU s | " \
           "CPU vs every_day |" in lines
    level0 = next(line for line in lines if line.startswith("| `level0` |"))
    assert level0.endswith("| 0.7000 (2026-03-11) | 1 | 1 | 2.1 | 1/29 |")
    assert next(line for line in lines if line.startswith("| `every_day` |")).endswith("| 60.0 | 1.00× |")
    crisis = next(line for line in lines if line.startswith("| crisis (concept_drift) |"))
    assert crisis == (
        "| crisis (concept_drift) | 2026-03-11 | — / not recovered (behind from 2026-03-11) "
        "| 2026-03-13 (drift) / 2026-03-21 (behind from 2026-03-11) | — / never fell behind |"
    )
    assert "stable_start, next_year" in report
    assert "## How to read this" in report


def test_without_the_reference_the_report_drops_the_cpu_ratio_and_without_ground_truth_shows_the_note(tmp_path):
    days = build_days()
    days = days[days["policy"] != "every_day"]
    summary = summary_of(days, scenarios=None)
    report = write_outputs(days, summary, tmp_path, HEADER)["report"].read_text()
    assert "CPU vs" not in report
    assert NO_GROUND_TRUTH in report
    assert "| `triggered` |" in report
