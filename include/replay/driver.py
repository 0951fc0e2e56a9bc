"""The closed loop, day by day: the library's own steps on a simulated data clock.

What the DAGs do over weeks of wall time, this driver does over any range of data days in one
process, calling the very functions the DAG tasks call (never a second implementation):

    ingest D ──► batch prediction of D ──► drift check of D ──► retrain? ──► gate ──► promote
    (land, GX gate,   (the version that      (point-in-time:      (request,     (evaluate,   (effective
     publish, labels)  serves D scores it)     that version)        schedule,     register)    from D + 1)
                                                                    new data)

The clock is the data day: day D is over once its batch is ingested, so a model trained on day D
uses data up to D and, once promoted, serves from D + 1. Each day runs at most one training,
chosen as the DAG's five triggers would choose it: a retrain request (drift or performance) before
the schedule (`training.schedule`, when a fire time falls on the day) before new data
(`training.every_n_batches`); `training_triggers.plan_training` decides, so requests are deferred
until their labels arrive exactly as on the live stack.

What the loop leaves out, and why: infra validation and the live smoke and load tests need a
running prediction service; they check that a version can be served, not which version should
be, so the driver promotes a blessed challenger directly (`deployment.check_candidate`, then
`deployment.promote`). A promotion that needs a person's approval (`deployment.promotion:
approval`, or a gate verdict that asks for it) waits for the `approve` callback; without one it
is never promoted, as an unanswered approval is a rejection.

With a retraining `policy` (`include.replay.policies`), the loop retrains only as the policy
says: the first model trains on `first_training_day` (the end of the first window), later ones on
the policy's triggers, through the gate or (no gate) along the Level 0 path, promoted by force
with the policy named as the reason. Only a policy that listens to requests is monitored. Without
a policy it runs what the Level 1 DAGs run: every trigger, through the gate.

A replay ingests each day once for all its policies (`include.replay.runner`); each policy's loop
then takes the day's partitions from that shared store (`data_from`) instead of ingesting again.

Every write goes to the stores the environment points at (`MLOPS_STATE_DIR`,
`MLFLOW_TRACKING_URI`): give the driver a throw-away state, never the live stack's.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from include.core import storage
from include.data import ingestion
from include.delivery import batch_prediction, deployment
from include.monitoring import monitoring
from include.training import continuous_training as ct
from include.training import training_triggers

if TYPE_CHECKING:
    from pathlib import Path

    from include.core.config import ModelConfig
    from include.replay.policies import RetrainingPolicy

log = logging.getLogger(__name__)

RUN_PREFIX = "replay"


@dataclass
class DayOutcome:
    """What the loop did on one data day."""

    day: dt.date
    curated: bool = False
    quarantined: str | None = None
    scored_by: str | None = None
    check: dict | None = None
    request: dict | None = None
    training: dict | None = None
    promoted: str | None = None
    champion: str | None = None
    train_cpu_seconds: float = 0.0
    """CPU time (this process, all threads) of the run that trained: its planning, training,
    evaluation, registration and promotion. Runs that decided not to train are not counted."""

    def to_dict(self) -> dict:
        return {**asdict(self), "day": self.day.isoformat()}


@dataclass
class ClosedLoop:
    """Runs the loop of one model config over data days (see the module docstring).

    Args:
        config: the model config (its source delivers the days).
        approve: asked for each promotion that needs a person's approval; None approves nothing.
        policy: when it retrains (None: every trigger of the Level 1 DAGs).
        first_training_day: with a policy, the day the first model trains (None: the day a
            policy's own trigger first trains one).
        data_from: a data folder (`settings.data_dir()` layout) already holding the days'
            ingested partitions; each day's are linked from there instead of ingesting again.
    """

    config: ModelConfig
    approve: Callable[[str, dict], bool] | None = None
    policy: RetrainingPolicy | None = None
    first_training_day: dt.date | None = None
    data_from: Path | None = None
    days: list[DayOutcome] = field(default_factory=list)

    def run(self, first: dt.date, last: dt.date) -> list[DayOutcome]:
        """Every day from `first` to `last`, in order; returns their outcomes."""
        outcomes = []
        day = first
        while day <= last:
            outcomes.append(self.step(day))
            day += dt.timedelta(days=1)
        return outcomes

    def step(self, day: dt.date) -> DayOutcome:
        """One data day of the loop."""
        outcome = DayOutcome(day)
        if self.data_from is None:
            self._ingest(day, outcome)
        else:
            self._take_ingested(day, outcome)
        self._score(day, outcome)
        if self.policy is None or self.policy.listens_to_requests:
            self._monitor(day, outcome)
        for trigger in self._triggers(day, outcome):
            started = time.process_time()
            if self._train(day, trigger, outcome):
                outcome.train_cpu_seconds = time.process_time() - started
                break
        outcome.champion = _champion(self.config)
        self.days.append(outcome)
        log.info("%s %s: %s", self.config.name, day, _one_line(outcome))
        return outcome

    # --- the steps ------------------------------------------------------------------------------

    def _ingest(self, day: dt.date, outcome: DayOutcome) -> None:
        """Land, validate and publish the day's batch and its labels, as the ingestion DAG does, but
        without Data Docs sites: nobody browses a replay's, and they cost as much as the checks."""
        landed = ingestion.land(self.config, day)
        try:
            ingestion.validate(self.config, day, landed["batch_uri"], data_docs=False)
        except ingestion.BatchRejected as exc:
            outcome.quarantined = str(exc).splitlines()[0][:300]
        else:
            ingestion.publish(self.config, day, landed["batch_uri"])
            outcome.curated = True
        ingestion.land_labels(self.config, day, data_docs=False)

    def _take_ingested(self, day: dt.date, outcome: DayOutcome) -> None:
        """Link the day's landing, curated, quarantine and labels partitions from `data_from`."""
        name = self.config.name
        partition = storage.day_partition(day)
        for store in ("landing", "curated", "quarantine", "labels"):
            shared = self.data_from / name / store / partition
            own = storage.model_root(name) / store / partition
            if shared.exists() and not own.exists():
                own.parent.mkdir(parents=True, exist_ok=True)
                own.symlink_to(shared, target_is_directory=True)
        outcome.curated = storage.curated_path(name, day).exists()
        if not outcome.curated and storage.quarantined_batches(name, day):
            outcome.quarantined = "quarantined by ingestion"

    def _score(self, day: dt.date, outcome: DayOutcome) -> None:
        try:
            outcome.scored_by = batch_prediction.score_day(self.config, day)["model_version"]
        except batch_prediction.NothingToScore:
            outcome.scored_by = None

    def _monitor(self, day: dt.date, outcome: DayOutcome) -> None:
        ids = {"dag_id": f"{self.config.name}__drift_sensor", "run_id": f"{RUN_PREFIX}__{day.isoformat()}"}
        try:
            check = monitoring.run_check(self.config, day, ids)
        except (monitoring.NoChampion, monitoring.WindowNotReady):
            return
        outcome.check = {key: check[key] for key in ("model_version", "drift_share", "drifted_columns",
                                                     "realized_metric", "metric_drop", "decision")}
        if check["decision"]["retrain"] and not check["request_already_emitted"]:
            outcome.request = check["request"]
            monitoring.mark_request_emitted(check["mlflow_run_id"])

    def _triggers(self, day: dt.date, outcome: DayOutcome) -> list[dict]:
        """The day's training runs, as the DAG would name their triggers, in the order they are tried."""
        if self.policy is not None:
            return self._policy_triggers(day, outcome)
        name = self.config.name
        triggers = []
        if outcome.request is not None:
            triggers.append(training_triggers.describe_trigger(
                "asset_triggered", {f"{name}__retrain_request": [outcome.request]}, None))
        if schedule_fires_on(self.config.training.schedule, day):
            triggers.append(training_triggers.describe_trigger("scheduled", {}, None))
        if outcome.curated:
            triggers.append(training_triggers.describe_trigger(
                "asset_triggered", {f"{name}__curated_batch": [{"day": day.isoformat()}]}, None))
        return triggers

    def _policy_triggers(self, day: dt.date, outcome: DayOutcome) -> list[dict]:
        """The policy's runs of the day: the first window's training until a model serves, then its triggers."""
        policy, name = self.policy, self.config.name
        if _champion(self.config) is None:
            if self.first_training_day is None or day < self.first_training_day:
                return []
            return [{"trigger": "on_demand", "reason": f"{policy.name}: the first window", "request": None}]
        triggers = []
        if policy.listens_to_requests:
            if outcome.request:
                triggers.append(training_triggers.describe_trigger(
                    "asset_triggered", {f"{name}__retrain_request": [outcome.request]}, None))
            elif training_triggers.pending_request_ready(self.config, day):
                pending = training_triggers.pending_request(name)
                triggers.append({"trigger": pending["reason"], "request": None,
                                 "reason": f"{pending['reason']} request waiting since {pending['deferred_on']}"})
        if "schedule" in policy.retrain_on and schedule_fires_on(self.config.training.schedule, day):
            triggers.append(training_triggers.describe_trigger("scheduled", {}, None))
        if "new_data" in policy.retrain_on and outcome.curated:
            triggers.append(training_triggers.describe_trigger(
                "asset_triggered", {f"{name}__curated_batch": [{"day": day.isoformat()}]}, None))
        if "every_day" in policy.retrain_on:
            triggers.append({"trigger": "schedule", "reason": f"{policy.name}: daily retraining", "request": None})
        return triggers

    def _train(self, day: dt.date, trigger: dict, outcome: DayOutcome) -> bool:
        """Plan one run and, when it trains, run continuous training and delivery; whether it trained."""
        config = self.config
        try:
            planned = training_triggers.plan_training(config, trigger, cutoff=day)
        except training_triggers.InvalidTrainingRequest as exc:
            outcome.training = outcome.training or {"trigger": trigger["trigger"], "trained": False, "why": str(exc)}
            return False
        if not planned["train"]:
            outcome.training = outcome.training or {"trigger": planned["trigger"], "trained": False,
                                                    "why": planned["why"], "change_start": planned["change_start"]}
            return False
        outcome.training = {"trigger": planned["trigger"], "trained": True, "why": planned["why"],
                            "change_start": planned["change_start"]}
        run_ctx = ct.RunContext(dag_id=f"{config.name}__continuous_training",
                                run_id=f"{RUN_PREFIX}__{day.isoformat()}__{planned['trigger']}",
                                trigger=planned["trigger"])
        try:
            assembled = ct.assemble(config, run_ctx, day, None, planned["change_start"])
            ct.validate(config, run_ctx, assembled["training_set_uri"])
        except ct.NotTrainable as exc:
            outcome.training.update(trained=False, why=str(exc))
            return False
        trained = ct.train(config, run_ctx, assembled["training_set_uri"])
        if self.policy is not None and not self.policy.gate:
            self._deliver_ungated(day, assembled, trained, run_ctx, outcome)
            return True
        evaluated = ct.evaluate(config, run_ctx, assembled["training_set_uri"], trained["mlflow_run_id"])
        registered = ct.register(config, run_ctx, trained["mlflow_run_id"])
        training_triggers.record_training(config.name, day, run_ctx.run_id)
        outcome.training.update(version=registered["version"], passed=evaluated["passed"],
                                reasons=evaluated["reasons"], holdout_rows=assembled["splits"]["holdout"])
        if registered["alias_set"]:
            outcome.promoted = self._deliver(day, registered["version"], run_ctx.run_id, evaluated)
        return True

    def _deliver_ungated(self, day: dt.date, assembled: dict, trained: dict, run_ctx: ct.RunContext,
                         outcome: DayOutcome) -> None:
        """The Level 0 path: evaluate and register without a gate, then promote by force, naming the policy."""
        config = self.config
        ct.evaluate_without_gate(config, run_ctx, assembled["training_set_uri"], trained["mlflow_run_id"])
        registered = ct.register_without_gate(config, run_ctx, trained["mlflow_run_id"])
        training_triggers.record_training(config.name, day, run_ctx.run_id)
        version = registered["version"]
        outcome.training.update(version=version, passed=None, reasons=[ct.LEVEL0_GATE_SUMMARY],
                                holdout_rows=assembled["splits"]["holdout"])
        deployment.check_candidate(config, version, force=True, requested_by=RUN_PREFIX,
                                   reason=f"replay policy {self.policy.name}: {self.policy.description}")
        deployment.promote(config, version, run_ctx.run_id, effective_day=day + dt.timedelta(days=1))
        outcome.promoted = version

    def _deliver(self, day: dt.date, version: str, run_id: str, evaluated: dict) -> str | None:
        """Promote a blessed challenger from the next day on, asking `approve` when a person must."""
        config = self.config
        checked = deployment.check_candidate(config, version)
        if checked["approval_reason"] and not (self.approve and self.approve(version, evaluated)):
            return None
        deployment.promote(config, version, run_id, effective_day=day + dt.timedelta(days=1))
        return version


def schedule_fires_on(schedule: str | None, day: dt.date) -> bool:
    """Whether a cron schedule (UTC) has a fire time within the data day."""
    if not schedule:
        return False
    from croniter import croniter

    start = dt.datetime.combine(day, dt.time.min) - dt.timedelta(microseconds=1)
    return croniter(schedule, start).get_next(dt.datetime).date() == day


def _champion(config: ModelConfig) -> str | None:
    from include.core import registry

    version = registry.get_champion_version(config.name)
    return str(version.version) if version else None


def _one_line(outcome: DayOutcome) -> str:
    parts: list[Any] = ["curated" if outcome.curated else "quarantined" if outcome.quarantined else "no batch"]
    if outcome.check:
        parts.append(f"check v{outcome.check['model_version']}: {outcome.check['decision']['explanation'][:120]}")
    if outcome.training:
        parts.append(f"training {outcome.training}")
    if outcome.promoted:
        parts.append(f"promoted v{outcome.promoted}")
    return "; ".join(str(part) for part in parts)
