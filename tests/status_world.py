"""A fleet of models with a year of history, as the loop leaves it: for the status library, the UI's route
tests and `bench/bench_ui.py`.

`build_status_world(models, days)` writes, into the current state folder (`settings`, i.e. the test's
`state_dir` or the bench's `MLOPS_*` environment), for each model:

- its config: a copy of the demo config under another name (`model_00`, ...) in `settings.models_dir()`;
- registered versions in the real MLflow store, with the tags continuous training, Level 0 and delivery
  leave on them (gate verdicts with reasons, triggers, Airflow ids, promotions, a forced deploy, a
  rollback, a deployment whose live check failed and was undone), and the aliases where delivery left them;
- every move of `@champion` in the champion history (`champion_history`'s entries and file);
- the monitoring history, one check a day from the first champion on (the served version's, plus a check
  against another version on the day a promotion took effect), with drift share, per-column scores,
  realized metric and two retrain requests (drift, then performance);
- two quarantined batches with their `validation.json` (`storage.quarantine_batch`, the report made by
  `validation.ValidationOutcome.to_dict`), real Evidently report snapshots (and `check.json`) for the two
  requests in the sensor's report folders (and, with `check_folders`, a `check.json` folder for every
  checked day), and GX Data Docs `index.html` pages for the quarantined days and the last three days;
- for the first model, a replay output under `<state>/replay/<model>/latest`.

Every tenth model (`model_09`, ...) is new: a config and nothing else. Every fifth (`model_04`, ...) ends
with a degraded champion and three rejected retrains in a row (the degraded-champion alert fires);
the others end with a challenger waiting.

Speed over the real writers' every call: a SQLite MLflow call costs 15-150 ms (the more the busier the
machine), and `register_candidate` makes four, `promote` a dozen. So the versions are created with their
final tags in one call each (the tags `registry.register_candidate`, `deployment` and
`champion_history.record_champion_change` leave, named by their modules' constants), the aliases are set
once at the end, and the champion history and the monitoring history are written in one go in their
modules' own formats (`ChampionChange.to_dict`, `retrain_policy`'s row format) rather than one call per
move or per day. The tests that need the real writers' own output use `tests/deployment_world.py`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from include.core import champion_history, registry, settings, storage
from include.core.config import ModelConfig, load_model_config
from include.core.jsonable import write_json_atomically
from include.data.validation import Finding, ValidationOutcome, data_docs_dir
from include.delivery import deployment
from include.monitoring import retrain_policy
from include.monitoring.evidently_reports import save_report
from include.monitoring.retrain_policy import CheckRecord
from include.training.continuous_training import LEVEL0_GATE_SUMMARY
from tests.ct_world import ready_mlflow

DEMO_CONFIG = settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml"
OWNERS = ("ml-team", "risk-team", "fraud-team")
FORCED_BY = "admin"
FORCE_REASON = "level 0 model for the audit demo"
ROLLBACK_REASON = "complaints from the call centre since 10:00 (by admin)"
FAILURE = "load test: p99 412 ms is over the 200 ms latency budget"
REJECTION_REASONS = [
    "average_precision 0.2810 is below the threshold 0.30",
    "slice employment_type=self_employed: roc_auc 0.6100 is 0.0800 below the overall value (tolerance 0.05)",
]
DEGRADED_REASONS = ["roc_auc 0.6800 is below the threshold 0.70 (the champion misses it too: 0.6650)"]
QUARANTINE_FINDINGS = {
    "bad_feed": [
        Finding("expect_column_values_to_not_be_null", "credit_score", 300, 1000, "300 of 1000 rows are null"),
        Finding("expect_column_values_to_be_between", "age", 50, 1000,
                "50 of 1000 rows outside [18, 100], e.g. 7, 142"),
    ],
    "renamed_income": [
        Finding("expect_table_columns_to_match_set", None, None, 1000,
                "missing ['annual_income'], unexpected ['income']"),
    ],
}


@dataclass
class _Version:
    """One planned version: when it was trained, why, and what the gate and delivery did with it."""

    number: int
    day: dt.date
    trigger: str
    passed: bool | None  # None: Level 0, judged by nobody
    compared_with: str
    reasons: list[str] = field(default_factory=list)
    champion_degraded: bool = False
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class _Plan:
    """One model's history: its versions, the moves of `@champion` (version, effective day, event, run),
    the final aliases, the requests and the quarantined days."""

    versions: list[_Version] = field(default_factory=list)
    moves: list[tuple[str | None, dt.date, str, str]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    requests: dict[dt.date, str] = field(default_factory=dict)
    quarantined: dict[dt.date, str] = field(default_factory=dict)


def build_status_world(models: int, days: int, *, seed: int = 0, check_folders: bool = False) -> list[ModelConfig]:
    """Write `models` models' configs and `days` days of their loop's history into the current state folder.

    Args:
        models: how many model configs (`model_00`, `model_01`, ...).
        days: how many data days, from the demo's first day (at least 30).
        seed: seeds the monitoring figures.
        check_folders: also write the sensor's `check.json` folder for every checked day, as the live
            sensor does (the report folders then hold a year of days; about a second per model on a busy disk).

    Returns:
        The configs, in name order.
    """
    if days < 30:
        raise ValueError(f"days: got {days}; a world needs at least 30 days for its promotions and rollback")
    _ready_mlflow()
    client = registry.client()
    experiment_id = registry.ensure_experiment("status_world")
    run_id = client.create_run(experiment_id, run_name="status-world").info.run_id
    client.set_terminated(run_id)
    logged = client.create_logged_model(experiment_id, name=registry.LOGGED_MODEL_NAME, source_run_id=run_id)
    configs = []
    for index in range(models):
        config = _write_config(index)
        configs.append(config)
        if index % 10 == 9:
            continue
        plan = _plan(config, index, days)
        _register(client, config, plan, logged.model_id, run_id)
        _write_champion_history(config, plan)
        _write_monitoring(config, plan, days, np.random.default_rng(seed + index), check_folders)
        _write_files(config, plan, days)
        if index == 0:
            write_replay(config.name)
    return configs


def _ready_mlflow() -> None:
    """A migrated MLflow store where the state folder's default URI points, unless one is there."""
    database = settings.state_dir() / "mlflow" / "mlflow.db"
    if settings.mlflow_tracking_uri() == f"sqlite:///{database}" and not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        ready_mlflow(settings.state_dir())


