"""The synthetic data world: deterministic days, realistic outcomes, and scenarios that do what they say."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from include.core.config import ModelConfig, Scenario
from include.demo import data_world

STABLE_DAY = dt.date(2026, 1, 10)
INCIDENT_DAY = dt.date(2026, 3, 5)
SCHEMA_BREAK_DAY = dt.date(2026, 3, 12)
SHIFT_START, SHIFT_END = dt.date(2026, 3, 20), dt.date(2026, 4, 18)
CONCEPT_DRIFT_START = dt.date(2026, 5, 1)
BASE_RATE_START, BASE_RATE_END = dt.date(2026, 8, 15), dt.date(2026, 8, 29)


def days(first: dt.date, count: int) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range(count)]


def applications(config: ModelConfig, first: dt.date, count: int) -> pd.DataFrame:
    return pd.concat([data_world.applications_for_day(config, day) for day in days(first, count)])


def with_source(config: ModelConfig, **changes) -> ModelConfig:
    return config.model_copy(update={"source": config.source.model_copy(update=changes)})


def with_scenarios(config: ModelConfig, *scenarios: Scenario) -> ModelConfig:
    return with_source(config, scenarios=list(scenarios))


def without_scenario(config: ModelConfig, name: str) -> list[Scenario]:
    return [scenario for scenario in config.source.scenarios if scenario.name != name]


# --- determinism and shape -----------------------------------------------------------------------


def test_the_same_seed_and_day_give_identical_frames(demo_config):
    first = data_world.feature_batch(demo_config, INCIDENT_DAY)
    data_world.applications_for_day(demo_config, STABLE_DAY)
    again = data_world.feature_batch(demo_config, INCIDENT_DAY)

    pd.testing.assert_frame_equal(first, again)


def test_another_seed_gives_different_applications(demo_config):
    ours = data_world.applications_for_day(demo_config, STABLE_DAY)
    theirs = data_world.applications_for_day(with_source(demo_config, seed=7), STABLE_DAY)

    assert list(ours["application_id"]) == list(theirs["application_id"])
    assert not np.array_equal(ours["annual_income"], theirs["annual_income"])
    assert not np.array_equal(ours["default"], theirs["default"])


def test_applications_follow_the_schema_of_the_model_config(demo_config):
    frame = data_world.applications_for_day(demo_config, STABLE_DAY)
    columns = demo_config.schema.columns

    assert list(frame.columns) == [*columns, "default"]
    assert len(frame) == demo_config.source.rows_per_day
    assert frame["application_id"].is_unique
    assert frame["event_timestamp"].dtype == "datetime64[ns]"
    assert frame["event_timestamp"].dt.normalize().eq(pd.Timestamp(STABLE_DAY)).all()
    assert frame["event_timestamp"].is_monotonic_increasing
    for name, column in columns.items():
        values = frame[name].dropna()
        if column.type == "integer":
            assert frame[name].dtype == "int64", name
        if column.min is not None:
            assert values.min() >= column.min, name
        if column.max is not None:
            assert values.max() <= column.max, name
        if column.allowed is not None:
            assert set(values) <= set(column.allowed), name
        if not column.nullable:
            assert frame[name].notna().all(), name
    assert 0 < frame["debt_to_income"].isna().mean() < 0.05
    assert set(frame["default"]) == {0, 1}


def test_application_ids_are_unique_across_days(demo_config):
    frame = applications(demo_config, STABLE_DAY, 3)

    assert frame["application_id"].is_unique
    assert frame["application_id"].iloc[0] == "A20260110-000000"


def test_days_outside_the_world_are_refused_naming_its_range(demo_config):
    for outside in (dt.date(2025, 12, 31), dt.date(2027, 1, 1)):
        with pytest.raises(ValueError, match="2026-01-01 to 2026-12-31"):
            data_world.applications_for_day(demo_config, outside)


def test_the_demo_world_is_a_year_long(demo_config):
    days = data_world.world_days(demo_config.source)

    assert (days[0], days[-1], len(days)) == (dt.date(2026, 1, 1), dt.date(2026, 12, 31), 365)


def test_a_scenario_naming_an_unknown_column_is_refused_naming_the_key(demo_config):
    broken = with_scenarios(
        demo_config,
        Scenario(name="typo", kind="covariate_shift", start=STABLE_DAY, params={"column": "incme", "factor": 2}),
    )

    with pytest.raises(ValueError, match=r"scenarios\['typo'\]\.params\.column: got 'incme'"):
        data_world.feature_batch(broken, STABLE_DAY)


# --- a world a model can learn -------------------------------------------------------------------


def test_the_default_rate_is_realistic(demo_config):
    rate = applications(demo_config, STABLE_DAY, 10)["default"].mean()

    assert 0.10 <= rate <= 0.25


def test_a_model_trained_on_stable_days_clears_the_gate_floor_without_being_perfect(demo_config):
    config = with_source(demo_config, rows_per_day=2000)
    train = applications(config, dt.date(2026, 1, 1), 10)
    holdout = applications(config, dt.date(2026, 1, 20), 3)
    features = demo_config.features

    def encode(frame: pd.DataFrame) -> pd.DataFrame:
        encoded = pd.get_dummies(frame[features.all], columns=features.categorical, dtype=float)
        return encoded.fillna({"debt_to_income": train["debt_to_income"].median()})

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(encode(train), train["default"])
    auc = roc_auc_score(holdout["default"], model.predict_proba(encode(holdout))[:, 1])

    assert 0.75 <= auc <= 0.85


def test_stable_days_have_similar_distributions(demo_config):
    january = applications(demo_config, dt.date(2026, 1, 5), 7)
    february = applications(demo_config, dt.date(2026, 2, 15), 7)

    for name in ("age", "annual_income", "loan_amount", "credit_score", "debt_to_income", "default"):
        assert february[name].mean() == pytest.approx(january[name].mean(), rel=0.1), name
    for name in ("employment_type", "home_ownership", "region"):
        shares = pd.concat(
            [january[name].value_counts(normalize=True), february[name].value_counts(normalize=True)], axis=1
        )
        assert (shares.iloc[:, 0] - shares.iloc[:, 1]).abs().max() < 0.02, name


# --- scenarios -----------------------------------------------------------------------------------


def test_ground_truth_gives_each_scenario_its_onset(demo_config):
    truth = data_world.ground_truth(demo_config.source)

    assert truth == {
        "stable_start": dt.date(2026, 1, 1),
        "bad_feed": INCIDENT_DAY,
        "renamed_income": SCHEMA_BREAK_DAY,
        "rising_incomes": SHIFT_START,
        "self_employed_crisis": CONCEPT_DRIFT_START,
        "rising_defaults": BASE_RATE_START,
    }


def test_scenario_on_a_day_is_the_period_containing_it(demo_config):
    source = demo_config.source

    assert data_world.scenario_on(source, STABLE_DAY).name == "stable_start"
    assert data_world.scenario_on(source, INCIDENT_DAY).name == "bad_feed"
    assert data_world.scenario_on(source, dt.date(2026, 3, 3)) is None
    assert data_world.scenario_on(source, dt.date(2026, 4, 1)).name == "rising_incomes"
    assert data_world.scenario_on(source, dt.date(2026, 5, 20)).name == "self_employed_crisis"
    assert [s.name for s in data_world.active_scenarios(source, dt.date(2026, 5, 20))] == [
        "rising_incomes",
        "self_employed_crisis",
    ]
    assert data_world.scenario_on(source, dt.date(2026, 8, 20)).name == "rising_defaults"
    assert data_world.scenario_on(source, dt.date(2026, 10, 1)).name == "self_employed_crisis"
    assert [s.name for s in data_world.active_scenarios(source, dt.date(2026, 10, 1))] == [
        "rising_incomes",
        "self_employed_crisis",
        "rising_defaults",
    ]


def test_a_stable_day_delivers_the_true_applications_without_the_target(demo_config):
    truth = data_world.applications_for_day(demo_config, STABLE_DAY)

    batch = data_world.feature_batch(demo_config, STABLE_DAY)

    pd.testing.assert_frame_equal(batch, truth.drop(columns="default"))


def test_the_incident_day_delivers_nulls_other_units_and_out_of_range_values_at_the_configured_shares(
    demo_config,
):
    truth = data_world.applications_for_day(demo_config, INCIDENT_DAY)

    batch = data_world.feature_batch(demo_config, INCIDENT_DAY)

    rows = len(batch)
    assert batch["credit_score"].isna().sum() == round(0.3 * rows)
    assert batch["credit_score"].dtype == "Int64"
    np.testing.assert_allclose(batch["annual_income"], truth["annual_income"] * 0.001)
    out_of_range = ~batch["age"].between(18, 100)
    assert out_of_range.sum() == round(0.05 * rows)
    assert (batch["age"] < 18).any() and (batch["age"] > 100).any()
    assert truth["credit_score"].notna().all() and truth["age"].between(18, 100).all()


def test_the_schema_break_renames_the_column_on_its_day_only(demo_config):
    broken = data_world.feature_batch(demo_config, SCHEMA_BREAK_DAY)
    next_day = data_world.feature_batch(demo_config, SCHEMA_BREAK_DAY + dt.timedelta(days=1))

    assert "income" in broken and "annual_income" not in broken
    assert "annual_income" in next_day and "income" not in next_day


def test_a_schema_break_can_also_drop_and_retype_columns(demo_config):
    config = with_scenarios(
        demo_config,
        Scenario(
            name="new_feed_format",
            kind="schema_break",
            start=STABLE_DAY,
            end=STABLE_DAY,
            params={"drop": ["region"], "retype": {"credit_score": "string"}},
        ),
    )

    batch = data_world.feature_batch(config, STABLE_DAY)

    assert "region" not in batch
    assert batch["credit_score"].map(type).eq(str).all()


def test_the_covariate_shift_grows_linearly_to_its_factor_and_stays():
    rising = Scenario(
        name="rising_incomes",
        kind="covariate_shift",
        start=SHIFT_START,
        end=SHIFT_END,
        params={"column": "annual_income", "factor": 1.8},
    )
    midway = SHIFT_START + (SHIFT_END - SHIFT_START) / 2

    factors = [data_world.shift_factor(rising, day) for day in (SHIFT_START, midway, SHIFT_END)]

    assert factors == pytest.approx([1.0, 1.4, 1.8], abs=0.02)
    assert data_world.shift_factor(rising, SHIFT_END + dt.timedelta(days=30)) == 1.8


def test_the_covariate_shift_raises_mean_income_by_its_factor(demo_config):
    before = applications(demo_config, SHIFT_START - dt.timedelta(days=5), 5)
    after = applications(demo_config, SHIFT_END, 5)

    ratio = after["annual_income"].mean() / before["annual_income"].mean()

    assert ratio == pytest.approx(1.8, rel=0.08)


def test_the_covariate_shift_moves_only_its_column_and_the_outcomes_that_follow_from_it(demo_config):
    unshifted = with_scenarios(demo_config)

    shifted_day = data_world.applications_for_day(demo_config, SHIFT_END)
    same_day_without = data_world.applications_for_day(unshifted, SHIFT_END)

    untouched = [name for name in shifted_day if name not in ("annual_income", "default")]
    pd.testing.assert_frame_equal(shifted_day[untouched], same_day_without[untouched])
    assert shifted_day["default"].mean() < same_day_without["default"].mean()


def test_concept_drift_raises_the_segment_default_rate_while_features_stay_similar(demo_config):
    before = applications(demo_config, CONCEPT_DRIFT_START - dt.timedelta(days=10), 10)
    after = applications(demo_config, CONCEPT_DRIFT_START, 10)

    def segment_rate(frame: pd.DataFrame) -> float:
        return frame.loc[frame["employment_type"] == "self_employed", "default"].mean()

    assert segment_rate(after) > segment_rate(before) + 0.15
    for name in ("age", "annual_income", "loan_amount", "credit_score", "debt_to_income"):
        assert after[name].mean() == pytest.approx(before[name].mean(), rel=0.05), name
    segment_share = [(frame["employment_type"] == "self_employed").mean() for frame in (before, after)]
    assert segment_share[1] == pytest.approx(segment_share[0], abs=0.02)


def test_concept_drift_changes_outcomes_but_not_features(demo_config):
    day = CONCEPT_DRIFT_START + dt.timedelta(days=3)
    without_drift = with_scenarios(demo_config, *without_scenario(demo_config, "self_employed_crisis"))

    drifted = data_world.applications_for_day(demo_config, day)
    undrifted = data_world.applications_for_day(without_drift, day)

    pd.testing.assert_frame_equal(drifted.drop(columns="default"), undrifted.drop(columns="default"))
    assert not drifted["default"].equals(undrifted["default"])


def base_rate_change(logit_shift: float, start: dt.date = STABLE_DAY, end: dt.date | None = None) -> Scenario:
    return Scenario(name="downturn", kind="base_rate_change", start=start, end=end, params={"logit_shift": logit_shift})


def test_a_base_rate_change_ramps_its_logit_shift_from_start_to_end_and_stays():
    ramped = base_rate_change(0.7, start=BASE_RATE_START, end=BASE_RATE_END)
    midway = BASE_RATE_START + (BASE_RATE_END - BASE_RATE_START) / 2
    later = BASE_RATE_END + dt.timedelta(days=60)

    shifts = [data_world.base_rate_shift(ramped, day) for day in (BASE_RATE_START - dt.timedelta(days=1),
                                                                   BASE_RATE_START, midway, BASE_RATE_END, later)]

    assert shifts == pytest.approx([0.0, 0.0, 0.35, 0.7, 0.7])
    assert data_world.base_rate_shift(base_rate_change(0.7, start=BASE_RATE_START), BASE_RATE_START) == 0.7


def test_a_base_rate_change_raises_the_default_rate_for_everyone_and_changes_nothing_else(demo_config):
    before = with_scenarios(demo_config)
    after = with_scenarios(demo_config, base_rate_change(0.7))

    usual, raised = applications(before, STABLE_DAY, 10), applications(after, STABLE_DAY, 10)

    pd.testing.assert_frame_equal(usual.drop(columns="default"), raised.drop(columns="default"))
    assert usual["default"].mean() == pytest.approx(0.17, abs=0.02)
    assert raised["default"].mean() == pytest.approx(0.26, abs=0.02), "odds of default about ×2 (e^0.7)"
    assert (raised["default"] >= usual["default"]).all(), "applicants who defaulted still do; others may now"
    by_type = pd.DataFrame({"usual": usual["default"], "raised": raised["default"]}).groupby(
        usual["employment_type"]
    ).mean()
    assert (by_type["raised"] > by_type["usual"]).all(), "the default rate rises in every segment"


def test_a_negative_logit_shift_lowers_the_default_rate(demo_config):
    usual = applications(with_scenarios(demo_config), STABLE_DAY, 5)["default"].mean()
    lowered = applications(with_scenarios(demo_config, base_rate_change(-0.7)), STABLE_DAY, 5)["default"].mean()

    assert lowered < usual - 0.05


def test_the_demo_base_rate_change_ramps_up_over_two_weeks_and_leaves_the_days_before_alone(demo_config):
    without = with_scenarios(demo_config, *without_scenario(demo_config, "rising_defaults"))

    def rate(config: ModelConfig, first: dt.date, count: int) -> float:
        return applications(config, first, count)["default"].mean()

    for day in days(BASE_RATE_START - dt.timedelta(days=3), 4):
        pd.testing.assert_frame_equal(
            data_world.applications_for_day(demo_config, day), data_world.applications_for_day(without, day)
        )
    settled = dt.date(2026, 9, 15)
    gap_midway = rate(demo_config, dt.date(2026, 8, 20), 5) - rate(without, dt.date(2026, 8, 20), 5)
    gap_settled = rate(demo_config, settled, 10) - rate(without, settled, 10)
    assert 0.02 < gap_midway < gap_settled
    assert gap_settled == pytest.approx(0.08, abs=0.02)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, r"params\.logit_shift: got None; expected a number"),
        ({"logit_shift": "high"}, r"params\.logit_shift: got 'high'; expected a number"),
        (
            {"logit_shift": 0.5, "factor": 2},
            r"params: unknown keys \['factor'\]; a base_rate_change takes \['logit_shift'\]",
        ),
    ],
)
def test_a_base_rate_change_with_bad_params_is_refused_naming_the_key(demo_config, params, message):
    downturn = Scenario(name="downturn", kind="base_rate_change", start=STABLE_DAY, params=params)
    broken = with_scenarios(demo_config, downturn)

    with pytest.raises(ValueError, match=r"scenarios\['downturn'\]\." + message):
        data_world.applications_for_day(broken, STABLE_DAY)


def seasonal(start: dt.date = STABLE_DAY, **params) -> Scenario:
    params = {"amplitude": 0.2, "period_days": 28, **params}
    return Scenario(name="seasons", kind="seasonal", start=start, params=params)


def test_a_seasonal_column_swings_around_its_usual_values_and_comes_back(demo_config):
    usual = with_scenarios(demo_config)
    swinging = with_scenarios(demo_config, seasonal(column="loan_amount"))

    def loan_ratio(day: dt.date) -> float:
        return (
            data_world.applications_for_day(swinging, day)["loan_amount"].mean()
            / data_world.applications_for_day(usual, day)["loan_amount"].mean()
        )

    peak, trough = STABLE_DAY + dt.timedelta(days=7), STABLE_DAY + dt.timedelta(days=21)
    assert loan_ratio(STABLE_DAY) == pytest.approx(1.0, abs=1e-4)
    assert loan_ratio(peak) == pytest.approx(1.2, abs=0.01)
    assert loan_ratio(trough) == pytest.approx(0.8, abs=0.01)
    assert loan_ratio(STABLE_DAY + dt.timedelta(days=28)) == pytest.approx(1.0, abs=1e-4)
    untouched = [name for name in demo_config.schema.columns if name != "loan_amount"]
    pd.testing.assert_frame_equal(
        data_world.applications_for_day(swinging, peak)[untouched],
        data_world.applications_for_day(usual, peak)[untouched],
    )


def test_a_seasonal_base_rate_swings_the_default_rate_and_not_the_features(demo_config):
    usual = with_scenarios(demo_config)
    swinging = with_scenarios(demo_config, seasonal(amplitude=0.7))
    peak, trough = STABLE_DAY + dt.timedelta(days=7), STABLE_DAY + dt.timedelta(days=21)

    high, usual_high = (data_world.applications_for_day(config, peak) for config in (swinging, usual))
    low, usual_low = (data_world.applications_for_day(config, trough) for config in (swinging, usual))

    pd.testing.assert_frame_equal(high.drop(columns="default"), usual_high.drop(columns="default"))
    assert high["default"].mean() > usual_high["default"].mean() + 0.05
    assert low["default"].mean() < usual_low["default"].mean() - 0.04


def test_a_seasonal_pattern_ends_with_its_period(demo_config):
    ended = seasonal(column="loan_amount")
    ended = ended.model_copy(update={"end": STABLE_DAY + dt.timedelta(days=10)})
    after = STABLE_DAY + dt.timedelta(days=35)

    assert data_world.seasonal_wave(ended, after) == 0.0
    pd.testing.assert_frame_equal(
        data_world.applications_for_day(with_scenarios(demo_config, ended), after),
        data_world.applications_for_day(with_scenarios(demo_config), after),
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"amplitude": 1.5, "column": "loan_amount"}, r"amplitude: got 1\.5; expected a fraction between 0 and 1"),
        ({"amplitude": None}, r"amplitude: got None; expected a number"),
        ({"period_days": 0}, r"period_days: got 0; expected a whole number of days, at least 2"),
        ({"period_days": 7.5}, r"period_days: got 7\.5; expected a whole number of days"),
        ({"column": "region"}, r"column: got 'region' of type category; expected a column of type integer or float"),
    ],
)
def test_a_seasonal_pattern_with_bad_params_is_refused_naming_the_key(demo_config, params, message):
    broken = with_scenarios(demo_config, seasonal(**params))

    with pytest.raises(ValueError, match=r"scenarios\['seasons'\]\.params\." + message):
        data_world.applications_for_day(broken, STABLE_DAY)


# --- delayed labels ------------------------------------------------------------------------------


def test_labels_arriving_on_a_day_are_those_of_the_applications_delay_days_before(demo_config):
    arrival = dt.date(2026, 1, 20)
    event_day = arrival - dt.timedelta(days=demo_config.target.label_delay_days)

    labels = data_world.labels_arriving_on(demo_config, arrival)

    truth = data_world.applications_for_day(demo_config, event_day)
    assert list(labels.columns) == ["application_id", "default", "event_timestamp", "label_timestamp"]
    assert list(labels["application_id"]) == list(truth["application_id"])
    assert list(labels["default"]) == list(truth["default"])
    assert labels["event_timestamp"].dt.date.eq(event_day).all()
    assert labels["label_timestamp"].dt.date.eq(arrival).all()


def test_no_labels_arrive_before_the_first_delay_has_passed_or_after_the_world_ends(demo_config):
    source, delay = demo_config.source, demo_config.target.label_delay_days
    first_arrival = source.start_date + dt.timedelta(days=delay)

    too_early = data_world.labels_arriving_on(demo_config, first_arrival - dt.timedelta(days=1))
    too_late = data_world.labels_arriving_on(demo_config, source.end_date + dt.timedelta(days=delay + 1))

    for empty in (too_early, too_late):
        assert empty.empty
        assert list(empty.columns) == ["application_id", "default", "event_timestamp", "label_timestamp"]
    assert len(data_world.labels_arriving_on(demo_config, first_arrival)) == source.rows_per_day
