"""The synthetic data world: a seeded stream of daily credit applications with known drift.

The demo needs data whose problems are known in advance, so that every gate, sensor and alarm of
the pipeline can be checked against the truth. This module generates, for any day of the world:

- `applications_for_day`: the true applications of the day with their outcome (the target), as
  they really were; this is the ground truth behind the labels.
- `feature_batch`: what the source delivers that day: the schema's columns only, with the day's
  data-quality incident or schema break applied.
- `labels_arriving_on`: the outcomes that become known that day, `target.label_delay_days` after
  the applications they belong to.

Scenarios (`source.scenarios` in the model config) say what happens to the world, and when:

- `stable`: nothing; a named period of normal life.
- `covariate_shift` (`column`, `factor`): the column is multiplied by a factor that grows linearly
  from 1.0 on `start` to `factor` on `end` and stays there afterwards (a lasting change, reached
  at once when `end` is omitted). The outcome follows from the shifted values through the same
  link, as covariate shift means: P(x) moves, P(y | x) does not.
- `concept_drift` (`segment_column`, `segment_value`, `default_rate_boost`,
  `credit_score_weight`): from `start` (until `end`, or for good) the link between features and
  default changes while the features keep their distribution: the credit score's weight in the
  link is multiplied by `credit_score_weight`, and a share `default_rate_boost` of the segment's
  applicants who would have repaid now default, i.e. the segment's default probability p becomes
  p + boost * (1 - p).
- `base_rate_change` (`logit_shift`): the default rate changes for everyone (prior shift): the
  log-odds of default of every application move by `logit_shift`, growing linearly from 0 on
  `start` to `logit_shift` on `end` and staying there afterwards (reached at once when `end` is
  omitted). Features and scores do not move, so no drift test sees it; labels do: a model fitted
  before it is under-confident (its Brier score worsens), its average precision rises with the
  base rate, and its ROC AUC falls a little, as a refitted model's does (a refit wins back
  calibration, not ranking).
- `seasonal` (`amplitude`, `period_days`, optional `column`): a periodic pattern from `start`
  (until `end`, or for good), a sine wave that is 0 on `start` and repeats every `period_days`.
  With `column`, that numeric column is multiplied by 1 + amplitude * sine; without, the log-odds
  of default move by amplitude * sine. A pattern that comes back by itself is not something a
  retrain should chase.
- `data_quality_incident` (`null_column`/`null_fraction`, `unit_change_column`/`unit_factor`,
  `out_of_range_column`/`out_of_range_fraction`): the delivered batch, not the world, is broken
  on the scenario's days: exactly that share of a column is null, a column arrives in other units,
  exactly that share of a column is outside the schema's range.
- `schema_break` (`rename: {old: new}`, `drop: [column]`, `retype: {column: type}`): the delivered
  batch's columns change shape on the scenario's days.

Conventions:
- Timestamps (`event_timestamp`, `label_timestamp`) are tz-naive `datetime64[ns]` in UTC: the
  type pandas, Parquet, scikit-learn and Evidently all handle without surprises. A day runs from
  00:00 to 24:00 UTC.
- Each day has its own random generator seeded from (seed, day ordinal), so any day can be
  generated without generating the days before it, and the same seed and day always give the same
  frame. The features and the outcome draws of a day do not depend on the scenarios, so a
  scenario changes exactly what it says and nothing else.
- Row counts are exact, including the shares corrupted by a data-quality incident.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from include.core.config import ModelConfig, Scenario, Schema, SyntheticSource
from include.core.storage import LABEL_TIMESTAMP

EMPLOYMENT_TYPES = ("salaried", "self_employed", "unemployed", "retired", "student")
HOME_OWNERSHIPS = ("own", "mortgage", "rent", "other")
REGIONS = ("north", "south", "east", "west")
LOAN_TERMS = (12, 24, 36, 48, 60, 84, 120)

FEATURE_COLUMNS = (
    "age",
    "annual_income",
    "loan_amount",
    "loan_term_months",
    "credit_score",
    "debt_to_income",
    "employment_type",
    "home_ownership",
    "region",
)

# Category probabilities by age band (under 25, 25-61, 62 and over); rows follow the tuples above.
_AGE_BANDS = (25, 62)
_EMPLOYMENT_BY_AGE = np.array(
    [
        [0.45, 0.05, 0.10, 0.00, 0.40],
        [0.72, 0.15, 0.07, 0.01, 0.05],
        [0.25, 0.10, 0.03, 0.62, 0.00],
    ]
)
_HOME_BY_AGE = np.array(
    [
        [0.05, 0.10, 0.75, 0.10],
        [0.20, 0.45, 0.30, 0.05],
        [0.60, 0.15, 0.20, 0.05],
    ]
)
_REGION_SHARES = np.array([0.28, 0.26, 0.24, 0.22])
_TERM_SHARES = np.array([0.10, 0.20, 0.30, 0.15, 0.15, 0.05, 0.05])

# Per employment type: median income, spread of log income, credit score shift, risk in the link.
_INCOME_MEDIAN = np.array([52_000.0, 58_000.0, 14_000.0, 32_000.0, 11_000.0])
_INCOME_SIGMA = np.array([0.45, 0.75, 0.60, 0.40, 0.50])
_SCORE_SHIFT = np.array([10.0, -5.0, -45.0, 15.0, -25.0])
_EMPLOYMENT_RISK = np.array([0.0, 0.35, 0.9, -0.1, 0.45])
_HOME_RISK = np.array([-0.25, -0.05, 0.2, 0.3])
_REGION_RISK = np.array([0.0, 0.1, -0.05, 0.05])
_SCORE_SHIFT_BY_HOME = np.array([15.0, 5.0, -10.0, -15.0])

_DTI_NULL_SHARE = 0.01
_DTI_TYPICAL = 0.4
_INTERCEPT = -2.1

_KNOWN_PARAMS = {
    "stable": set(),
    "covariate_shift": {"column", "factor"},
    "concept_drift": {"segment_column", "segment_value", "default_rate_boost", "credit_score_weight"},
    "base_rate_change": {"logit_shift"},
    "seasonal": {"column", "amplitude", "period_days"},
    "data_quality_incident": {
        "null_column",
        "null_fraction",
        "unit_change_column",
        "unit_factor",
        "out_of_range_column",
        "out_of_range_fraction",
    },
    "schema_break": {"rename", "drop", "retype"},
}
_RETYPES = ("string", "float", "integer")
# Kinds whose effect outlasts their period: the world stays changed after the ramp.
_LASTING = ("covariate_shift", "base_rate_change")


# --- the world's calendar ------------------------------------------------------------------------


def world_days(source: SyntheticSource) -> list[dt.date]:
    """Every day the world has applications for, oldest first."""
    return [source.start_date + dt.timedelta(days=offset) for offset in range(source.days)]


def in_world(source: SyntheticSource, day: dt.date) -> bool:
    """Whether the world has applications on `day`."""
    return source.start_date <= day <= source.end_date


def scenario_on(source: SyntheticSource, day: dt.date) -> Scenario | None:
    """The scenario whose period (`start` to `end`, open-ended without `end`) contains `day`.

    When periods overlap, the one that started last wins: it is the news of the day. Lasting
    effects of earlier scenarios (a covariate shift after its ramp) are in `active_scenarios`.
    """
    current = [scenario for scenario in source.scenarios if _within(scenario, day)]
    return max(current, key=lambda scenario: scenario.start) if current else None


def active_scenarios(source: SyntheticSource, day: dt.date) -> list[Scenario]:
    """Every scenario that shapes `day`'s data, including lasting changes past their ramp."""
    return [
        scenario
        for scenario in source.scenarios
        if _within(scenario, day) or (scenario.kind in _LASTING and day >= scenario.start)
    ]


