"""History import: land, validate and curate a long range of past days in chunks, not one run per day.

The range is cut into batch intervals (`source.interval`: days, weeks or months), and chunks are
made of whole intervals. Each interval of a chunk goes through the steps of ingestion
(`include.data.ingestion`: land, validate, land the interval's labels, publish), so it passes the
same GX suites and a bad interval is quarantined with its report exactly as ingestion would
quarantine it; the other intervals of the range still curate. What a chunk saves is the fixed
cost: Great Expectations is imported and its context set up once per process
(`validation.validate_batch` without Data Docs reuses one), and the intervals of a chunk share one
Airflow task instead of four each. No Data Docs site is built for an imported interval (its report
is in quarantine when it failed).

Re-importing a range replaces its curated and labels partitions, and a bad day's batch lands in
the same content-named quarantine folder again, so a re-run never duplicates anything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from include.core import intervals, storage
from include.core.config import ModelConfig
from include.data import ingestion, sources

DEFAULT_CHUNK_DAYS = 50
"""Days per chunk: GX's setup (seconds) is paid once per chunk, while enough chunks remain for
Airflow to run them in parallel (600 days make 12 chunks)."""

CURATED, QUARANTINED, MISSING = "curated", "quarantined", "missing"


def _day(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def plan_chunks(start: dt.date | str, end: dt.date | str, chunk_days: int = DEFAULT_CHUNK_DAYS,
                interval: intervals.Interval = "daily") -> list[list[str]]:
    """The batch intervals holding the days from `start` to `end` (both included), oldest first, cut
    into chunks of whole intervals spanning about `chunk_days` days (at least one interval each).

    Returns:
        The chunks as lists of the intervals' first days (an hourly source: their starts), ISO
        (small enough for XCom, one mapped task each); for a daily source, the days themselves.

    Raises:
        ValueError: `end` is before `start`, or `chunk_days` is below 1; the message names them.
    """
    first, last = _day(start), _day(end)
    if last < first:
        raise ValueError(f"history import: end {last} is before start {first}; expected start <= end")
    if isinstance(chunk_days, bool) or not isinstance(chunk_days, int) or chunk_days < 1:
        raise ValueError(f"history import: chunk_days must be a whole number >= 1, got {chunk_days!r}")
    starts = intervals.interval_starts(interval, first, last)
    days = [start.isoformat() if interval == "hourly" else start.date().isoformat() for start in starts]
    per_chunk = chunk_days * 24 if interval == "hourly" else max(1, chunk_days // intervals.longest_days(interval))
    return [days[index:index + per_chunk] for index in range(0, len(days), per_chunk)]


def import_day(config: ModelConfig, day: dt.date) -> dict:
    """Land, validate, store the labels of, and publish the batch interval starting on `day`, as
    ingestion does.

    Returns:
        {"day" (the interval's first day), "status": "curated" | "quarantined" | "missing",
        "rows", "error" (why it was not curated, or None), "labels_rows", "labels_error" (why the
        interval's labels were not stored, or None), "covers" (the interval's days, ISO),
        "curated_days" (those with curated rows)}.
    """
    covers = [each.isoformat() for each in intervals.interval_days(config.source.interval, day)]
    result = {"day": day.isoformat(), "status": CURATED, "rows": 0, "error": None, "labels_rows": 0,
              "labels_error": None, "covers": covers, "curated_days": []}
    try:
        labels = ingestion.land_labels(config, day, data_docs=False)
        result["labels_rows"] = labels["rows"]
    except (ingestion.BatchRejected, sources.UnreadableBatch) as exc:
        result["labels_error"] = str(exc)
    try:
        landed = ingestion.land(config, day)
    except sources.BatchNotArrived as exc:
        return {**result, "status": MISSING, "error": str(exc)}
    try:
        validated = ingestion.validate(config, day, landed["batch_uri"], data_docs=False)
    except ingestion.BatchRejected as exc:
        return {**result, "status": QUARANTINED, "error": str(exc)}
    published = ingestion.publish(config, day, validated["validated_uri"])
    return {**result, "rows": published["rows"], "curated_days": published.get("curated_days", [day.isoformat()])}


def import_chunk(config: ModelConfig, days: Iterable[dt.date | str]) -> dict:
    """Import the batch intervals of one chunk (their first days), oldest first; a bad interval is
    quarantined and the others go on.

    Returns:
        {"first_day", "last_day", "days": [`import_day`'s result per day]}.
    """
    results = [import_day(config, ingestion.parse_batch_key(day) if isinstance(day, str) else day) for day in days]
    return {"first_day": results[0]["day"] if results else None,
            "last_day": results[-1]["day"] if results else None, "days": results}


def summarize(config: ModelConfig, chunks: Iterable[dict]) -> dict:
    """What a whole import brought in, as the curated-batch Asset event's extra says it.

    Returns:
        {"model", "interval", "first_day", "last_day" (of the intervals imported), "days" (curated
        days), "rows" (curated rows), "quarantined" (the days of quarantined intervals), "missing"
        (the days of intervals without a batch, and days without a row in a curated one): a day
        with a curated hour is neither; "quarantined_batches" and "missing_batches" (the
        intervals' keys: first days, or an hourly source's hours),
        "labels_quarantined" (ISO first days of the intervals whose labels failed), "labels_rows",
        "errors" ({first day: why it was not curated}, also for labels as "<day> labels")}.
    """
    days = sorted((day for chunk in chunks for day in chunk["days"]), key=lambda each: each["day"])
    covered = {status: [covered for each in days if each["status"] == status
                        for covered in each.get("covers", [each["day"]])]
               for status in (CURATED, QUARANTINED, MISSING)}
    curated = sorted({day for each in days if each["status"] == CURATED
                      for day in each.get("curated_days", [each["day"]])})
    empty = set(covered[CURATED]) - set(curated)
    errors = {each["day"]: each["error"] for each in days if each["error"]}
    errors.update({f"{each['day']} labels": each["labels_error"] for each in days if each["labels_error"]})
    return {
        "model": config.name,
        "interval": config.source.interval,
        "first_day": days[0].get("covers", [days[0]["day"]])[0] if days else None,
        "last_day": days[-1].get("covers", [days[-1]["day"]])[-1] if days else None,
        "days": len(curated),
        "rows": sum(each["rows"] for each in days),
        "quarantined": sorted(set(covered[QUARANTINED]) - set(curated)),
        "missing": sorted({*covered[MISSING], *empty} - set(curated)),
        "quarantined_batches": [each["day"] for each in days if each["status"] == QUARANTINED],
        "missing_batches": [each["day"] for each in days if each["status"] == MISSING],
        "labels_quarantined": [each["day"] for each in days if each["labels_error"]],
        "labels_rows": sum(each["labels_rows"] for each in days),
        "errors": errors,
    }


def describe_problems(summary: dict) -> str | None:
    """One message naming the days (and label days) that were not curated, and where to look; None if none."""
    problems = []
    if summary.get("interval") == "hourly":
        for key, what in (("quarantined_batches", "quarantined"), ("missing_batches", "had no batch")):
            if summary[key]:
                problems.append(f"{len(summary[key])} hour(s) {what}: {', '.join(summary[key])}")
    elif summary["quarantined"]:
        problems.append(f"{len(summary['quarantined'])} day(s) quarantined: {', '.join(summary['quarantined'])}")
    if summary["labels_quarantined"]:
        problems.append(f"the labels of {len(summary['labels_quarantined'])} day(s) not stored: "
                        f"{', '.join(summary['labels_quarantined'])}")
    if summary["missing"] and summary.get("interval") != "hourly":
        problems.append(f"{len(summary['missing'])} day(s) had no batch: {', '.join(summary['missing'])}")
    if not problems:
        return None
    where = storage.model_root(summary["model"]) / "quarantine"
    reasons = "; ".join(f"{day}: {why}" for day, why in summary["errors"].items())
    return (f"history import of {summary['model']} from {summary['first_day']} to {summary['last_day']}: "
            f"{summary['days']} day(s) curated; " + "; ".join(problems)
            + f". The reports are beside the batches under {where}. Why: {reasons}")


def import_range(config: ModelConfig, start: dt.date | str, end: dt.date | str,
                 chunk_days: int = DEFAULT_CHUNK_DAYS) -> dict:
    """Import a whole range in one process, chunk after chunk (the CLI, tests and the benchmark).

    Returns:
        `summarize`'s summary.
    """
    chunks = plan_chunks(start, end, chunk_days, config.source.interval)
    return summarize(config, [import_chunk(config, chunk) for chunk in chunks])
