"""Evaluation: metrics, slice metrics, plots, and the gate a challenger must pass.

The gate (`judge_candidate`) is the Evaluator's "blessing" in TFX terms: a verdict with the
numbers behind it, recorded on the MLflow run so deployment reads it instead of recomputing it.
Candidate and champion are always scored on the SAME holdout, the newest rows of the candidate's
training window, which neither model has seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn import metrics as skm

from include.core.jsonable import to_jsonable
from include.training.features import feature_columns

if TYPE_CHECKING:
    import pandas as pd

    from include.core.config import Metric, ModelConfig

DECISION_THRESHOLD = 0.5
"""A probability of the positive class above this is a positive prediction, as scikit-learn's
`predict` decides; evaluation, batch prediction and the online service all use it."""


def _ranking(fn: Callable) -> Callable:
    """A ranking metric, undefined (NaN) when the labels hold a single class."""

    def metric(y_true: np.ndarray, scores: np.ndarray) -> float:
        return float(fn(y_true, scores)) if len(np.unique(y_true)) == 2 else math.nan

    return metric


def _decisions(scores: np.ndarray) -> np.ndarray:
    return (scores > DECISION_THRESHOLD).astype(int)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": _ranking(skm.roc_auc_score),
    "average_precision": _ranking(skm.average_precision_score),
    "brier_score": lambda y, p: float(skm.brier_score_loss(y, p)),
    "log_loss": lambda y, p: float(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
    "accuracy": lambda y, p: float(skm.accuracy_score(y, _decisions(p))),
    "f1": lambda y, p: float(skm.f1_score(y, _decisions(p), zero_division=0.0)),
}
"""Every metric the library computes, on 0/1 labels and the positive class's probability."""


@dataclass
class EvaluationResult:
    """How one model did on one frame: metrics, primary metric per slice, NaN predictions."""

    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    nan_predictions: int = 0
    rows: int = 0

    def to_dict(self) -> dict:
        """JSON-able (NaN metrics become None)."""
        return to_jsonable(asdict(self))


@dataclass
class GateVerdict:
    """The gate's decision: passed or not, why, and every check with its numbers.

    Besides the checks: `champion_floors` (the champion held to the same floors on this holdout)
    and `champion_degraded` (it missed one); `primary_gain` (the paired bootstrap interval of the
    primary metric, its outcome and the rule applied); `floor_exception` (a candidate below a floor
    passed because it is significantly better than a degraded champion) and `needs_approval`
    (such a promotion waits for a person, `evaluation.degraded_champion.promotion: approval`).
    """

    passed: bool
    reasons: list[str]
    checks: list[dict[str, Any]]
    champion_floors: list[dict[str, Any]] = field(default_factory=list)
    champion_degraded: bool = False
    primary_gain: dict[str, Any] | None = None
    floor_exception: bool = False
    needs_approval: bool = False

    def to_dict(self) -> dict:
        return to_jsonable(asdict(self))

    def summary(self) -> str:
        """One line for logs and tags: the verdict, the failed checks' reasons, and any exception."""
        degraded = "; the champion is degraded (misses its floors on this holdout)" if self.champion_degraded else ""
        if self.passed:
            exception = ""
            if self.floor_exception:
                exception = " (floor exception: significantly better than the degraded champion" + (
                    "; needs a person's approval)" if self.needs_approval else "; promoted automatically)")
            return f"PASSED: all {len(self.checks)} checks passed{exception}{degraded}"
        failed = f"REJECTED ({len(self.reasons)} of {len(self.checks)} checks failed): " + "; ".join(self.reasons)
        return failed + degraded


def check_metric_names(config: ModelConfig) -> None:
    """Raises ValueError naming `evaluation.metrics.<name>` for a metric the library lacks."""
    for name in config.evaluation.metrics:
        if name not in METRICS:
            raise ValueError(
                f"{config.name}.yaml: key 'evaluation.metrics.{name}': unknown metric {name!r}; "
                f"expected one of {sorted(METRICS)}"
            )