def ground_truth(source: SyntheticSource) -> dict[str, dt.date]:
    """Scenario name -> onset date: what the monitoring is expected to find, and from when."""
    return {scenario.name: scenario.start for scenario in source.scenarios}


def ramp_progress(scenario: Scenario, day: dt.date) -> float:
    """How far a lasting change has gone on `day`: 0 up to `start`, 1 from `end` on, linear between.

    Without `end` the change is sudden: 1 from `start` on.
    """
    if day < scenario.start:
        return 0.0
    if scenario.end is None or day >= scenario.end:
        return 1.0
    return (day - scenario.start).days / (scenario.end - scenario.start).days


def shift_factor(scenario: Scenario, day: dt.date) -> float:
    """The multiplier a covariate shift applies on `day`: 1.0 at `start`, `factor` from `end` on."""
    return 1.0 + (float(scenario.params["factor"]) - 1.0) * ramp_progress(scenario, day)


def base_rate_shift(scenario: Scenario, day: dt.date) -> float:
    """What a base-rate change adds to every application's log-odds of default on `day`."""
    return float(scenario.params["logit_shift"]) * ramp_progress(scenario, day)


def seasonal_wave(scenario: Scenario, day: dt.date) -> float:
    """A seasonal pattern's amplitude * sine on `day`: 0 on `start`, peaking a quarter period later."""
    if not _within(scenario, day):
        return 0.0
    phase = 2 * np.pi * (day - scenario.start).days / float(scenario.params["period_days"])
    return float(scenario.params["amplitude"]) * float(np.sin(phase))


