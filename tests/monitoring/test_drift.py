"""Drift detection: real statistics on small frames built here, and the data world's scenarios."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from include.core import settings
from include.core.config import ModelConfig, load_model_config
from include.demo import data_world
from include.monitoring.drift import (
    MAX_ROWS,
    SKETCH_SIZE,
    ReferenceProfile,
    build_reference_profile,
    column_methods,
    detect_drift,
    ks_two_sample,
    reference_profile_path,
    wasserstein_distance_sorted,
    write_evidently_report,
)
from include.monitoring.evidently_reports import render_html

EMPLOYMENT = ["salaried", "self_employed", "unemployed", "retired", "student"]
EMPLOYMENT_SHARES = [0.7, 0.12, 0.08, 0.05, 0.05]


def applications(rows: int, seed: int, employment_shares=None) -> pd.DataFrame:
    """Credit applications with the demo schema's features, drawn i.i.d. from one fixed world."""
    rng = np.random.default_rng(seed)
    income = np.exp(rng.normal(np.log(50_000), 0.5, rows))
    dti = np.round(rng.gamma(2.0, 0.15, rows), 3)
    dti[rng.random(rows) < 0.01] = np.nan
    return pd.DataFrame(
        {
            "application_id": [f"A{seed}-{i}" for i in range(rows)],
            "age": rng.integers(18, 80, rows),
            "annual_income": income,
            "loan_amount": income * rng.lognormal(np.log(0.35), 0.5, rows),
            "loan_term_months": rng.choice([12, 24, 36, 48, 60, 84, 120], rows),
            "credit_score": np.rint(rng.normal(690, 65, rows)).clip(300, 850).astype(int),
            "debt_to_income": dti,
            "employment_type": rng.choice(EMPLOYMENT, rows, p=employment_shares or EMPLOYMENT_SHARES),
            "home_ownership": rng.choice(["own", "mortgage", "rent", "other"], rows, p=[0.2, 0.4, 0.3, 0.1]),
            "region": rng.choice(["north", "south", "east", "west"], rows),
        }
    )


