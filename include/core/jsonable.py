"""Turn results from GX, numpy and pandas into plain JSON types (for MLflow artifacts and XCom)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def to_jsonable(value: Any) -> Any:
    """`value` with dict keys as strings, tuples as lists, numpy scalars as Python numbers,
    timestamps as ISO strings, and NaN or infinite floats as None."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomically(path: Path, payload: Any) -> Path:
    """Write `payload` as indented JSON to `path` (folders made), replacing any earlier file whole.

    Dataclasses are written as dicts and anything else JSON does not know as its `str`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(payload), indent=2, default=_fallback))
    os.replace(tmp, path)
    return path


def _fallback(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    return str(value)
