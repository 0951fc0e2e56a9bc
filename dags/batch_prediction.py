"""`<model>__batch_prediction` (Level 1): score every curated batch with the champion of its day.

One DAG per model config in `include/models/`. The task body calls `include.delivery.batch_prediction`;
heavy libraries load inside the task, never when this file is parsed.
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

STAGE = "batch_prediction"

DOC = """
### Batch prediction for `{model}`

Runs whenever data ingestion publishes a curated batch (Asset `{model}__curated_batch`), for the
day the batch event names (every curated day of the range a history import's event names); or by
hand for the day in the **day** field.

**score_curated_batch**: load the version that served the day (the champion history: a re-run of
an old day scores it with the model that served it then), score the day's curated batch, and
write the predictions, each with the model version that made it, to
`batch_predictions/day=YYYY-MM-DD/predictions.parquet`. A re-run replaces the day's file, so a day
is never scored twice into the store. The drift sensor reads these predictions for prediction
drift and, once the labels arrive, for realized performance.

The run is **skipped**, saying why, when no version served the day (no `@champion` yet, or the first
one serves from a later day) or the day has no curated batch (quarantined by ingestion, or not
ingested yet).
"""


def build(config):
    curated = curated_batch_asset(config)

    @dag(
        dag_id=dag_id(config.name, STAGE),
        schedule=curated,
        start_date=to_pendulum(data_start(config)),
        catchup=False,
        is_paused_upon_creation=config.paused_on_start,
        tags=dag_tags(config, 1),
        default_args=default_args(config),
        doc_md=DOC.format(model=config.name),
        params={
            "day": day_param("The day (YYYY-MM-DD) whose curated batch to score. Leave empty to score the "
                             "day(s) named by the curated-batch event that triggered the run."),
        },
    )
    def batch_prediction():
        @task
        def score_curated_batch(**context) -> list[dict]:
            """Score the day's curated batch with the version that served it; store the predictions with the version."""
            from include.delivery import batch_prediction as bp

            days = event_days(context) or [interval_day(context)]
            scored, skipped = [], []
            for day in days:
                try:
                    scored.append(bp.score_day(config, day))
                except bp.NothingToScore as exc:
                    skipped.append(str(exc))
            if not scored:
                raise AirflowSkipException(in_short(skipped))
            for reason in skipped:
                print(f"Skipped: {reason}")
            return scored

        score_curated_batch()

    return batch_prediction()


def in_short(reasons: list[str], shown: int = 3) -> str:
    """The first reasons and how many more: a history import's event can leave hundreds of days unscored."""
    more = f"; and {len(reasons) - shown} more day(s)" if len(reasons) > shown else ""
    return "; ".join(reasons[:shown]) + more


for model_config in configs_for_stage(STAGE):
    build(model_config)
