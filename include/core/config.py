"""The model config file: one YAML under `include/models/` defines one model end to end.

`load_model_config(path)` returns a validated `ModelConfig` or raises `ConfigError`, whose message
names the file, the key, the value it got and what was expected. `discover_model_configs()` reads
every config in the models folder and keeps the valid ones apart from the broken ones, so that one
broken file never takes down the other models' DAGs.
"""

import datetime as dt
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from include.core import config_cache, intervals, settings

# libyaml's loader is about ten times faster than the pure-Python one, and configs are read at
# every DAG parse.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MODEL_NAME_PATTERN = r"^[a-z][a-z0-9_]*[a-z0-9]$"


class ConfigError(ValueError):
    """A model config file is missing, unreadable or invalid; the message says where and why."""


class _Strict(BaseModel):
    # defer_build: each DAG file parse imports this module in a fresh process; building the
    # validators of every class at import costs more than the whole parse of a trivial DAG, and a
    # parse served from the discovery cache (below) never validates at all. For the same reason,
    # nested defaults are `Field(default_factory=Split)`, not `Split()` (an instance builds its
    # class's validator at import), and this module has no `from __future__ import annotations`
    # (pydantic would compile and evaluate every annotation string at import).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --- data source ---------------------------------------------------------------------------------


class Scenario(_Strict):
    """One named period of the synthetic data world, with its ground-truth onset date."""

    name: str
    kind: Literal[
        "stable",
        "covariate_shift",
        "concept_drift",
        "base_rate_change",
        "seasonal",
        "data_quality_incident",
        "schema_break",
    ]
    start: dt.date
    end: dt.date | None = Field(None, description="Last day (inclusive); open-ended when omitted.")
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _end_not_before_start(self) -> "Scenario":
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


def _not_hourly(value: Any) -> Any:
    if value == "hourly":
        raise ValueError("a files source names each file by a day ({day}): use daily, weekly or monthly")
    return value


BatchInterval = Literal["hourly", "daily", "weekly", "monthly"]
"""`source.interval`: the unit in which the source delivers data (`include.core.intervals`)."""
DayInterval = Annotated[Literal["daily", "weekly", "monthly"], BeforeValidator(_not_hourly)]
"""A `files` source's interval: each interval's file is named by its first day."""


class SyntheticSource(_Strict):
    """A seeded generator of daily credit applications with known drift (the demo's data world)."""

    kind: Literal["synthetic"]
    seed: int = 42
    start_date: dt.date
    days: Annotated[int, Field(ge=1)]
    rows_per_day: Annotated[int, Field(ge=1)] = 1000
    scenarios: list[Scenario] = Field(default_factory=list)
    interval: Literal["daily"] = Field("daily", description="The data world is daily only.")

    @property
    def end_date(self) -> dt.date:
        """The last day the world has data for."""
        return self.start_date + dt.timedelta(days=self.days - 1)


class FilesSource(_Strict):
    """A user's own CSV or Parquet files, one file per day, dropped into a folder.

    `pattern` names the day's file with a `{day}` placeholder (YYYY-MM-DD); the file's format
    follows its extension. Labels, when the user has them, follow the same convention.
    """

    kind: Literal["files"]
    path: Path = Field(description="Folder of feature files; relative paths start at the project root.")
    pattern: str = "{day}.parquet"
    labels_path: Path | None = Field(None, description="Folder of label files (entity, label, timestamp).")
    labels_pattern: str = "{day}.parquet"
    start_date: dt.date
    end_date: dt.date | None = None
    interval: DayInterval = "daily"

    @field_validator("pattern", "labels_pattern")
    @classmethod
    def _names_the_day(cls, value: str) -> str:
        if "{day}" not in value:
            raise ValueError("must contain the placeholder {day}, e.g. applications_{day}.csv")
        if not value.endswith((".csv", ".parquet")):
            raise ValueError("must end in .csv or .parquet")
        return value


_SQL_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"


