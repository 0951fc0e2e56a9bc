"""Continuous training (Google's MLOps Level 1): the steps of `<model>__continuous_training`.

Each step is what one DAG task calls: it takes the run context and URIs, writes its outputs under
`<state>/runs/<model>/<run id>/`, and returns a small JSON-able dict for the next task.

    assemble ──► validate ──► train ──► evaluate ──► register
    (point-in-time   (GX: fit to    (MLflow run,   (candidate vs      (version, @challenger
     training set)    train on?)     model logged)   @champion, gate)   only when blessed)

Every step is safe to retry: outputs are replaced, the MLflow run of an Airflow run is found
again by its tags, and a retried registration returns the version already registered.
A gate rejection is a normal outcome (the version is registered without an alias); data that
cannot be trained on is a broken run and raises `NotTrainable`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from include.core import registry, settings, storage
from include.core.jsonable import write_json_atomically
from include.features import feature_store
from include.training.evaluation import (
    EvaluationResult,
    check_metric_names,
    compute_metrics,
    evaluate_model,
    judge_candidate,
    positive_labels,
    save_plots,
)
from include.training.training import estimator_params, fit, validate_overrides
from include.training.training_data import (
    SPLITS,
    assemble_training_set,
    change_weights,
    check_training_set,
    rows_after,
    split_fingerprints,
    split_sizes,
    time_split,
)

if TYPE_CHECKING:
    from include.core.config import ModelConfig

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
CHECK_FILE = "training_set_check.json"
VERDICT_FILE = "gate_verdict.json"

DATASET_SCHEMA_SAMPLE_ROWS = 1_000
TRAIN_METRICS_SAMPLE_ROWS = 100_000
"""Train metrics only show how well the model fits what it saw; a seeded sample of this size
tells as much as the whole train split, at a fraction of the prediction time."""

TAG_MODEL_URI = "model_uri"
TAG_CONVERGED = "converged"
TAG_TRAINING_COMPLETE = "training_complete"
TAG_TRAINING_SET = "training_set_uri"


class NotTrainable(RuntimeError):
    """The training set cannot be trained on (too few rows, one class, nulls, leakage, ...)."""


@dataclass(frozen=True)
class RunContext:
    """Which Airflow run is running a step, and on what code.

    `trigger` says why the run started (the DAG names it: "on_demand", "schedule", "new_data",
    "drift", "performance") and `reason` says it in words (what a person typed in the trigger form, or
    e.g. "retrain requested: drift"); both are recorded on the MLflow run and the registered version.
    Data interval bounds are ISO strings. Tasks may pass it on as a dict.
    """

    dag_id: str
    run_id: str
    trigger: str = "manual"
    data_interval_start: str | None = None
    data_interval_end: str | None = None
    git_commit: str = "unknown"
    reason: str = ""

    @classmethod
    def of(cls, value: RunContext | dict) -> RunContext:
        """A RunContext from itself or from its dict form (as passed between tasks)."""
        return value if isinstance(value, RunContext) else cls(**value)

    def tags(self) -> dict[str, str]:
        """MLflow tags of a run made by this Airflow run."""
        return {
            registry.TAG_AIRFLOW_DAG_ID: self.dag_id,
            registry.TAG_AIRFLOW_RUN_ID: self.run_id,
            registry.TAG_TRIGGER: self.trigger,
            registry.TAG_REASON: self.reason[:4000],
            registry.TAG_GIT_COMMIT: self.git_commit,
            "mlflow.source.git.commit": self.git_commit,
            "data_interval_start": str(self.data_interval_start or ""),
            "data_interval_end": str(self.data_interval_end or ""),
        }


def current_git_commit() -> str:
    """The deployed code's commit: `MLOPS_GIT_COMMIT`, else `git rev-parse HEAD`, else "unknown"."""
    if os.environ.get("MLOPS_GIT_COMMIT"):
        return os.environ["MLOPS_GIT_COMMIT"]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=settings.PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def sanitize_run_id(run_id: str) -> str:
    """An Airflow run id as a folder name (`a__b:c+d` → `a__b_c_d`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "run"


def run_dir(config: ModelConfig, run_ctx: RunContext | dict) -> Path:
    """`<state>/runs/<model>/<sanitized run id>/`: where this Airflow run's steps write."""
    return settings.state_dir() / "runs" / config.name / sanitize_run_id(RunContext.of(run_ctx).run_id)


