"""`<model>__drift_sensor` (Level 1): watch each day's champion: its inputs, outputs and realized performance.

One DAG per model config in `include/models/`. The task bodies call `include.monitoring.monitoring`; heavy
libraries load inside the tasks, never when this file is parsed.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from mlops_dags.model_dags import (
    configs_for_stage,
    curated_batch_asset,
    dag_id,
    dag_tags,
    data_end,
    data_start,
    day_param,
    default_args,
    event_days,
    interval_day,
    retrain_request_alias,
    retrain_request_asset,
    to_pendulum,
)

STAGE = "drift_sensor"

DOC = """
### Drift sensor for `{model}`

Runs whenever data ingestion publishes a curated batch (Asset `{model}__curated_batch`), and once a
day (`{schedule}`, also for `airflow backfill create`); or by hand for the day in the **day** field.
One run at a time. A history import's one event for a whole range makes one run like any other:
days no version served (history from before the first champion) are not checked.

**check_windows** checks, oldest first, every day up to the run's day (the **day** field, else the
run's data interval for a scheduled or backfilled run, else the newest curated day) that a version
served, whose batch ingestion has curated or quarantined, and that has not been checked yet; then
the run's day itself again (a re-check replaces its record). A run that batches triggered also
checks the batches published while it works, so the sensor keeps pace with a catching-up
ingestion. The days go in order because each decision reads the earlier days'; a day whose batch
has not landed yet stops the run there (a later run goes on).

Each day is judged **point in time**: against the version that was `@champion` on that day (the
champion history that model deployment and rollback record, with the first data day each version
serves), with that version's scores, the reference profile of its training data (found through
its MLflow run's dataset lineage), and its holdout `{metric}`. A day no version served is not
checked. So a re-run of past days reaches the decisions the live runs reached, and no model is
ever scored on its own training rows.

For each day: per-column drift of the last {window} day(s) (methods and thresholds from
`monitoring.drift`), prediction drift, and realized `{metric}` on the predictions whose delayed
labels ({delay} days) have arrived; the retrain policy (`monitoring.retrain_policy`: {consecutive}
drifted windows in a row, or a `{metric}` drop above {drop}; at least {min_rows} rows; a
{cooldown}-day cooldown; at most {max_retrains} requests in {period} days) decides. The verdict
(`check.json`, and Evidently's reports for a window that requested a retrain, or as
`monitoring.reports` says, kept as snapshots that the MLOps pages show as HTML) goes to
`reports/{model}/drift/day=…/version=…/` and onto an MLflow run
(`mlops_run_kind = drift_check`) in the `{model}` experiment; the numbers go to the metrics
history (`include.monitoring.retrain_policy.read_history("{model}")`). A batch that ingestion quarantined is
a data-quality failure, not drift: it is left out and can never trigger a retrain.

For a model with `feature_store: feast` ({feature_store}), each check also compares the feature values
the prediction service used (the prediction log of the window) with the feature store's offline values
of the same entities at the same time (Feast's point-in-time retrieval): the share of mismatches per
feature goes into `check.json`, onto the MLflow run (`skew_share_<feature>`) and into a
`feature_skew` Evidently report. A share above {skew_max_share} (`monitoring.skew_max_share`) is a
**retrain-blocking alert, not a retrain trigger**: the notifier of
`evaluation.degraded_champion.notifier` raises the alert, and the retrain request is withheld, saying
why, until a check finds the features matching again (continuous training skips its automatic runs
meanwhile).

**enforce_retention** then deletes the drift reports, online prediction logs and batch predictions
older than the model's `retention` settings (reports {reports_days}, logs {logs_days}, batch
predictions {batch_days} days; None keeps all), counted back from the newest checked day. It never
deletes data (landing, curated, labels, quarantine) nor a day the sensor has not checked yet.

When the policy fires, the task updates the Asset `{model}__retrain_request` (through the alias
`{model}__retrain_requests`, so that only a request makes an event) with the reason (drift or
performance), window, drifted columns, scores and report; continuous training runs on it. A
request is emitted once, even when its day is checked again. The run is **skipped**, saying why,
when there was nothing to check.
"""


def build(config):
    retrain = retrain_request_asset(config)
    requests = retrain_request_alias(config)
    policy = config.monitoring.retrain_policy

    @dag(
        dag_id=dag_id(config.name, STAGE),
        schedule=AssetOrTimeSchedule(
            timetable=CronDataIntervalTimetable(config.monitoring.schedule, timezone="UTC"),
            assets=curated_batch_asset(config),
        ),
        start_date=to_pendulum(data_start(config)),
        end_date=to_pendulum(data_end(config)) if data_end(config) else None,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=config.paused_on_start,
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
            feature_store="on" if config.feature_store else "off for this model",
            skew_max_share=config.monitoring.skew_max_share,
            reports_days=config.retention.reports_days,
            logs_days=config.retention.logs_days,
            batch_days=config.retention.batch_predictions_days,
        ),
        params={
            "day": day_param("The newest day (YYYY-MM-DD) to check; it is checked again even when it already "
                             "was. Leave empty for the newest curated day."),
        },
    )
    def drift_sensor():
        @task(outlets=[requests])
        def check_windows(**context) -> dict:
            """Check every unchecked day up to the run's day against the version that served it;
            emit the retrain requests the policy made."""
            from mlops_dags import notifiers

            from include.monitoring import alerts, monitoring

            dag_run = context["dag_run"]
            result = monitoring.run_checks(
                config, newest_day_to_check(context), {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id}
            )
            for note in result["notes"]:
                print(note)
            if not result["checked"]:
                raise AirflowSkipException("; ".join(result["notes"]) or "nothing to check")
            for checked in result["checked"]:
                print(f"{checked['day']} against version {checked['model_version']}: "
                      f"{checked['decision']['explanation']}")
            for made in result["requests"]:
                request = made["request"]
                if made["already_emitted"]:
                    print(f"The retrain request of the window ending {made['day']} was already emitted by an "
                          "earlier run of this window")
                    continue
                context["outlet_events"][requests].add(retrain, extra=request)
                monitoring.mark_request_emitted(request["monitoring_run_id"])
                print(f"Retrain requested ({request['reason']}) for the window ending {made['day']}: "
                      f"{request['explanation']}")
            alert = alerts.feature_skew_alert(config, result["checked"])
            if alert is not None:
                context[alerts.ALERT_CONTEXT_KEY] = alert
                notifiers.build_notifier(config)(context)
            return result

        @task(trigger_rule=TriggerRule.NONE_FAILED)
        def enforce_retention() -> dict:
            """Delete the model's drift reports, prediction logs and batch predictions older than its
            `retention` settings (never data, never a day not checked yet)."""
            from include.monitoring import retention

            result = retention.enforce_retention(config)
            for note in result["notes"]:
                print(note)
            deleted = {kind: len(days) for kind, days in result["deleted"].items()}
            print(f"Deleted day folders {deleted}, {result['freed_bytes']} bytes, keeping {result['kept_days']} "
                  f"days counted back from {result['newest_checked_day']}")
            return {**result, "deleted": deleted}

        check_windows() >> enforce_retention()

    return drift_sensor()


def newest_day_to_check(context) -> dt.date | None:
    """The run's day: the `day` Param, else the run's data interval (a scheduled or backfilled
    run). None for a run that curated batches triggered, or a manual run without a day: it checks
    up to the newest curated day and follows the batches published while it works."""
    if event_days(context):
        return None
    try:
        return interval_day(context)
    except ValueError:
        return None


for model_config in configs_for_stage(STAGE):
    build(model_config)