def with_rows_per_day(config: ModelConfig, rows: int) -> ModelConfig:
    """The same world (seed, scenarios) with `rows` applications a day, e.g. for benchmarks."""
    source = _synthetic(config)
    if rows < 1:
        raise ValueError(f"rows: got {rows}; expected at least 1")
    return config.model_copy(update={"source": source.model_copy(update={"rows_per_day": rows})})


# --- generation ----------------------------------------------------------------------------------


def applications_for_day(config: ModelConfig, day: dt.date) -> pd.DataFrame:
    """The true applications of `day` with their outcome, before any data-quality corruption.

    Returns:
        One row per application, ordered by event time: the schema's columns and the target.

    Raises:
        ValueError: the config's source is not synthetic, `day` is outside the world, or the
            schema or a scenario asks for something the world cannot produce.
    """
    source = _synthetic(config)
    _check(config)
    if not in_world(source, day):
        raise ValueError(
            f"day {day} is outside the synthetic world of {config.name!r}, which has data from "
            f"{source.start_date} to {source.end_date}"
        )
    features_rng, outcome_rng, _ = _day_generators(source.seed, day)
    world = _generate_features(features_rng, source.rows_per_day, day, config.schema)
    scenarios = active_scenarios(source, day)
    for scenario in scenarios:
        if scenario.kind == "covariate_shift":
            _scale(world, scenario.params["column"], shift_factor(scenario, day), config.schema)
        elif scenario.kind == "seasonal" and "column" in scenario.params:
            _scale(world, scenario.params["column"], 1.0 + seasonal_wave(scenario, day), config.schema)
    probability = _default_probability(world, scenarios, day)
    world[config.target.column] = (outcome_rng.random(len(world)) < probability).astype("int64")
    return world[[*config.schema.columns, config.target.column]]


def feature_batch(config: ModelConfig, day: dt.date) -> pd.DataFrame:
    """What the source delivers on `day`: the schema's columns, broken as the day's scenario says.

    Raises:
        ValueError: as `applications_for_day`.
    """
    batch = applications_for_day(config, day).drop(columns=config.target.column)
    _, _, corruption_rng = _day_generators(config.source.seed, day)
    for scenario in active_scenarios(config.source, day):
        if scenario.kind == "data_quality_incident":
            _corrupt(batch, scenario, config.schema, corruption_rng)
        elif scenario.kind == "schema_break":
            batch = _break_schema(batch, scenario)
    return batch