# --- 1. assemble ---------------------------------------------------------------------------------


def as_date(value: dt.date | dt.datetime | str) -> dt.date:
    """A day from a date, a datetime (its UTC day when tz-aware) or an ISO string of either."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value) if len(value) > 10 else dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.date()
    return value


def assemble(
    config: ModelConfig,
    run_ctx: RunContext | dict,
    cutoff: dt.date | dt.datetime | str,
    window_days: int | None = None,
    change_start: dt.date | str | None = None,
) -> dict:
    """Build the point-in-time correct training set and write its time split as Parquet.

    Args:
        cutoff: the last full day whose data may be used (see `as_date`); only labels that had
            arrived by the end of that day join the set.
        window_days: days in the window; `training.window_days` when None.
        change_start: the first day of a changed world (from a retrain request, or remembered
            from one) when it falls inside the window: the holdout is then drawn from the
            labelled rows from that day on (`training_data.split_sizes`), so candidate and
            champion are judged on the world as it is now, and `train` weights those rows up.

    Returns:
        {"training_set_uri": folder with train/validation/holdout.parquet and manifest.json,
        "rows", "fingerprint": digest of the whole set, "splits": rows per split, "cutoff",
        "window_days", "change_start": the change point used, or None}.

    Raises:
        NotTrainable: when the window holds too few labelled rows to split.
    """
    cutoff = as_date(cutoff)
    window_days = window_days or config.training.window_days
    first_day = cutoff - dt.timedelta(days=window_days - 1)
    change = as_date(change_start) if change_start else None
    if change is not None and not first_day < change <= cutoff:
        change = None
    # A model that keeps its features in Feast gets them from there; the two assemblies give the same rows.
    from_store = feature_store.uses_feature_store(config)
    frame = (feature_store.training_set if from_store else assemble_training_set)(config, cutoff, window_days)
    timestamp = config.schema.timestamp_column
    after = rows_after(frame, timestamp, change) if change is not None and len(frame) else None
    sizes = split_sizes(len(frame), config.training.split, after)
    if min(sizes.values()) < 1:
        since = f"; {after} of them from the change on {change}" if change is not None else ""
        raise NotTrainable(
            f"{config.name}: only {len(frame)} labelled rows in the {window_days} days up to {cutoff} "
            f"(labels known by then){since}; cannot split them into {sorted(SPLITS)}"
        )
    folder = run_dir(config, run_ctx) / "training_set"
    parts = time_split(frame, config.training.split, timestamp, change)
    fingerprints = split_fingerprints(frame, parts)
    manifest = {
        "model": config.name,
        "cutoff": cutoff.isoformat(),
        "window_days": window_days,
        "change_start": change.isoformat() if change else None,
        "rows_after_change": after,
        "rows": len(frame),
        "fingerprint": fingerprints.pop("all")["digest"],
        "splits": fingerprints,
        "event_time_range": [str(frame[config.schema.timestamp_column].min()),
                             str(frame[config.schema.timestamp_column].max())],
    }
    for name, part in parts.items():
        storage.write_parquet_atomically(part, folder / f"{name}.parquet")
    write_json_atomically(folder / MANIFEST_FILE, manifest)
    log.info("%s: assembled %d rows up to %s into %s", config.name, len(frame), cutoff, folder)
    return {
        "training_set_uri": str(folder),
        "rows": len(frame),
        "fingerprint": manifest["fingerprint"],
        "splits": {name: info["rows"] for name, info in manifest["splits"].items()},
        "cutoff": manifest["cutoff"],
        "window_days": window_days,
        "change_start": manifest["change_start"],
    }


def read_split(training_set: str | Path, split: str) -> pd.DataFrame:
    """One split ("train", "validation" or "holdout") of a training set written by `assemble`."""
    return pd.read_parquet(Path(training_set) / f"{split}.parquet")


def read_manifest(training_set: str | Path) -> dict:
    """What `assemble` recorded about a training set: cutoff, window, rows and fingerprints."""
    return json.loads((Path(training_set) / MANIFEST_FILE).read_text())


# --- 2. validate ---------------------------------------------------------------------------------


def validate(config: ModelConfig, run_ctx: RunContext | dict, training_set: str | Path) -> dict:
    """Check the training set with GX before anyone trains on it; write the report beside it.

    Besides the GX suite of `training_data.check_training_set`, the train and holdout splits must
    each hold both classes (a holdout with one class cannot rank anything).

    Returns:
        {"passed": True, "rows", "checks": number of checks, "report_uri"}.

    Raises:
        NotTrainable: listing every failed check (the report is written first).
    """
    manifest = read_manifest(training_set)
    parts = {name: read_split(training_set, name) for name in SPLITS}
    frame = pd.concat(parts.values(), ignore_index=True)
    result = check_training_set(config, frame, dt.date.fromisoformat(manifest["cutoff"]))
    del frame
    for name in ("train", "holdout"):
        classes = int(parts[name][config.target.column].nunique())
        check = {"name": f"both_classes_in:{name}", "passed": classes == 2, "observed": classes, "expected": 2}
        result["checks"].append(check)
        if not check["passed"]:
            result["reasons"].append(f"the {name} split holds {classes} class(es); both are needed")
    result["passed"] = not result["reasons"]
    report = run_dir(config, run_ctx) / CHECK_FILE
    write_json_atomically(report, result)
    if not result["passed"]:
        raise NotTrainable(
            f"{config.name}: the training set at {training_set} is not trainable "
            f"(report: {report}): " + "; ".join(result["reasons"])
        )
    log.info("%s: training set passed %d checks", config.name, len(result["checks"]))
    return {"passed": True, "rows": manifest["rows"], "checks": len(result["checks"]), "report_uri": str(report)}


# --- 3. train ------------------------------------------------------------------------------------


def train(
    config: ModelConfig,
    run_ctx: RunContext | dict,
    training_set: str | Path,
    overrides: dict[str, Any] | None = None,
) -> dict:
    """Fit the model on the train split and log everything to an MLflow run of the model's experiment.

    The run is tagged with the Airflow run (dag id, run id, trigger, data interval) and git commit;
    it records the datasets (digest = fingerprint; contexts training, validation, holdout), the
    estimator params, train metrics (on a seeded sample of at most `TRAIN_METRICS_SAMPLE_ROWS`)
    and validation metrics, the training-set check report, and the model
    (sklearn flavor, with signature and input example). A retried task finds its finished run and
    returns it without training again, or resumes the run a crash left unfinished.

    Args:
        overrides: hyperparameters replacing `training.estimator.params` for this run.

    Returns:
        {"mlflow_run_id", "model_uri", "converged", "warnings", "fit_seconds", "train_metrics",
        "validation_metrics", "reused": True when a finished run was found}.

    Raises:
        ValueError: an unknown hyperparameter override, naming it.
    """
    import mlflow

    run_ctx = RunContext.of(run_ctx)
    overrides = validate_overrides(config, overrides)
    params = estimator_params(config, overrides)
    check_metric_names(config)
    manifest = read_manifest(training_set)
    experiment_id = registry.ensure_experiment(config.name)
    previous = _find_training_run(experiment_id, run_ctx, manifest["fingerprint"])
    if previous is not None and previous.data.tags.get(TAG_TRAINING_COMPLETE) == "true":
        log.info("%s: Airflow run %s already trained MLflow run %s on this data; reusing it",
                 config.name, run_ctx.run_id, previous.info.run_id)
        return _train_summary(previous, reused=True)

    parts = {name: read_split(training_set, name) for name in SPLITS}
    change = manifest.get("change_start")
    weights = change_weights(parts["train"], config.schema.timestamp_column,
                             dt.date.fromisoformat(change) if change else None,
                             config.training.change_point.weight_share)
    with mlflow.start_run(
        run_id=previous.info.run_id if previous else None,
        experiment_id=None if previous else experiment_id,
        run_name=None if previous else sanitize_run_id(run_ctx.run_id),
        tags={**run_ctx.tags(), TAG_TRAINING_SET: str(training_set),
              registry.TAG_DATA_FINGERPRINT: manifest["fingerprint"]},
    ) as run:
        _log_datasets(config, training_set, parts, manifest)
        mlflow.log_params(
            {
                "estimator": config.training.estimator.class_path,
                **{f"estimator.{name}": value for name, value in params.items()},
                "overrides": json.dumps(overrides, sort_keys=True),
                "cutoff": manifest["cutoff"],
                "window_days": manifest["window_days"],
                "change_start": manifest.get("change_start") or "none",
                "weighted_after_change": weights is not None,
                **{f"rows.{name}": info["rows"] for name, info in manifest["splits"].items()},
                "rows.train_metrics": min(manifest["splits"]["train"]["rows"], TRAIN_METRICS_SAMPLE_ROWS),
            }
        )
        check_report = run_dir(config, run_ctx) / CHECK_FILE
        if check_report.exists():
            mlflow.log_artifact(str(check_report), artifact_path="data_checks")

        result = fit(config, parts["train"], overrides, sample_weight=weights)
        train_sample = _sample(parts["train"], TRAIN_METRICS_SAMPLE_ROWS)
        train_metrics = compute_metrics(config, result.model, train_sample)
        validation_metrics = compute_metrics(config, result.model, parts["validation"])
        mlflow.log_metrics(
            {
                **{f"train_{name}": value for name, value in train_metrics.items()},
                **{f"validation_{name}": value for name, value in validation_metrics.items()},
                "fit_seconds": result.seconds,
            }
        )
        model_info = registry.log_model(config, result.model, parts["train"])
        mlflow.set_tags(
            {
                TAG_MODEL_URI: model_info.model_uri,
                TAG_CONVERGED: str(result.converged).lower(),
                "fit_warnings": "\n".join(result.warnings)[:4000],
                TAG_TRAINING_COMPLETE: "true",
            }
        )
        run_id = run.info.run_id
    log.info(
        "%s: trained %s in %.1fs (converged=%s, train %s=%.4f) as MLflow run %s",
        config.name, config.training.estimator.class_path, result.seconds, result.converged,
        config.evaluation.primary_metric, train_metrics[config.evaluation.primary_metric], run_id,
    )
    return _train_summary(registry.client().get_run(run_id), reused=False)


def _find_training_run(experiment_id: str, run_ctx: RunContext, data_fingerprint: str):
    """The MLflow run this Airflow run started on the same data before (a retry, a cleared task).

    Returns:
        The newest complete such run, else the newest incomplete one (a crash), else None.
    """
    import mlflow

    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=(
            f"tags.{registry.TAG_AIRFLOW_DAG_ID} = '{registry.quoted(run_ctx.dag_id)}' "
            f"and tags.{registry.TAG_AIRFLOW_RUN_ID} = '{registry.quoted(run_ctx.run_id)}' "
            f"and tags.{registry.TAG_DATA_FINGERPRINT} = '{registry.quoted(data_fingerprint)}'"
        ),
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    complete = [run for run in runs if run.data.tags.get(TAG_TRAINING_COMPLETE) == "true"]
    return (complete or runs or [None])[0]


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """At most `rows` rows of the frame, drawn with a fixed seed."""
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=0)


def _train_summary(run, reused: bool) -> dict:
    metrics, tags = run.data.metrics, run.data.tags
    return {
        "mlflow_run_id": run.info.run_id,
        "model_uri": tags[TAG_MODEL_URI],
        "converged": tags[TAG_CONVERGED] == "true",
        "warnings": [line for line in tags.get("fit_warnings", "").split("\n") if line],
        "fit_seconds": round(metrics.get("fit_seconds", 0.0), 3),
        "train_metrics": {k.removeprefix("train_"): v for k, v in metrics.items() if k.startswith("train_")},
        "validation_metrics": {
            k.removeprefix("validation_"): v for k, v in metrics.items() if k.startswith("validation_")
        },
        "reused": reused,
    }


def _log_datasets(config: ModelConfig, training_set: str | Path, parts: dict, manifest: dict) -> None:
    """Record each split as an MLflow dataset input: name, source, digest (its fingerprint), profile."""
    import mlflow
    import mlflow.data
    from mlflow.models import infer_signature

    contexts = {"train": "training", "validation": "validation", "holdout": "holdout"}
    for name, part in parts.items():
        with warnings.catch_warnings():
            # Noise for a dataset record: MLflow registers the local-file source twice ("" and
            # "file" schemes), and its hint on integer columns concerns serving signatures.
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            dataset = mlflow.data.from_pandas(
                part,
                source=str(Path(training_set) / f"{name}.parquet"),
                targets=config.target.column,
                name=f"{config.name}-{name}",
                digest=manifest["splits"][name]["digest"],
            )
            # MLflow infers a dataset's schema by visiting every value in Python, over a minute
            # for a million rows; the first rows give the same column types.
            dataset.schema = infer_signature(part.head(DATASET_SCHEMA_SAMPLE_ROWS)).inputs
            mlflow.log_input(dataset, context=contexts[name])


# --- 4. evaluate ---------------------------------------------------------------------------------


def evaluate(config: ModelConfig, run_ctx: RunContext | dict, training_set: str | Path, mlflow_run_id: str) -> dict:
    """Judge the candidate against the current `@champion`, both scored on the same holdout.

    Logs on the candidate's run: holdout metrics (`holdout_*`, and `champion_holdout_*`), slice
    metrics, plots, golden examples, the verdict as tags (`gate_passed`, `gate_summary`,
    `compared_with_champion`, and `champion_degraded`, `gate_floor_exception`,
    `gate_needs_approval`, `gate_primary_gain_interval`) and the whole decision as the
    `gate_verdict.json` artifact. The run's trigger decides ties (`evaluation.comparison.ties`).

    Returns:
        {"passed", "reasons", "metrics": the candidate's gated metrics, "champion_version": str or
        None, "champion_metrics", "champion_degraded", "floor_exception", "needs_approval",
        "primary_gain": the bootstrap interval, outcome and rule, or None without a champion}.
    """
    mlflow_client = registry.client()
    run = mlflow_client.get_run(mlflow_run_id)
    holdout = read_split(training_set, "holdout")
    candidate_model = _load_logged_model(run.data.tags[TAG_MODEL_URI])
    candidate, scores = evaluate_model(config, candidate_model, holdout)

    champion_version = registry.get_champion_version(config.name)
    champion, champion_scores = None, None
    if champion_version is not None:
        champion_model = registry.load_model_version(config.name, champion_version.version)
        champion, champion_scores = evaluate_model(config, champion_model, holdout)

    converged = run.data.tags.get(TAG_CONVERGED) == "true"
    verdict = judge_candidate(config, candidate, champion, converged, labels=positive_labels(config, holdout),
                              candidate_scores=scores, champion_scores=champion_scores,
                              trigger=RunContext.of(run_ctx).trigger,
                              slice_values=holdout[config.evaluation.slices])
    compared_with = str(champion_version.version) if champion_version else registry.NO_CHAMPION

    folder = run_dir(config, run_ctx) / "evaluation"
    save_plots(config, holdout, scores, folder / "plots")
    decision = {
        "model": config.name,
        "mlflow_run_id": mlflow_run_id,
        "verdict": {**verdict.to_dict(), "summary": verdict.summary()},
        "compared_with_champion": compared_with,
        "candidate": candidate.to_dict(),
        "champion": champion.to_dict() if champion else None,
        "holdout": {"rows": len(holdout), "uri": str(Path(training_set) / "holdout.parquet")},
    }
    write_json_atomically(folder / VERDICT_FILE, decision)
    write_json_atomically(folder / "slice_metrics.json", {"candidate": candidate.slices,
                                               "champion": champion.slices if champion else None})

    golden_uri = registry.log_golden_examples(
        mlflow_run_id, registry.golden_examples(config, candidate_model, holdout)
    )
    _log_evaluation(mlflow_client, mlflow_run_id, folder, candidate, champion)
    mlflow_client.set_tag(mlflow_run_id, registry.TAG_GATE_PASSED, str(verdict.passed).lower())
    mlflow_client.set_tag(mlflow_run_id, registry.TAG_GATE_SUMMARY, verdict.summary()[:4000])
    mlflow_client.set_tag(mlflow_run_id, registry.TAG_COMPARED_WITH, compared_with)
    mlflow_client.set_tag(mlflow_run_id, registry.TAG_GOLDEN_EXAMPLES, golden_uri)
    for key, value in registry.gate_facts_tags(decision["verdict"]).items():
        mlflow_client.set_tag(mlflow_run_id, key, value)

    log.info("%s: gate verdict against champion %s: %s", config.name, compared_with, verdict.summary())
    gated = list(config.evaluation.metrics)
    return {
        "passed": verdict.passed,
        "reasons": verdict.reasons,
        "metrics": {name: decision["candidate"]["metrics"][name] for name in gated},
        "champion_version": None if champion_version is None else str(champion_version.version),
        "champion_metrics": (
            {name: decision["champion"]["metrics"][name] for name in gated} if champion else None
        ),
        "champion_degraded": verdict.champion_degraded,
        "floor_exception": verdict.floor_exception,
        "needs_approval": verdict.needs_approval,
        "primary_gain": decision["verdict"]["primary_gain"],
    }


def _load_logged_model(model_uri: str) -> Any:
    """The model exactly as logged (through MLflow's serialization), not the in-memory object."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(model_uri)


def _log_evaluation(mlflow_client, run_id: str, folder: Path, candidate: EvaluationResult,
                    champion: EvaluationResult | None) -> None:
    from mlflow.entities import Metric

    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    values = {f"holdout_{name}": value for name, value in candidate.metrics.items()}
    values["holdout_nan_predictions"] = candidate.nan_predictions
    if champion is not None:
        values.update({f"champion_holdout_{name}": value for name, value in champion.metrics.items()})
    mlflow_client.log_batch(
        run_id, metrics=[Metric(key, float(value), now, 0) for key, value in values.items()]
    )
    mlflow_client.log_artifacts(run_id, str(folder), artifact_path="evaluation")


# --- 5. register ---------------------------------------------------------------------------------


def register(config: ModelConfig, run_ctx: RunContext | dict, mlflow_run_id: str) -> dict:
    """Register the candidate as a version of the model; make it `@challenger` only if blessed.

    A retried or cleared task returns the version this Airflow run registered before (and does
    not make it the challenger again once deployment has promoted it). A version the gate
    rejected is registered without an alias (visible in the registry with its reasons), and the
    aliases are left as they were.

    Returns:
        {"version", "alias_set": bool, "verdict": {"passed", "reasons"}, "newly_registered": bool}.

    Raises:
        RuntimeError: the run has no gate verdict (evaluate has not run on it).
    """
    import mlflow.artifacts

    run_ctx = RunContext.of(run_ctx)
    mlflow_client = registry.client()
    run = mlflow_client.get_run(mlflow_run_id)
    tags = run.data.tags
    if registry.TAG_GATE_PASSED not in tags:
        raise RuntimeError(
            f"MLflow run {mlflow_run_id} has no gate verdict; run the evaluate step on it first"
        )
    decision = mlflow.artifacts.load_dict(f"runs:/{mlflow_run_id}/evaluation/{VERDICT_FILE}")
    verdict = decision["verdict"]
    version, created = registry.register_candidate(
        config.name,
        tags[TAG_MODEL_URI],
        airflow_dag_id=run_ctx.dag_id,
        airflow_run_id=run_ctx.run_id,
        verdict=verdict,
        data_fingerprint=tags.get(registry.TAG_DATA_FINGERPRINT, ""),
        compared_with=tags[registry.TAG_COMPARED_WITH],
        golden_examples=tags.get(registry.TAG_GOLDEN_EXAMPLES),
        extra_tags={registry.TAG_GIT_COMMIT: run_ctx.git_commit, registry.TAG_TRIGGER: run_ctx.trigger,
                    registry.TAG_REASON: run_ctx.reason[:4000]},
    )
    promoted = sorted({registry.CHAMPION, registry.PREVIOUS_CHAMPION} & set(version.aliases or []))
    alias_set = bool(verdict["passed"]) and not promoted
    if alias_set:
        registry.set_challenger(config.name, version.version)
        log.info("%s: GATE PASSED: version %s is now @%s (%s)",
                 config.name, version.version, registry.CHALLENGER, verdict["summary"])
    elif verdict["passed"]:
        log.info("%s: GATE PASSED, and version %s was already promoted (@%s): @%s left as it is",
                 config.name, version.version, ", @".join(promoted), registry.CHALLENGER)
    else:
        log.info("%s: GATE REJECTED: version %s registered without an alias; aliases unchanged. %s",
                 config.name, version.version, verdict["summary"])
    return {
        "version": str(version.version),
        "alias_set": alias_set,
        "verdict": {"passed": verdict["passed"], "reasons": verdict["reasons"]},
        "newly_registered": created,
    }


# --- Level 0: the same steps, judged by nobody ---------------------------------------------------

LEVEL0_GATE_SUMMARY = "level 0: no gate"
"""The `gate_summary` of a version registered by `<model>__level0_manual_training`."""


def evaluate_without_gate(
    config: ModelConfig, run_ctx: RunContext | dict, training_set: str | Path, mlflow_run_id: str
) -> dict:
    """Level 0: score the model on its holdout and record the scores, judging nothing.

    Logs on the run what `evaluate` logs for a candidate (holdout metrics `holdout_*`, slice
    metrics, plots, golden examples, so that deployment's smoke test works for this version too),
    but compares with no `@champion` and applies no gate: the run is tagged `gate_passed` "false"
    and `gate_summary` "level 0: no gate", so that deploying it takes a deliberate `force`.

    Returns:
        {"metrics": holdout metrics, "rows": holdout rows, "golden_examples": artifact URI}.
    """
    mlflow_client = registry.client()
    run = mlflow_client.get_run(mlflow_run_id)
    holdout = read_split(training_set, "holdout")
    model = _load_logged_model(run.data.tags[TAG_MODEL_URI])
    result, scores = evaluate_model(config, model, holdout)

    folder = run_dir(config, run_ctx) / "evaluation"
    save_plots(config, holdout, scores, folder / "plots")
    write_json_atomically(folder / "holdout_metrics.json", {"model": config.name, "mlflow_run_id": mlflow_run_id,
                                                  "gate": LEVEL0_GATE_SUMMARY, "holdout_rows": len(holdout),
                                                  "result": result.to_dict()})
    golden_uri = registry.log_golden_examples(mlflow_run_id, registry.golden_examples(config, model, holdout))
    _log_evaluation(mlflow_client, mlflow_run_id, folder, result, None)
    for key, value in {registry.TAG_GATE_PASSED: "false", registry.TAG_GATE_SUMMARY: LEVEL0_GATE_SUMMARY,
                       registry.TAG_COMPARED_WITH: registry.NO_CHAMPION,
                       registry.TAG_GOLDEN_EXAMPLES: golden_uri}.items():
        mlflow_client.set_tag(mlflow_run_id, key, value)
    log.info("%s: holdout %s = %.4f (%s)", config.name, config.evaluation.primary_metric,
             result.metrics[config.evaluation.primary_metric], LEVEL0_GATE_SUMMARY)
    return {"metrics": result.to_dict()["metrics"], "rows": len(holdout), "golden_examples": golden_uri}


def register_without_gate(config: ModelConfig, run_ctx: RunContext | dict, mlflow_run_id: str) -> dict:
    """Level 0: register the run's model as a new version and set no alias.

    The version is tagged `gate_passed` "false" and `gate_summary` "level 0: no gate"; the aliases
    (`champion`, `challenger`, `previous_champion`) are left as they were. Like `register`, a
    retried or cleared task returns the version this Airflow run registered before.

    Returns:
        {"version", "alias_set": False, "newly_registered": bool}.

    Raises:
        RuntimeError: the run has no golden examples (`evaluate_without_gate` has not run on it).
    """
    run_ctx = RunContext.of(run_ctx)
    tags = registry.client().get_run(mlflow_run_id).data.tags
    if registry.TAG_GOLDEN_EXAMPLES not in tags:
        raise RuntimeError(f"MLflow run {mlflow_run_id} has no golden examples; evaluate it first")
    version, created = registry.register_candidate(
        config.name,
        tags[TAG_MODEL_URI],
        airflow_dag_id=run_ctx.dag_id,
        airflow_run_id=run_ctx.run_id,
        verdict={"passed": False, "reasons": [LEVEL0_GATE_SUMMARY], "summary": LEVEL0_GATE_SUMMARY},
        data_fingerprint=tags.get(registry.TAG_DATA_FINGERPRINT, ""),
        compared_with=registry.NO_CHAMPION,
        golden_examples=tags[registry.TAG_GOLDEN_EXAMPLES],
        extra_tags={registry.TAG_GIT_COMMIT: run_ctx.git_commit, registry.TAG_TRIGGER: run_ctx.trigger,
                    registry.TAG_REASON: run_ctx.reason[:4000]},
    )
    log.info("%s: version %s registered without an alias (%s)", config.name, version.version, LEVEL0_GATE_SUMMARY)
    return {"version": str(version.version), "alias_set": False, "newly_registered": created}