class SqlSource(_Strict):
    """Rows of a database table or query, read through an Airflow Connection (`conn_id`).

    Credentials stay in Airflow's connection store or secrets backend: the config names the
    connection only. `table` selects the rows whose `schema.timestamp_column` falls in the
    interval [start, end); a `query` gets the interval's bounds bound as the parameters `start`
    and `end` in the driver's style (`%(start)s` for PostgreSQL). `labels_query` is bound to the
    interval in which the labels arrived, the same way.
    """

    kind: Literal["sql"]
    conn_id: Annotated[str, Field(min_length=1)]
    table: Annotated[str, Field(pattern=_SQL_NAME)] | None = Field(
        None, description="A table (or schema.table) with one row per event; or give `query`."
    )
    query: str | None = Field(None, description="SELECT … WHERE ts >= %(start)s AND ts < %(end)s")
    labels_query: str | None = Field(None, description="Labels that arrived in [start, end): entity, target.")
    start_date: dt.date
    end_date: dt.date | None = None
    interval: BatchInterval = "daily"

    @field_validator("query", "labels_query")
    @classmethod
    def _binds_the_interval(cls, value: str | None) -> str | None:
        if value is not None and not ("start" in value and "end" in value):
            raise ValueError(
                "must bind the interval's bounds as the parameters start and end, "
                "e.g. WHERE ts >= %(start)s AND ts < %(end)s"
            )
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> "SqlSource":
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table and query")
        return self


class TableSource(_Strict):
    """One CSV or Parquet file, or a folder or glob of them, holding many days of rows.

    An interval's rows are those whose `schema.timestamp_column` falls in [start, end); Parquet
    files are filtered by pyarrow (row groups outside the interval are not read). Labels, when
    the user has them, come the same way from `labels_path`, selected by `labels_timestamp_column`
    (when each label became known).
    """

    kind: Literal["table"]
    path: str = Field(description="File, folder or glob (*.csv, *.parquet); relative paths start at the project root.")
    labels_path: str | None = Field(None, description="File, folder or glob of labels (entity, label, arrival time).")
    labels_timestamp_column: str = "label_timestamp"
    start_date: dt.date
    end_date: dt.date | None = None
    interval: BatchInterval = "daily"


Source = Annotated[SyntheticSource | FilesSource | SqlSource | TableSource, Field(discriminator="kind")]


# --- schema and target ---------------------------------------------------------------------------

ColumnType = Literal["string", "integer", "float", "boolean", "category", "timestamp"]