def labels_arriving_on(config: ModelConfig, day: dt.date) -> pd.DataFrame:
    """The outcomes that become known on `day`: those of the applications of `day - delay`.

    Returns:
        Columns [entity, target, event timestamp, `label_timestamp`], where the label timestamp is
        the event timestamp plus the delay (so it falls on `day`); an empty frame with these
        columns when no applications happened `delay` days before `day`.
    """
    source = _synthetic(config)
    schema, target = config.schema, config.target
    columns = [schema.entity_column, target.column, schema.timestamp_column]
    event_day = day - dt.timedelta(days=target.label_delay_days)
    if not in_world(source, event_day):
        return pd.DataFrame(
            {
                schema.entity_column: pd.Series(dtype=object),
                target.column: pd.Series(dtype="int64"),
                schema.timestamp_column: pd.Series(dtype="datetime64[ns]"),
                LABEL_TIMESTAMP: pd.Series(dtype="datetime64[ns]"),
            }
        )
    labels = applications_for_day(config, event_day)[columns].copy()
    labels[LABEL_TIMESTAMP] = labels[schema.timestamp_column] + pd.Timedelta(days=target.label_delay_days)
    return labels


# --- internals -----------------------------------------------------------------------------------


def _synthetic(config: ModelConfig) -> SyntheticSource:
    if not isinstance(config.source, SyntheticSource):
        raise ValueError(
            f"model {config.name!r}: source.kind is {config.source.kind!r}; the data world only "
            "generates data for source.kind 'synthetic'"
        )
    return config.source


def _within(scenario: Scenario, day: dt.date) -> bool:
    return scenario.start <= day and (scenario.end is None or day <= scenario.end)


def _day_generators(seed: int, day: dt.date) -> list[np.random.Generator]:
    """Independent generators for the day's features, outcomes and corruption."""
    children = np.random.SeedSequence([seed, day.toordinal()]).spawn(3)
    return [np.random.default_rng(child) for child in children]


def _check(config: ModelConfig) -> None:
    """Fail early, naming the key, when the schema or a scenario asks for the impossible."""
    schema = config.schema
    generated = {schema.entity_column, schema.timestamp_column, *FEATURE_COLUMNS}
    unknown = sorted(set(schema.columns) - generated)
    if unknown:
        raise ValueError(
            f"model {config.name!r}: schema.columns {unknown} are not generated by the synthetic "
            f"world, which has {sorted(FEATURE_COLUMNS)} besides the entity and timestamp columns"
        )
    for scenario in config.source.scenarios:
        _check_scenario(scenario, schema)


