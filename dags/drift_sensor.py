"""`<model>__drift_sensor` (Level 1): watch `@champion`'s inputs, outputs and realized performance.

One DAG per model config in `include/models/`. The task bodies call `include.monitoring`; heavy
libraries load inside the tasks, never when this file is parsed.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from model_dags import (
    configs_for_stage,
    dag_id,
    dag_tags,
    data_end,
    data_start,
    day_param,
    default_args,
    interval_day,
    retrain_request_asset,
    to_pendulum,
)

STAGE = "drift_sensor"
# How long a check waits for ingestion to deal with its day's batch before it gives up (skipped).
BATCH_WAIT = dt.timedelta(days=1)

DOC = """
### Drift sensor for `{model}`

One check per data interval (`{schedule}`), day after day from the model's first data day (so the
metrics history has every day; backfill with `airflow backfill create`), or by hand for the day in
the **day** field. It compares the last {window} day(s) of curated batches with the
training data of the version holding `@champion` (found through its MLflow run's dataset lineage),
and the champion's predictions whose delayed labels ({delay} days) have arrived with its holdout
`{metric}`.

1. **wait_for_batch**: waits (in reschedule mode, holding no worker slot) until ingestion has
   curated or quarantined the day's batch; skipped after a day without it.
2. **check_window**: per-column drift (methods and thresholds from `monitoring.drift`), prediction
   drift, realized performance; the retrain policy (`monitoring.retrain_policy`: {consecutive}
   drifted windows in a row, or a `{metric}` drop above {drop}; at least {min_rows} rows; a
   {cooldown}-day cooldown; at most {max_retrains} requests in {period} days) decides. Evidently's
   HTML and JSON reports go to `reports/{model}/drift/day=…/` and onto an MLflow run
   (`mlops_run_kind = drift_check`) in the `{model}` experiment; the numbers are appended to the
   metrics history (`include.retrain_policy.read_history("{model}")`). Skipped when there is no
   `@champion` or the day's batch has not been ingested yet. A batch that ingestion quarantined
   is a data-quality failure, not drift: it is left out and can never trigger a retrain.
3. **request_retrain**: when the policy fires, update the Asset `{model}__retrain_request` with
   the reason (drift or performance), window, drifted columns, scores and report; continuous
   training runs on it and records the reason. Skipped otherwise, with the policy's sentence.
"""


def build(config):
    retrain = retrain_request_asset(config)
    policy = config.monitoring.retrain_policy

    @dag(
        dag_id=dag_id(config.name, STAGE),
        schedule=CronDataIntervalTimetable(config.monitoring.schedule, timezone="UTC"),
        start_date=to_pendulum(data_start(config)),
        end_date=to_pendulum(data_end(config)) if data_end(config) else None,
        catchup=True,
        max_active_runs=1,
        tags=dag_tags(config, 1),
        default_args=default_args(config),
        doc_md=DOC.format(
            model=config.name,
            schedule=config.monitoring.schedule,
            window=config.monitoring.window_days,
            delay=config.target.label_delay_days,
            metric=config.evaluation.primary_metric,
            consecutive=policy.consecutive_windows,
            drop=policy.performance_drop,
            min_rows=policy.min_rows,
            cooldown=policy.cooldown_days,
            max_retrains=policy.max_retrains,
            period=policy.period_days,
        ),
        params={
            "day": day_param("The last day (YYYY-MM-DD) of the window to check. Leave empty to use the "
                             "run's data interval."),
        },
    )
    def drift_sensor():
        @task.sensor(poke_interval=30, timeout=BATCH_WAIT.total_seconds(), mode="reschedule", soft_fail=True)
        def wait_for_batch(**context) -> bool:
            """Wait until ingestion has curated or quarantined the day's batch."""
            from include import monitoring

            return monitoring.batch_settled(config, interval_day(context))

        @task
        def check_window(**context) -> dict:
            """Drift, prediction drift and realized performance of the window; the policy's decision."""
            from include import monitoring

            dag_run = context["dag_run"]
            try:
                return monitoring.run_check(
                    config, interval_day(context), {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id}
                )
            except (monitoring.NoChampion, monitoring.WindowNotReady) as exc:
                raise AirflowSkipException(str(exc)) from exc

        @task(outlets=[retrain])
        def request_retrain(check: dict, **context) -> dict:
            """Update the retrain-request Asset (its extra is the request) when the policy fired."""
            from include import monitoring

            decision = check["decision"]
            if not decision["retrain"]:
                raise AirflowSkipException(decision["explanation"])
            if check["request_already_emitted"]:
                raise AirflowSkipException(
                    f"the retrain request for the window ending {check['day']} was already emitted by an "
                    "earlier run of this window"
                )
            context["outlet_events"][retrain].extra = check["request"]
            monitoring.mark_request_emitted(check["mlflow_run_id"])
            print(f"Retrain requested ({decision['reason']}): {decision['explanation']}")
            return check["request"]

        check = check_window()
        wait_for_batch() >> check
        request_retrain(check)

    return drift_sensor()


for model_config in configs_for_stage(STAGE):
    build(model_config)
