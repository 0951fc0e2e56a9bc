"""Scheduling of the model DAGs: the freshest work first, so one model's catch-up never starves another.

Airflow's scheduler queues ready tasks by priority weight, then by logical date, oldest first. With
the default weights, a model catching up a year of daily intervals always has older work ready than
a model that is up to date or was just added, and is queued first whenever slots are short (a
busy executor, a full pool) until it has caught up.
Every model DAG's tasks use `RecentIntervalsFirst` instead (`weight_rule` in the DAG factory's
default_args, `dags/mlops_dags/model_dags.py`): when Airflow creates a task instance, its weight is
the task's own `priority_weight` plus a bonus that shrinks by one point for every hour its run had
been due by then (over at most ten years). A model's live interval, and every run that was
triggered (a person, an Asset event), is created as it falls due and gets the full bonus; the deep
end of a catch-up gets the least. So the freshest work of every model is queued before anybody's
backlog, and a backlog runs shallow-first across models and, within one model, in order (ingestion
runs at most two intervals at a time).

A custom weight rule must be registered by a plugin in every Airflow process that serializes or
schedules the DAGs (the DAG processor, the scheduler); this file is that plugin.
"""

from __future__ import annotations

import datetime as dt

from airflow.plugins_manager import AirflowPlugin
from airflow.task.priority_strategy import PriorityWeightStrategy

HORIZON_HOURS = 10 * 365 * 24
"""Runs created longer than this after they fell due get no bonus (they are ordered by date among themselves)."""


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
    """The task's own `priority_weight` plus a bonus for how recently its run became due (when the
    task instance is created, which Airflow does when it creates the run)."""

    def get_weight(self, ti) -> int:
        return ti.task.priority_weight + recency_bonus(ti.run_id or "")


class MLOpsSchedulingPlugin(AirflowPlugin):
    name = "mlops_scheduling"
    priority_weight_strategies = [RecentIntervalsFirst]