def _check_scenario(scenario: Scenario, schema: Schema) -> None:
    where = f"source.scenarios[{scenario.name!r}].params"
    params = scenario.params
    unknown = sorted(set(params) - _KNOWN_PARAMS[scenario.kind])
    if unknown:
        raise ValueError(
            f"{where}: unknown keys {unknown}; a {scenario.kind} takes {sorted(_KNOWN_PARAMS[scenario.kind])}"
        )

    def column(key: str, types: tuple[str, ...] | None = None) -> None:
        name = params.get(key)
        if name not in schema.columns:
            raise ValueError(f"{where}.{key}: got {name!r}; expected one of the schema columns")
        if types and schema.columns[name].type not in types:
            raise ValueError(
                f"{where}.{key}: got {name!r} of type {schema.columns[name].type}; expected a column "
                f"of type {' or '.join(types)}"
            )

    def number(key: str) -> None:
        value = params.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{where}.{key}: got {value!r}; expected a number")

    def fraction(key: str) -> None:
        value = params.get(key)
        if not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{where}.{key}: got {value!r}; expected a fraction between 0 and 1")

    if scenario.kind == "covariate_shift":
        column("column", ("integer", "float"))
        if not isinstance(params.get("factor"), int | float) or params["factor"] <= 0:
            raise ValueError(f"{where}.factor: got {params.get('factor')!r}; expected a positive number")
    elif scenario.kind == "concept_drift":
        if "segment_column" in params or "segment_value" in params or "default_rate_boost" in params:
            column("segment_column", ("category", "string"))
            if "segment_value" not in params:
                raise ValueError(f"{where}.segment_value: missing; expected the value that marks the segment")
            fraction("default_rate_boost")
        weight = params.get("credit_score_weight", 1.0)
        if not isinstance(weight, int | float):
            raise ValueError(f"{where}.credit_score_weight: got {weight!r}; expected a number")
    elif scenario.kind == "base_rate_change":
        number("logit_shift")
    elif scenario.kind == "seasonal":
        if "column" in params:
            column("column", ("integer", "float"))
        number("amplitude")
        if "column" in params and not 0 < params["amplitude"] < 1:
            raise ValueError(
                f"{where}.amplitude: got {params['amplitude']!r}; expected a fraction between 0 and 1 "
                "(exclusive) when it scales a column, which must stay positive"
            )
        period = params.get("period_days")
        if not isinstance(period, int) or isinstance(period, bool) or period < 2:
            raise ValueError(f"{where}.period_days: got {period!r}; expected a whole number of days, at least 2")
    elif scenario.kind == "data_quality_incident":
        if "null_column" in params or "null_fraction" in params:
            column("null_column")
            fraction("null_fraction")
        if "unit_change_column" in params or "unit_factor" in params:
            column("unit_change_column", ("integer", "float"))
            if not isinstance(params.get("unit_factor"), int | float):
                raise ValueError(f"{where}.unit_factor: got {params.get('unit_factor')!r}; expected a number")
        if "out_of_range_column" in params or "out_of_range_fraction" in params:
            column("out_of_range_column", ("integer", "float"))
            fraction("out_of_range_fraction")
            spec = schema.columns[params["out_of_range_column"]]
            if spec.min is None and spec.max is None:
                raise ValueError(
                    f"{where}.out_of_range_column: {params['out_of_range_column']!r} has no min or max "
                    "in the schema, so no value of it is out of range"
                )
    elif scenario.kind == "schema_break":
        for old in params.get("rename", {}):
            if old not in schema.columns:
                raise ValueError(f"{where}.rename: got {old!r}; expected one of the schema columns")
        for name in params.get("drop", []):
            if name not in schema.columns:
                raise ValueError(f"{where}.drop: got {name!r}; expected one of the schema columns")
        for name, kind in params.get("retype", {}).items():
            if name not in schema.columns or kind not in _RETYPES:
                raise ValueError(
                    f"{where}.retype: got {name!r}: {kind!r}; expected a schema column and one of {_RETYPES}"
                )


def _pick(rng: np.random.Generator, cumulative: np.ndarray) -> np.ndarray:
    """One category code per row, given each row's cumulative category probabilities."""
    draws = rng.random(len(cumulative))
    codes = (draws[:, None] >= cumulative).sum(axis=1)
    return np.minimum(codes, cumulative.shape[1] - 1)


def _clip(values: np.ndarray, schema: Schema, column: str) -> np.ndarray:
    spec = schema.columns.get(column)
    if spec is None:
        return values
    low = -np.inf if spec.min is None else spec.min
    high = np.inf if spec.max is None else spec.max
    return np.clip(values, low, high)


def _entity_ids(day: dt.date, rows: int) -> np.ndarray:
    """`A<yyyymmdd>-<row>` ids, unique across days, built in Arrow (faster than a Python loop at 1M rows)."""
    width = max(6, len(str(rows - 1)))
    numbers = pc.cast(pa.array(np.arange(rows)), pa.string())
    ids = pc.binary_join_element_wise(f"A{day:%Y%m%d}-", pc.utf8_lpad(numbers, width, "0"), "")
    return ids.to_numpy(zero_copy_only=False)


