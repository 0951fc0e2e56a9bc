"""`<model>__feature_materialization` (Level 1): load each curated batch into the model's online feature store.

One DAG per model config that says `feature_store: feast`. The task body calls
`include.features.feature_store`; Feast loads inside the task, never when this file is parsed.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException
from mlops_dags.model_dags import (
    configs_for_stage,
    curated_batch_asset,
    dag_id,
    dag_tags,
    data_start,
    day_param,
    default_args,
    event_days,
    interval_day,
    to_pendulum,
)

from include.features.feature_store import uses_feature_store

STAGE = "feature_materialization"

DOC = """
### Feature materialization for `{model}`

Runs whenever data ingestion publishes a curated batch (Asset `{model}__curated_batch`), for the
day(s) the batch events name (a history import's event names a range); or by hand for the day in the
**day** field.

**materialize_curated_batch**: open the model's Feast feature store (generated from
`include/models/{model}.yaml` under `state/feast/{model}/`; applying the definitions again changes
nothing) and load the curated batches from the first to the last named day, each entity's latest
event, into the online store in one task: SQLite locally, Redis when `MLOPS_FEAST_REDIS` is
set. A year of history pays Feast's import once. The interval is explicit, never guessed from the
last run (`materialize_incremental`), so a re-run or a backfill writes the same rows again, and a day
re-ingested since is loaded with its new values.

The run is **skipped**, saying why, when no day of the range has a curated batch (quarantined by
ingestion, or not ingested yet). One run at a time: materializations never race on the registry.
"""


def build(config):
    curated = curated_batch_asset(config)

    @dag(
        dag_id=dag_id(config.name, STAGE),
        schedule=curated,
        start_date=to_pendulum(data_start(config)),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=config.paused_on_start,
        tags=dag_tags(config, 1),
        default_args=default_args(config),
        doc_md=DOC.format(model=config.name),
        params={
            "day": day_param(
                "The day (YYYY-MM-DD) whose curated batch to load into the online store. Leave "
                "empty to load the day(s) named by the curated-batch event that triggered the run."
            ),
        },
    )
    def feature_materialization():
        @task
        def materialize_curated_batch(**context) -> dict:
            """Materialize the curated batches of the named days, first to last, in one task."""
            from include.features import feature_store

            days = event_days(context) or [interval_day(context)]
            try:
                loaded = feature_store.materialize_range(config, days[0], days[-1])
            except feature_store.NothingToMaterialize as exc:
                raise AirflowSkipException(str(exc)) from exc
            if loaded["skipped_days"]:
                print(f"No curated batch, nothing loaded: {', '.join(loaded['skipped_days'])}")
            return loaded

        materialize_curated_batch()

    return feature_materialization()


for model_config in configs_for_stage(STAGE):
    if uses_feature_store(model_config):
        build(model_config)
