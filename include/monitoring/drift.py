"""Data drift: is today's window drawn from the same distribution as the champion's training data?

The drift sensor compares each window (curated batches or the prediction log, never quarantine)
with a `ReferenceProfile` of the champion's training set. The profile is built once per champion
version (`build_reference_profile`, then `save` under `reference_profile_path`) and loaded by
every check, so a check never re-reads or re-sorts the training data.

Methods (`monitoring.drift.method` is the default, `column_methods` overrides it per column; a
column the default does not fit, such as a category under `ks`, gets its kind's test: `ks` for
numbers, `chisquare` for categories):

| method       | columns               | score                          | drifts when                        |
|--------------|-----------------------|--------------------------------|------------------------------------|
| `ks`         | numeric               | two-sample K-S p-value         | p < threshold and K-S D ≥ 0.1       |
| `chisquare`  | categorical           | chi-square homogeneity p-value | p < threshold and TVD ≥ 0.1         |
| `psi`        | numeric, categorical  | population stability index     | PSI > threshold                    |
| `wasserstein`| numeric               | Wasserstein-1 / reference std  | distance > threshold               |

Thresholds. A test's score is a p-value, a distance's score is a distance, so one number cannot
serve both. `threshold` belongs to the default `method`; it is also used by the other tests,
because a significance level means the same for every test. A column whose method is a distance
other than the default uses that method's own default (`DEFAULT_THRESHOLDS`: psi 0.1, wasserstein
0.1 standard deviations, Evidently's defaults).

Why tests also need an effect size. A p-value answers "is there any difference at all?", and with
enough rows the answer is always yes: with 1M rows against a 50k-row reference, a K-S test flags a
shift of 0.6% of the probability mass, which real feeds show from one day to the next (weekdays,
campaigns, holidays). A sensor built on p-values alone would request retrains on ordinary days.
So a test column drifts only when the difference is both real (p < threshold) and large enough to
matter: at least `MIN_EFFECT` = 0.1 of the probability mass has moved. For numeric columns that
is the K-S statistic D (the largest gap between the two CDFs; D = 0.1 is a shift of a quarter of a
standard deviation for a normal column); for categorical columns it is the total variation
distance (half the sum of the gaps between category shares), the same "share of the population
that moved" on categories. Equivalently, the detection threshold on D is max(critical D at the threshold, 0.1):
on small windows the p-value decides, on large ones the effect size does.

Sampling. Windows above `MAX_ROWS` (100k) are tested on a deterministic sample of that many rows.
The effect-size floor is what decides at that size: the sampling error of D at 100k rows (under
0.002) is fifty times smaller than the floor, so the sample loses no detection power that the
floor would not discard anyway, and the check costs the same for 1M or 100M rows. Null shares are
measured on the whole window.

Data quality is not drift. Windows come from the curated store, which only holds validated
batches. Should a column still arrive with a null share more than `NULL_SHARE_TOLERANCE` above the
reference's (or be missing, or be all null), it is reported under `quality_issues` and gets no
drift verdict; the drift share keeps all configured features in its denominator, so a broken
column can never push a window over `drift_share`.

The Evidently report (`write_evidently_report`) is for people: it runs Evidently's
`DataDriftPreset` on bounded samples with the same methods and thresholds, but Evidently has no
effect-size floor, so on large samples it may show drift where the sensor's verdict is "no drift".
The verdict that drives retraining is `detect_drift`'s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, kstwo

from include.core import settings
from include.core.config import ModelConfig

TESTS = ("ks", "chisquare")
DISTANCES = ("psi", "wasserstein")
NUMERIC_METHODS = ("ks", "psi", "wasserstein")
CATEGORICAL_METHODS = ("chisquare", "psi")
DEFAULT_THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "psi": 0.1, "wasserstein": 0.1}
MIN_EFFECT = {"ks": 0.1, "chisquare": 0.1}

MAX_ROWS = 100_000
SKETCH_SIZE = 100_000
REPORT_SAMPLE_ROWS = 5_000
NULL_SHARE_TOLERANCE = 0.05
PSI_BINS = 10
PSI_FLOOR = 1e-4
SAMPLING_SEED = 0


# --- which method and threshold each column gets -------------------------------------------------


@dataclass(frozen=True)
class ColumnMethod:
    method: str
    threshold: float
    min_effect: float | None


def column_methods(config: ModelConfig) -> dict[str, ColumnMethod]:
    """The drift method, threshold and effect-size floor of every feature column, from the config.

    Raises:
        ValueError: a method is unknown or does not apply to its column's kind, or
            `column_methods` names a column that is not a feature.
    """
    drift = config.monitoring.drift
    features = config.features
    unknown = sorted(set(drift.column_methods) - set(features.all))
    if unknown:
        raise ValueError(
            f"{config.name}: key 'monitoring.drift.column_methods': got columns {unknown}; "
            f"expected feature columns {features.all}"
        )
    if drift.method not in TESTS + DISTANCES:
        raise ValueError(
            f"{config.name}: key 'monitoring.drift.method': got {drift.method!r}; "
            f"expected one of {list(TESTS + DISTANCES)}"
        )
    resolved = {}
    for column in features.all:
        numeric = column in features.numeric
        allowed = NUMERIC_METHODS if numeric else CATEGORICAL_METHODS
        method = drift.column_methods.get(column)
        if method is None:
            method = drift.method if drift.method in allowed else allowed[0]
        elif method not in allowed:
            raise ValueError(
                f"{config.name}: key 'monitoring.drift.column_methods.{column}': got {method!r} for the "
                f"{'numeric' if numeric else 'categorical'} column {column!r}; expected one of {list(allowed)}"
            )
        resolved[column] = ColumnMethod(method, _threshold(config, method), MIN_EFFECT.get(method))
    return resolved


def _threshold(config: ModelConfig, method: str) -> float:
    drift = config.monitoring.drift
    if method == drift.method or (method in TESTS and drift.method in TESTS):
        return drift.threshold
    return DEFAULT_THRESHOLDS[method]


def _prediction_method(config: ModelConfig) -> ColumnMethod:
    """Scores are numeric: the default method when it applies to numbers, else K-S."""
    method = config.monitoring.drift.method
    method = method if method in NUMERIC_METHODS else "ks"
    return ColumnMethod(method, _threshold(config, method), MIN_EFFECT.get(method))


# --- the reference profile -----------------------------------------------------------------------


@dataclass
class NumericReference:
    """A numeric column of the reference: its sorted values (a quantile sketch when large)."""

    sorted_values: np.ndarray
    count: int
    null_share: float
    std: float


@dataclass
class CategoricalReference:
    counts: dict[str, int]
    null_share: float


@dataclass
class ReferenceProfile:
    """What a drift check needs to know about the champion's training data, computed once.

    `numeric` keeps each numeric column sorted; above `SKETCH_SIZE` values only that many evenly
    spaced order statistics are kept, whose CDF is within 1/SKETCH_SIZE of the full one, while
    `count` remembers the real number of values for the tests' p-values. `sample` is a bounded
    sample of the reference rows, for the Evidently report.
    """

    model: str
    model_version: str | None
    rows: int
    numeric: dict[str, NumericReference]
    categorical: dict[str, CategoricalReference]
    scores: NumericReference | None
    sample: pd.DataFrame
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def save(self, path: str | Path) -> Path:
        """Write the profile to one `.npz` file, atomically (re-saving replaces it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"numeric/{name}": ref.sorted_values for name, ref in self.numeric.items()}
        if self.scores is not None:
            arrays["scores"] = self.scores.sorted_values
        buffer = io.BytesIO()
        self.sample.to_parquet(buffer, index=False)
        arrays["sample.parquet"] = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
        arrays["meta.json"] = np.frombuffer(json.dumps(self._meta()).encode(), dtype=np.uint8)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        with np.load(path, allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta.json"].tobytes())
            numeric = {
                name: NumericReference(arrays[f"numeric/{name}"], **stats) for name, stats in meta["numeric"].items()
            }
            scores = NumericReference(arrays["scores"], **meta["scores"]) if meta["scores"] else None
            sample = pd.read_parquet(io.BytesIO(arrays["sample.parquet"].tobytes()))
        categorical = {name: CategoricalReference(**ref) for name, ref in meta["categorical"].items()}
        return cls(
            model=meta["model"],
            model_version=meta["model_version"],
            rows=meta["rows"],
            numeric=numeric,
            categorical=categorical,
            scores=scores,
            sample=sample,
            created_at=meta["created_at"],
        )

    def _meta(self) -> dict:
        def stats(ref: NumericReference) -> dict:
            return {"count": ref.count, "null_share": ref.null_share, "std": ref.std}

        return {
            "model": self.model,
            "model_version": self.model_version,
            "rows": self.rows,
            "created_at": self.created_at,
            "numeric": {name: stats(ref) for name, ref in self.numeric.items()},
            "categorical": {
                name: {"counts": ref.counts, "null_share": ref.null_share} for name, ref in self.categorical.items()
            },
            "scores": stats(self.scores) if self.scores is not None else None,
        }


def reference_profile_path(model: str, model_version: str | int) -> Path:
    """Where the profile of one model version lives: `<data>/<model>/monitoring/reference/`."""
    return settings.data_dir() / model / "monitoring" / "reference" / f"version={model_version}.npz"


def build_reference_profile(
    config: ModelConfig,
    frame: pd.DataFrame,
    predictions: np.ndarray | pd.Series | None = None,
    model_version: str | int | None = None,
) -> ReferenceProfile:
    """Profile the champion's training set: sorted numeric columns, category counts, scores.

    Args:
        config: the model config (its features and drift methods).
        frame: the training-set snapshot the champion was fitted on.
        predictions: the champion's scores on that snapshot, to watch prediction drift.
        model_version: the champion's registry version, carried into every drift result.

    Raises:
        ValueError: a feature column is missing from `frame`, or the config's methods are invalid.
    """
    column_methods(config)
    missing = [name for name in config.features.all if name not in frame.columns]
    if missing:
        raise ValueError(f"{config.name}: the reference frame lacks feature columns {missing}")
    numeric = {name: _numeric_reference(_as_float(frame[name])) for name in config.features.numeric}
    categorical = {}
    for name in config.features.categorical:
        column = frame[name]
        categorical[name] = CategoricalReference(_category_counts(column), _null_share(column))
    scores = None if predictions is None else _numeric_reference(np.asarray(predictions, dtype="float64"))
    positions = _sample_positions(len(frame), REPORT_SAMPLE_ROWS)
    sample = frame[config.features.all].iloc[positions].reset_index(drop=True)
    return ReferenceProfile(
        model=config.name,
        model_version=None if model_version is None else str(model_version),
        rows=len(frame),
        numeric=numeric,
        categorical=categorical,
        scores=scores,
        sample=sample,
    )


def _numeric_reference(values: np.ndarray) -> NumericReference:
    present = values[~np.isnan(values)]
    ordered = np.sort(present)
    if len(ordered) > SKETCH_SIZE:
        ordered = ordered[np.linspace(0, len(ordered) - 1, SKETCH_SIZE).round().astype(np.int64)]
    return NumericReference(
        sorted_values=ordered,
        count=len(present),
        null_share=_share(len(values) - len(present), len(values)),
        std=float(present.std()) if len(present) else 0.0,
    )


# --- the check -----------------------------------------------------------------------------------


@dataclass
class ColumnDrift:
    """The verdict on one column: `score` is a p-value for tests and a distance for distances."""

    method: str
    score: float
    threshold: float
    drifted: bool
    statistic: float
    effect: float
    min_effect: float | None
    null_share: float
    reference_null_share: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class DriftResult:
    """The verdict on one window; `to_dict()` is what a DAG task returns and the history stores."""

    model: str
    model_version: str | None
    rows: int
    rows_tested: int
    columns: dict[str, ColumnDrift]
    features: int
    drift_share_threshold: float
    quality_issues: dict[str, dict]
    prediction: ColumnDrift | None

    @property
    def drifted_columns(self) -> list[str]:
        return [name for name, column in self.columns.items() if column.drifted]

    @property
    def drift_share(self) -> float:
        """Drifted columns over all configured features (columns with quality issues count as not drifted)."""
        return len(self.drifted_columns) / self.features

    @property
    def dataset_drifted(self) -> bool:
        return self.drift_share >= self.drift_share_threshold

    @property
    def scores(self) -> dict[str, float]:
        return {name: column.score for name, column in self.columns.items()}

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "model_version": self.model_version,
            "rows": self.rows,
            "rows_tested": self.rows_tested,
            "columns": {name: column.to_dict() for name, column in self.columns.items()},
            "drifted_columns": self.drifted_columns,
            "drift_share": self.drift_share,
            "drift_share_threshold": self.drift_share_threshold,
            "dataset_drifted": self.dataset_drifted,
            "quality_issues": self.quality_issues,
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }


def detect_drift(
    config: ModelConfig,
    profile: ReferenceProfile,
    current: pd.DataFrame,
    predictions: np.ndarray | pd.Series | None = None,
    max_rows: int | None = MAX_ROWS,
) -> DriftResult:
    """Compare a window with the reference profile, column by column, and decide on the dataset.

    Args:
        config: the model config (features, methods, thresholds, drift share).
        profile: the champion's reference profile.
        current: the window's rows (curated batches or prediction-log features).
        predictions: the champion's scores on the window's rows, to check prediction drift.
        max_rows: windows larger than this are tested on a deterministic sample of this many rows;
            None tests every row.

    Raises:
        ValueError: the profile lacks a feature of the config (it was built for another config).
    """
    methods = column_methods(config)
    missing = [name for name in config.features.all if name not in {**profile.numeric, **profile.categorical}]
    if missing:
        raise ValueError(f"{config.name}: the reference profile has no columns {missing}; rebuild it")
    rows = len(current)
    positions = _sample_positions(rows, max_rows) if max_rows is not None and rows > max_rows else None
    columns, issues = {}, {}
    for name, chosen in methods.items():
        checked = _check_column(name, chosen, profile, current, positions)
        if isinstance(checked, ColumnDrift):
            columns[name] = checked
        else:
            issues[name] = checked
    return DriftResult(
        model=config.name,
        model_version=profile.model_version,
        rows=rows,
        rows_tested=rows if positions is None else len(positions),
        columns=columns,
        features=len(methods),
        drift_share_threshold=config.monitoring.drift.drift_share,
        quality_issues=issues,
        prediction=_prediction_drift(config, profile, predictions, max_rows),
    )