def _generate_features(rng: np.random.Generator, rows: int, day: dt.date, schema: Schema) -> pd.DataFrame:
    """The day's applications as the world made them, within the schema's ranges."""
    milliseconds = np.sort(rng.integers(0, 86_400_000, rows))
    timestamps = np.datetime64(day, "ms") + milliseconds.astype("timedelta64[ms]")

    age = np.rint(_clip(18 + rng.gamma(5.0, 5.0, rows), schema, "age")).astype("int64")
    band = np.digitize(age, _AGE_BANDS)
    employment = _pick(rng, np.cumsum(_EMPLOYMENT_BY_AGE, axis=1)[band])
    home = _pick(rng, np.cumsum(_HOME_BY_AGE, axis=1)[band])
    region = rng.choice(len(REGIONS), size=rows, p=_REGION_SHARES)

    log_income = (
        np.log(_INCOME_MEDIAN[employment])
        + 0.01 * (np.clip(age, 18, 55) - 40)
        + _INCOME_SIGMA[employment] * rng.standard_normal(rows)
    )
    income = np.round(_clip(np.exp(log_income), schema, "annual_income"), 2)
    loan = np.round(
        _clip(np.maximum(income, 5_000) * rng.lognormal(np.log(0.35), 0.55, rows), schema, "loan_amount"), 2
    )
    term = np.asarray(LOAN_TERMS)[rng.choice(len(LOAN_TERMS), size=rows, p=_TERM_SHARES)]
    term = _clip(term, schema, "loan_term_months").astype("int64")

    score = (
        690
        + 1.2 * (np.clip(age, 18, 70) - 40)
        + _SCORE_SHIFT[employment]
        + _SCORE_SHIFT_BY_HOME[home]
        + 65 * rng.standard_normal(rows)
    )
    score = np.rint(_clip(score, schema, "credit_score")).astype("int64")

    yearly_payment = loan / term * 12
    dti = rng.gamma(2.0, 0.12, rows) + yearly_payment / np.maximum(income, 1_000)
    dti = np.round(_clip(dti, schema, "debt_to_income"), 3)
    dti[rng.random(rows) < _DTI_NULL_SHARE] = np.nan

    categories = np.asarray(EMPLOYMENT_TYPES, dtype=object), np.asarray(HOME_OWNERSHIPS, dtype=object)
    return pd.DataFrame(
        {
            schema.entity_column: _entity_ids(day, rows),
            schema.timestamp_column: timestamps.astype("datetime64[ns]"),
            "age": age,
            "annual_income": income,
            "loan_amount": loan,
            "loan_term_months": term,
            "credit_score": score,
            "debt_to_income": dti,
            "employment_type": categories[0][employment],
            "home_ownership": categories[1][home],
            "region": np.asarray(REGIONS, dtype=object)[region],
        }
    )


def _scale(world: pd.DataFrame, name: str, factor: float, schema: Schema) -> None:
    """Multiply a numeric column by `factor`, staying within the schema's range and type."""
    shifted = _clip(world[name].to_numpy() * factor, schema, name)
    if schema.columns[name].type == "integer":
        world[name] = np.rint(shifted).astype("int64")
    else:
        world[name] = np.round(shifted, 2)