def positive_scores(config: ModelConfig, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """The model's probability of the positive label for each row of the frame's raw features."""
    probabilities = model.predict_proba(frame[feature_columns(config)])
    column = list(model.classes_).index(config.target.positive_label)
    return np.asarray(probabilities[:, column], dtype=float)


def positive_labels(config: ModelConfig, frame: pd.DataFrame) -> np.ndarray:
    """1 where the target is the positive label, else 0."""
    return (frame[config.target.column] == config.target.positive_label).to_numpy(dtype=int)


def count_nan_predictions(config: ModelConfig, model: Any, frame: pd.DataFrame, scores=None) -> int:
    """Rows whose predicted probability is NaN or infinite."""
    scores = positive_scores(config, model, frame) if scores is None else scores
    return int((~np.isfinite(scores)).sum())


def compute_metrics(config: ModelConfig, model: Any, frame: pd.DataFrame, scores=None) -> dict[str, float]:
    """Every metric of `METRICS` (a superset of `evaluation.metrics`) on the frame.

    Rows with a NaN prediction are left out (the gate fails them separately); a metric that is
    undefined on the rows, e.g. ROC AUC with a single class, is NaN.

    Args:
        scores: the positive-class probabilities when already computed, to predict only once.
    """
    check_metric_names(config)
    scores = positive_scores(config, model, frame) if scores is None else scores
    finite = np.isfinite(scores)
    labels, scores = positive_labels(config, frame)[finite], scores[finite]
    if not len(labels):
        return dict.fromkeys(METRICS, math.nan)
    return {name: fn(labels, scores) for name, fn in METRICS.items()}


def compute_slice_metrics(
    config: ModelConfig, model: Any, frame: pd.DataFrame, scores=None
) -> dict[str, dict[str, dict[str, float]]]:
    """The primary metric per value of each slice column (`evaluation.slices`).

    Returns:
        {slice column: {value: {<primary metric>: value, "rows": rows}}}, leaving out values with
        fewer than `evaluation.min_slice_rows` rows or a single class, where the metric says nothing.
    """
    evaluation = config.evaluation
    check_metric_names(config)
    scores = positive_scores(config, model, frame) if scores is None else scores
    labels, metric = positive_labels(config, frame), METRICS[evaluation.primary_metric]
    finite = np.isfinite(scores)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in evaluation.slices:
        values = frame[column].to_numpy()
        result[column] = {}
        for value in sorted({v for v in values if isinstance(v, str) or not _is_nan(v)}, key=str):
            rows = (values == value) & finite
            if rows.sum() < evaluation.min_slice_rows or len(np.unique(labels[rows])) < 2:
                continue
            result[column][str(value)] = {
                evaluation.primary_metric: metric(labels[rows], scores[rows]),
                "rows": int(rows.sum()),
            }
    return result


def _is_nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def evaluate_model(config: ModelConfig, model: Any, frame: pd.DataFrame) -> tuple[EvaluationResult, np.ndarray]:
    """Metrics, slice metrics and NaN count of one model on one frame, predicting only once.

    Returns:
        The EvaluationResult and the positive-class probabilities (for plots and golden examples).
    """
    scores = positive_scores(config, model, frame)
    result = EvaluationResult(
        metrics=compute_metrics(config, model, frame, scores),
        slices=compute_slice_metrics(config, model, frame, scores),
        nan_predictions=count_nan_predictions(config, model, frame, scores),
        rows=len(frame),
    )
    return result, scores


def save_plots(config: ModelConfig, frame: pd.DataFrame, scores: np.ndarray, folder: Path) -> list[Path]:
    """Confusion matrix, ROC curve and calibration curve as PNG files (matplotlib's Agg backend).

    Returns:
        The paths written, in that order.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from sklearn.calibration import CalibrationDisplay

    folder.mkdir(parents=True, exist_ok=True)
    finite = np.isfinite(scores)
    labels, scores = positive_labels(config, frame)[finite], scores[finite]
    predicted = _decisions(scores)
    drawings = {
        "confusion_matrix.png": lambda ax: skm.ConfusionMatrixDisplay.from_predictions(
            labels, predicted, labels=[0, 1], ax=ax, colorbar=False
        ),
        "roc_curve.png": lambda ax: skm.RocCurveDisplay.from_predictions(labels, scores, ax=ax),
        "calibration_curve.png": lambda ax: CalibrationDisplay.from_predictions(
            labels, scores, n_bins=10, ax=ax
        ),
    }
    paths = []
    for name, draw in drawings.items():
        figure = Figure(figsize=(5, 4))
        axes = figure.subplots()
        draw(axes)
        axes.set_title(f"{config.name}: {name.removesuffix('.png').replace('_', ' ')} (holdout)")
        figure.savefig(folder / name, dpi=100)
        paths.append(folder / name)
    return paths


# --- the gate ------------------------------------------------------------------------------------


REQUEST_TRIGGERS = ("drift", "performance")
"""Triggers of runs started by the drift sensor's retrain request: the world changed."""


def judge_candidate(
    config: ModelConfig,
    candidate: EvaluationResult,
    champion: EvaluationResult | None,
    converged: bool,
    *,
    labels: np.ndarray | None = None,
    candidate_scores: np.ndarray | None = None,
    champion_scores: np.ndarray | None = None,
    trigger: str = "on_demand",
    slice_values: pd.DataFrame | None = None,
) -> GateVerdict:
    """Should this candidate become the challenger? Every check must pass.

    Both models are scored on the same holdout rows.

    - floors (`threshold`): the candidate meets each (>= when greater is better, else <=). The
      champion is held to the same floors; missing any makes it **degraded**;
    - the primary metric's gain: a seeded paired bootstrap of (candidate - champion) over the
      holdout rows (`evaluation.comparison`). The interval wholly above the required gain
      (`min_absolute_change`, `min_relative_change` x |champion|, else 0) is **better** and passes;
      wholly below zero is **worse** and fails; otherwise a **tie** (a gain within noise) follows
      `comparison.ties` for this run's `trigger`;
    - non-inferiority: on each metric with a `non_inferiority_margin`, the candidate fails when it
      is worse than the champion by more than the margin (point estimates on the whole holdout)
      and the paired bootstrap interval of the difference lies wholly on the worse side of 0;
    - gain over the champion with MLflow MetricThreshold semantics, on each metric with
      `min_absolute_change` / `min_relative_change` (point estimates; with a zero baseline,
      strictly better by 1e-10);
    - slices: no slice's primary metric worse than the champion's by more than `slice_tolerance`
      and really worse (given the holdout's slice columns, the slice's paired bootstrap interval
      lies wholly below 0: a slice of a few dozen rows moves by more than the tolerance on noise);
    - no NaN predictions, and training converged.

    A **floor exception**: a candidate that misses a floor still passes when the champion is
    degraded and the candidate is *better* on the primary metric (and every other check passes);
    with `degraded_champion.promotion: approval` its promotion then needs a person's approval.

    With no champion (bootstrap) the comparison checks are skipped: floors, NaN predictions and
    convergence decide.

    Args:
        labels, candidate_scores, champion_scores: the holdout's 0/1 labels and both models'
            positive-class probabilities for the same rows; required when there is a champion.
        trigger: why the run started (`RunContext.trigger`), for the ties rule.
        slice_values: the holdout's `evaluation.slices` columns, row for row with `labels`, for the
            slices' bootstrap; without them a slice is judged on its point estimate alone.

    Raises:
        ValueError: a champion without the holdout labels and both models' scores.
    """
    check_metric_names(config)
    evaluation = config.evaluation
    if champion is not None and (labels is None or candidate_scores is None or champion_scores is None):
        raise ValueError("judging against a champion needs the holdout labels and both models' scores")
    intervals = {}
    if champion is not None:
        from include.training.paired_bootstrap import paired_bootstrap

        compared = [evaluation.primary_metric] + [
            name for name, rule in evaluation.metrics.items()
            if rule.non_inferiority_margin is not None and name != evaluation.primary_metric
        ]
        comparison = evaluation.comparison
        intervals = paired_bootstrap(labels, candidate_scores, champion_scores, compared,
                                     samples=comparison.bootstrap_samples, confidence=comparison.confidence,
                                     seed=comparison.seed)
    checks: list[dict[str, Any]] = []
    champion_floors: list[dict[str, Any]] = []
    primary_gain = None
    for name, rule in evaluation.metrics.items():
        value = candidate.metrics.get(name, math.nan)
        base = champion.metrics.get(name, math.nan) if champion else None
        if rule.threshold is not None:
            checks.append(_compare(f"threshold:{name}", value, base, rule.threshold, rule.greater_is_better))
            if champion is not None and not math.isnan(base):
                floor = _compare(f"threshold:{name}", base, None, rule.threshold, rule.greater_is_better)
                champion_floors.append({key: floor[key] for key in ("name", "passed", "required", "comparison")}
                                       | {"champion": base})
        if champion is None:
            continue
        if name == evaluation.primary_metric:
            primary = _primary_gain_check(config, rule, intervals[name], base, trigger)
            primary_gain = {key: primary[key] for key in ("interval", "outcome", "rule", "required_gain")}
            checks.append(primary)
        if rule.non_inferiority_margin is not None:
            checks.append(_non_inferiority_check(name, rule, value, base, intervals[name]))
        checks += _gain_checks(name, rule, value, base)
    if champion is not None:
        checks += _slice_checks(config, candidate, champion)
        if slice_values is not None:
            _forgive_noisy_slices(config, checks, slice_values, labels, candidate_scores, champion_scores)
    checks.append(
        {
            "name": "no_nan_predictions",
            "passed": candidate.nan_predictions == 0,
            "candidate": candidate.nan_predictions,
            "champion": champion.nan_predictions if champion else None,
            "required": 0,
            "comparison": "==",
        }
    )
    checks.append(
        {
            "name": "training_converged",
            "passed": bool(converged),
            "candidate": bool(converged),
            "champion": None,
            "required": True,
            "comparison": "==",
        }
    )
    degraded = any(not floor["passed"] for floor in champion_floors)
    below_floors = [check for check in checks if check["name"].startswith("threshold:") and not check["passed"]]
    floor_exception = bool(below_floors) and degraded and (primary_gain or {}).get("outcome") == "better"
    if floor_exception:
        for check in below_floors:
            check.update(passed=True, note="floor exception: the champion is degraded and the candidate is "
                                           "significantly better on the primary metric")
    reasons = [_reason(check) for check in checks if not check["passed"]]
    passed = not reasons
    return GateVerdict(
        passed=passed,
        reasons=reasons,
        checks=to_jsonable(checks),
        champion_floors=to_jsonable(champion_floors),
        champion_degraded=degraded,
        primary_gain=to_jsonable(primary_gain),
        floor_exception=floor_exception,
        needs_approval=passed and floor_exception and evaluation.degraded_champion.promotion == "approval",
    )


def _compare(name: str, value: float, base: float | None, required: float, greater_is_better: bool) -> dict:
    comparison = ">=" if greater_is_better else "<="
    passed = value >= required if greater_is_better else value <= required
    return {
        "name": name,
        "passed": bool(passed and not math.isnan(value)),
        "candidate": value,
        "champion": base,
        "required": required,
        "comparison": comparison,
    }


def _primary_gain_check(config: ModelConfig, rule: Metric, interval, base: float, trigger: str) -> dict:
    """Is the gain on the primary metric real? The paired bootstrap interval, read by the ties rule.

    The interval is turned into an improvement (positive = better in the metric's direction) and
    compared with the required gain (the larger of `min_absolute_change` and `min_relative_change`
    x |champion|, else 0): wholly above it is "better", wholly below zero "worse", else a "tie".
    """
    name, ties = config.evaluation.primary_metric, config.evaluation.comparison.ties
    sign = 1 if rule.greater_is_better else -1
    low, high = sorted((sign * interval.low, sign * interval.high))
    required = max(rule.min_absolute_change or 0.0, (rule.min_relative_change or 0.0) * abs(base)
                   if not math.isnan(base) else 0.0)
    check = {
        "name": f"bootstrap_gain:{name}",
        "candidate": interval.candidate,
        "champion": base,
        "required": required,
        "comparison": ">",
        "interval": interval.to_dict(),
        "improvement": [low, high],
        "required_gain": required,
        "trigger": trigger,
    }
    if math.isnan(base) or math.isnan(low):
        return {**check, "passed": True, "outcome": "no_comparison",
                "rule": "the champion has no value on this holdout: nothing to beat",
                "note": "the champion has no value on this holdout: nothing to beat"}
    if low > required:
        return {**check, "passed": True, "outcome": "better",
                "rule": f"the {interval.confidence:.0%} interval of the gain lies above {required:g}"}
    if high < 0:
        return {**check, "passed": False, "outcome": "worse",
                "rule": f"the {interval.confidence:.0%} interval of the gain lies below 0"}
    promote = ties == "promote" or (ties == "promote_on_request" and trigger in REQUEST_TRIGGERS)
    why = {
        "reject": "ties: reject",
        "promote": "ties: promote",
        "promote_on_request": f"ties: promote_on_request, and this {trigger!r} run "
                              + ("was requested by monitoring" if promote else "was not requested by monitoring"),
    }[ties]
    return {**check, "passed": promote, "outcome": "tie",
            "rule": f"the gain is within noise ({why}): " + ("promoted" if promote else "rejected")}


def _non_inferiority_check(name: str, rule: Metric, value: float, base: float, interval) -> dict:
    """The candidate is inferior when it is worse than the champion by more than the margin AND
    the paired bootstrap shows it really is worse (its whole interval on the worse side of 0).

    The second condition keeps noise from rejecting an equivalent model on a small holdout (a
    holdout drawn from the first days after a change has a few thousand rows, where average
    precision moves by ±0.02 between two equivalent models); the first keeps a real but small
    worsening within the margin acceptable.
    """
    sign = 1 if rule.greater_is_better else -1
    check = _compare(f"non_inferiority:{name}", value, base, base - sign * rule.non_inferiority_margin,
                     rule.greater_is_better)
    really_worse = interval.high < 0 if rule.greater_is_better else interval.low > 0
    if not check["passed"] and not math.isnan(value) and not really_worse:
        check.update(passed=True, note="worse beyond the margin, but within the bootstrap's noise")
    check.update(margin=rule.non_inferiority_margin, interval=interval.to_dict())
    if math.isnan(base):
        check.update(passed=True, note="the champion has no value on this holdout: nothing to compare")
    return check


def _gain_checks(name: str, rule: Metric, value: float, base: float) -> list[dict]:
    sign = 1 if rule.greater_is_better else -1
    checks = []
    if rule.min_absolute_change is not None:
        required = base + sign * rule.min_absolute_change
        checks.append(_compare(f"gain_absolute:{name}", value, base, required, rule.greater_is_better))
    if rule.min_relative_change is not None:
        step = rule.min_relative_change * abs(base) if base != 0 else 1e-10
        checks.append(_compare(f"gain_relative:{name}", value, base, base + sign * step, rule.greater_is_better))
    if math.isnan(base):
        for check in checks:
            check.update(passed=True, note="the champion has no value on this holdout: nothing to beat")
    return checks


def _slice_checks(config: ModelConfig, candidate: EvaluationResult, champion: EvaluationResult) -> list[dict]:
    evaluation = config.evaluation
    primary = evaluation.primary_metric
    greater_is_better = evaluation.metrics[primary].greater_is_better
    sign = 1 if greater_is_better else -1
    checks = []
    for column, values in candidate.slices.items():
        for value, numbers in values.items():
            base = champion.slices.get(column, {}).get(value, {}).get(primary)
            if base is None or math.isnan(base):
                continue
            required = base - sign * evaluation.slice_tolerance
            check = _compare(f"slice:{column}={value}:{primary}", numbers[primary], base, required, greater_is_better)
            check["rows"] = numbers["rows"]
            checks.append(check)
    return checks


def _forgive_noisy_slices(
    config: ModelConfig, checks: list[dict], slice_values: pd.DataFrame, labels: np.ndarray,
    candidate_scores: np.ndarray, champion_scores: np.ndarray,
) -> None:
    """Pass the failed slice checks whose worsening the slice's paired bootstrap does not confirm."""
    from include.training.paired_bootstrap import paired_bootstrap

    comparison, primary = config.evaluation.comparison, config.evaluation.primary_metric
    greater_is_better = config.evaluation.metrics[primary].greater_is_better
    for check in checks:
        if check["passed"] or not check["name"].startswith("slice:"):
            continue
        column, _, value = check["name"].removeprefix("slice:").rpartition(f":{primary}")[0].partition("=")
        rows = (slice_values[column].astype(str) == value).to_numpy()
        interval = paired_bootstrap(labels[rows], candidate_scores[rows], champion_scores[rows], [primary],
                                    samples=comparison.bootstrap_samples, confidence=comparison.confidence,
                                    seed=comparison.seed)[primary]
        check["interval"] = interval.to_dict()
        really_worse = interval.high < 0 if greater_is_better else interval.low > 0
        if not really_worse:
            check.update(passed=True, note="worse beyond the tolerance, but within the bootstrap's noise")


def _reason(check: dict) -> str:
    name, value, base = check["name"], check["candidate"], check["champion"]
    required, comparison = check["required"], check["comparison"]
    kind, _, subject = name.partition(":")
    if kind == "threshold":
        return f"{subject} {_fmt(value)} fails the threshold (needs {comparison} {_fmt(required)})"
    if kind in ("gain_absolute", "gain_relative"):
        change = kind.removeprefix("gain_")
        return (
            f"{subject} {_fmt(value)} does not beat the champion's {_fmt(base)} by the required {change} "
            f"change (needs {comparison} {_fmt(required)})"
        )
    if kind == "bootstrap_gain":
        low, high = check["improvement"]
        return (
            f"{subject} {_fmt(value)} vs the champion's {_fmt(base)}: gain interval [{low:+.4f}, {high:+.4f}]; "
            f"{check['rule']}"
        )
    if kind == "non_inferiority":
        return (
            f"{subject} {_fmt(value)} is worse than the champion's {_fmt(base)} by more than the margin "
            f"{check['margin']:g} (needs {comparison} {_fmt(required)})"
        )
    if kind == "slice":
        return (
            f"slice {subject} {_fmt(value)} is worse than the champion's {_fmt(base)} beyond the "
            f"tolerance (needs {comparison} {_fmt(required)})"
        )
    if name == "no_nan_predictions":
        return f"{value} NaN predictions on the holdout (needs 0)"
    return "training did not converge"


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
