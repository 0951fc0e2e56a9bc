"""Scheduling of the model DAGs: the freshest work first, so one model's catch-up never starves another.

Airflow's scheduler queues ready tasks by priority weight, then by logical date, oldest first. With
the default weights, a model catching up a year of daily intervals always has older work ready than
a model that is up to date or was just added, and takes every free slot until it has caught up.
Every model DAG's tasks use `RecentIntervalsFirst` instead (`weight_rule` in the DAG factory's
default_args, `dags/mlops_dags/model_dags.py`): a task's weight grows with how recently its run
became due, one point per hour over ten years. So each model's newest interval, and every run that
was triggered (a person, an Asset event), goes before the deep end of any catch-up; a catch-up runs
newest-backlog-first across models and, within one model, in order (ingestion runs at most two
intervals at a time).

A custom weight rule must be registered by a plugin in every Airflow process that serializes or
schedules the DAGs (the DAG processor, the scheduler); this file is that plugin.
"""

from __future__ import annotations

import datetime as dt

from airflow.plugins_manager import AirflowPlugin
from airflow.task.priority_strategy import PriorityWeightStrategy

HORIZON_HOURS = 10 * 365 * 24
"""Runs due longer ago than this get no recency bonus (they are ordered by date among themselves)."""


def run_due_at(run_id: str) -> dt.datetime | None:
    """When a run became due, from Airflow's run id `<run type>__<run_after ISO time>[_<suffix>]`.

    None for a run id a person chose (`airflow dags trigger --run-id …`), which names no time.
    """
    _, separator, stamp = run_id.partition("__")
    if not separator:
        return None
    for candidate in (stamp, stamp.rsplit("_", 1)[0]):
        try:
            due = dt.datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return due if due.tzinfo else due.replace(tzinfo=dt.UTC)
    return None


def recency_bonus(run_id: str, now: dt.datetime | None = None) -> int:
    """HORIZON_HOURS minus the hours since the run became due (a run naming no time counts as due now)."""
    due = run_due_at(run_id)
    if due is None:
        return HORIZON_HOURS
    now = now or dt.datetime.now(dt.UTC)
    hours_behind = max(0, int((now - due).total_seconds() // 3600))
    return max(0, HORIZON_HOURS - hours_behind)


class RecentIntervalsFirst(PriorityWeightStrategy):
    """The task's own `priority_weight` plus a bonus for how recently its run became due."""

    def get_weight(self, ti) -> int:
        return ti.task.priority_weight + recency_bonus(ti.run_id or "")


class MLOpsSchedulingPlugin(AirflowPlugin):
    name = "mlops_scheduling"
    priority_weight_strategies = [RecentIntervalsFirst]
