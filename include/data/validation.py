"""The Great Expectations gate every batch passes before it is curated.

The suites are generated from the model config's schema (`build_feature_suite`, `build_labels_suite`)
and run by `validate_batch` against a pandas DataFrame, which returns a `ValidationOutcome`: passed
or not, the blocking failures and the warnings in words a person can act on, a small summary, the
full GX result, and where its Data Docs page is.

Severity is GX's own `severity` field on each expectation: `critical` blocks the batch, `warning`
is recorded and lets it through (the checks of `schema.warn_only` columns, and hand-written
expectations marked `severity: warning`). GX's overall `success` ignores severity, so `passed` is
computed here from the critical failures only.

Every validation, passed or failed, gets a GX Data Docs site under
`<reports>/gx/<model>/day=<day>/<features|labels>/index.html`. The site is built in a temporary
folder beside that one and then swapped in, so re-validating a day replaces its page instead of
adding another. The 4 MB of images and fonts GX copies into every site are kept once per GX version
(`<reports>/gx/_static-<version>`), and each site's `static` folder links to that copy.

Importing Great Expectations takes several seconds, so it happens inside the functions that need
it, never when a DAG file imports this module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from include.core import intervals, settings, storage
from include.core.config import ConfigError, ModelConfig

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd

SuiteKind = Literal["features", "labels"]

BLOCKING = "critical"
WARNING = "warning"
SEVERITY_OF = {"blocking": BLOCKING, "warning": WARNING}

SAMPLE_SIZE = 5

DTYPE_EXPECTATION = "expect_column_values_to_be_in_dtype_list"

# Type names in the vocabulary of GX's type-list check: numpy dtypes, pandas extension dtype classes
# and, for object columns checked value by value, Python type names.
_INTEGER_TYPES = [
    *(f"{unsigned}int{bits}" for unsigned in ("", "u") for bits in (8, 16, 32, 64)),
    *(f"{unsigned}Int{bits}Dtype" for unsigned in ("", "U") for bits in (8, 16, 32, 64)),
    "int",
]
_TEXT_TYPES = ["str", "StringDtype", "CategoricalDtype"]
TYPE_LISTS: dict[str, list[str]] = {
    "integer": _INTEGER_TYPES,
    "float": ["float16", "float32", "float64", "Float32Dtype", "Float64Dtype", "float", *_INTEGER_TYPES],
    "string": _TEXT_TYPES,
    "category": _TEXT_TYPES,
    "timestamp": [*(f"datetime64[{unit}]" for unit in ("ns", "us", "ms", "s")), "DatetimeTZDtype"],
    "boolean": ["bool", "BooleanDtype"],
}

# Expectations that give a meaningful answer whatever a column's dtype; the others are skipped on a
# column whose values cannot be compared as its schema type (the dtype failure already blocks).
DTYPE_AGNOSTIC = {
    DTYPE_EXPECTATION,
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_unique",
    "expect_column_values_to_be_in_set",
}


@dataclass(frozen=True)
class Finding:
    """One failed (or skipped) expectation, in words: which rule, which column, how many rows."""

    expectation_type: str
    column: str | None
    unexpected_count: int | None
    rows: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def rule(self) -> str:
        """The expectation with its column, e.g. `expect_column_values_to_not_be_null(credit_score)`."""
        return f"{self.expectation_type}({self.column})" if self.column else self.expectation_type

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


@dataclass
class ValidationOutcome:
    """The verdict on one batch. `passed` means no blocking expectation failed."""

    model: str
    day: dt.date
    suite_kind: SuiteKind
    passed: bool
    blocking_failures: list[Finding]
    warnings: list[Finding]
    skipped: list[Finding]
    summary: dict[str, Any]
    report: dict[str, Any]
    data_docs_index: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-able data, e.g. the report kept beside a quarantined batch."""
        return {
            "model": self.model,
            "day": self.day.isoformat(),
            "suite_kind": self.suite_kind,
            "passed": self.passed,
            "message": describe_failures(self),
            "blocking_failures": [finding.to_dict() for finding in self.blocking_failures],
            "warnings": [finding.to_dict() for finding in self.warnings],
            "skipped": [finding.to_dict() for finding in self.skipped],
            "summary": self.summary,
            "data_docs_index": str(self.data_docs_index) if self.data_docs_index else None,
            "report": self.report,
        }