def _write_config(index: int) -> ModelConfig:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["name"] = f"model_{index:02d}"
    raw["owner"] = OWNERS[index % len(OWNERS)]
    path = settings.models_dir() / f"{raw['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_model_config(path)


# --- the plan ------------------------------------------------------------------------------------


def _plan(config: ModelConfig, index: int, days: int) -> _Plan:
    """The history of one model, at fixed fractions of the `days`:

    v1 first model (on demand) → promoted; v2 scheduled, rejected; v3 drift request → promoted, then rolled
    back to v1; v4 Level 0 → forced; v5 performance request → promoted, its live check fails, undone (v4
    again); v6 new data → promoted; then v7 scheduled → @challenger, or, every fifth model, v7-v9 rejected
    while the champion is degraded.
    """
    first = config.source.start_date
    on = [first + dt.timedelta(days=int(days * share)) for share in
          (0.10, 0.25, 0.35, 0.40, 0.50, 0.55, 0.65, 0.80, 0.95, 0.18, 0.21)]
    plan = _Plan()
    add = plan.versions.append
    add(_Version(1, on[0], "on_demand", True, registry.NO_CHAMPION))
    add(_Version(2, on[1], "schedule", False, "1", REJECTION_REASONS))
    add(_Version(3, on[2], "drift", True, "1"))
    add(_Version(4, on[4], "on_demand", None, registry.NO_CHAMPION, [LEVEL0_GATE_SUMMARY]))
    add(_Version(5, on[6], "performance", True, "4"))
    add(_Version(6, on[7], "new_data", True, "4"))
    if index % 5 == 4:
        for number, offset in ((7, -4), (8, -2), (9, 0)):
            add(_Version(number, on[8] + dt.timedelta(days=offset), "schedule", False, "6", DEGRADED_REASONS, True))
    else:
        add(_Version(7, on[8], "schedule", True, "6"))
    plan.requests = {on[2] - dt.timedelta(days=1): "drift", on[6] - dt.timedelta(days=1): "performance"}
    plan.quarantined = {on[9]: "bad_feed", on[10]: "renamed_income"}
    day_after = dt.timedelta(days=1)
    deploy = f"{config.name}__model_deployment"
    plan.moves = [
        ("1", on[0] + day_after, champion_history.PROMOTION, f"asset_triggered__{deploy}_1"),
        ("3", on[2] + day_after, champion_history.PROMOTION, f"asset_triggered__{deploy}_3"),
        ("1", on[3], champion_history.ROLLBACK, f"manual__{config.name}__model_rollback_1"),
        ("4", on[5], champion_history.PROMOTION, f"manual__{deploy}_4"),
        ("5", on[6] + day_after, champion_history.PROMOTION, f"asset_triggered__{deploy}_5"),
        ("4", on[6] + day_after, champion_history.UNDO, f"asset_triggered__{deploy}_5"),
        ("6", on[7] + day_after, champion_history.PROMOTION, f"asset_triggered__{deploy}_6"),
    ]
    plan.aliases = {registry.CHAMPION: "6", registry.PREVIOUS_CHAMPION: "4"}
    if index % 5 != 4:
        plan.aliases[registry.CHALLENGER] = "7"
    _delivery_tags(plan)
    return plan


