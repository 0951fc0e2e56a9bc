"""Detection quality on the data world's calendar: the sensor's verdict, day by day, per scenario.

The calendar is simulated at the library level, with the demo config as shipped (1,000 rows a
day, its estimator, drift methods and retrain policy): each day the champion scores the day's
curated batch, the labels of the applications of `label_delay_days` ago arrive, and
`monitoring.assess_window` (what the drift sensor runs, minus its reports) decides and records
the check. The champion is a real model fitted by `include.training.training.fit` on days of the world.

| scenario                            | expected                                                 |
|-------------------------------------|----------------------------------------------------------|
| 60 stable days                      | no retrain request                                       |
| data-quality incident, schema break | no retrain request: ingestion quarantines the batches    |
| gradual covariate shift             | a request within 7 days of the shift reaching the effect |
|                                     | size the sensor is configured to see (K-S D of 0.1)      |
| sudden concept drift                | a request within label delay + 3 days of the onset       |

Run `python -m tests.monitoring.test_detection_quality` to print the table of measured days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from include.core.config import ModelConfig
from include.data import ingestion
from include.demo import data_world
from include.monitoring.drift import MIN_EFFECT, build_reference_profile, ks_two_sample
from include.monitoring.monitoring import WindowCheck, assess_window, performance_window
from include.monitoring.retrain_policy import read_history
from include.training.evaluation import compute_metrics
from include.training.training import fit
from include.training.training_data import time_split

ONSETS = {
    "bad_feed": dt.date(2026, 3, 5),
    "renamed_income": dt.date(2026, 3, 12),
    "rising_incomes": dt.date(2026, 3, 20),
    "self_employed_crisis": dt.date(2026, 5, 1),
}


def days_from(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


@dataclass
class Champion:
    model: object
    profile: object
    holdout_metric: float


def train_champion(config: ModelConfig, event_days: list[dt.date], version: str = "1") -> Champion:
    """A model fitted on the world's applications of `event_days`, split by time as training does."""
    frame = pd.concat([data_world.applications_for_day(config, day) for day in event_days], ignore_index=True)
    parts = time_split(frame, config.training.split, config.schema.timestamp_column)
    model = fit(config, parts["train"]).model
    unseen = pd.concat([parts["validation"], parts["holdout"]], ignore_index=True)
    positive = list(model.classes_).index(config.target.positive_label)
    profile = build_reference_profile(
        config, parts["train"], model.predict_proba(unseen[config.features.all])[:, positive], model_version=version
    )
    holdout = compute_metrics(config, model, parts["holdout"])[config.evaluation.primary_metric]
    return Champion(model, profile, holdout)


@dataclass
class Calendar:
    """What the simulated sensor saw and decided, day by day."""

    checks: dict[dt.date, WindowCheck] = field(default_factory=dict)
    quarantined: list[dt.date] = field(default_factory=list)

    @property
    def requests(self) -> list[tuple[dt.date, str]]:
        return [(day, check.decision.reason) for day, check in self.checks.items() if check.decision.retrain]


def simulate(
    config: ModelConfig, champion: Champion, check_days: list[dt.date], quarantined: set[dt.date] = frozenset()
) -> Calendar:
    """Run the sensor's check on each day: the day's batch (unless quarantined), the arrived labels.

    Args:
        quarantined: days whose batch ingestion rejected: no curated rows, nothing scored.
    """
    entity, target = config.schema.entity_column, config.target.column
    delay = dt.timedelta(days=config.target.label_delay_days)
    positive = list(champion.model.classes_).index(config.target.positive_label)
    scored_by_day: dict[dt.date, pd.DataFrame] = {}
    batches: dict[dt.date, pd.DataFrame] = {}

    def scored(day: dt.date) -> pd.DataFrame:
        """The champion's batch predictions of `day` (what batch prediction stores)."""
        if day not in scored_by_day:
            in_world = data_world.in_world(config.source, day)
            batch = data_world.feature_batch(config, day) if in_world and day not in quarantined else None
            if batch is None:
                scored_by_day[day] = pd.DataFrame(columns=[entity, "probability", "version"])
            else:
                probability = champion.model.predict_proba(batch[config.features.all])[:, positive]
                scored_by_day[day] = pd.DataFrame(
                    {entity: batch[entity], "probability": probability, "version": champion.profile.model_version}
                )
                batches[day] = batch
        return scored_by_day[day]

    calendar = Calendar(quarantined=sorted(quarantined))
    for day in check_days:
        today = scored(day)
        window = batches.get(day, pd.DataFrame())
        (first, _), labeled = performance_window(config, day, scored, champion.profile.model_version)
        labels = pd.concat(
            [data_world.labels_arriving_on(config, when)[[entity, target]] for when in days_from(first + delay, day)],
            ignore_index=True,
        )
        calendar.checks[day] = assess_window(
            config, day, champion.profile, window, today["probability"].to_numpy(), labeled, labels,
            champion.holdout_metric,
        )
    return calendar