# --- suites --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_gx_logging() -> Iterator[None]:
    """Keep GX's INFO chatter out of task logs while it runs, then restore its logger."""
    gx_logger = logging.getLogger("great_expectations")
    level = gx_logger.level
    gx_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        gx_logger.setLevel(level)


@functools.cache
def _import_gx_quietly() -> None:
    """Import GX once with its logger at WARNING: the import alone logs a few hundred INFO lines."""
    with _quiet_gx_logging():
        import great_expectations  # noqa: F401


@functools.cache
def _dtype_expectation_class() -> type:
    """GX's type-list check, extended to parameterised pandas dtypes.

    GX compares a column's dtype with each listed type by equality, so a pandas extension dtype
    class such as `DatetimeTZDtype` never equals an instance like `datetime64[ns, UTC]` (nor
    `CategoricalDtype` a categorical column, nor `StringDtype` an Arrow string column). This
    subclass also accepts a column whose dtype is an instance of a listed pandas dtype class, and
    reports the dtype by its full name. Object columns are still checked value by value by GX, which
    is what gives a per-row count when, say, ages arrive as strings. Defined on first use because
    importing GX is slow.
    """
    import great_expectations.expectations as gxe
    import pandas as pd

    class ExpectColumnValuesToBeInDtypeList(gxe.ExpectColumnValuesToBeInTypeList):
        """Expect a column's pandas dtype (or, for object columns, each value's type) to be listed."""

        def _validate_pandas(self, actual_column_type, expected_types_list):
            outcome = super()._validate_pandas(actual_column_type, expected_types_list)
            dtype_classes = tuple(
                getattr(pd, name)
                for name in expected_types_list or []
                if isinstance(getattr(pd, name, None), type)
                and issubclass(getattr(pd, name), pd.api.extensions.ExtensionDtype)
            )
            if dtype_classes and isinstance(actual_column_type, dtype_classes):
                outcome["success"] = True
            outcome["result"]["observed_value"] = str(actual_column_type)
            return outcome

    return ExpectColumnValuesToBeInDtypeList


def _bound(value: float | None) -> float | int | None:
    return int(value) if value is not None and float(value).is_integer() else value


def _interval_window(config: ModelConfig, day: dt.date, *, naive: bool) -> tuple[dt.datetime, dt.datetime]:
    """The bounds of the batch interval (`source.interval`) starting on `day`, aware in UTC unless `naive`."""
    start, end = intervals.interval_bounds(config.source.interval, day)
    zone = None if naive else dt.UTC
    return start.replace(tzinfo=zone), end.replace(tzinfo=zone)


def _hand_written_expectation(config: ModelConfig, index: int) -> Any:
    """The GX expectation for `schema.expectations[index]`, or a ConfigError saying what is wrong."""
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    written = config.schema.expectations[index]
    where = f"model {config.name!r}: key 'schema.expectations[{index}]'"
    try:
        expectation_class = get_expectation_impl(written.type)
    except ExpectationNotFoundError:
        raise ConfigError(
            f"{where}: got type {written.type!r}; expected the name of a Great Expectations "
            "expectation, e.g. expect_column_mean_to_be_between"
        ) from None
    try:
        return expectation_class(**written.kwargs, severity=SEVERITY_OF[written.severity])
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}: got kwargs {written.kwargs!r}; expected valid {written.type} kwargs: {exc}"
        ) from None


