"""`<model>__history_import` (Level 1): bring in a long range of past days in minutes, not hours.

One DAG per model config in `include/models/`. The task bodies call `include.data.history_import`;
heavy libraries load inside the tasks, never when this file is parsed.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from mlops_dags.model_dags import (
    configs_for_stage,
    curated_batch_asset,
    dag_id,
    dag_tags,
    data_end,
    data_start,
    default_args,
    to_pendulum,
)

STAGE = "history_import"
PARALLEL_CHUNKS = 2
"""Chunks one run imports at a time: the reference machine's cores. Each chunk is a process holding
Great Expectations and pandas, so more at once would compete for the same cores and memory (and with
the other models' tasks) without finishing sooner."""

DOC = """
### History import for `{model}`

A person runs it, with the first and last day of the range in the **start** and **end** fields
(empty: from the source's first day, {first_day}; to yesterday{last_day}). Use it to bring in the
past before the model's first training, or to fill a long gap; daily ingestion stays the way new
days arrive.

1. **plan_chunks**: cut the range into its {interval} batch intervals (`source.interval`), and those
   into chunks of about **chunk_days** days (whole intervals, at least one per chunk).
2. **import_chunk** (one mapped task per chunk, {parallel} at a time): each interval goes through the
   steps of `{model}__data_ingestion` with the same Great Expectations suites: land the batch,
   validate it, store the labels that arrived meanwhile, publish it to the curated store by day. A bad
   interval is moved to `quarantine/day=…/` (its first day) with its GX report, and the other
   intervals still curate; labels that fail go to quarantine too. Great Expectations is loaded once
   per chunk, not once per interval, and no Data Docs site is built for imported intervals.
   Re-running replaces the range's partitions.
3. **summarize_range**: what arrived: curated days and rows, quarantined and missing days (all the
   days of a quarantined interval; the days of a curated one that had no row are missing).
4. **announce_curated_range**: ONE update of the Asset `{model}__curated_batch` for the whole
   range, its extra `{{"first_day", "last_day", "days", "rows", "quarantined", "missing", ...}}`,
   so continuous training, batch prediction and the drift sensor run once, not once per day
   (skipped when no day curated).
5. **report_quarantined_days**: fails, naming each quarantined or missing day and why, when the
   range had any; the curated days and the Asset update stand.
"""


def build(config):
    curated = curated_batch_asset(config)
    end = data_end(config)

    @dag(
        dag_id=dag_id(config.name, STAGE),
        schedule=None,
        start_date=to_pendulum(data_start(config)),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=config.paused_on_start,
        tags=dag_tags(config, 1),
        default_args=default_args(config),
        doc_md=DOC.format(model=config.name, first_day=data_start(config), parallel=PARALLEL_CHUNKS,
                          interval=config.source.interval,
                          last_day=f" or the source's last day, {end}, if earlier" if end else ""),
        params={
            "start": Param(None, type=["null", "string"], format="date", title="First day",
                           description="First day of the range (YYYY-MM-DD); empty = the source's first day."),
            "end": Param(None, type=["null", "string"], format="date", title="Last day",
                         description="Last day of the range (YYYY-MM-DD), included; empty = yesterday "
                                     "(or the source's last day, if earlier)."),
            "chunk_days": Param(50, type="integer", minimum=1, title="Days per chunk",
                                description="Days imported by one task; Great Expectations loads once per chunk."),
        },
    )
    def history_import():
        @task(retries=0)
        def plan_chunks(**context) -> list[list[str]]:
            """The range's batch intervals, cut into chunks (their first days, ISO), one mapped import task each."""
            import datetime as dt

            from include.data import history_import as history

            params = context["params"]
            yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
            start = params["start"] or data_start(config).isoformat()
            last = params["end"] or min(filter(None, (yesterday, end))).isoformat()
            try:
                chunks = history.plan_chunks(start, last, params["chunk_days"], config.source.interval)
            except ValueError as exc:
                raise AirflowFailException(f"model {config.name!r}: {exc}") from exc
            print(f"Importing {sum(map(len, chunks))} {config.source.interval} batch(es) holding {start} to {last} "
                  f"in {len(chunks)} chunk(s)")
            return chunks

        @task(max_active_tis_per_dagrun=PARALLEL_CHUNKS)
        def import_chunk(days: list[str]) -> dict:
            """Land, validate, store labels and publish each interval of the chunk; a bad one goes to quarantine."""
            from include.data import history_import as history

            imported = history.import_chunk(config, days)
            for day in imported["days"]:
                print(f"{day['day']}: {day['status']}, {day['rows']} rows"
                      + (f": {day['error']}" if day["error"] else "")
                      + (f"; labels: {day['labels_error']}" if day["labels_error"] else ""))
            return imported

        @task
        def summarize_range(chunks: list[dict]) -> dict:
            """What the whole range brought in."""
            from include.data import history_import as history

            return history.summarize(config, chunks)

        @task(outlets=[curated])
        def announce_curated_range(summary: dict, **context) -> dict:
            """One curated-batch Asset update for the whole range (none when no day curated)."""
            if not summary["days"]:
                raise AirflowSkipException(f"no day from {summary['first_day']} to {summary['last_day']} curated")
            extra = {key: value for key, value in summary.items() if key != "errors"}
            context["outlet_events"][curated].extra = extra
            return extra

        @task(retries=0)
        def report_quarantined_days(summary: dict) -> dict:
            """Fail, naming them, when days of the range were quarantined or missing."""
            from include.data import history_import as history

            problems = history.describe_problems(summary)
            if problems:
                raise AirflowFailException(problems)
            return {"days": summary["days"], "rows": summary["rows"]}

        summary = summarize_range(import_chunk.expand(days=plan_chunks()))
        announce_curated_range(summary)
        report_quarantined_days(summary)

    return history_import()


for model_config in configs_for_stage(STAGE):
    build(model_config)
