"""Metrics, slices, plots and the gate a candidate must pass to become the challenger."""

import json
import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from include import settings
from include.config import Evaluation, Metric, load_model_config
from include.evaluation import (
    METRICS,
    EvaluationResult,
    compute_metrics,
    compute_slice_metrics,
    count_nan_predictions,
    evaluate_model,
    judge_candidate,
    save_plots,
)
from include.training import fit
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
    evaluation = config.evaluation.model_copy(update=changes)
    return config.model_copy(update={"evaluation": Evaluation.model_validate(evaluation.model_dump())})


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


def test_a_candidate_worse_than_the_champion_on_the_same_holdout_is_rejected(config):
    verdict = judge_candidate(config, result(roc_auc=0.78), champion=result(roc_auc=0.80), converged=True)

    assert not verdict.passed
    assert failed(verdict) == {"gain_absolute:roc_auc"}
    check = next(c for c in verdict.checks if c["name"] == "gain_absolute:roc_auc")
    assert (check["candidate"], check["champion"], check["required"]) == (0.78, 0.80, 0.80)


def test_a_candidate_better_than_the_champion_passes(config):
    verdict = judge_candidate(config, result(roc_auc=0.82), champion=result(roc_auc=0.80), converged=True)

    assert verdict.passed, verdict.reasons


def test_required_gains_follow_mlflow_metric_threshold_semantics(config):
    gains = {
        "roc_auc": Metric(min_absolute_change=0.01, min_relative_change=0.05),
        "brier_score": Metric(min_relative_change=0.10, greater_is_better=False),
    }
    strict = with_evaluation(config, metrics=gains)

    verdict = judge_candidate(strict, result(roc_auc=0.83, brier_score=0.115),
                              champion=result(roc_auc=0.80, brier_score=0.12), converged=True)

    required = {check["name"]: check["required"] for check in verdict.checks}
    assert required["gain_absolute:roc_auc"] == pytest.approx(0.81)
    assert required["gain_relative:roc_auc"] == pytest.approx(0.84)
    assert required["gain_relative:brier_score"] == pytest.approx(0.108)
    assert failed(verdict) == {"gain_relative:roc_auc", "gain_relative:brier_score"}


def test_a_slice_worse_than_the_champions_beyond_the_tolerance_fails(config):
    def sliced(north, south):
        return {"region": {"north": {"roc_auc": north, "rows": 200}, "south": {"roc_auc": south, "rows": 200}}}

    champion = result(slices=sliced(0.80, 0.80))
    within = judge_candidate(config, result(slices=sliced(0.76, 0.81)), champion, converged=True)
    beyond = judge_candidate(config, result(slices=sliced(0.74, 0.81)), champion, converged=True)

    assert within.passed, within.reasons
    assert not beyond.passed and failed(beyond) == {"slice:region=north:roc_auc"}
    assert "slice region=north" in beyond.reasons[0]


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

    verdict = judge_candidate(config, candidate, champion, converged=True)

    for check in verdict.checks:
        assert {"name", "passed", "candidate", "champion", "required"} <= set(check)
    as_json = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert as_json["passed"] is False
    assert "threshold:roc_auc" in failed(verdict)