def build_feature_suite(
    config: ModelConfig, day: dt.date | None = None, *, naive_timestamps: bool = False
) -> gx.ExpectationSuite:
    """The GX suite a day's feature batch must pass, generated from `config.schema`.

    Args:
        config: The model config; its schema gives columns, types, nullability, uniqueness, ranges,
            allowed values, warn-only columns and hand-written expectations.
        day: When given, the timestamp column must fall within the batch interval starting on it
            ([day 00:00 UTC, next day 00:00 UTC) for a daily source).
        naive_timestamps: Compare the timestamp column with bounds without a time zone (for a
            column stored without one, whose times are taken to be UTC).

    Raises:
        ConfigError: a hand-written expectation names no GX expectation or has invalid kwargs.
    """
    _import_gx_quietly()
    import great_expectations as gx
    import great_expectations.expectations as gxe

    schema = config.schema
    dtype_expectation = _dtype_expectation_class()
    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectTableColumnsToMatchSet(column_set=list(schema.columns), exact_match=True),
    ]
    for name, column in schema.columns.items():
        value_severity = WARNING if name in schema.warn_only else BLOCKING
        expectations.append(
            dtype_expectation(column=name, type_list=TYPE_LISTS[column.type], meta={"schema_type": column.type})
        )
        if not column.nullable:
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=name))
        if column.unique:
            expectations.append(gxe.ExpectColumnValuesToBeUnique(column=name))
        if column.min is not None or column.max is not None:
            expectations.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=name, min_value=_bound(column.min), max_value=_bound(column.max), severity=value_severity
                )
            )
        if column.allowed is not None:
            expectations.append(
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=column.allowed, severity=value_severity)
            )
    if day is not None:
        start, end = _interval_window(config, day, naive=naive_timestamps)
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=schema.timestamp_column, min_value=start, max_value=end, strict_max=True
            )
        )
    expectations += [_hand_written_expectation(config, index) for index in range(len(schema.expectations))]
    return gx.ExpectationSuite(name=f"{config.name}__features", expectations=expectations)


def build_labels_suite(config: ModelConfig) -> gx.ExpectationSuite:
    """The GX suite a day's labels must pass: one known, binary label per entity.

    No labels on a day is normal, so an empty batch passes. A 0/1 (or boolean) target must hold
    only 0 and 1; a target with another positive label (say "yes") must hold at most two values.
    """
    _import_gx_quietly()
    import great_expectations as gx
    import great_expectations.expectations as gxe

    entity, target = config.schema.entity_column, config.target.column
    if config.target.positive_label in (0, 1):
        binary = gxe.ExpectColumnValuesToBeInSet(column=target, value_set=[0, 1])
    else:
        binary = gxe.ExpectColumnUniqueValueCountToBeBetween(column=target, max_value=2)
    expectations = [
        gxe.ExpectTableColumnsToMatchSet(column_set=[entity, target], exact_match=False),
        gxe.ExpectColumnValuesToNotBeNull(column=entity),
        gxe.ExpectColumnValuesToBeUnique(column=entity),
        gxe.ExpectColumnValuesToNotBeNull(column=target),
        binary,
    ]
    return gx.ExpectationSuite(name=f"{config.name}__labels", expectations=expectations)


# --- running a suite -----------------------------------------------------------------------------


def _columns_of(kwargs: dict[str, Any]) -> list[str]:
    named = [kwargs.get(key) for key in ("column", "column_A", "column_B")]
    return [name for name in [*named, *kwargs.get("column_list", [])] if name]


def _values_comparable(series: pd.Series, column_type: str) -> bool:
    """Whether range and statistic checks can run on `series` as a column of `column_type`."""
    from pandas.api import types

    if column_type in ("integer", "float"):
        if series.dtype == object:
            return types.infer_dtype(series, skipna=True) in ("integer", "floating", "mixed-integer-float", "empty")
        return types.is_numeric_dtype(series.dtype) and not types.is_bool_dtype(series.dtype)
    if column_type == "timestamp":
        return types.is_datetime64_any_dtype(series.dtype)
    return True


def _split_applicable(
    suite: gx.ExpectationSuite, config: ModelConfig | None, frame: pd.DataFrame
) -> tuple[list[Any], list[Finding]]:
    """The expectations that can run on `frame`, and the ones skipped with the reason.

    Per-column expectations of an absent column are skipped (the column-set check names it), so are
    the value checks of a column whose values cannot be compared as its type (the dtype check
    reports it), and every column check of an empty batch (a mean of nothing is no finding), so that
    GX never evaluates a rule where it cannot apply and each problem is reported once.
    """
    columns = config.schema.columns if config else {}
    applicable, skipped = [], []
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        absent = [name for name in _columns_of(kwargs) if name not in frame.columns]
        mistyped = [
            name
            for name in _columns_of(kwargs)
            if name in frame.columns
            and name in columns
            and expectation.expectation_type not in DTYPE_AGNOSTIC
            and not _values_comparable(frame[name], columns[name].type)
        ]
        if absent:
            reason = f"skipped: column {absent[0]!r} is missing"
        elif frame.empty and _columns_of(kwargs):
            reason = "skipped: the batch has no rows"
        elif mistyped:
            name = mistyped[0]
            reason = f"skipped: column {name!r} has dtype {frame[name].dtype}, not {columns[name].type}"
        else:
            applicable.append(expectation)
            continue
        skipped.append(Finding(expectation.expectation_type, kwargs.get("column"), None, len(frame), reason))
    return applicable, skipped