class Column(_Strict):
    """What a valid value of one column looks like; the GX suite is built from this."""

    type: ColumnType
    nullable: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str | int | bool] | None = None

    @model_validator(mode="after")
    def _range_and_allowed_fit_the_type(self) -> "Column":
        if (self.min is not None or self.max is not None) and self.type not in ("integer", "float"):
            raise ValueError(f"min/max only apply to integer or float columns, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.allowed is not None and not self.allowed:
            raise ValueError("allowed must list at least one value")
        return self


class Expectation(_Strict):
    """A hand-written GX expectation added to the generated suite (e.g. a mean within bounds)."""

    type: str = Field(description="GX expectation name, e.g. expect_column_mean_to_be_between")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["blocking", "warning"] = "blocking"

    @field_validator("type")
    @classmethod
    def _is_an_expectation_name(cls, value: str) -> str:
        if not value.startswith("expect_"):
            raise ValueError("must be a GX expectation name starting with 'expect_'")
        return value


class Schema(_Strict):
    """Columns of a feature batch, its entity and timestamp columns, and which checks only warn."""

    entity_column: str
    timestamp_column: str
    columns: dict[str, Column]
    expectations: list[Expectation] = Field(default_factory=list)
    warn_only: list[str] = Field(
        default_factory=list,
        description="Columns whose range and allowed-value checks warn instead of blocking.",
    )

    @model_validator(mode="after")
    def _named_columns_exist(self) -> "Schema":
        for key in ("entity_column", "timestamp_column"):
            name = getattr(self, key)
            if name not in self.columns:
                raise ValueError(f"{key} {name!r} is not one of the columns {sorted(self.columns)}")
        unknown = sorted(set(self.warn_only) - set(self.columns))
        if unknown:
            raise ValueError(f"warn_only names unknown columns {unknown}")
        return self


class Target(_Strict):
    """The label, which arrives `label_delay_days` after the event as a separate feedback stream."""

    column: str
    kind: Literal["binary_classification"] = "binary_classification"
    positive_label: int | str = 1
    label_delay_days: Annotated[int, Field(ge=0)] = 7


class Features(_Strict):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


# --- training, evaluation, monitoring, serving, deployment ---------------------------------------


def dotted_path(value: str, example: str) -> str:
    """`value` when it names something inside a module (`module.Name`), else a ValueError."""
    module, _, name = value.rpartition(".")
    if not module or not name:
        raise ValueError(f"must be a dotted path such as {example}")
    return value


class Estimator(_Strict):
    class_path: str = Field(
        alias="class", description="Importable sklearn estimator, e.g. sklearn.linear_model.LogisticRegression"
    )
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("class_path")
    @classmethod
    def _is_a_dotted_path(cls, value: str) -> str:
        return dotted_path(value, "sklearn.linear_model.LogisticRegression")


class Split(_Strict):
    """Time-based split: the newest rows are the holdout, the ones before them validation."""

    validation_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.15
    holdout_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.15


class ChangePoint(_Strict):
    """How training treats a change of the world (a drift or performance request's `change_start`).

    A requested retrain waits until `min_labelled_rows` labelled rows exist from the change on;
    then the holdout is drawn from those rows (at most a third of them, so the candidate also
    learns from them) and, in training, the rows from the change on carry at least `weight_share`
    of the total sample weight. Later runs whose window still holds the change point do the same.

    A model fitted on the first few thousand rows of a changed world is provisional: once the
    labelled rows from the change have grown `refit_growth` times, the request is honoured again
    (a refit), and again at each further growth, until the training window lies wholly after the
    change. None turns refits off.
    """

    min_labelled_rows: Annotated[int, Field(ge=1)] = 3000
    weight_share: Annotated[float, Field(ge=0, lt=1)] = 0.5
    refit_growth: Annotated[float, Field(gt=1)] | None = 2.0


class Training(_Strict):
    schedule: str | None = Field(None, description="Cron expression; None trains on data and requests only.")
    window_days: Annotated[int, Field(ge=1)] = 60
    min_rows: Annotated[int, Field(ge=1)] = 500
    every_n_batches: Annotated[int, Field(ge=1)] = 7
    estimator: Estimator
    split: Split = Field(default_factory=Split)
    change_point: ChangePoint = Field(default_factory=ChangePoint)


class Metric(_Strict):
    """How a metric gates a candidate (see `include.training.evaluation.judge_candidate`).

    `threshold` is the floor (or ceiling, when lower is better) both models are held to: a
    candidate must meet it, and a champion that misses it on the holdout is degraded.
    `non_inferiority_margin` is the most the candidate may be worse than the champion on this
    metric, in the metric's units and direction. `min_absolute_change` and `min_relative_change`
    are the gain a challenger needs over the champion, with MLflow's MetricThreshold semantics
    (point estimates).
    """

    threshold: float | None = None
    non_inferiority_margin: Annotated[float, Field(ge=0)] | None = None
    min_absolute_change: Annotated[float, Field(ge=0)] | None = None
    min_relative_change: Annotated[float, Field(ge=0)] | None = None
    greater_is_better: bool = True


class Comparison(_Strict):
    """How the primary metric's gain over the champion is judged with its uncertainty.

    A seeded paired bootstrap of (candidate - champion) over the holdout rows gives a
    `confidence` interval of the gain. Wholly above the required gain: better; wholly below zero:
    worse; otherwise a tie (a gain within noise), decided by `ties`:

    - `reject`: a tie never replaces the champion;
    - `promote`: a tie does (when every other check passes);
    - `promote_on_request`: a tie does only in a run started by a drift or performance request
      (the world changed; a model fitted to it at no loss replaces one that was not, which is what
      stops the requests once the shift is absorbed), never in a schedule, new-data or on-demand
      run (no churn of equivalent models).
    """

    bootstrap_samples: Annotated[int, Field(ge=100)] = 1000
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    seed: int = 0
    ties: Literal["reject", "promote", "promote_on_request"] = "promote_on_request"


class DegradedChampion(_Strict):
    """What happens when the champion misses its own floors on the holdout (it is degraded).

    A candidate significantly better than a degraded champion may be promoted even below a floor
    (a floor exception); `promotion` says whether that promotion is `automatic` or waits for a
    person's `approval` in model deployment. After `alert_after_rejections` rejected retrains in a
    row while the champion is degraded, `notifier` (an Airflow notifier class, built with
    `notifier_params`) raises an alert.
    """

    promotion: Literal["automatic", "approval"] = "approval"
    alert_after_rejections: Annotated[int, Field(ge=1)] = 3
    notifier: str = Field("mlops_dags.notifiers.LogNotifier", description="Dotted path of a BaseNotifier subclass.")
    notifier_params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("notifier")
    @classmethod
    def _is_a_dotted_path(cls, value: str) -> str:
        return dotted_path(value, "mlops_dags.notifiers.LogNotifier")


class Evaluation(_Strict):
    primary_metric: str
    metrics: dict[str, Metric]
    slices: list[str] = Field(default_factory=list)
    slice_tolerance: Annotated[float, Field(ge=0)] = 0.05
    min_slice_rows: Annotated[int, Field(ge=1)] = 50
    comparison: Comparison = Field(default_factory=Comparison)
    degraded_champion: DegradedChampion = Field(default_factory=DegradedChampion)

    @model_validator(mode="after")
    def _primary_is_a_metric(self) -> "Evaluation":
        if self.primary_metric not in self.metrics:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not in metrics {sorted(self.metrics)}")
        return self


DriftMethod = Literal["ks", "chisquare", "psi", "wasserstein"]


class Drift(_Strict):
    """Per-column drift tests; see include/monitoring/drift.py for how each method's score is read."""

    method: DriftMethod = "ks"
    threshold: float = 0.05
    column_methods: dict[str, DriftMethod] = Field(default_factory=dict)
    drift_share: Annotated[float, Field(gt=0, le=1)] = 0.5


class RetrainPolicy(_Strict):
    min_rows: Annotated[int, Field(ge=1)] = 200
    consecutive_windows: Annotated[int, Field(ge=1)] = 2
    performance_drop: Annotated[float, Field(ge=0)] = 0.05
    cooldown_days: Annotated[int, Field(ge=0)] = 3
    max_retrains: Annotated[int, Field(ge=1)] = 4
    period_days: Annotated[int, Field(ge=1)] = 30


class Monitoring(_Strict):
    """The drift sensor. `reports` says which checks also get Evidently's HTML and JSON reports:
    `on_request` (the windows that requested a retrain), `on_drift` (also the windows whose data or
    predictions drifted) or `every_check`; an Evidently report costs more than the check itself.
    Every check keeps its verdict and numbers (`check.json`, the MLflow run, the metrics history)
    either way. `skew_max_share`: for a model with `feature_store: feast`, the largest share of
    predictions whose served value of a feature may differ from the feature store's offline value
    (`include.monitoring.feature_skew`); above it the sensor alerts and withholds retrain requests."""

    schedule: str = "@daily"
    window_days: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Days each check compares; None: one batch interval's days (`drift_window_days`)."
    )
    reports: Literal["on_request", "on_drift", "every_check"] = "on_request"
    skew_max_share: Annotated[float, Field(ge=0, le=1)] = 0.01
    drift: Drift = Field(default_factory=Drift)
    retrain_policy: RetrainPolicy = Field(default_factory=RetrainPolicy)


