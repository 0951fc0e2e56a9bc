"""Training data: the point-in-time correct training set, its time split, fingerprint and checks.

A model trained at `cutoff` may only learn from what was known at the end of that day: curated
rows of the window ending at the cutoff, joined with the labels that had ARRIVED by then. Labels
arrive `target.label_delay_days` after their event, so the newest days of a window have no labels
yet; joining later labels would leak the future into the past and flatter the model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.core import storage
from include.core.jsonable import to_jsonable
from include.core.storage import LABEL_TIMESTAMP
from include.training.features import feature_columns, non_nullable_features

if TYPE_CHECKING:
    from include.core.config import ModelConfig, Split

SPLITS = ("train", "validation", "holdout")


def training_columns(config: ModelConfig) -> list[str]:
    """Columns of a training set: entity, event time, features, target, label arrival time."""
    schema = config.schema
    return [
        schema.entity_column,
        schema.timestamp_column,
        *feature_columns(config),
        config.target.column,
        LABEL_TIMESTAMP,
    ]


def end_of_day(day: dt.date) -> pd.Timestamp:
    """The first instant after `day` (UTC, tz-naive like the stores' timestamps)."""
    return pd.Timestamp(day + dt.timedelta(days=1))


def assemble_training_set(config: ModelConfig, cutoff: dt.date, window_days: int | None = None) -> pd.DataFrame:
    """Curated rows of the window ending at `cutoff`, inner-joined with the labels known by then.

    Args:
        cutoff: the last day of the window; no event and no label after the end of this day is used.
        window_days: days in the window, `training.window_days` when None.

    Returns:
        The `training_columns(config)`, one row per labelled entity (its latest label), oldest
        event first; the curated partitions' order breaks ties, or the entity when they are out
        of order, so the same stores always give the same frame. Empty when nothing matches.
    """
    window_days = window_days or config.training.window_days
    if window_days < 1:
        raise ValueError(f"window_days: got {window_days}; expected at least 1")
    schema, target = config.schema, config.target
    entity, timestamp = schema.entity_column, schema.timestamp_column
    first_day = cutoff - dt.timedelta(days=window_days - 1)
    known_by = end_of_day(cutoff)

    curated = storage.read_curated(config.name, first_day, cutoff)
    labels = storage.read_labels_arrived_by(config.name, cutoff, since=first_day)
    if curated.empty or labels.empty:
        return _empty_training_set(config)
    _require_columns(curated, [entity, timestamp, *feature_columns(config)], "curated store")
    _require_columns(labels, [entity, target.column, LABEL_TIMESTAMP], "labels store")

    curated = curated.loc[curated[timestamp] < known_by, [entity, timestamp, *feature_columns(config)]]
    labels = labels.loc[labels[LABEL_TIMESTAMP] < known_by, [entity, target.column, LABEL_TIMESTAMP]]
    latest_labels = labels.sort_values(LABEL_TIMESTAMP, kind="stable").drop_duplicates(entity, keep="last")
    frame = curated.merge(latest_labels, on=entity, how="inner")
    if not frame[timestamp].is_monotonic_increasing:
        frame = frame.sort_values([timestamp, entity], kind="stable", ignore_index=True)
    return frame[training_columns(config)]


def _empty_training_set(config: ModelConfig) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in training_columns(config)})


def _require_columns(frame: pd.DataFrame, names: list[str], where: str) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(f"{where} lacks the columns {missing}; it has {sorted(frame.columns)}")