def _ephemeral_context() -> Any:
    """An in-memory GX context with analytics and progress bars off (no network, clean logs)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    project_config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(),
    )
    return gx.get_context(mode="ephemeral", project_config=project_config)


def data_docs_dir(model: str, day: dt.date, suite_kind: SuiteKind) -> Path:
    """Where the Data Docs site of a day's validation lives."""
    return settings.reports_dir() / "gx" / model / storage.day_partition(day) / suite_kind


def _share_static_assets(site: Path) -> None:
    """Replace the site's copy of GX's static images and fonts with a link to one shared copy."""
    import great_expectations as gx

    shared = settings.reports_dir() / "gx" / f"_static-{gx.__version__}"
    own = site / "static"
    if not own.is_dir():
        return
    if shared.exists():
        shutil.rmtree(own)
    else:
        try:
            own.rename(shared)
        except OSError:
            shutil.rmtree(own)
    own.symlink_to(os.path.relpath(shared, site), target_is_directory=True)


def _replace_dir(new: Path, target: Path) -> None:
    """Put `new` at `target`, removing what was there."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
        new.rename(target)
        shutil.rmtree(old)
    else:
        new.rename(target)


@functools.cache
def _reusable_batch_definition() -> Any:
    """One in-memory GX context and whole-DataFrame batch definition per process, for runs without Data Docs.

    A checkpoint run pays for a new context, stores and freshness checks on every batch (about
    half of a day's validation time); validating without Data Docs needs none of that, so the
    days of a replay or of a history import's chunk share this one.
    """
    return (
        _ephemeral_context()
        .data_sources.add_pandas("batches")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole batch")
    )


def _run_validator(
    suite: gx.ExpectationSuite, applicable: list[Any], frame: pd.DataFrame, run_name: str
) -> dict[str, Any]:
    """Validate `frame` against the applicable expectations, without a checkpoint or Data Docs.

    It is GX's own `Validator`, the one a checkpoint runs, with the same result format, so the
    results are the same; the report's `meta` lacks only the checkpoint's run identifiers.
    """
    import copy
    import uuid

    import great_expectations as gx
    from great_expectations.validator.v1_validator import Validator

    to_run = gx.ExpectationSuite(
        name=suite.name, expectations=[copy.copy(each) for each in applicable], meta=suite.meta
    )
    for expectation in to_run.expectations:
        expectation.id = str(uuid.uuid4())  # what orders the results, as a context's suite store would
    validator = Validator(
        batch_definition=_reusable_batch_definition(),
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "SUMMARY"},
    )
    report = validator.validate_expectation_suite(to_run).to_json_dict()
    report["meta"]["run_name"] = run_name
    order = {expectation.id: index for index, expectation in enumerate(to_run.expectations)}
    report["results"].sort(key=lambda each: order.get(each["expectation_config"].get("id"), len(order)))
    return report


def _run_checkpoint(
    suite: gx.ExpectationSuite, applicable: list[Any], frame: pd.DataFrame, run_name: str, site: Path
) -> dict[str, Any]:
    """Validate `frame` against the applicable expectations and build the Data Docs site into `site`."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context = _ephemeral_context()
    context.add_data_docs_site(
        "validation",
        {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    batch_definition = (
        context.data_sources.add_pandas("batches")
        .add_dataframe_asset(run_name)
        .add_batch_definition_whole_dataframe("whole batch")
    )
    to_run = context.suites.add(gx.ExpectationSuite(name=suite.name, expectations=applicable, meta=suite.meta))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=run_name, data=batch_definition, suite=to_run)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=run_name,
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["validation"])],
            result_format={"result_format": "SUMMARY"},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=run_name))
    (validation,) = result.run_results.values()
    report = validation.to_json_dict()
    order = {expectation.id: index for index, expectation in enumerate(to_run.expectations)}
    report["results"].sort(key=lambda each: order.get(each["expectation_config"].get("id"), len(order)))
    return report