def _delivery_tags(plan: _Plan) -> None:
    """The tags delivery leaves on each version by the end of the plan (`deployment`'s tag names)."""
    versions = {str(version.number): version for version in plan.versions}
    replaced = {"1": ("none", "none"), "3": ("1", "none"), "4": ("1", "none"), "5": ("4", "1"), "6": ("4", "1")}
    for number, (champion, previous) in replaced.items():
        move = next(move for move in plan.moves if move[0] == number and move[2] == champion_history.PROMOTION)
        versions[number].tags.update({
            deployment.TAG_REPLACED_CHAMPION: champion,
            deployment.TAG_REPLACED_PREVIOUS: previous,
            deployment.TAG_PROMOTED_AT: f"{move[1] - dt.timedelta(days=1)}T04:10:00+00:00",
            deployment.TAG_PROMOTED_BY_RUN: move[3],
            deployment.TAG_STATUS: deployment.STATUS_PROMOTED,
        })
    versions["1"].tags[deployment.TAG_STATUS] = deployment.STATUS_SERVING  # restored by the rollback
    versions["3"].tags.update({deployment.TAG_STATUS: deployment.STATUS_ROLLED_BACK,
                               deployment.TAG_ROLLBACK_REASON: ROLLBACK_REASON})
    versions["4"].tags.update({deployment.TAG_FORCED_BY: FORCED_BY, deployment.TAG_FORCE_REASON: FORCE_REASON})
    versions["5"].tags.update({deployment.TAG_STATUS: deployment.STATUS_ROLLED_BACK,
                               deployment.TAG_ROLLBACK_REASON: FAILURE, deployment.TAG_FAILURE: FAILURE})
    versions["6"].tags[deployment.TAG_STATUS] = deployment.STATUS_SERVING
    for number, effective, _, _ in plan.moves:
        versions[number].tags[champion_history.TAG_SERVING_FROM] = effective.isoformat()


def _register(client, config: ModelConfig, plan: _Plan, model_id: str, run_id: str) -> None:
    """Create each version with the tags `registry.register_candidate` (and delivery) leave on it, then the aliases."""
    client.create_registered_model(config.name)
    for version in plan.versions:
        level0 = version.passed is None
        dag = "level0_manual_training" if level0 else "continuous_training"
        kind = {"on_demand": "manual", "schedule": "scheduled"}.get(version.trigger, "asset_triggered")
        summary = "; ".join(version.reasons) or "passed"
        verdict = {"passed": bool(version.passed), "reasons": version.reasons, "summary": summary,
                   "champion_degraded": version.champion_degraded}
        tags = {
            registry.TAG_AIRFLOW_DAG_ID: f"{config.name}__{dag}",
            registry.TAG_AIRFLOW_RUN_ID: f"{kind}__{version.day}T03:00:00+00:00",
            registry.TAG_GATE_PASSED: str(bool(version.passed)).lower(),
            registry.TAG_GATE_SUMMARY: summary,
            registry.TAG_DATA_FINGERPRINT: f"{config.name}-{version.day}",
            registry.TAG_COMPARED_WITH: version.compared_with,
            **registry.gate_facts_tags(verdict),
            registry.TAG_GIT_COMMIT: "status-world",
            registry.TAG_TRIGGER: version.trigger,
            **version.tags,
        }
        client.create_model_version(config.name, f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id)
    for alias, version in plan.aliases.items():
        client.set_registered_model_alias(config.name, alias, version)


