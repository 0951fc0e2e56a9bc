"""Reports every invalid model config in `include/models/` as an Airflow DAG import error.

The stage DAG files build DAGs for the valid configs only, so a broken config takes down its own
model's DAGs and nothing else; this file makes the reason visible in the UI (Dag import errors)
and in `airflow dags list-import-errors`, naming the file, the key, the value and what was expected.
"""

from __future__ import annotations

from include.core.config import discover_model_configs

broken = discover_model_configs().errors
if broken:
    raise ImportError(
        "invalid model config(s); their DAGs are not loaded:\n" + "\n".join(str(err) for err in broken.values())
    )