def validate_batch(
    config: ModelConfig, frame: pd.DataFrame, day: dt.date, *, suite_kind: SuiteKind = "features",
    data_docs: bool = True,
) -> ValidationOutcome:
    """Run the feature (or labels) suite on one day's batch and keep its Data Docs.

    Args:
        config: The model config the suite is generated from.
        frame: The batch as read from the landing file, before any cleaning.
        day: The day the batch belongs to (its interval's first day); its timestamps must fall
            within its interval.
        suite_kind: "features" for the daily feature batch, "labels" for the day's feedback.
        data_docs: False skips the Data Docs site (a replay's throw-away ingestion and a history
            import, which nobody browses day by day): the suite then runs without a checkpoint, on
            a GX context the process keeps, at well under half the time per batch.

    Returns:
        The outcome; `describe_failures(outcome)` words it for a task failure.
    """
    _import_gx_quietly()
    from pandas.api import types

    if suite_kind == "features":
        timestamps = frame.get(config.schema.timestamp_column)
        naive = timestamps is not None and not isinstance(timestamps.dtype, types.DatetimeTZDtype)
        suite = build_feature_suite(config, day, naive_timestamps=naive)
        applicable, skipped = _split_applicable(suite, config, frame)
    else:
        suite = build_labels_suite(config)
        applicable, skipped = _split_applicable(suite, None, frame)

    if not data_docs:
        with _quiet_gx_logging():
            report = _run_validator(suite, applicable, frame, f"{config.name}__{suite_kind}__{day}")
        return _outcome(config.name, day, suite_kind, frame, report, skipped, None)
    site = data_docs_dir(config.name, day, suite_kind)
    site.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=site.parent, prefix=f".{suite_kind}."))
    build.chmod(0o755)
    try:
        with _quiet_gx_logging():
            report = _run_checkpoint(suite, applicable, frame, f"{config.name}__{suite_kind}__{day}", build)
        _share_static_assets(build)
        _replace_dir(build, site)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return _outcome(config.name, day, suite_kind, frame, report, skipped, site / "index.html")


# --- reading the result --------------------------------------------------------------------------


def _number(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(round(value, 4))
    return str(value)


def _interval(kwargs: dict[str, Any]) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    return (
        f"{'(' if kwargs.get('strict_min') else '['}{'-inf' if low is None else _number(low)}, "
        f"{'inf' if high is None else _number(high)}{')' if kwargs.get('strict_max') else ']'}"
    )


def _samples(result: dict[str, Any]) -> str:
    distinct = list(dict.fromkeys(map(repr, result.get("partial_unexpected_list") or [])))
    return f", e.g. [{', '.join(distinct[:SAMPLE_SIZE])}]" if distinct else ""


def _exception_message(exception_info: dict[str, Any] | None) -> str | None:
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, dict) and (info.get("raised_exception") or info.get("exception_message")):
            return str(info.get("exception_message") or "unknown error").strip().splitlines()[-1]
    return None


def _detail(kind: str, kwargs: dict[str, Any], result: dict[str, Any], meta: dict[str, Any], rows: int) -> str:
    """A short human sentence for a failed expectation, with counts and a few sample values."""
    count = result.get("unexpected_count")
    observed = result.get("observed_value")
    if kind == "expect_table_columns_to_match_set":
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        parts = [f"{key} {sorted(mismatched[key])}" for key in ("missing", "unexpected") if mismatched.get(key)]
        return ", ".join(parts) or f"columns {observed}"
    if kind == "expect_table_row_count_to_be_between":
        return f"{observed} rows, expected {_interval(kwargs)}"
    if kind == DTYPE_EXPECTATION:
        expected = meta.get("schema_type", kwargs.get("type_list"))
        if count is None:
            return f"dtype {observed} for all {rows} rows, expected {expected}"
        return f"{count} of {rows} rows not of type {expected}{_samples(result)}"
    if count is None:
        bounds = f", expected {_interval(kwargs)}" if {"min_value", "max_value"} & set(kwargs) else ""
        return f"observed {_number(observed)}{bounds}"
    what = {
        "expect_column_values_to_not_be_null": "null",
        "expect_column_values_to_be_unique": "duplicated",
        "expect_column_values_to_be_in_set": f"not in {kwargs.get('value_set')}",
        "expect_column_values_to_be_between": f"outside {_interval(kwargs)}",
    }.get(kind, "unexpected")
    samples = "" if kind == "expect_column_values_to_not_be_null" else _samples(result)
    return f"{count} of {rows} rows {what}{samples}"