class Retention(_Strict):
    """How many data days of derived artefacts the drift sensor's `enforce_retention` task keeps
    (`include.monitoring.retention`): the drift reports, the online prediction log and the batch
    predictions; None keeps them all. Counted back from the newest day the drift sensor checked.
    Data is never deleted: the landing, curated, labels and quarantine stores are not touched."""

    reports_days: Annotated[int, Field(ge=1)] | None = 90
    logs_days: Annotated[int, Field(ge=1)] | None = 30
    batch_predictions_days: Annotated[int, Field(ge=1)] | None = 30


class Serving(_Strict):
    latency_budget_ms: Annotated[float, Field(gt=0)] = 50
    memory_budget_mb: Annotated[float, Field(gt=0)] = 1024
    max_batch_size: Annotated[int, Field(ge=1)] = 1000


class Deployment(_Strict):
    """How a blessed version reaches production (`<model>__model_deployment`).

    `promotion: approval` makes a person approve each promotion in the Airflow UI, as Google's
    Level 2 keeps the production step manual; unanswered after `approval_timeout_hours` counts as
    a rejection. After promotion the live service must serve the version within
    `service_timeout_seconds`, answer the golden examples, and take a load test of
    `load_test_rate` single-record requests per second for `load_test_seconds` without errors
    and with p99 latency within `serving.latency_budget_ms`; a p99 miss is measured again, 10 s
    later, up to `load_test_attempts` measurements in all, and fails only if every one misses.
    """

    promotion: Literal["automatic", "approval"] = "automatic"
    approval_timeout_hours: Annotated[float, Field(gt=0)] = 168
    service_timeout_seconds: Annotated[float, Field(gt=0)] = 120
    load_test_rate: Annotated[float, Field(gt=0)] = 20
    load_test_seconds: Annotated[float, Field(gt=0)] = 5
    load_test_attempts: Annotated[int, Field(ge=1, le=10)] = 3


