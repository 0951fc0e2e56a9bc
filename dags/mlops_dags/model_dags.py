"""What every model DAG shares: which models get DAGs, their ids, tags, defaults and Assets.

The DAG files in `dags/` are one per stage; each builds that stage's DAG for every valid model
config. A broken config is left out here and reported as an import error by
`dags/check_model_configs.py`, so one broken file never takes down the other models' DAGs.

Only cheap imports here: this module is imported whenever a DAG file is parsed.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pendulum
from airflow.sdk import Asset, AssetAlias, Param, get_parsing_context

from mlops_dags.parsed_configs import parsed_model_configs

if TYPE_CHECKING:
    from include.core.config import ModelConfig

LEVEL_TAGS = {0: "level-0", 1: "level-1", 2: "level-2"}
WEIGHT_RULE = "mlops_scheduling.RecentIntervalsFirst"
"""The freshest work first, so one model's catch-up never starves another (plugins/mlops_scheduling.py)."""


def dag_id(model: str, stage: str) -> str:
    """The id of one model's DAG for one stage: `<model>__<stage>`."""
    return f"{model}__{stage}"


def configs_for_stage(stage: str) -> list[ModelConfig]:
    """The valid model configs that get a DAG for `stage`.

    When a worker runs a task, Airflow's parsing context names the DAG it needs; then only that
    model's DAG is built, from its real config, which keeps task start-up cheap when there are many
    models. Otherwise (the DAG processor) the configs come from the discovery cache without
    importing the config schema when it can (`mlops_dags.parsed_configs`).
    """
    wanted = get_parsing_context().dag_id
    if not wanted:
        parsed = parsed_model_configs()
        if parsed is not None:
            return parsed
    from include.core.config import discover_model_configs

    configs = discover_model_configs().valid.values()
    if wanted:
        return [config for config in configs if dag_id(config.name, stage) == wanted]
    return list(configs)


def dag_tags(config: ModelConfig, *levels: int) -> list[str]:
    return [*(LEVEL_TAGS[level] for level in levels), f"model:{config.name}"]


def default_args(config: ModelConfig, retries: int = 2) -> dict:
    """Owner and retries for tasks that touch files or services (a retry is safe: tasks are idempotent),
    and the weight rule that queues each model's newest intervals before any model's backlog."""
    return {
        "owner": config.owner,
        "retries": retries,
        "retry_delay": dt.timedelta(seconds=20),
        "weight_rule": WEIGHT_RULE,
    }


def to_pendulum(day: dt.date) -> pendulum.DateTime:
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


def data_start(config: ModelConfig) -> dt.date:
    return config.source.start_date


def data_end(config: ModelConfig) -> dt.date | None:
    """The last day the source has data for, when it is bounded (the synthetic world is)."""
    return getattr(config.source, "end_date", None)


def curated_batch_asset(config: ModelConfig) -> Asset:
    """Updated by data ingestion each time a validated batch lands in the curated store."""
    return Asset(name=f"{config.name}__curated_batch", uri=f"mlops://{config.name}/curated_batch", group="mlops")


def retrain_request_asset(config: ModelConfig) -> Asset:
    """Updated by the drift sensor when the retrain policy fires (reason: drift or performance)."""
    return Asset(name=f"{config.name}__retrain_request", uri=f"mlops://{config.name}/retrain_request", group="mlops")


def retrain_request_alias(config: ModelConfig) -> AssetAlias:
    """What the drift sensor's task declares as its outlet: through an alias, the retrain-request
    Asset gets an event only when a request is added at run time, never on every run."""
    return AssetAlias(name=f"{config.name}__retrain_requests", group="mlops")


def challenger_asset(config: ModelConfig) -> Asset:
    """Updated by continuous training when a candidate passes the gate and becomes `@challenger`."""
    return Asset(name=f"{config.name}__challenger", uri=f"mlops://{config.name}/challenger", group="mlops")


def interval_day(context) -> dt.date:
    """The day a run works on: the `day` Param when a person set one, else the run's data interval.

    A scheduled or backfilled run covers one daily interval; a manual run names its day in the
    trigger form or with `--conf '{"day": "YYYY-MM-DD"}'`.
    """
    requested = (context.get("params") or {}).get("day")
    if requested:
        return dt.date.fromisoformat(requested)
    start = context.get("data_interval_start")
    if start is None:
        raise ValueError('this run has no data interval: trigger it with --conf \'{"day": "YYYY-MM-DD"}\'')
    return dt.date(start.year, start.month, start.day)


def event_days(context) -> list[dt.date]:
    """The days named by the Asset events that triggered the run, oldest first.

    A daily batch's event names its `day`; a history import's names a range (`first_day` to
    `last_day`), whose days are those it curated: all but its `quarantined` and `missing` ones.
    Empty for a run no event triggered, or when a person named the day in the `day` Param (the
    Param wins: a manual run scores the day it asks for).
    """
    if (context.get("params") or {}).get("day"):
        return []
    days = set()
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            extra = event.extra or {}
            if extra.get("day"):
                days.add(dt.date.fromisoformat(extra["day"]))
            elif extra.get("first_day") and extra.get("last_day"):
                first, last = dt.date.fromisoformat(extra["first_day"]), dt.date.fromisoformat(extra["last_day"])
                left_out = {*extra.get("quarantined", ()), *extra.get("missing", ())}
                days.update(
                    first + dt.timedelta(days=offset)
                    for offset in range((last - first).days + 1)
                    if (first + dt.timedelta(days=offset)).isoformat() not in left_out
                )
    return sorted(days)


def day_param(description: str) -> Param:
    """The optional `day` Param (YYYY-MM-DD) of the DAGs that work on one day of data."""
    return Param(None, type=["null", "string"], format="date", title="Day", description=description)


def training_params(config: ModelConfig, reason_description: str) -> dict[str, Param]:
    """The Params of the DAGs that train a model (Level 0 and continuous training)."""
    return {
        "reason": Param("manual", type="string", minLength=1, title="Reason", description=reason_description),
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Training window (days)",
            description=f"Days of data to train on; empty = {config.training.window_days} from the model config.",
        ),
        "cutoff": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Cutoff day",
            description="Last day of data to use (YYYY-MM-DD); empty = the newest curated day.",
        ),
        "hyperparameters": Param(
            {},
            type="object",
            title="Hyperparameter overrides",
            description='Estimator params to override, e.g. {"max_iter": 100}.',
        ),
    }
