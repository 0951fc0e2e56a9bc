"""`<model>__data_ingestion` (Level 1): every batch interval's data lands, passes a GX gate, then is curated.

One DAG per model config in `include/models/`. The task bodies call `include.data.ingestion`; heavy
libraries load inside the tasks, never when this file is parsed.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, Param, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from mlops_dags.model_dags import (
    configs_for_stage,
    curated_batch_asset,
    dag_id,
    dag_tags,
    data_end,
    data_start,
    day_param,
    default_args,
    interval_day,
    to_pendulum,
)

from include.core import intervals

STAGE = "data_ingestion"

DOC = """
### Data ingestion for `{model}`

One run per {interval} batch interval (`source.interval`; backfill with `airflow backfill create`), or a
manual run for the interval holding the day named in the **day** field. A weekly interval starts on a
Monday, a monthly one on the 1st; its batch is kept under its first day (`landing/day=…/`).

1. **land_batch**: copy what the source delivered in the interval into the landing zone.
2. **validate_batch**: check it with the Great Expectations suite built from the model's schema
   (`include/models/{model}.yaml`). A blocking failure moves the batch to
   `quarantine/day=…/` with its GX result, fails with the list of failed rules, and stops the run:
   nothing of the interval is curated.
   Expectations marked as warnings are recorded without blocking. Data Docs are kept for every run.
3. **land_labels**: check the labels that arrived in the interval (the delayed feedback stream) with
   the labels suite and store them by the day they arrived; labels that fail go to quarantine with
   their report, never to training.
4. **publish_curated_batch**: write the bytes that passed validation (not whatever the landing
   file holds by then) to the curated store, one partition per day of the rows' timestamps
   (re-running replaces them), and update the Asset `{model}__curated_batch` with rows, the day
   (a weekly or monthly batch: the range `first_day`…`last_day`, as a history import names one)
   and the validation summary. It waits for the interval's labels, so whoever reacts to the batch
   (the drift sensor) sees everything that arrived meanwhile, as a later re-run of its check will.
"""

HOURLY_DOC = """
**Hourly source.** One run at a time, each for one hour (a manual run names the **day** and the
**hour**). The hour's batch is kept under `day=…/hour=HH/`; **publish_curated_batch** merges it into
its day's curated partition (the day's earlier rows of that hour are replaced) and its labels into the
day's labels, without an Asset update. **announce_day** then updates the Asset `{model}__curated_batch`
once per day, in the run of the day's last hour (23:00), even when that hour failed or was
quarantined: its extra names the `day`, its `rows` and the hours curated, quarantined and missing.
**report_failed_hour** then fails the run when the hour failed, so a quarantined hour shows as a failed run.
"""


def build(config):
    curated = curated_batch_asset(config)
    end = data_end(config)
    interval = config.source.interval
    hourly = interval == "hourly"
    params = {
        "day": day_param("A day (YYYY-MM-DD) of the interval to ingest. Leave empty to use the run's data "
                         "interval."),
    }
    if hourly:
        params["hour"] = Param(None, type=["null", "integer"], minimum=0, maximum=23, title="Hour",
                               description="The hour (0-23, UTC) of the day to ingest; needed with the day.")

    def batch_moment(context) -> dt.date:
        """The moment whose batch interval the run ingests: the day (and hour) Params, else the run's data interval."""
        requested = context.get("params") or {}
        if not hourly:
            return interval_day(context)
        if requested.get("day"):
            if requested.get("hour") is None:
                raise AirflowFailException(f"{config.name} has an hourly source: name the hour (0-23) with the day")
            return dt.datetime.combine(dt.date.fromisoformat(requested["day"]), dt.time(requested["hour"]))
        if context.get("data_interval_start") is None:
            raise AirflowFailException("this run has no data interval: trigger it with the day and hour Params")
        return intervals.interval_bounds("hourly", context["data_interval_start"])[0]

    @dag(
        dag_id=dag_id(config.name, STAGE),
        schedule=CronDataIntervalTimetable(intervals.ingestion_cron(interval), timezone="UTC"),
        start_date=to_pendulum(intervals.interval_first_day(interval, data_start(config))),
        end_date=to_pendulum(end) if end else None,
        catchup=True,
        max_active_runs=1 if hourly else 2,
        is_paused_upon_creation=config.paused_on_start,
        tags=dag_tags(config, 1),
        default_args=default_args(config),
        doc_md=DOC.format(model=config.name, interval=interval) + (HOURLY_DOC.format(model=config.name) if hourly
                                                                    else ""),
        params=params,
    )
    def data_ingestion():
        @task
        def land_batch(**context) -> dict:
            """Copy the interval's batch from the source into the landing zone."""
            from include.data import ingestion

            return ingestion.land(config, batch_moment(context))

        @task(retries=0)
        def validate_batch(landed: dict) -> dict:
            """Run the GX suite; quarantine the batch and fail on a blocking failure."""
            from include.data import ingestion

            try:
                return ingestion.validate(config, ingestion.parse_batch_key(landed["day"]), landed["batch_uri"])
            except ingestion.BatchRejected as exc:
                raise AirflowFailException(str(exc)) from exc

        @task(outlets=[] if hourly else [curated])
        def publish_curated_batch(landed: dict, validated: dict, **context) -> dict:
            """Write the batch to the curated store, by day, and tell consumers which days are there
            (an hourly source: `announce_day` does, once a day)."""
            from include.data import ingestion

            published = ingestion.publish(config, ingestion.parse_batch_key(landed["day"]), validated["validated_uri"])
            if not hourly:
                context["outlet_events"][curated].extra = {**published, "validation": validated["summary"]}
            return published

        @task
        def land_labels(**context) -> dict:
            """Store the labels that arrived in the interval (validated, or quarantined)."""
            from include.data import ingestion

            return ingestion.land_labels(config, batch_moment(context))

        @task(outlets=[curated], trigger_rule=TriggerRule.ALL_DONE)
        def announce_day(**context) -> dict:
            """In the run of a day's last hour (whatever became of it): one Asset update for the day."""
            from include.data import ingestion

            hour = batch_moment(context)
            if hour.hour != 23:
                raise AirflowSkipException(f"{hour:%Y-%m-%d %H}:00 is not the day's last hour: the 23:00 run announces")
            day = ingestion.hours_of_day(config, hour.date())
            if not day["hours_curated"]:
                raise AirflowSkipException(f"no hour of {day['day']} is curated: nothing to announce")
            context["outlet_events"][curated].extra = {"model": config.name, "interval": interval, **day}
            return day

        @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
        def report_failed_hour() -> None:
            """Fail the run when the hour's batch or labels failed: `announce_day`, which runs whatever
            became of them, must not make the run look successful."""
            raise AirflowFailException("the hour's batch or labels failed: see the failed task above")

        landed = land_batch()
        validated = validate_batch(landed)
        published = publish_curated_batch(landed, validated)
        labels = land_labels()
        labels >> published
        if hourly:
            [published, labels] >> announce_day()
            [landed, validated, published, labels] >> report_failed_hour()

    return data_ingestion()


for model_config in configs_for_stage(STAGE):
    build(model_config)
