"""Metrics, slices, plots and the gate a candidate must pass to become the challenger."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from include.core import settings
from include.core.config import Evaluation, Metric, load_model_config
from include.training.evaluation import (
    METRICS,
    EvaluationResult,
    compute_metrics,
    compute_slice_metrics,
    count_nan_predictions,
    evaluate_model,
    judge_candidate,
    save_plots,
)
from include.training.training import fit
from tests.ct_world import labelled_frame, small_config

pytestmark = pytest.mark.usefixtures("one_openmp_thread")


@pytest.fixture
def config(demo_config):
    return small_config(demo_config)


@pytest.fixture(scope="module")
def fitted():
    """A model fitted on 15 days, and the 5 days after them as its holdout (shared: read-only)."""
    config = small_config(load_model_config(settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml"))
    frame = labelled_frame(config, days=20)
    train, holdout = frame.iloc[:-750], frame.iloc[-750:].reset_index(drop=True)
    with threadpool_limits(1):
        return fit(config, train).model, holdout


class NanModel:
    """A broken model whose probabilities are NaN for every other row."""

    classes_ = np.array([0, 1])

    def predict_proba(self, frame):
        positive = np.full(len(frame), 0.3)
        positive[::2] = np.nan
        return np.column_stack([1 - positive, positive])


def with_evaluation(config, **changes):
    """The config with `evaluation` fields replaced; a dict for a section updates only its keys."""
    raw = config.evaluation.model_dump()
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict) and key != "metrics":
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value.model_dump() if hasattr(value, "model_dump") else value
    raw["metrics"] = {name: rule.model_dump() if hasattr(rule, "model_dump") else rule
                      for name, rule in raw["metrics"].items()}
    return config.model_copy(update={"evaluation": Evaluation.model_validate(raw)})


def result(roc_auc=0.80, average_precision=0.45, brier_score=0.12, slices=None, nan_predictions=0):
    return EvaluationResult(
        metrics={"roc_auc": roc_auc, "average_precision": average_precision, "brier_score": brier_score},
        slices=slices or {},
        nan_predictions=nan_predictions,
        rows=1000,
    )


def failed(verdict):
    return {check["name"] for check in verdict.checks if not check["passed"]}


# --- metrics and slices --------------------------------------------------------------------------


def test_metrics_include_every_configured_metric_with_sane_values(config, fitted):
    model, holdout = fitted

    metrics = compute_metrics(config, model, holdout)

    assert set(config.evaluation.metrics) <= set(metrics) == set(METRICS)
    assert 0.6 < metrics["roc_auc"] <= 1 and 0 < metrics["brier_score"] < 0.25
    assert all(0 <= metrics[name] <= 1 for name in ("average_precision", "accuracy", "f1"))


def test_an_unknown_metric_in_the_config_raises_naming_its_key(config, fitted):
    model, holdout = fitted
    odd = with_evaluation(config, metrics={**config.evaluation.metrics, "gini": Metric(threshold=0.3)})

    with pytest.raises(ValueError, match=r"evaluation\.metrics\.gini"):
        compute_metrics(odd, model, holdout)


def test_slices_leave_out_values_with_too_few_rows_or_a_single_class(config, fitted):
    model, holdout = fitted
    holdout = holdout.copy()
    holdout.loc[:3, "region"] = "tiny"
    holdout.loc[holdout["default"] == 1, "employment_type"] = "salaried"

    slices = compute_slice_metrics(config, model, holdout)

    assert set(slices) == set(config.evaluation.slices)
    assert "tiny" not in slices["region"]
    assert set(slices["employment_type"]) <= {"salaried"}
    for values in slices.values():
        for numbers in values.values():
            assert numbers["rows"] >= config.evaluation.min_slice_rows and 0 <= numbers["roc_auc"] <= 1


def test_a_healthy_model_makes_no_nan_predictions(config, fitted):
    model, holdout = fitted

    assert count_nan_predictions(config, model, holdout) == 0


def test_nan_predictions_are_counted_and_left_out_of_the_metrics(config, fitted):
    _, holdout = fitted

    evaluation, _ = evaluate_model(config, NanModel(), holdout)

    assert evaluation.nan_predictions == (len(holdout) + 1) // 2
    assert evaluation.metrics["brier_score"] > 0


def test_plots_are_written_as_png_files(config, fitted, tmp_path):
    model, holdout = fitted
    _, scores = evaluate_model(config, model, holdout)

    paths = save_plots(config, holdout, scores, tmp_path / "plots")

    assert [path.name for path in paths] == ["confusion_matrix.png", "roc_curve.png", "calibration_curve.png"]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in paths)


# --- the gate ------------------------------------------------------------------------------------


def test_without_a_champion_the_thresholds_alone_decide(config):
    verdict = judge_candidate(config, result(), champion=None, converged=True)

    assert verdict.passed and verdict.reasons == []
    assert not any(check["name"].startswith(("gain_", "slice:")) for check in verdict.checks)


def test_without_a_champion_a_candidate_below_a_threshold_is_rejected(config):
    verdict = judge_candidate(config, result(roc_auc=0.65), champion=None, converged=True)

    assert not verdict.passed
    assert failed(verdict) == {"threshold:roc_auc"}
    assert "0.6500" in verdict.reasons[0] and "0.7000" in verdict.reasons[0]


def test_a_threshold_on_a_lower_is_better_metric_is_a_ceiling(config):
    verdict = judge_candidate(config, result(brier_score=0.30), champion=None, converged=True)

    check = next(c for c in verdict.checks if c["name"] == "threshold:brier_score")
    assert not check["passed"] and check["comparison"] == "<=" and check["required"] == 0.25


def scored(signal=1.0, own_noise=0.3, seed=1, rows=4000, calibration=1.0):
    """A model's scores for the shared holdout of `holdout_labels`: logistic of signal x label plus a
    noise all models share (the rows' hardness) and some of its own (seeded); `calibration` < 1
    pushes every probability up, keeping the ranking."""
    labels = holdout_labels(rows)
    shared = np.random.default_rng(0).normal(0, 1, rows)
    own = np.random.default_rng(seed).normal(0, own_noise, rows)
    scores = 1 / (1 + np.exp(-(signal * (2 * labels - 1) + shared + own - 1.2)))
    return scores**calibration


def holdout_labels(rows=4000):
    return (np.random.default_rng(7).random(rows) < 0.25).astype(int)


def evaluated(scores, slices=None):
    """The EvaluationResult of scores on the shared holdout, as `evaluate_model` computes it."""
    labels = holdout_labels(len(scores))
    return EvaluationResult(metrics={name: fn(labels, scores) for name, fn in METRICS.items()},
                            slices=slices or {}, rows=len(scores))


def judge(config, candidate_scores, champion_scores, trigger="on_demand", **results):
    """The gate on a candidate and a champion scored on the same holdout rows."""
    return judge_candidate(
        config, evaluated(candidate_scores, results.get("candidate_slices")),
        evaluated(champion_scores, results.get("champion_slices")), converged=True,
        labels=holdout_labels(len(candidate_scores)), candidate_scores=candidate_scores,
        champion_scores=champion_scores, trigger=trigger,
    )


def test_a_candidate_worse_than_the_champion_on_the_same_holdout_is_rejected(config):
    verdict = judge(config, scored(signal=0.8), scored(signal=1.2))

    assert not verdict.passed
    assert "bootstrap_gain:roc_auc" in failed(verdict)
    gain = verdict.primary_gain
    assert gain["outcome"] == "worse" and gain["interval"]["high"] < 0
    assert any("gain interval" in reason and "below 0" in reason for reason in verdict.reasons)


def test_a_candidate_significantly_better_than_the_champion_passes(config):
    verdict = judge(config, scored(signal=1.3), scored(signal=1.0))

    assert verdict.passed, verdict.reasons
    gain = verdict.primary_gain
    assert gain["outcome"] == "better" and 0 < gain["interval"]["low"] < gain["interval"]["difference"]
    assert not verdict.champion_degraded and not verdict.floor_exception and not verdict.needs_approval


def test_the_bootstrap_verdict_is_seeded_and_deterministic(config):
    first = judge(config, scored(signal=1.3), scored(signal=1.0))
    again = judge(config, scored(signal=1.3), scored(signal=1.0))
    reseeded = judge(with_evaluation(config, comparison={"seed": 1}), scored(signal=1.3), scored(signal=1.0))

    assert first.primary_gain == again.primary_gain
    assert first.primary_gain["interval"]["low"] != reseeded.primary_gain["interval"]["low"]
    assert first.primary_gain["interval"]["difference"] == reseeded.primary_gain["interval"]["difference"]


@pytest.mark.parametrize(
    ("ties", "trigger", "passes"),
    [
        ("promote_on_request", "drift", True),
        ("promote_on_request", "performance", True),
        ("promote_on_request", "schedule", False),
        ("promote_on_request", "new_data", False),
        ("promote_on_request", "on_demand", False),
        ("reject", "drift", False),
        ("promote", "schedule", True),
    ],
)
def test_a_gain_within_noise_follows_the_ties_rule_for_the_runs_trigger(config, ties, trigger, passes):
    champion = scored(signal=1.0, seed=1)
    candidate = scored(signal=1.0, seed=2, own_noise=0.3)  # the same model, refitted: a tie

    verdict = judge(with_evaluation(config, comparison={"ties": ties}), candidate, champion, trigger=trigger)

    gain = verdict.primary_gain
    assert gain["outcome"] == "tie" and gain["interval"]["low"] < 0 < gain["interval"]["high"]
    assert verdict.passed is passes, verdict.reasons
    assert ties in gain["rule"] and ("promoted" if passes else "rejected") in gain["rule"]


def test_an_exact_tie_is_not_a_gain(config):
    champion = scored(signal=1.0)

    verdict = judge(config, champion.copy(), champion, trigger="schedule")

    assert verdict.primary_gain["outcome"] == "tie" and not verdict.passed
    assert failed(verdict) == {"bootstrap_gain:roc_auc"}


def test_a_worse_calibrated_candidate_is_rejected_though_its_roc_auc_is_higher(config):
    champion = scored(signal=1.0)
    candidate = scored(signal=1.3, calibration=2)  # ranks better, but every probability is too low

    verdict = judge(config, candidate, champion)

    assert verdict.primary_gain["outcome"] == "better"
    assert failed(verdict) == {"non_inferiority:brier_score"}
    check = next(c for c in verdict.checks if c["name"] == "non_inferiority:brier_score")
    assert check["margin"] == 0.005 and check["required"] == pytest.approx(check["champion"] + 0.005)
    assert "by more than the margin 0.005" in verdict.reasons[0]


def test_a_secondary_metric_within_its_margin_passes(config):
    champion = scored(signal=1.0)
    candidate = scored(signal=1.3, calibration=0.5)  # worse calibrated, within the 0.005 Brier margin

    verdict = judge(config, candidate, champion)

    check = next(c for c in verdict.checks if c["name"] == "non_inferiority:brier_score")
    assert check["candidate"] > check["champion"] and check["passed"]
    assert verdict.passed, verdict.reasons


def test_a_secondary_metric_worse_beyond_its_margin_by_noise_alone_passes(config):
    """On a small holdout (the first days after a change) two equivalent models differ by noise."""
    champion = scored(seed=1, rows=600, own_noise=0.6)
    equivalent = scored(seed=5, rows=600, own_noise=0.6)

    verdict = judge(config, equivalent, champion, trigger="drift")

    check = next(c for c in verdict.checks if c["name"] == "non_inferiority:average_precision")
    assert check["candidate"] < check["required"], "the point estimate is worse than the margin allows"
    assert check["interval"]["low"] < 0 < check["interval"]["high"]
    assert check["passed"] and "noise" in check["note"]
    assert verdict.passed, verdict.reasons


def test_floors_hold_the_champion_too_and_a_champion_below_one_is_degraded(config):
    strict = with_evaluation(config, metrics={"roc_auc": {"threshold": 0.70},
                                              "average_precision": {"threshold": 0.99}})

    verdict = judge(strict, scored(signal=1.0, seed=2), scored(signal=1.0, seed=1), trigger="drift")

    floors = {floor["name"]: floor["passed"] for floor in verdict.champion_floors}
    assert floors == {"threshold:roc_auc": True, "threshold:average_precision": False}
    assert verdict.champion_degraded and "the champion is degraded" in verdict.summary()
    assert not verdict.passed and failed(verdict) == {"threshold:average_precision"}
    assert not verdict.floor_exception  # a tie is not significantly better


def test_a_candidate_significantly_better_than_a_degraded_champion_passes_below_a_floor(config):
    floors = {"roc_auc": {"threshold": 0.97}, "brier_score": {"threshold": 0.25, "greater_is_better": False}}
    automatic = with_evaluation(config, metrics=floors, degraded_champion={"promotion": "automatic"})
    approval = with_evaluation(config, metrics=floors, degraded_champion={"promotion": "approval"})
    candidate, champion = scored(signal=1.3), scored(signal=1.0)

    promoted = judge(automatic, candidate, champion)
    waiting = judge(approval, candidate, champion)

    for verdict in (promoted, waiting):
        assert verdict.passed and verdict.champion_degraded and verdict.floor_exception
        check = next(c for c in verdict.checks if c["name"] == "threshold:roc_auc")
        assert check["candidate"] < 0.97 and "floor exception" in check["note"]
    assert not promoted.needs_approval and "promoted automatically" in promoted.summary()
    assert waiting.needs_approval and "needs a person's approval" in waiting.summary()


def test_a_candidate_below_a_floor_is_rejected_when_the_champion_meets_it(config):
    floors = with_evaluation(config, metrics={"roc_auc": {"threshold": 0.70},
                                              "average_precision": {"threshold": 0.90}})
    champion = scored(signal=1.6)
    assert evaluated(champion).metrics["average_precision"] > 0.90

    verdict = judge(floors, scored(signal=1.0, seed=3, own_noise=0.0), champion)

    assert not verdict.champion_degraded and not verdict.floor_exception
    assert "threshold:average_precision" in failed(verdict)


def test_required_gains_follow_mlflow_metric_threshold_semantics(config):
    gains = {
        "roc_auc": Metric(min_absolute_change=0.01, min_relative_change=0.06),
        "brier_score": Metric(min_relative_change=0.25, greater_is_better=False),
    }
    strict = with_evaluation(config, metrics=gains)

    verdict = judge(strict, scored(signal=1.3), scored(signal=1.0))  # roc_auc +0.049, brier_score -21%

    checks = {check["name"]: check for check in verdict.checks}
    base = checks["gain_absolute:roc_auc"]["champion"]
    assert checks["gain_absolute:roc_auc"]["required"] == pytest.approx(base + 0.01)
    assert checks["gain_relative:roc_auc"]["required"] == pytest.approx(base * 1.06)
    brier = checks["gain_relative:brier_score"]["champion"]
    assert checks["gain_relative:brier_score"]["required"] == pytest.approx(brier * 0.75)
    assert checks["bootstrap_gain:roc_auc"]["required"] == pytest.approx(base * 0.06)  # the larger gain
    assert failed(verdict) == {"gain_relative:roc_auc", "gain_relative:brier_score", "bootstrap_gain:roc_auc"}


def test_a_slice_worse_than_the_champions_beyond_the_tolerance_fails(config):
    def sliced(north, south):
        return {"region": {"north": {"roc_auc": north, "rows": 200}, "south": {"roc_auc": south, "rows": 200}}}

    better, base = scored(signal=1.3), scored(signal=1.0)
    within = judge(config, better, base, candidate_slices=sliced(0.76, 0.81), champion_slices=sliced(0.80, 0.80))
    beyond = judge(config, better, base, candidate_slices=sliced(0.74, 0.81), champion_slices=sliced(0.80, 0.80))

    assert within.passed, within.reasons
    assert not beyond.passed and failed(beyond) == {"slice:region=north:roc_auc"}
    assert "slice region=north" in beyond.reasons[0]


def slice_results(scores, region):
    """The primary metric per region, as `compute_slice_metrics` reports it."""
    labels = holdout_labels(len(scores))
    return {"region": {value: {"roc_auc": METRICS["roc_auc"](labels[region == value], scores[region == value]),
                               "rows": int((region == value).sum())} for value in ("east", "north")}}


@pytest.mark.parametrize(("really_worse", "passes"), [(False, True), (True, False)])
def test_a_small_slice_fails_only_when_its_bootstrap_confirms_it_is_worse(config, really_worse, passes):
    champion = scored(own_noise=1.0)
    region = np.where(np.arange(len(champion)) < 120, "east", "north")
    candidate = champion.copy()
    if not really_worse:  # an equivalent model: 0.07 worse on these 120 rows, by chance
        candidate[:120] = scored(seed=113, own_noise=1.0)[:120]
    else:  # really worse in the slice
        candidate[:120] = np.random.default_rng(3).random(120)
    labels = holdout_labels(len(champion))

    verdict = judge_candidate(
        config, evaluated(candidate, slice_results(candidate, region)),
        evaluated(champion, slice_results(champion, region)), converged=True, labels=labels,
        candidate_scores=candidate, champion_scores=champion, trigger="drift",
        slice_values=pd.DataFrame({"region": region}),
    )

    check = next(c for c in verdict.checks if c["name"] == "slice:region=east:roc_auc")
    assert check["candidate"] < check["required"], "the point estimate is worse than the tolerance allows"
    assert check["passed"] is passes and "interval" in check


def test_a_champion_needs_the_holdout_scores_of_both_models(config):
    with pytest.raises(ValueError, match="holdout labels and both models' scores"):
        judge_candidate(config, result(), result(), converged=True)


def test_a_model_whose_training_did_not_converge_is_rejected(config):
    verdict = judge_candidate(config, result(), champion=None, converged=False)

    assert not verdict.passed and failed(verdict) == {"training_converged"}
    assert verdict.reasons == ["training did not converge"]


def test_nan_predictions_reject_the_candidate(config):
    verdict = judge_candidate(config, result(nan_predictions=3), champion=None, converged=True)

    assert failed(verdict) == {"no_nan_predictions"}


def test_every_check_records_its_numbers_and_the_verdict_is_json(config):
    candidate = result(roc_auc=math.nan, slices={"region": {"north": {"roc_auc": 0.8, "rows": 90}}})
    champion = result(slices={"region": {"north": {"roc_auc": 0.8, "rows": 90}}})
    scores = scored()

    verdict = judge_candidate(config, candidate, champion, converged=True, labels=holdout_labels(),
                              candidate_scores=scores, champion_scores=scores)

    for check in verdict.checks:
        assert {"name", "passed", "candidate", "champion", "required"} <= set(check)
    as_json = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert as_json["passed"] is False
    assert "threshold:roc_auc" in failed(verdict)