RETRAIN_ON = ("request", "schedule", "new_data", "every_day")
"""What a replay policy may retrain on: a drift or performance request, `training.schedule`,
every `training.every_n_batches` curated batches, or every day."""


BUILT_IN_REPLAY_POLICIES = ("level0", "scheduled", "triggered", "every_day")
"""The policies every replay knows (`include.replay.policies.BUILT_IN`); a config cannot redefine them."""


class ReplayPolicy(_Strict):
    """A retraining policy of the model's own that `make replay` compares with the built-in ones
    (`include.replay.policies`): what it retrains on, and whether candidates face the gate."""

    description: str = ""
    retrain_on: list[Literal["request", "schedule", "new_data", "every_day"]] = Field(default_factory=list)
    gate: bool = True


class Replay(_Strict):
    """`make replay` (`include.replay`): policies named here are replayed beside the built-in ones."""

    policies: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], ReplayPolicy] = Field(default_factory=dict)


class ModelConfig(_Strict):
    """One model, end to end. Its `name` is the prefix of its DAG ids (`<name>__<stage>`)."""

    name: Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]
    description: str = ""
    owner: str = "ml-team"
    paused_on_start: bool = Field(
        False,
        description="Whether the model's DAGs are paused when Airflow first sees them; false: they run at once.",
    )
    source: Source
    schema_: Schema = Field(alias="schema")
    target: Target
    features: Features
    training: Training
    evaluation: Evaluation
    monitoring: Monitoring = Field(default_factory=Monitoring)
    retention: Retention = Field(default_factory=Retention)
    serving: Serving = Field(default_factory=Serving)
    deployment: Deployment = Field(default_factory=Deployment)
    replay: Replay = Field(default_factory=Replay)
    feature_store: Literal["feast"] | None = Field(
        None,
        description="`feast`: the model's features are kept in a Feast feature store generated from this file "
        "(include/features/feature_store.py), materialized after each curated batch; None: no feature store.",
    )

    @model_validator(mode="after")
    def _columns_referenced_exist(self) -> "ModelConfig":
        columns = self.schema_.columns
        for kind in ("numeric", "categorical"):
            unknown = [name for name in getattr(self.features, kind) if name not in columns]
            if unknown:
                raise ValueError(f"features.{kind} names columns not in schema.columns: {unknown}")
        if not self.features.all:
            raise ValueError("features must name at least one numeric or categorical column")
        if self.target.column in columns:
            raise ValueError(
                f"target.column {self.target.column!r} must not be a schema column: labels arrive "
                "separately, and a label among the features would leak the answer"
            )
        not_features = [name for name in self.evaluation.slices if name not in self.features.categorical]
        if not_features:
            raise ValueError(f"evaluation.slices must be categorical features, got {not_features}")
        for key, days in (("training.window_days", self.training.window_days),
                          ("monitoring.window_days", self.monitoring.window_days)):
            interval = self.source.interval
            if days is not None and days < intervals.longest_days(interval):
                raise ValueError(f"{key}: {days} day(s) is shorter than one {interval} batch interval "
                                 f"({intervals.longest_days(interval)} days, source.interval); give at least that")
        for name, policy in self.replay.policies.items():
            if name in BUILT_IN_REPLAY_POLICIES:
                raise ValueError(f"replay.policies.{name}: {name} is a built-in policy; give yours another name")
            if "schedule" in policy.retrain_on and not self.training.schedule:
                raise ValueError(f"replay.policies.{name} retrains on schedule, but training.schedule is not set")
        return self

    @property
    def drift_window_days(self) -> int:
        """The drift sensor's window in days: `monitoring.window_days`, else one batch interval's (at most)."""
        return self.monitoring.window_days or intervals.longest_days(self.source.interval)

    @property
    def schema(self) -> Schema:  # noqa: D102 - the field is `schema_` only because BaseModel owns `schema`
        return self.schema_