def income_shift_reaches_effect_size(config: ModelConfig, champion: Champion) -> dt.date:
    """The first day the income shift moves the income distribution by the K-S effect the sensor needs."""
    scenario = next(s for s in config.source.scenarios if s.kind == "covariate_shift")
    reference = champion.profile.numeric[scenario.params["column"]].sorted_values
    for day in days_from(scenario.start, scenario.end):
        shifted = np.sort(reference * data_world.shift_factor(scenario, day))
        if ks_two_sample(reference, shifted)[0] >= MIN_EFFECT["ks"]:
            return day
    raise AssertionError("the shift never reaches the effect size")


def quarantined_by_ingestion(config: ModelConfig, days: list[dt.date]) -> set[dt.date]:
    """The days among `days` whose delivered batch the real ingestion gate rejects."""
    rejected = set()
    for day in days:
        landed = ingestion.land(config, day)
        try:
            ingestion.validate(config, day, landed["batch_uri"])
        except ingestion.BatchRejected:
            rejected.add(day)
    return rejected


def broken_batch_days(config: ModelConfig) -> set[dt.date]:
    """The days the calendar breaks the delivered batch (what ingestion quarantines)."""
    kinds = ("data_quality_incident", "schema_break")
    return {
        when for scenario in config.source.scenarios if scenario.kind in kinds
        for when in days_from(scenario.start, scenario.end or scenario.start)
    }


def stable_world(config: ModelConfig) -> ModelConfig:
    """The demo world with no scenario: a year of ordinary life."""
    return config.model_copy(update={"source": config.source.model_copy(update={"scenarios": []})})


# --- the scenarios -------------------------------------------------------------------------------


@pytest.mark.slow
def test_sixty_stable_days_request_no_retrain(state_dir, demo_config, one_openmp_thread):
    config = stable_world(demo_config)
    champion = train_champion(config, days_from(dt.date(2026, 1, 1), dt.date(2026, 1, 30)))

    calendar = simulate(config, champion, days_from(dt.date(2026, 1, 31), dt.date(2026, 3, 31)))

    assert len(calendar.checks) == 60
    assert calendar.requests == []
    assert len(read_history(config.name)) == 60


@pytest.mark.slow
def test_the_data_quality_incident_and_the_schema_break_request_no_retrain(
    state_dir, demo_config, one_openmp_thread
):
    champion = train_champion(demo_config, days_from(dt.date(2026, 2, 1), dt.date(2026, 3, 1)))
    incidents = [ONSETS["bad_feed"], ONSETS["renamed_income"]]
    quarantined = quarantined_by_ingestion(demo_config, [*incidents, dt.date(2026, 3, 6)])

    calendar = simulate(demo_config, champion, days_from(dt.date(2026, 3, 2), dt.date(2026, 3, 19)), quarantined)

    assert quarantined == set(incidents) == broken_batch_days(demo_config), "ingestion rejects the broken batches"
    assert calendar.requests == []
    for day in incidents:
        assert calendar.checks[day].drift is None, "a quarantined batch gets no drift verdict"
        assert "below" in calendar.checks[day].decision.explanation


@pytest.mark.slow
def test_the_gradual_income_shift_requests_a_retrain_within_a_week_of_reaching_the_effect_size(
    state_dir, demo_config, one_openmp_thread
):
    champion = train_champion(demo_config, days_from(dt.date(2026, 2, 1), dt.date(2026, 3, 1)))
    reached = income_shift_reaches_effect_size(demo_config, champion)

    calendar = simulate(
        demo_config, champion, days_from(ONSETS["rising_incomes"], dt.date(2026, 4, 18)), broken_batch_days(demo_config)
    )

    first_day, reason = calendar.requests[0]
    assert reason == "drift"
    assert 0 <= (first_day - reached).days <= 7
    assert "annual_income" in calendar.checks[first_day].drift.drifted_columns


