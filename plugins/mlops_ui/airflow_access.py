"""What the MLOps pages ask Airflow: which models a user may read, which DAGs are paused, what a task returned.

The plugin runs inside the api-server, so it reads Airflow's metadata database through Airflow's
own ORM session and asks Airflow's auth manager, the same ones Airflow's own pages use.

A model is its DAGs (`<model>__<stage>`): a user may read a model when the auth manager lets them
read every one of its DAGs that Airflow knows (a model whose DAGs were not parsed yet is judged by
its `continuous_training` DAG id).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import select

DAG_ID_SEPARATOR = "__"


def model_of_dag(dag_id: str) -> str | None:
    """The model a DAG belongs to (`<model>__<stage>`), or None for a DAG id of another shape."""
    model, separator, stage = dag_id.rpartition(DAG_ID_SEPARATOR)
    return model if separator and model and stage else None


def stage_of_dag(dag_id: str) -> str:
    return dag_id.rpartition(DAG_ID_SEPARATOR)[2]


@dataclass(frozen=True)
class ModelDags:
    """A model's DAGs as Airflow knows them: id -> paused."""

    paused: dict[str, bool]

    @property
    def all_paused(self) -> bool:
        """True when the model has DAGs and every one is paused: nothing of its loop runs by itself."""
        return bool(self.paused) and all(self.paused.values())

    @property
    def paused_stages(self) -> list[str]:
        return sorted(stage_of_dag(dag_id) for dag_id, paused in self.paused.items() if paused)


def model_dags(models: Iterable[str]) -> dict[str, ModelDags]:
    """The DAGs of each model that Airflow currently has (stale ones, whose file is gone, left out)."""
    wanted = set(models)
    found: dict[str, dict[str, bool]] = defaultdict(dict)
    with create_session() as session:
        rows = session.execute(select(DagModel.dag_id, DagModel.is_paused).where(DagModel.is_stale.is_(False)))
        for dag_id, paused in rows:
            model = model_of_dag(dag_id)
            if model in wanted:
                found[model][dag_id] = bool(paused)
    return {model: ModelDags(dict(found.get(model, {}))) for model in wanted}


def _unparsed_model_dag(model: str) -> str:
    return f"{model}{DAG_ID_SEPARATOR}continuous_training"


def may_read_model(user, model: str, dags: ModelDags) -> bool:
    """Whether the auth manager lets `user` read every DAG of `model` (what `requires_access_dag` asks)."""
    dag_ids = list(dags.paused) or [_unparsed_model_dag(model)]
    teams = DagModel.get_dag_id_to_team_name_mapping(dag_ids)
    auth = get_auth_manager()
    return all(
        auth.is_authorized_dag(method="GET", details=DagDetails(id=dag_id, team_name=teams.get(dag_id)), user=user)
        for dag_id in dag_ids
    )


def readable_models(user, dags_by_model: dict[str, ModelDags]) -> set[str]:
    """The models `user` may read, with one question to the auth manager for all DAGs it knows."""
    auth = get_auth_manager()
    readable_dags = auth.get_authorized_dag_ids(user=user, method="GET")
    readable = set()
    for model, dags in dags_by_model.items():
        if dags.paused:
            if readable_dags.issuperset(dags.paused):
                readable.add(model)
        elif auth.is_authorized_dag(method="GET", details=DagDetails(id=_unparsed_model_dag(model)), user=user):
            readable.add(model)
    return readable


@dataclass(frozen=True)
class TaskDays:
    """The days whose reports a task instance made, and how they were found."""

    days: list[dt.date]
    source: str  # "return value" (the task's XCom) or "run" (the run's day)


def days_in_return_value(value) -> list[dt.date]:
    """The days a task's return value names: the drift sensor's `checked[].day`, or a single `day`."""
    if not isinstance(value, dict):
        return []
    named = [checked.get("day") for checked in value.get("checked") or [] if isinstance(checked, dict)]
    if not named and value.get("day"):
        named = [value["day"]]
    days = set()
    for day in named:
        try:
            days.add(dt.date.fromisoformat(str(day)))
        except ValueError:
            continue
    return sorted(days)


def task_days(dag_id: str, run_id: str, task_id: str) -> TaskDays | None:
    """The days a task instance worked on; None when Airflow has no such run.

    The task's return value (its XCom) names them when it has one: the drift sensor's check names
    every day it checked, the ingestion's validation its day. A task that returned nothing (it
    failed, e.g. a validation that quarantined the batch, or has not finished) worked on its run's
    day: the `day` the run was triggered with, else the start of its data interval, else its
    logical date.
    """
    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            return None
        query = XComModel.get_many(run_id=run_id, key="return_value", task_ids=task_id, dag_ids=dag_id, limit=1)
        xcom = session.scalars(query).first()
        days = days_in_return_value(XComModel.deserialize_value(xcom)) if xcom is not None else []
        if days:
            return TaskDays(days, "return value")
        requested = (run.conf or {}).get("day")
        if requested:
            try:
                return TaskDays([dt.date.fromisoformat(str(requested))], "run")
            except ValueError:
                pass
        when = run.data_interval_start or run.logical_date
        return TaskDays([when.date()] if when else [], "run")