# --- loading -------------------------------------------------------------------------------------


def _format_validation_error(path: Path, raw: dict, error: ValidationError) -> str:
    lines = [f"{path}: invalid model config ({error.error_count()} problem(s))"]
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"] if not str(part).startswith("function-"))
        key = re.sub(r"^source\.(?:synthetic|files|sql|table)\b", "source", key)
        value = problem.get("input")
        shown = "missing" if problem["type"] == "missing" else repr(value)
        if isinstance(value, dict) and problem["type"] != "missing":
            shown = "{...}"
        lines.append(f"  key '{key or '<top>'}': got {shown}; expected: {problem['msg']}")
    return "\n".join(lines)


def load_model_config(path: str | Path) -> ModelConfig:
    """Read and validate one model config file.

    Raises:
        ConfigError: naming the file, and for each problem the key, the value and what was expected.
    """
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the model config: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top, got {type(raw).__name__}")
    try:
        config = ModelConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, raw, exc)) from None
    if config.name != path.stem:
        raise ConfigError(
            f"{path}: key 'name': got {config.name!r}; expected the file's name {path.stem!r}, "
            "so that DAG ids and file names match"
        )
    return config


@dataclass
class DiscoveredConfigs:
    """The result of reading the models folder: valid configs by name, and errors by file."""

    valid: dict[str, ModelConfig] = field(default_factory=dict)
    errors: dict[Path, ConfigError] = field(default_factory=dict)


def discover_model_configs(folder: Path | None = None) -> DiscoveredConfigs:
    """Read every `*.yaml` in the models folder, keeping broken files apart from valid ones.

    Every DAG file calls this at every parse, each in a fresh process, so the result is cached on
    disk (`include.core.config_cache`): an unchanged folder is not read again.
    """
    folder = folder or settings.models_dir()
    paths = sorted(folder.glob("*.yaml"))
    cache_file = config_cache.cache_file(folder, paths)
    cached = config_cache.read(cache_file) if cache_file is not None else None
    if cached is not None:
        try:
            found = pickle.loads(cached["discovered"])
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError):
            found = None
        if isinstance(found, DiscoveredConfigs):
            return found
    found = DiscoveredConfigs()
    for path in paths:
        try:
            config = load_model_config(path)
        except ConfigError as exc:
            found.errors[path] = exc
        else:
            found.valid[config.name] = config
    if cache_file is not None:
        facts = {name: plain_facts(config) for name, config in found.valid.items()}
        config_cache.write(cache_file, pickle.dumps(found), facts)
    return found


_PLAIN = (str, int, float, bool, type(None), dt.date, Path)


def plain_facts(model: BaseModel, depth: int = 3) -> dict[str, Any]:
    """The plain values of a config (its fields and properties, nested sections to `depth` levels) by name.

    What the DAG files read when they build a model's DAGs (its name, schedules, start date, ...)
    is among them, so a parse served from the discovery cache answers without this module
    (`mlops_dags.parsed_configs`). Lists, dicts and deeper sections are left out.
    """
    names = [
        *type(model).model_fields,
        *(name for name, value in vars(type(model)).items() if isinstance(value, property)),
    ]
    facts = {}
    for name in names:
        try:
            value = getattr(model, name)
        except Exception:  # noqa: BLE001 - a property that cannot answer is simply not a fact
            continue
        if isinstance(value, _PLAIN):
            facts[name] = value
        elif isinstance(value, BaseModel) and depth > 1:
            facts[name] = plain_facts(value, depth - 1)
    return facts


def get_model_config(name: str) -> ModelConfig:
    """Load the config of the named model from the models folder (what a task calls at run time)."""
    return load_model_config(settings.models_dir() / f"{name}.yaml")