def with_drift_config(config: ModelConfig, **changes) -> ModelConfig:
    drift = config.monitoring.drift.model_copy(update=changes)
    return config.model_copy(update={"monitoring": config.monitoring.model_copy(update={"drift": drift})})


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    """The demo model's config, shared by the module's fixtures (it is immutable)."""
    return load_model_config(settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml")


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return applications(20_000, seed=1)


@pytest.fixture(scope="module")
def profile(config, reference) -> ReferenceProfile:
    return build_reference_profile(config, reference, model_version=3)


# --- verdicts ------------------------------------------------------------------------------------


def test_a_window_from_the_same_world_does_not_drift(config, profile):
    result = detect_drift(config, profile, applications(1_000, seed=2))

    assert result.drifted_columns == []
    assert not result.dataset_drifted
    assert result.model_version == "3"
    assert set(result.columns) == set(config.features.all)


def test_many_stable_windows_never_drift_on_any_column(config, profile):
    drifted = [
        (seed, detect_drift(config, profile, applications(1_000, seed=seed)).drifted_columns)
        for seed in range(100, 160)
    ]

    assert [entry for entry in drifted if entry[1]] == []


def test_a_negligible_shift_in_a_huge_window_is_significant_but_not_drift(config, profile):
    window = applications(300_000, seed=5)
    window["annual_income"] *= 1.03

    income = detect_drift(config, profile, window, max_rows=None).columns["annual_income"]

    assert income.score < 0.05, "a p-value alone would call this drift"
    assert income.effect < 0.1
    assert not income.drifted


def test_a_shifted_income_drifts_on_income_only(config, profile):
    window = applications(1_000, seed=3)
    window["annual_income"] *= 1.5

    result = detect_drift(config, profile, window)

    assert result.drifted_columns == ["annual_income"]
    assert result.columns["annual_income"].method == "ks"
    assert result.columns["annual_income"].score < 1e-6
    assert result.drift_share == pytest.approx(1 / 9)


def test_a_changed_category_mix_drifts_by_chi_square(config, profile):
    window = applications(1_000, seed=4, employment_shares=[0.45, 0.35, 0.1, 0.05, 0.05])

    employment = detect_drift(config, profile, window).columns["employment_type"]

    assert employment.method == "chisquare"
    assert employment.drifted
    assert employment.effect == pytest.approx(0.25, abs=0.03)


def test_an_unseen_category_is_tested_not_crashed_on(config, profile):
    window = applications(1_000, seed=6)
    window.loc[:19, "region"] = "central"
    flooded = applications(1_000, seed=7)
    flooded.loc[:299, "region"] = "central"

    few = detect_drift(config, profile, window).columns["region"]
    many = detect_drift(config, profile, flooded).columns["region"]

    assert 0 <= few.score <= 1 and not few.drifted
    assert many.drifted and many.effect == pytest.approx(0.3, abs=0.02)


def test_per_column_method_and_threshold_come_from_the_config(config, reference):
    config = with_drift_config(
        config,
        method="ks",
        threshold=0.01,
        column_methods={**config.monitoring.drift.column_methods, "annual_income": "psi", "age": "wasserstein"},
    )
    profile = build_reference_profile(config, reference)

    result = detect_drift(config, profile, applications(1_000, seed=8))

    assert (result.columns["credit_score"].method, result.columns["credit_score"].threshold) == ("ks", 0.01)
    assert (result.columns["region"].method, result.columns["region"].threshold) == ("chisquare", 0.01)
    assert (result.columns["annual_income"].method, result.columns["annual_income"].threshold) == ("psi", 0.1)
    assert (result.columns["age"].method, result.columns["age"].threshold) == ("wasserstein", 0.1)


def test_a_distance_method_as_default_uses_the_configured_threshold_as_a_distance(config, reference):
    config = with_drift_config(config, method="psi", threshold=0.2, column_methods={})
    profile = build_reference_profile(config, reference)
    window = applications(1_000, seed=9)
    window["annual_income"] *= 1.5

    result = detect_drift(config, profile, window)

    income = result.columns["annual_income"]
    assert (income.method, income.threshold) == ("psi", 0.2)
    assert income.drifted and income.score > 0.2
    assert result.columns["region"].method == "psi"
    assert result.drifted_columns == ["annual_income"]


def test_a_method_that_does_not_fit_the_column_is_rejected_naming_the_key(config):
    config = with_drift_config(config, column_methods={"region": "ks"})

    with pytest.raises(ValueError, match=r"monitoring\.drift\.column_methods\.region.*'ks'"):
        column_methods(config)


def test_prediction_scores_drift_is_reported_apart_from_the_features(config, reference):
    rng = np.random.default_rng(0)
    profile = build_reference_profile(config, reference, predictions=rng.beta(2, 8, len(reference)))
    window = applications(1_000, seed=10)

    same = detect_drift(config, profile, window, predictions=rng.beta(2, 8, 1_000))
    riskier = detect_drift(config, profile, window, predictions=rng.beta(4, 6, 1_000))

    assert not same.prediction.drifted
    assert riskier.prediction.drifted
    assert riskier.drifted_columns == [] and riskier.to_dict()["prediction"]["method"] == "ks"


# --- data quality is not drift -------------------------------------------------------------------


def test_a_column_far_more_null_than_the_reference_is_a_quality_issue_not_drift(config, profile):
    window = applications(1_000, seed=11)
    window.loc[:299, "debt_to_income"] = np.nan
    window = window.drop(columns="home_ownership")

    result = detect_drift(config, profile, window)

    assert set(result.quality_issues) == {"debt_to_income", "home_ownership"}
    assert result.quality_issues["debt_to_income"]["null_share"] == pytest.approx(0.3, abs=0.01)
    assert "debt_to_income" not in result.columns
    assert result.features == 9 and result.drift_share == 0.0


# --- sampling, sketching, persistence ------------------------------------------------------------


def test_a_huge_window_is_tested_on_a_deterministic_sample_that_still_finds_drift(config, profile):
    window = applications(MAX_ROWS * 2, seed=12)
    window["annual_income"] *= 1.3

    first = detect_drift(config, profile, window)
    second = detect_drift(config, profile, window)

    assert (first.rows, first.rows_tested) == (MAX_ROWS * 2, MAX_ROWS)
    assert first.to_dict() == second.to_dict()
    assert first.drifted_columns == ["annual_income"]


def test_a_large_reference_is_kept_as_a_quantile_sketch_that_remembers_its_size(config):
    big = applications(SKETCH_SIZE * 2 + 1, seed=13)

    profile = build_reference_profile(config, big)

    income = profile.numeric["annual_income"]
    assert len(income.sorted_values) == SKETCH_SIZE
    assert income.count == SKETCH_SIZE * 2 + 1
    assert np.all(np.diff(income.sorted_values) >= 0)
    assert income.sorted_values[[0, -1]].tolist() == [big["annual_income"].min(), big["annual_income"].max()]


def test_a_saved_profile_loads_back_to_the_same_verdicts(config, reference, state_dir):
    profile = build_reference_profile(config, reference, predictions=np.linspace(0, 1, len(reference)), model_version=7)
    path = profile.save(reference_profile_path(config.name, 7))
    window = applications(1_000, seed=14)
    scores = np.linspace(0, 1, 1_000)

    loaded = ReferenceProfile.load(path)

    assert path.name == "version=7.npz" and str(state_dir) in str(path)
    assert detect_drift(config, loaded, window, scores).to_dict() == detect_drift(
        config, profile, window, scores
    ).to_dict()
    pd.testing.assert_frame_equal(loaded.sample, profile.sample)
    json.dumps(detect_drift(config, loaded, window, scores).to_dict())


# --- the statistics match scipy ------------------------------------------------------------------


def test_ks_matches_scipy_asymptotic_two_sample_test_with_ties():
    rng = np.random.default_rng(0)
    reference = np.sort(rng.integers(0, 50, 3_000).astype(float))
    current = np.sort(rng.integers(2, 52, 700).astype(float))

    statistic, p_value = ks_two_sample(reference, current)

    expected = stats.ks_2samp(reference, current, method="asymp")
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_wasserstein_matches_scipy():
    rng = np.random.default_rng(1)
    reference, current = np.sort(rng.normal(0, 1, 2_000)), np.sort(rng.normal(0.3, 1.2, 500))

    assert wasserstein_distance_sorted(reference, current) == pytest.approx(
        stats.wasserstein_distance(reference, current)
    )


# --- the Evidently report ------------------------------------------------------------------------


def test_the_evidently_report_keeps_a_snapshot_that_renders_and_json_with_the_configured_methods(
    config, profile, tmp_path
):
    window = applications(800, seed=15)
    window["annual_income"] *= 1.5
    window.loc[:9, "region"] = "central"

    written = write_evidently_report(config, profile.sample, window, tmp_path / "report")

    html, report = render_html(written["snapshot"]), json.load(open(written["json"]))
    assert len(html) > 10_000 and "<html" in html.lower() and "annual_income" in html
    assert not (tmp_path / "report" / "data_drift.html").exists()
    methods = {
        metric["config"]["column"]: metric["config"]["method"]
        for metric in report["metrics"]
        if metric["config"]["type"].endswith("ValueDrift")
    }
    assert methods == {name: chosen.method for name, chosen in column_methods(config).items()}


# --- the data world's scenarios ------------------------------------------------------------------


@pytest.fixture(scope="module")
def world_profile(config) -> ReferenceProfile:
    """The champion's reference: the world's first 30 days, all stable."""
    start = config.source.start_date
    days = [start + dt.timedelta(days=offset) for offset in range(30)]
    frame = pd.concat([data_world.feature_batch(config, day) for day in days], ignore_index=True)
    return build_reference_profile(config, frame, model_version=1)


def test_the_worlds_stable_days_after_training_never_drift(config, world_profile):
    days = [dt.date(2026, 1, 31) + dt.timedelta(days=offset) for offset in range(30)]

    drifted = {day: detect_drift(config, world_profile, data_world.feature_batch(config, day))
               for day in days}

    assert {day: result.drifted_columns for day, result in drifted.items() if result.drifted_columns} == {}


def test_the_worlds_income_shift_is_found_within_a_week_of_its_onset(config, world_profile):
    onset = dt.date(2026, 3, 20)
    days = [onset + dt.timedelta(days=offset) for offset in range(0, 30, 3)]

    first = next(
        day for day in days
        if detect_drift(config, world_profile, data_world.feature_batch(config, day)).drifted_columns
    )
    late = detect_drift(config, world_profile, data_world.feature_batch(config, dt.date(2026, 4, 20)))

    assert (first - onset).days <= 7
    assert late.drifted_columns == ["annual_income"]


def test_the_worlds_concept_drift_is_invisible_to_feature_drift(config):
    settled = [dt.date(2026, 4, 19) + dt.timedelta(days=offset) for offset in range(12)]
    frame = pd.concat([data_world.feature_batch(config, day) for day in settled], ignore_index=True)
    after_the_income_shift = build_reference_profile(config, frame)
    days = [dt.date(2026, 5, 1) + dt.timedelta(days=offset) for offset in range(0, 30, 5)]

    drifted = [
        detect_drift(config, after_the_income_shift, data_world.feature_batch(config, day)).drifted_columns
        for day in days
    ]

    assert drifted == [[]] * len(days), "P(y | x) changed, P(x) did not: only realized performance sees it"