def _check_column(
    name: str, chosen: ColumnMethod, profile: ReferenceProfile, current: pd.DataFrame, positions: np.ndarray | None
) -> ColumnDrift | dict:
    """The column's drift verdict, or the quality issue that stops it from getting one."""
    numeric = name in profile.numeric
    reference = profile.numeric[name] if numeric else profile.categorical[name]
    if not (reference.count if numeric else reference.counts):
        return {"issue": "no values in the reference", "null_share": None, "reference_null_share": 1.0}
    if name not in current.columns:
        return {"issue": "missing column", "null_share": 1.0, "reference_null_share": reference.null_share}
    series = current[name]
    values = _as_float(series) if numeric else None
    null_share = _share(int(np.isnan(values).sum()), len(values)) if numeric else _null_share(series)
    if not len(series) or null_share == 1.0:
        return {"issue": "no values", "null_share": null_share, "reference_null_share": reference.null_share}
    if null_share > reference.null_share + NULL_SHARE_TOLERANCE:
        return {
            "issue": f"null share {null_share:.3f} against {reference.null_share:.3f} in the reference",
            "null_share": null_share,
            "reference_null_share": reference.null_share,
        }
    if numeric:
        values = values if positions is None else values[positions]
        verdict = _numeric_drift(chosen, reference, values[~np.isnan(values)])
    else:
        series = series if positions is None else series.iloc[positions]
        verdict = _categorical_drift(chosen, reference, _category_counts(series))
    return ColumnDrift(**verdict, null_share=null_share, reference_null_share=reference.null_share)