# --- monitoring ----------------------------------------------------------------------------------


def _served(plan: _Plan, day: dt.date) -> str | None:
    served = None
    for version, effective, _, _ in plan.moves:
        if effective <= day:
            served = version
    return served


def _write_champion_history(config: ModelConfig, plan: _Plan) -> None:
    """Every move of `@champion`, in `champion_history`'s own entries and file, written once (the versions already
    carry the `serving_from` tag that `record_champion_change` sets, one MLflow call per move)."""
    changes = [champion_history.ChampionChange(version, day, event, airflow_run,
                                               f"{day - dt.timedelta(days=1)}T04:10:00+00:00")
               for version, day, event, airflow_run in plan.moves]
    write_json_atomically(champion_history.history_path(config.name), [change.to_dict() for change in changes])


def _write_monitoring(config: ModelConfig, plan: _Plan, days: int, rng: np.random.Generator,
                      check_folders: bool) -> None:
    """One check a day from the first champion on, written in one go in `retrain_policy`'s row format."""
    first, last = plan.moves[0][1], config.source.start_date + dt.timedelta(days=days - 1)
    features = config.features.all
    drift_from, drift_to = plan.versions[2].day - dt.timedelta(days=6), plan.versions[2].day
    effective = {move[1]: move for move in plan.moves}
    delay = config.target.label_delay_days
    records = []
    for offset in range((last - first).days + 1):
        day = first + dt.timedelta(days=offset)
        served = _served(plan, day)
        drifting = drift_from <= day <= drift_to
        scores = {name: float(rng.uniform(0.0, 0.01) if drifting and name == "annual_income"
                              else rng.uniform(0.05, 1.0)) for name in features}
        drifted = ["annual_income"] if drifting else []
        realized = None if offset < delay else round(float(rng.normal(0.76, 0.01)), 4)
        request = plan.requests.get(day)
        if request == "performance":
            realized = 0.6712
        drop = None if realized is None else round(0.77 - realized, 4)
        explanation = (f"no retrain: drift in {int(drifting)} of the last 2 windows with a verdict (needs 2 in a row); "
                       + ("no realized performance yet" if realized is None else
                          f"realized metric {realized:.4f} is {abs(drop):.4f} worse than the champion's holdout, "
                          f"within the allowed drop of 0.05"))
        if request == "drift":
            explanation = "the dataset drifted in 2 consecutive windows (columns ['annual_income'])"
        elif request == "performance":
            explanation = (f"realized metric {realized:.4f} is {drop:.4f} worse than the champion's holdout, more "
                           "than the allowed drop of 0.05")
        record = CheckRecord(
            day=day, model_version=served, rows=1000, dataset_drifted=bool(drifting),
            drift_share=len(drifted) / len(features), drifted_columns=drifted, column_scores=scores,
            prediction_score=float(rng.uniform(0.05, 1.0)), prediction_drifted=False, realized_metric=realized,
            metric_drop=drop, labeled_rows=0 if realized is None else 1000, retrain=request is not None,
            reason=request, explanation=explanation,
        )
        records.append(record)
        move = effective.get(day)
        if move is not None and move[2] == champion_history.PROMOTION and _served(plan, day - dt.timedelta(days=1)):
            # the sensor also judged the day against the version that served the day before
            records.append(CheckRecord(day=day, model_version=_served(plan, day - dt.timedelta(days=1)), rows=1000,
                                       dataset_drifted=True, drift_share=1.0, drifted_columns=list(features),
                                       column_scores={name: 0.0 for name in features},
                                       explanation="checked against the version that served the day before"))
    frame = pd.DataFrame([retrain_policy._to_row(record) for record in records])  # the row format append_check writes
    frame = frame.sort_values(["day", "model_version"], kind="stable").reset_index(drop=True)
    storage.write_parquet_atomically(frame, retrain_policy.history_path(config.name))
    for record in records:
        if not (check_folders or record.retrain):
            continue
        folder = _check_folder(config.name, record.day, record.model_version)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "check.json").write_text(json.dumps({"day": record.day.isoformat(), "model_version":
                                                       record.model_version, "drift_share": record.drift_share}))
        if record.retrain:
            for kind in ("data_drift", "prediction_drift"):
                save_report(evidently_snapshot(kind), folder, kind)


