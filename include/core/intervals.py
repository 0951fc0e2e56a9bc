"""Batch intervals: the unit in which a source delivers data (`source.interval`).

An interval is the unit of *ingestion*: one scheduled run, one read of the source over the
interval's bounds [start, end), one validation, one quarantine decision. Storage stays partitioned
by day, so everything downstream works on days; this module says which days an interval covers.

Moments are tz-naive datetimes in UTC, as everywhere in the stores. A weekly interval starts on a
Monday at midnight, a monthly one on the first of the month; an hourly interval lies within one day.
Plain Python: DAG files import it at parse time.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

Interval = Literal["hourly", "daily", "weekly", "monthly"]
INTERVALS: tuple[Interval, ...] = ("hourly", "daily", "weekly", "monthly")

_CRONS = {"hourly": "@hourly", "daily": "@daily", "weekly": "0 0 * * 1", "monthly": "0 0 1 * *"}
_LONGEST_DAYS = {"hourly": 1, "daily": 1, "weekly": 7, "monthly": 31}


def _checked(interval: str) -> Interval:
    if interval not in _CRONS:
        raise ValueError(f"unknown interval {interval!r}; expected one of {', '.join(INTERVALS)}")
    return interval


def ingestion_cron(interval: Interval) -> str:
    """The cron expression whose data intervals are the batch intervals (weekly: Mondays, monthly: the 1st)."""
    return _CRONS[_checked(interval)]


def _as_datetime(moment: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(moment, dt.datetime):
        return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return dt.datetime.combine(moment, dt.time())


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def interval_bounds(interval: Interval, moment: dt.date | dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The interval holding `moment` (a day means its midnight), as [start, end), tz-naive UTC."""
    moment = _as_datetime(moment)
    day = moment.date()
    if _checked(interval) == "hourly":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start, start + dt.timedelta(hours=1)
    if interval == "daily":
        first, after = day, day + dt.timedelta(days=1)
    elif interval == "weekly":
        first = day - dt.timedelta(days=day.weekday())
        after = first + dt.timedelta(days=7)
    else:
        first, after = day.replace(day=1), _next_month(day)
    return _as_datetime(first), _as_datetime(after)


def interval_first_day(interval: Interval, moment: dt.date | dt.datetime) -> dt.date:
    """The day the interval holding `moment` starts on: the key of its batch in the stores."""
    return interval_bounds(interval, moment)[0].date()


def interval_days(interval: Interval, moment: dt.date | dt.datetime) -> list[dt.date]:
    """The days the interval holding `moment` covers, oldest first (an hour covers its one day)."""
    start, end = interval_bounds(interval, moment)
    last = (end - dt.timedelta(microseconds=1)).date()
    return [start.date() + dt.timedelta(days=offset) for offset in range((last - start.date()).days + 1)]


def interval_starts(interval: Interval, first_day: dt.date, last_day: dt.date) -> list[dt.datetime]:
    """The starts of the intervals that hold a moment of the days `first_day` to `last_day`, oldest first."""
    start, _ = interval_bounds(interval, first_day)
    stop = _as_datetime(last_day + dt.timedelta(days=1))
    starts = []
    while start < stop:
        starts.append(start)
        start = interval_bounds(interval, start)[1]
    return starts


def longest_days(interval: Interval) -> int:
    """The most days one interval spans (monthly: 31); a window of days must be at least this long
    to hold any whole interval."""
    return _LONGEST_DAYS[_checked(interval)]


def days_in_interval_ending(interval: Interval, day: dt.date) -> int:
    """How many days one interval's length back from `day` (included) spans: 1 for hourly and daily,
    7 weekly, and monthly the days since the same date a month earlier (31 on January 31, 28 on
    February 28 of a common year)."""
    if _checked(interval) != "monthly":
        return longest_days(interval)
    after = day + dt.timedelta(days=1)
    previous_month_end = after.replace(day=1) - dt.timedelta(days=1)
    month_before = previous_month_end.replace(day=min(after.day, previous_month_end.day))
    return (after - month_before).days