def _prediction_drift(
    config: ModelConfig,
    profile: ReferenceProfile,
    predictions: np.ndarray | pd.Series | None,
    max_rows: int | None,
) -> ColumnDrift | None:
    if predictions is None or profile.scores is None:
        return None
    scores = np.asarray(predictions, dtype="float64")
    null_share = _share(int(np.isnan(scores).sum()), len(scores))
    if max_rows is not None and len(scores) > max_rows:
        scores = scores[_sample_positions(len(scores), max_rows)]
    scores = scores[~np.isnan(scores)]
    if not len(scores):
        return None
    verdict = _numeric_drift(_prediction_method(config), profile.scores, scores)
    return ColumnDrift(**verdict, null_share=null_share, reference_null_share=profile.scores.null_share)


def _numeric_drift(chosen: ColumnMethod, reference: NumericReference, values: np.ndarray) -> dict:
    ordered = np.sort(values)
    if chosen.method == "ks":
        statistic, p_value = ks_two_sample(reference.sorted_values, ordered, reference.count)
        return _test_verdict(chosen, p_value, statistic, effect=statistic)
    if chosen.method == "wasserstein":
        distance = wasserstein_distance_sorted(reference.sorted_values, ordered) / max(reference.std, 1e-3)
        return _distance_verdict(chosen, distance)
    return _distance_verdict(chosen, psi_numeric(reference.sorted_values, ordered))