def _default_probability(world: pd.DataFrame, scenarios: list[Scenario], day: dt.date) -> np.ndarray:
    """The chance each application defaults on `day`: a logistic link of its risk factors.

    The credit score, the debt ratio, the loan's size against income and the employment type carry
    most of the signal; housing, age, term and region add a little. Concept drift reweights the
    score and pushes one segment's defaults up; a base-rate change or a seasonal base rate moves
    the intercept.
    """
    intercept = _INTERCEPT
    for scenario in scenarios:
        if scenario.kind == "base_rate_change":
            intercept += base_rate_shift(scenario, day)
        elif scenario.kind == "seasonal" and "column" not in scenario.params:
            intercept += seasonal_wave(scenario, day)
    drifts = [scenario.params for scenario in scenarios if scenario.kind == "concept_drift"]
    score_weight = float(np.prod([params.get("credit_score_weight", 1.0) for params in drifts]))

    dti = world["debt_to_income"].to_numpy()
    dti_missing = np.isnan(dti)
    income = np.maximum(world["annual_income"].to_numpy(), 1_000)
    employment = pd.Categorical(world["employment_type"], categories=EMPLOYMENT_TYPES).codes
    home = pd.Categorical(world["home_ownership"], categories=HOME_OWNERSHIPS).codes
    region = pd.Categorical(world["region"], categories=REGIONS).codes
    logit = (
        intercept
        - 1.0 * score_weight * (world["credit_score"].to_numpy() - 690) / 65
        + 1.6 * (np.where(dti_missing, _DTI_TYPICAL, dti) - _DTI_TYPICAL)
        + 0.3 * dti_missing
        + 0.6 * np.log(world["loan_amount"].to_numpy() / income / 0.35)
        + _EMPLOYMENT_RISK[employment]
        + _HOME_RISK[home]
        + _REGION_RISK[region]
        - 0.012 * (world["age"].to_numpy() - 42)
        + 0.004 * (world["loan_term_months"].to_numpy() - 36)
    )
    probability = 1 / (1 + np.exp(-logit))
    for params in drifts:
        if "segment_column" in params:
            segment = (world[params["segment_column"]] == params["segment_value"]).to_numpy()
            boost = float(params.get("default_rate_boost", 0.0))
            probability = np.where(segment, probability + boost * (1 - probability), probability)
    return probability


def _corrupt(batch: pd.DataFrame, scenario: Scenario, schema: Schema, rng: np.random.Generator) -> None:
    """Break the delivered batch in place: exact shares of nulls and of out-of-range values.

    An integer column that receives nulls becomes pandas' nullable `Int64`, so the batch still
    says "integer" and the failure is the nulls themselves.
    """
    params = scenario.params
    rows = len(batch)
    if "null_column" in params:
        name = params["null_column"]
        chosen = rng.choice(rows, size=round(params["null_fraction"] * rows), replace=False)
        if schema.columns[name].type == "integer":
            batch[name] = batch[name].astype("Int64")
        batch.loc[batch.index[chosen], name] = None
    if "unit_change_column" in params:
        name = params["unit_change_column"]
        changed = batch[name] * params["unit_factor"]
        if schema.columns[name].type == "integer":
            changed = changed.round().astype("Int64" if batch[name].dtype == "Int64" else "int64")
        batch[name] = changed
    if "out_of_range_column" in params:
        name = params["out_of_range_column"]
        chosen = rng.choice(rows, size=round(params["out_of_range_fraction"] * rows), replace=False)
        batch.loc[batch.index[chosen], name] = _out_of_range(schema, name, len(chosen), rng)


def _out_of_range(schema: Schema, name: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """Values outside the column's range, half below `min` and half above `max` when it has both."""
    spec = schema.columns[name]
    bounds = [bound for bound in (spec.min, spec.max) if bound is not None]
    span = max(bounds) - min(bounds) if len(bounds) == 2 else max(abs(bounds[0]), 1.0)
    offset = np.maximum(rng.uniform(0.01, 0.5, count) * span, 1.0)
    if spec.min is None:
        below = np.zeros(count, dtype=bool)
    elif spec.max is None:
        below = np.ones(count, dtype=bool)
    else:
        below = rng.random(count) < 0.5
    low = spec.min if spec.min is not None else 0.0
    high = spec.max if spec.max is not None else 0.0
    values = np.where(below, low - offset, high + offset)
    if spec.type == "integer":
        return np.where(below, np.floor(values), np.ceil(values)).astype("int64")
    return values


def _break_schema(batch: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    params = scenario.params
    batch = batch.drop(columns=list(params.get("drop", [])))
    for name, kind in params.get("retype", {}).items():
        if name in batch:
            batch[name] = _retype(batch[name], kind)
    return batch.rename(columns=params.get("rename", {}))


def _retype(values: pd.Series, kind: str) -> pd.Series:
    """The column as a feed that changed its type would send it (nulls stay nulls)."""
    if kind == "string":
        return values.astype(str).where(values.notna(), None)
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.round().astype("Int64") if kind == "integer" else numbers.astype("float64")