def _finding(result: dict[str, Any], rows: int) -> Finding:
    config = result["expectation_config"]
    kind, kwargs = config["type"], config["kwargs"]
    values = result.get("result") or {}
    error = _exception_message(result.get("exception_info"))
    if error:
        detail = f"could not be evaluated: {error}"
    else:
        detail = _detail(kind, kwargs, values, config.get("meta") or {}, rows)
    count = values.get("unexpected_count")
    if kind == DTYPE_EXPECTATION and count is None and not error:
        count = rows
    return Finding(kind, kwargs.get("column"), count, rows, detail)


def _outcome(
    model: str,
    day: dt.date,
    suite_kind: SuiteKind,
    frame: pd.DataFrame,
    report: dict[str, Any],
    skipped: list[Finding],
    data_docs_index: Path | None,
) -> ValidationOutcome:
    rows = len(frame)
    blocking, warnings = [], []
    for result in report["results"]:
        if result["success"]:
            continue
        finding = _finding(result, rows)
        severity = result["expectation_config"].get("severity", BLOCKING)
        (warnings if severity == WARNING else blocking).append(finding)
    statistics = report["statistics"]
    summary = {
        "model": model,
        "day": day.isoformat(),
        "suite_kind": suite_kind,
        "passed": not blocking,
        "rows": rows,
        "evaluated": statistics["evaluated_expectations"],
        "successful": statistics["successful_expectations"],
        "blocking_failed": len(blocking),
        "warnings": len(warnings),
        "skipped": len(skipped),
    }
    return ValidationOutcome(
        model=model,
        day=day,
        suite_kind=suite_kind,
        passed=not blocking,
        blocking_failures=blocking,
        warnings=warnings,
        skipped=skipped,
        summary=summary,
        report=report,
        data_docs_index=data_docs_index,
    )


def describe_failures(outcome: ValidationOutcome) -> str:
    """One message naming each failed blocking expectation, its column and how many rows failed.

    Used as the Airflow task's failure text, e.g. "batch 2026-03-12 failed 2 blocking expectations:
    expect_table_columns_to_match_set: missing ['annual_income'], unexpected ['income']; ...".
    """
    batch = "batch" if outcome.suite_kind == "features" else "labels batch"
    failures = outcome.blocking_failures
    if not failures:
        warnings = "".join(f"; warning: {finding}" for finding in outcome.warnings)
        return f"{batch} {outcome.day} passed: {outcome.summary['evaluated']} expectations evaluated{warnings}"
    plural = "expectation" if len(failures) == 1 else "expectations"
    return f"{batch} {outcome.day} failed {len(failures)} blocking {plural}: " + "; ".join(map(str, failures))


def unreadable_report(path: str | Path, error: BaseException, day: dt.date) -> dict[str, Any]:
    """The report kept beside a landing file that could not even be parsed into a table.

    It has the keys of `ValidationOutcome.to_dict()` (but the model's, which the caller knows, plus
    `file`), so a quarantine folder always holds the same kind of report, here with one blocking
    failure saying why the file could not be read.
    """
    finding = Finding("file_is_readable", None, None, 0, f"{type(error).__name__}: {error}")
    return {
        "day": day.isoformat(),
        "file": str(path),
        "passed": False,
        "message": f"batch {day} failed 1 blocking expectation: {finding}",
        "blocking_failures": [finding.to_dict()],
        "warnings": [],
        "skipped": [],
        "summary": {
            "day": day.isoformat(),
            "passed": False,
            "rows": 0,
            "evaluated": 0,
            "successful": 0,
            "blocking_failed": 1,
            "warnings": 0,
            "skipped": 0,
        },
        "data_docs_index": None,
        "report": None,
    }