@pytest.mark.slow
def test_the_sudden_concept_drift_requests_a_retrain_within_the_label_delay_and_three_days(
    state_dir, demo_config, one_openmp_thread
):
    settled = days_from(dt.date(2026, 4, 19), dt.date(2026, 4, 30))
    champion = train_champion(demo_config, settled)
    onset = ONSETS["self_employed_crisis"]

    calendar = simulate(demo_config, champion, days_from(onset, dt.date(2026, 5, 20)))

    first_day, reason = calendar.requests[0]
    assert reason == "performance"
    assert (first_day - onset).days <= demo_config.target.label_delay_days + 3
    assert calendar.checks[first_day].drift.drifted_columns == [], "P(x) did not move: only labels show it"


# --- the table for the README --------------------------------------------------------------------


def measure(config: ModelConfig) -> list[dict]:  # pragma: no cover - run by hand for the README
    """Every scenario's measured days, as rows of the README's table."""
    import os
    import tempfile

    def fresh_store() -> None:
        os.environ["MLOPS_DATA_DIR"] = tempfile.mkdtemp(prefix="detection-quality-")

    rows = []
    fresh_store()
    stable = stable_world(config)
    champion = train_champion(stable, days_from(dt.date(2026, 1, 1), dt.date(2026, 1, 30)))
    calendar = simulate(stable, champion, days_from(dt.date(2026, 1, 31), dt.date(2026, 3, 31)))
    rows.append({"scenario": "60 stable days", "requests": calendar.requests})

    fresh_store()
    champion = train_champion(config, days_from(dt.date(2026, 2, 1), dt.date(2026, 3, 1)))
    quarantined = quarantined_by_ingestion(config, [ONSETS["bad_feed"], ONSETS["renamed_income"]])
    calendar = simulate(config, champion, days_from(dt.date(2026, 3, 2), dt.date(2026, 4, 30)), quarantined)
    reached = income_shift_reaches_effect_size(config, champion)
    incident_requests = [(d, r) for d, r in calendar.requests if d < ONSETS["rising_incomes"]]
    rows.append({"scenario": "bad_feed + renamed_income", "quarantined": calendar.quarantined,
                 "requests": incident_requests})
    shift = [(d, r) for d, r in calendar.requests if d >= ONSETS["rising_incomes"]]
    first_drift = next((d for d, c in calendar.checks.items() if c.drift is not None and c.drift.dataset_drifted
                        and d >= ONSETS["rising_incomes"]), None)
    rows.append({"scenario": "rising_incomes", "onset": ONSETS["rising_incomes"], "effect_size_reached": reached,
                 "first_drifted_window": first_drift, "requests": shift,
                 "days_from_onset": (shift[0][0] - ONSETS["rising_incomes"]).days if shift else None,
                 "days_from_effect_size": (shift[0][0] - reached).days if shift else None})

    fresh_store()
    champion = train_champion(config, days_from(dt.date(2026, 4, 19), dt.date(2026, 4, 30)))
    calendar = simulate(config, champion, days_from(ONSETS["self_employed_crisis"], dt.date(2026, 5, 30)))
    drops = {d.isoformat(): round(c.metric_drop, 3) for d, c in calendar.checks.items() if c.metric_drop is not None}
    rows.append({"scenario": "self_employed_crisis", "onset": ONSETS["self_employed_crisis"],
                 "holdout": round(champion.holdout_metric, 3), "requests": calendar.requests,
                 "days_from_onset": (calendar.requests[0][0] - ONSETS["self_employed_crisis"]).days
                 if calendar.requests else None, "drops": drops})
    return rows


if __name__ == "__main__":  # pragma: no cover
    import os
    import tempfile

    from threadpoolctl import threadpool_limits

    from include.core.config import get_model_config

    os.environ.setdefault("MLOPS_STATE_DIR", tempfile.mkdtemp(prefix="detection-quality-"))
    with threadpool_limits(1):
        for row in measure(get_model_config("credit_default")):
            print(row)