def split_sizes(rows: int, split: Split, rows_after_change: int | None = None) -> dict[str, int]:
    """Rows in train, validation and holdout for a frame of `rows` rows.

    Args:
        rows_after_change: the newest rows that come from after a change of the world, when the
            window holds one. The holdout then takes at most a third of them and validation at
            most a sixth, so that both models are judged on the new world only and the
            candidate still trains on at least half of what is known about it.
    """
    holdout = round(rows * split.holdout_fraction)
    validation = round(rows * split.validation_fraction)
    if rows_after_change is not None:
        holdout = min(holdout, rows_after_change // 3)
        validation = min(validation, rows_after_change // 6)
    return {"train": rows - validation - holdout, "validation": validation, "holdout": holdout}


def rows_after(frame: pd.DataFrame, timestamp_column: str, change_start: dt.date) -> int:
    """How many rows of the frame have an event at or after the start of `change_start`."""
    return int((frame[timestamp_column] >= pd.Timestamp(change_start)).sum())


def change_weights(
    frame: pd.DataFrame, timestamp_column: str, change_start: dt.date | None, share: float
) -> np.ndarray | None:
    """Sample weights that give the rows from `change_start` on at least `share` of the total weight.

    Rows from before the change keep weight 1 when the new rows already carry that share (or
    when there is no change, or no row on one side of it), else the new rows are weighted up.
    The weights average 1 (per row), so regularization keeps its meaning.

    Returns:
        One weight per row, or None when every row weighs the same.
    """
    if change_start is None:
        return None
    after = (frame[timestamp_column] >= pd.Timestamp(change_start)).to_numpy()
    new, old = int(after.sum()), int((~after).sum())
    if not new or not old or new / len(frame) >= share:
        return None
    weights = np.where(after, share / new, (1 - share) / old)
    return weights * len(frame)


def time_split(
    frame: pd.DataFrame, split: Split, timestamp_column: str, change_start: dt.date | None = None
) -> dict[str, pd.DataFrame]:
    """Split by event time: the newest rows are the holdout, the ones just before them validation.

    Args:
        change_start: when the world changed inside the window: see `split_sizes`.

    Returns:
        {"train", "validation", "holdout"} frames, each with a fresh index.

    Raises:
        ValueError: when a split would be empty.
    """
    after = None if change_start is None else rows_after(frame, timestamp_column, change_start)
    sizes = split_sizes(len(frame), split, after)
    empty = [name for name, size in sizes.items() if size < 1]
    if empty:
        raise ValueError(f"a training set of {len(frame)} rows leaves the {empty} split(s) empty")
    ordered = frame
    if not frame[timestamp_column].is_monotonic_increasing:
        ordered = frame.sort_values(timestamp_column, kind="stable", ignore_index=True)
    train_end = sizes["train"]
    validation_end = train_end + sizes["validation"]
    return {
        "train": ordered.iloc[:train_end].reset_index(drop=True),
        "validation": ordered.iloc[train_end:validation_end].reset_index(drop=True),
        "holdout": ordered.iloc[validation_end:].reset_index(drop=True),
    }


def fingerprint(frame: pd.DataFrame) -> dict[str, Any]:
    """A stable identity of a frame's content: rows and a digest of columns, dtypes and values.

    The same rows in the same order give the same digest in any process (pandas' row hashes are
    seeded with a fixed key); any changed value, column or row order gives another one.

    Returns:
        {"rows": int, "digest": 32 hex characters} (fits MLflow's dataset digest).
    """
    return _fingerprint(frame, row_hashes(frame))


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row (the index left out)."""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


def split_fingerprints(frame: pd.DataFrame, parts: dict[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    """`fingerprint` of the whole frame ("all") and of each consecutive part, hashing rows once.

    Args:
        parts: consecutive slices of `frame`, in order, as `time_split` returns them.
    """
    hashes = row_hashes(frame)
    result = {"all": _fingerprint(frame, hashes)}
    start = 0
    for name, part in parts.items():
        result[name] = _fingerprint(part, hashes[start:start + len(part)])
        start += len(part)
    return result


def _fingerprint(frame: pd.DataFrame, hashes: np.ndarray) -> dict[str, Any]:
    digest = hashlib.sha256()
    digest.update(repr([(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]).encode())
    digest.update(hashes.tobytes())
    return {"rows": len(frame), "digest": digest.hexdigest()[:32]}


# --- checks --------------------------------------------------------------------------------------


def training_set_suite(config: ModelConfig, cutoff: dt.date | None = None):
    """The GX expectation suite a training set must meet before anyone trains on it.

    Enough rows (`training.min_rows`), a target that is never null and has both classes (the
    positive label among them), no null in a non-nullable feature, and, given a cutoff, no label
    that arrived after it (point-in-time correctness).

    Returns:
        A `great_expectations.ExpectationSuite`.
    """
    gx = _import_gx()
    import great_expectations.expectations as gxe

    target = config.target.column
    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=config.training.min_rows),
        gxe.ExpectColumnValuesToNotBeNull(column=target),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column=target, min_value=2, max_value=2),
        gxe.ExpectColumnDistinctValuesToContainSet(column=target, value_set=[config.target.positive_label]),
    ]
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=name) for name in non_nullable_features(config)]
    if cutoff is not None:
        expectations.append(
            gxe.ExpectColumnMaxToBeBetween(column=LABEL_TIMESTAMP, max_value=end_of_day(cutoff), strict_max=True)
        )
    return gx.ExpectationSuite(name=f"{config.name}__training_set", expectations=expectations)


def check_training_set(config: ModelConfig, frame: pd.DataFrame, cutoff: dt.date | None = None) -> dict:
    """Is this frame fit to train on? Runs the GX suite and the target-leakage checks.

    Args:
        cutoff: when given, also checks that no label arrived after the end of that day.

    Returns:
        JSON-able {"passed": bool, "reasons": [str], "checks": [{"name", "passed", "observed",
        "expected"}], "gx_result": GX's own result dict}.
    """
    missing = [name for name in training_columns(config) if name not in frame.columns]
    if missing:
        reason = f"training set lacks the columns {missing}"
        return {"passed": False, "reasons": [reason], "checks": [], "gx_result": None}
    checked = [config.target.column, LABEL_TIMESTAMP, *non_nullable_features(config)]
    gx_result = _validate_with_gx(config, frame[checked], cutoff)
    checks = [_check_from_gx(result) for result in gx_result["results"]]
    checks += _leakage_checks(config, frame)
    reasons = [f"{check['name']}: observed {check['observed']}, expected {check['expected']}"
               for check in checks if not check["passed"]]
    return {"passed": not reasons, "reasons": reasons, "checks": checks, "gx_result": gx_result}


def _import_gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def _validate_with_gx(config: ModelConfig, frame: pd.DataFrame, cutoff: dt.date | None) -> dict:
    """Run the suite on the frame (GX hashes every value of it first: pass only the checked columns)."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(),
        ),
    )
    asset = context.data_sources.add_pandas(name="training_set").add_dataframe_asset(name=config.name)
    batch = asset.add_batch_definition_whole_dataframe("whole_frame").get_batch(
        batch_parameters={"dataframe": frame}
    )
    result = batch.validate(training_set_suite(config, cutoff))
    return to_jsonable(result.to_json_dict())


_GX_CHECK_NAMES = {
    "expect_table_row_count_to_be_between": "enough_rows",
    "expect_column_unique_value_count_to_be_between": "both_classes_present",
    "expect_column_distinct_values_to_contain_set": "positive_label_present",
    "expect_column_max_to_be_between": "no_label_after_cutoff",
}


def _check_from_gx(result: dict) -> dict:
    kind = result["expectation_config"]["type"]
    kwargs = result["expectation_config"]["kwargs"]
    outcome = result.get("result") or {}
    column = kwargs.get("column")
    if kind == "expect_column_values_to_not_be_null":
        name, observed, expected = f"no_nulls:{column}", outcome.get("unexpected_count"), "0 nulls"
    else:
        name = _GX_CHECK_NAMES.get(kind, kind)
        observed = outcome.get("observed_value")
        bounds = {key: kwargs[key] for key in ("min_value", "max_value", "value_set") if key in kwargs}
        expected = ", ".join(f"{key}={value}" for key, value in bounds.items())
    if result["exception_info"].get("raised_exception"):
        observed = f"error: {result['exception_info'].get('exception_message')}"
    return {"name": name, "passed": bool(result["success"]), "observed": observed, "expected": expected}


def _leakage_checks(config: ModelConfig, frame: pd.DataFrame) -> list[dict]:
    """No feature may be the target in disguise: by name, or by separating the classes perfectly."""
    target = config.target.column
    forbidden = {target, LABEL_TIMESTAMP}
    named = [name for name in feature_columns(config) if name in forbidden]
    checks = [
        {
            "name": "no_target_columns_among_features",
            "passed": not named,
            "observed": named,
            "expected": f"none of {sorted(forbidden)} among the features",
        }
    ]
    positive = frame[target] == config.target.positive_label
    if positive.all() or not positive.any():
        return checks
    separating = [name for name in feature_columns(config) if _separates_classes(frame[name], positive)]
    checks.append(
        {
            "name": "no_feature_separates_the_classes",
            "passed": not separating,
            "observed": separating,
            "expected": "no single feature that predicts the target perfectly (a leaked label)",
        }
    )
    return checks


def _separates_classes(values: pd.Series, positive: pd.Series) -> bool:
    """Does this one column tell the classes apart without error (known values only)?

    Numeric: the classes' ranges do not overlap. Categorical: every value belongs to one class.
    """
    known = values.notna().to_numpy()
    is_positive = positive.to_numpy()[known]
    if is_positive.all() or not is_positive.any():
        return False
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)[known]
        pos, neg = numbers[is_positive], numbers[~is_positive]
        return bool(pos.min() > neg.max() or neg.min() > pos.max())
    codes, uniques = pd.factorize(values[known])
    if len(uniques) < 2:
        return False
    positives_per_value = np.bincount(codes, weights=is_positive, minlength=len(uniques))
    rows_per_value = np.bincount(codes, minlength=len(uniques))
    return bool(np.all((positives_per_value == 0) | (positives_per_value == rows_per_value)))