def _categorical_drift(chosen: ColumnMethod, reference: CategoricalReference, counts: dict[str, int]) -> dict:
    categories = sorted(set(reference.counts) | set(counts))
    expected = np.array([reference.counts.get(key, 0) for key in categories], dtype="float64")
    observed = np.array([counts.get(key, 0) for key in categories], dtype="float64")
    if chosen.method == "psi":
        return _distance_verdict(chosen, psi(_shares(expected), _shares(observed)))
    statistic, p_value = chi_square_homogeneity(expected, observed)
    effect = 0.5 * float(np.abs(_shares(expected) - _shares(observed)).sum())
    return _test_verdict(chosen, p_value, statistic, effect)


def _test_verdict(chosen: ColumnMethod, p_value: float, statistic: float, effect: float) -> dict:
    drifted = p_value < chosen.threshold and effect >= chosen.min_effect
    return {
        "method": chosen.method,
        "score": float(p_value),
        "threshold": chosen.threshold,
        "drifted": bool(drifted),
        "statistic": float(statistic),
        "effect": float(effect),
        "min_effect": chosen.min_effect,
    }


def _distance_verdict(chosen: ColumnMethod, distance: float) -> dict:
    return {
        "method": chosen.method,
        "score": float(distance),
        "threshold": chosen.threshold,
        "drifted": bool(distance > chosen.threshold),
        "statistic": float(distance),
        "effect": float(distance),
        "min_effect": None,
    }


# --- the statistics ------------------------------------------------------------------------------