@functools.cache
def evidently_snapshot(kind: str):
    """A real Evidently snapshot of report `kind`, small and made once per process (what the sensor keeps)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    column = "annual_income" if kind == "data_drift" else "prediction"
    rng = np.random.default_rng(0)
    definition = DataDefinition(numerical_columns=[column])
    return Report([ValueDrift(column=column)], include_tests=True).run(
        Dataset.from_pandas(pd.DataFrame({column: rng.normal(1.2, 1, 200)}), data_definition=definition),
        Dataset.from_pandas(pd.DataFrame({column: rng.normal(1.0, 1, 200)}), data_definition=definition),
    )


def _check_folder(model: str, day: dt.date, version: str) -> Path:
    """Where the drift sensor keeps a check's files (`monitoring._report_folder`)."""
    return settings.reports_dir() / model / "drift" / f"day={day.isoformat()}" / f"version={version}"


# --- files: quarantine, Data Docs, replay --------------------------------------------------------


def _write_files(config: ModelConfig, plan: _Plan, days: int) -> None:
    last = config.source.start_date + dt.timedelta(days=days - 1)
    for day, incident in plan.quarantined.items():
        landed = storage.landing_dir(config.name, day) / "batch.parquet"
        storage.write_parquet_atomically(pd.DataFrame({"application_id": [f"{day}-{row}" for row in range(3)],
                                                       "annual_income": [-5.0, 48.0, 51.0]}), landed)
        findings = QUARANTINE_FINDINGS[incident]
        outcome = ValidationOutcome(
            model=config.name, day=day, suite_kind="features", passed=False, blocking_failures=findings,
            warnings=[], skipped=[], summary={"evaluated": 24, "blocking_failures": len(findings), "warnings": 0},
            report={"success": False}, data_docs_index=data_docs_dir(config.name, day, "features") / "index.html",
        )
        storage.quarantine_batch(config.name, day, landed, outcome.to_dict())
        _write_data_docs(config.name, day, "features")
    for back in range(3):
        for suite in ("features", "labels"):
            _write_data_docs(config.name, last - dt.timedelta(days=back), suite)


def _write_data_docs(model: str, day: dt.date, suite: str) -> None:
    index = data_docs_dir(model, day, suite) / "index.html"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(_html("Data Docs", f"{model}: validation of the {suite} batch of {day}"))


def write_replay(model: str, created: str = "20261130T041200Z") -> Path:
    """A replay output for `model` as `make replay` leaves it (`<state>/replay/<model>/<created>/` and `latest`)."""
    folder = settings.state_dir() / "replay" / model / created
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"metric": "roc_auc", "policies": {
        "never": {"mean_metric": 0.71, "worst_7day_metric": 0.62, "retrains": 0, "promotions": 0,
                  "train_cpu_seconds": 0.0},
        "on_request": {"mean_metric": 0.76, "worst_7day_metric": 0.70, "retrains": 6, "promotions": 4,
                       "train_cpu_seconds": 41.5}}}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "report.md").write_text(f"# Replay of {model}\n")
    (folder / "replay.png").write_bytes(_PNG)
    (folder / "days.csv").write_text("policy,day,realized_metric\n")
    latest = folder.parent / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    os.symlink(created, latest, target_is_directory=True)
    return folder


def _html(title: str, body: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1><p>{body}</p></body></html>"


_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082"
)