def _cdf_gaps(reference: np.ndarray, current: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """|F_reference - F_current| at each grid point (both samples sorted; the grid need not be)."""
    cdf_reference = np.searchsorted(reference, grid, side="right") / len(reference)
    cdf_current = np.searchsorted(current, grid, side="right") / len(current)
    return np.abs(cdf_reference - cdf_current)


def ks_two_sample(
    reference: np.ndarray, current: np.ndarray, reference_count: int | None = None
) -> tuple[float, float]:
    """Two-sided two-sample K-S statistic and asymptotic p-value (as scipy's `ks_2samp`, 'asymp').

    Both arrays must be sorted. `reference_count` is the size of the sample `reference` stands for
    when it is a quantile sketch of a larger one; the p-value uses that size.
    """
    reference_count = reference_count or len(reference)
    if not len(reference) or not len(current):
        return 0.0, 1.0
    statistic = float(_cdf_gaps(reference, current, np.concatenate([reference, current])).max())
    effective_n = reference_count * len(current) / (reference_count + len(current))
    return statistic, float(np.clip(kstwo.sf(statistic, np.round(effective_n)), 0.0, 1.0))


def wasserstein_distance_sorted(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein-1 distance, the area between the two CDFs (both arrays sorted)."""
    if not len(reference) or not len(current):
        return 0.0
    grid = np.sort(np.concatenate([reference, current]))
    return float(np.sum(_cdf_gaps(reference, current, grid)[:-1] * np.diff(grid)))


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI over the reference's deciles (bins of equal reference mass; both arrays sorted).

    Repeated quantiles (a column with few distinct values) merge, so a discrete column gets one
    bin per value instead of empty bins.
    """
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    reference_counts = np.diff(np.searchsorted(reference, edges, side="right"), prepend=0, append=len(reference))
    current_counts = np.diff(np.searchsorted(current, edges, side="right"), prepend=0, append=len(current))
    return psi(_shares(reference_counts), _shares(current_counts))


def psi(expected: np.ndarray, observed: np.ndarray) -> float:
    """Population stability index of two share vectors; empty shares count as `PSI_FLOOR`."""
    expected = np.maximum(expected, PSI_FLOOR)
    observed = np.maximum(observed, PSI_FLOOR)
    return float(np.sum((observed - expected) * np.log(observed / expected)))


def chi_square_homogeneity(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test that two samples share one category distribution: statistic and p-value.

    A two-sample test of homogeneity, not a goodness-of-fit against the reference shares: it allows
    for the reference's own sampling noise, and a category the reference never saw has a non-zero
    expected count from its column total, so unseen categories need no special case.
    """
    table = np.vstack([reference_counts, current_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


# --- the report for people -----------------------------------------------------------------------


def write_evidently_report(
    config: ModelConfig,
    reference_sample: pd.DataFrame,
    current_sample: pd.DataFrame,
    out_dir: str | Path,
    max_rows: int = REPORT_SAMPLE_ROWS,
) -> dict[str, str]:
    """Keep Evidently's data drift report of one window: its snapshot, rendered to HTML when a person
    opens it, and its results JSON for tools (see `include.monitoring.evidently_reports`).

    Both frames are cut to a deterministic sample of `max_rows` rows, so the report stays cheap
    (Evidently needs about 47 s and 0.8 GB for 1M rows). Columns the window lacks or has no value
    in are left out.

    Evidently is imported here, not at the top: importing it costs seconds of CPU (it loads its
    whole legacy metric suite and plotly), which the drift check itself does not need.

    Returns:
        {"snapshot": path, "json": path}
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from include.monitoring.evidently_reports import save_report

    methods = column_methods(config)
    columns = [
        name for name in methods
        if name in current_sample.columns and current_sample[name].notna().any()
    ]
    reference = _bounded(reference_sample[columns], max_rows)
    current = _bounded(current_sample[columns], max_rows)
    definition = DataDefinition(
        numerical_columns=[name for name in columns if name in config.features.numeric],
        categorical_columns=[name for name in columns if name in config.features.categorical],
    )
    preset = DataDriftPreset(
        columns=columns,
        drift_share=config.monitoring.drift.drift_share,
        per_column_method={name: methods[name].method for name in columns},
        per_column_threshold={name: methods[name].threshold for name in columns},
    )
    report = Report([preset], include_tests=True, metadata={"model": config.name})
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # Evidently's chi-square divides by a zero expected count for an unseen category and then
        # reports p = 0 (drift), which is the right verdict; the warning it raises is noise.
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    return save_report(snapshot, Path(out_dir), "data_drift")


# --- helpers -------------------------------------------------------------------------------------


def _sample_positions(rows: int, size: int) -> np.ndarray:
    """Row positions of a deterministic sample: the same window always gives the same sample."""
    if rows <= size:
        return np.arange(rows)
    return np.sort(np.random.default_rng(SAMPLING_SEED).choice(rows, size=size, replace=False))


def _bounded(frame: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    return frame.iloc[_sample_positions(len(frame), max_rows)].reset_index(drop=True)


def _as_float(series: pd.Series) -> np.ndarray:
    """A numeric column as float64 with NaN for nulls; values that are not numbers become NaN."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _category_counts(series: pd.Series) -> dict[str, int]:
    """Category -> count, keyed by the category's text so that files and frames agree."""
    counts: Counter[str] = Counter()
    for value, count in series.value_counts(dropna=True).items():
        counts[str(value)] += int(count)
    return dict(counts)


def _null_share(series: pd.Series) -> float:
    return _share(int(series.isna().sum()), len(series))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))
