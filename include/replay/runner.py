"""A replay: the model's days under each retraining policy, measured in accuracy and compute.

    ingest every day once ──► a closed loop per policy ──► realized metric per day ──► report
    (the library's ingestion,  (`driver.ClosedLoop`, its     (each day's served         (days.csv, summary.json,
     GX gate included, into     own MLflow store and files,   predictions on the labels  replay.png, report.md)
     a shared store)            in parallel processes)        that arrived for them)

Nothing of the live stack is touched: the replay works in a throw-away folder (removed at the end
unless `keep_state`). It first ingests every day once, `jobs` processes each taking a run of days
(the Data Docs sites, which nobody browses here, are not built). Then each policy's loop runs in
a fresh process whose environment points the library at that policy's own state, `jobs` at a
time, the most expensive first. A policy whose every day's model depends on the data alone
(`memoryless`: every_day) is split into segments replayed side by side: each segment trains its
first model on the day before its first day, which is the model the policy would have served then
anyway.

The realized metric of a day is the primary metric of the predictions its serving model made that
day, on the labels that arrived for them (the replay also lands the labels arriving in the
`target.label_delay_days` after its last day, so the last days are measured too); the 7-day
metric pools a day's predictions with those of the 6 days before. Training CPU seconds are the
process CPU time of the runs that trained (planning, training, evaluating, registering and
promoting); drift checks, and plans that decided not to train, are not counted.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import platform
import shutil
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.core import settings
from include.core.config import FilesSource, ModelConfig, SyntheticSource, load_model_config
from include.replay.policies import RetrainingPolicy, resolve

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

POOLED_DAYS = 7
SEGMENTS_PER_JOB = 3
"""A memoryless policy is cut into this many segments per process, so that the pool ends together."""
CPU_SECONDS_PER_DAY = {"every_day": 2.6, "new_data": 0.8, "schedule": 0.6, "request": 0.8}
"""Rough training CPU per replayed day by what a policy retrains on (demo, 2 cores): orders the segments."""


class ReplayError(ValueError):
    """The replay cannot run as asked: an unknown model or policy, or days outside the source.

    The message names the value and what was expected.
    """


@dataclass(frozen=True)
class Segment:
    """Days of one policy replayed in one process (a memoryless policy has several)."""

    policy: RetrainingPolicy
    first_day: dt.date
    last_day: dt.date
    first_training_day: dt.date
    index: int = 0

    @property
    def label(self) -> str:
        return self.policy.name if self.index == 0 else f"{self.policy.name}-{self.index + 1}"


@dataclass
class Replay:
    """What a replay wrote: its folder, and the summary also saved there as summary.json."""

    folder: Path
    summary: dict
    days: pd.DataFrame


# --- what to replay ------------------------------------------------------------------------------


def model_config(model: str) -> ModelConfig:
    """The model's config from the models folder.

    Raises:
        ReplayError: no such model (naming the models there).
    """
    path = settings.models_dir() / f"{model}.yaml"
    if not path.is_file():
        known = sorted(found.stem for found in settings.models_dir().glob("*.yaml"))
        raise ReplayError(f"MODEL: unknown model {model!r}: there is no {path}; models: {', '.join(known) or 'none'}")
    return load_model_config(path)


def source_days(config: ModelConfig) -> tuple[dt.date, dt.date | None]:
    """The first and last day the model's source delivers (a `files` source: its newest day's file).

    The last day is None for a `table` or `sql` source without `end_date`: their data grows in place.
    """
    from include.data import sources

    source = config.source
    if not isinstance(source, FilesSource) or source.end_date is not None:
        return source.start_date, source.end_date
    delivered = sources.delivered_days(source)
    if not delivered:
        raise ReplayError(f"{config.name}: no file matching {source.pattern!r} in {source.path}")
    return source.start_date, delivered[-1]


def parse_day(value: str | dt.date | None, key: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ReplayError(f"{key}: expected a day as YYYY-MM-DD, got {value!r}") from None


def plan_days(config: ModelConfig, start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date, dt.date]:
    """The replayed days and the day the first model trains: (start, end, first_training_day).

    The first model trains on the last day of the first `training.window_days` window, so that
    every policy starts from the same model, trained on a whole window.

    Raises:
        ReplayError: START or END outside the source's days, too few days for a first window
            and one day served, or a source that is not daily (a replay steps day by day).
    """
    if config.source.interval != "daily":
        raise ReplayError(f"{config.name}: source.interval is {config.source.interval!r}; a replay ingests, serves "
                          "and trains day by day, so it replays daily sources only")
    first, last = source_days(config)
    if last is None and end is None:
        raise ReplayError(f"{config.name}: its {config.source.kind} source has no end_date: name the last day "
                          "to replay with END=YYYY-MM-DD")
    start, end = start or first, end or last
    last = last or end
    if start < first or end > last:
        raise ReplayError(f"START..END {start}..{end} is outside the days {config.name}'s source delivers "
                          f"({first}..{last})")
    first_training = start + dt.timedelta(days=config.training.window_days - 1)
    if first_training >= end:
        raise ReplayError(
            f"START..END {start}..{end} is too short: the first model trains on {first_training}, after a whole "
            f"training.window_days window ({config.training.window_days} days), and a replay needs days after it"
        )
    return start, end, first_training


def segments(policies: list[RetrainingPolicy], first_training: dt.date, end: dt.date, jobs: int) -> list[Segment]:
    """Each policy's segments, the most expensive first (so that the pool finishes together)."""
    found = []
    served_from = first_training + dt.timedelta(days=1)
    length = (end - served_from).days + 1
    for policy in policies:
        parts = min(length, jobs * SEGMENTS_PER_JOB) if policy.memoryless and jobs > 1 else 1
        bounds = [served_from + dt.timedelta(days=length * k // parts) for k in range(parts + 1)]
        for index, (begin, after) in enumerate(zip(bounds, bounds[1:], strict=False)):
            found.append(Segment(policy, begin, after - dt.timedelta(days=1), begin - dt.timedelta(days=1), index))
    return sorted(found, key=lambda segment: -_expected_cost(segment))


def _expected_cost(segment: Segment) -> float:
    per_day = max([CPU_SECONDS_PER_DAY[what] for what in segment.policy.retrain_on], default=0.1)
    return per_day * ((segment.last_day - segment.first_day).days + 1)


# --- the replay ----------------------------------------------------------------------------------


def replay(
    model: str,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    policies: str | list[str] | None = None,
    *,
    out_root: Path | None = None,
    jobs: int | None = None,
    keep_state: bool = False,
) -> Replay:
    """Replay `model`'s days from `start` to `end` under `policies` and write the report.

    Args:
        policies: names, comma-separated or a list (None: every policy the config offers).
        out_root: where `<model>/<timestamp>/` goes (default `<state>/replay`).
        jobs: processes replaying at once (default: the machine's CPU count).
        keep_state: keep each policy's MLflow store and files (under the output folder, `state/`).

    Returns:
        The output folder, the summary and the days frame.

    Raises:
        ReplayError: an unknown model or policy, or days the source does not deliver.
    """
    from include.replay import report

    started = time.perf_counter()
    config = model_config(model)
    try:
        chosen = resolve(config, policies)
    except ValueError as exc:
        raise ReplayError(str(exc)) from None
    start, end, first_training = plan_days(config, parse_day(start, "START"), parse_day(end, "END"))
    jobs = max(1, jobs or os.cpu_count() or 1)
    created = dt.datetime.now(dt.UTC)
    folder = (out_root or settings.state_dir() / "replay") / config.name / created.strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=False)
    work = Path(tempfile.mkdtemp(prefix=f"replay-{config.name}-")) if not keep_state else folder / "state"
    config_path = settings.models_dir() / f"{config.name}.yaml"
    try:
        frames = _run(config_path, config, chosen, start, end, first_training, work, jobs)
    except BaseException:
        if not keep_state:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        if not keep_state:
            shutil.rmtree(work, ignore_errors=True)
    days = realized_days(config, frames, chosen)
    summary = report.summarize(
        days, metric=config.evaluation.primary_metric,
        greater_is_better=config.evaluation.metrics[config.evaluation.primary_metric].greater_is_better,
        policies=[policy.to_dict() for policy in chosen], scenarios=ground_truth(config),
    )
    header = {
        "Model": config.name,
        "Days": f"{start} to {end} ({(end - start).days + 1} days; the first model trains on {first_training})",
        "Policies": ", ".join(policy.name for policy in chosen),
        "Measured": created.strftime("%Y-%m-%d %H:%M UTC"),
        "Machine": machine(),
        "Processes": jobs,
        "Elapsed": f"{time.perf_counter() - started:.0f} s",
    }
    report.write_outputs(days, summary, folder, header, scenarios=ground_truth(config))
    _point_latest(folder)
    summary["run"] = header
    return Replay(folder, summary, days)


def ground_truth(config: ModelConfig) -> list | None:
    """The scenarios of a synthetic source (when the world changed, by construction); None for user data."""
    return list(config.source.scenarios) if isinstance(config.source, SyntheticSource) else None


def machine() -> str:
    """The CPU model and count, as the README quotes measurements."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} × {model}, {platform.system()} {platform.release().split('-')[0]}"


def _point_latest(folder: Path) -> None:
    latest = folder.parent / "latest"
    tmp = folder.parent / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder.name, target_is_directory=True)
    os.replace(tmp, latest)


def _run(config_path: Path, config: ModelConfig, chosen: list[RetrainingPolicy], start: dt.date, end: dt.date,
         first_training: dt.date, work: Path, jobs: int) -> dict[str, list[pd.DataFrame]]:
    """Ingest every day once, then replay the segments, `jobs` processes at a time."""
    spawn = multiprocessing.get_context("spawn")
    shared = work / "data"
    label_tail = end + dt.timedelta(days=config.target.label_delay_days)
    days = (label_tail - start).days + 1
    bounds = [start + dt.timedelta(days=days * k // jobs) for k in range(jobs + 1)]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn, max_tasks_per_child=1) as pool:
        runs = [pool.submit(ingest_days, config_path, work / f"ingestion-{k + 1}", shared, first,
                            after - dt.timedelta(days=1), end)
                for k, (first, after) in enumerate(zip(bounds, bounds[1:], strict=False)) if after > first]
        for run in runs:
            run.result()
    log.info("ingested %s..%s (labels to %s) in %d processes", start, end, label_tail, len(runs))
    frames: dict[str, list] = {policy.name: [] for policy in chosen}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn, max_tasks_per_child=1) as pool:
        futures = {pool.submit(replay_segment, config_path, segment, work / segment.label, shared, start): segment
                   for segment in segments(chosen, first_training, end, jobs)}
        for future in as_completed(futures):
            segment = futures[future]
            frames[segment.policy.name].append(future.result())
            log.info("replayed %s (%s..%s)", segment.label, segment.first_day, segment.last_day)
    return frames


def _use_state(state: Path, data: Path | None = None) -> None:
    """Point the library (in this fresh process) at a throw-away state, single-threaded."""
    os.environ["MLOPS_STATE_DIR"] = str(state)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("MLOPS_REPORTS_DIR", "MLOPS_DATA_DIR"):
        os.environ.pop(name, None)
    if data is not None:
        os.environ["MLOPS_DATA_DIR"] = str(data)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    (state / "mlflow").mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(processName)s %(levelname)s %(message)s")
    for name in ("mlflow", "great_expectations", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)


def ingest_days(config_path: Path, state: Path, shared: Path, first: dt.date, last: dt.date, end: dt.date) -> None:
    """Ingest the days `first`..`last` into the shared store (the library's ingestion, GX gate included).

    Days up to the replay's `end` land, are validated and published, and their labels land; the
    days after it land only the labels that arrive then, so the last days are measured too. A
    rejected batch or labels file is quarantined, as on the live stack, and the days go on.
    """
    _use_state(state, shared)
    from include.data import ingestion, sources

    config = load_model_config(config_path)
    day = first
    while day <= last:
        if day <= end:
            try:
                landed = ingestion.land(config, day)
                ingestion.validate(config, day, landed["batch_uri"], data_docs=False)
            except (sources.BatchNotArrived, ingestion.BatchRejected):
                pass
            else:
                ingestion.publish(config, day, landed["batch_uri"])
        try:
            ingestion.land_labels(config, day, data_docs=False)
        except ingestion.BatchRejected:
            pass
        day += dt.timedelta(days=1)


def replay_segment(config_path: Path, segment: Segment, state: Path, shared: Path, start: dt.date) -> pd.DataFrame:
    """One policy's closed loop over its days, in this process's own state; one row per day.

    The loop runs from the replay's `start` (days before the first model are only taken from the
    shared store), trains its first model on `segment.first_training_day` and records the days
    from `segment.first_day`. Each row carries the day's served predictions joined with their
    labels (`joined`), from which the runner computes the realized metric.
    """
    _use_state(state)
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from include.core import storage
    from include.replay.driver import ClosedLoop

    config = load_model_config(config_path)
    loop = ClosedLoop(config, policy=segment.policy, first_training_day=segment.first_training_day, data_from=shared)
    rows = []
    with threadpool_limits(1):
        day = start
        while day <= segment.last_day:
            outcome = loop.step(day)
            if day >= segment.first_day:
                rows.append(day_row(segment, outcome))
            day += dt.timedelta(days=1)
    labels = pd.concat([pd.read_parquet(path) for path in sorted(
        (shared / config.name / "labels").glob(f"*/{storage.LABELS_FILE}"))] or [pd.DataFrame()])
    frame = pd.DataFrame(rows)
    frame["joined"] = [served_with_labels(config, day, labels) for day in frame["day"]]
    return frame


def day_row(segment: Segment, outcome: Any) -> dict:
    """What days.csv keeps of one day of one policy (see `include.replay.report`)."""
    training = outcome.training or {}
    trained = bool(training.get("trained"))
    gate = "" if not trained or not training.get("version") else (
        "no gate" if training.get("passed") is None else "passed" if training["passed"] else "rejected")

    def version(value: Any) -> str:
        """A version as days.csv names it: a later segment's versions are prefixed with its number ("2.14")."""
        return "" if value is None else str(value) if segment.index == 0 else f"{segment.index + 1}.{value}"

    return {
        "policy": segment.policy.name,
        "day": outcome.day,
        "curated": outcome.curated,
        "served_by": version(outcome.scored_by),
        "request": (outcome.request or {}).get("reason", ""),
        "retrain": training.get("trigger", "") if trained else "",
        "retrain_why": training.get("why", ""),
        "trained_version": version(training.get("version")) if trained else "",
        "gate": gate,
        "promoted_version": version(outcome.promoted),
        "train_cpu_seconds": round(outcome.train_cpu_seconds, 3),
    }


def served_with_labels(config: ModelConfig, day: dt.date, labels: pd.DataFrame) -> pd.DataFrame | None:
    """The day's batch predictions (this process's store) joined with every label that arrived for them."""
    import pandas as pd

    from include.delivery import prediction_log

    path = prediction_log.batch_predictions_path(config.name, day)
    if not path.exists() or labels.empty:
        return None
    entity, target = config.schema.entity_column, config.target.column
    served = pd.read_parquet(path, columns=[entity, "probability", "version"])
    arrived = labels.drop_duplicates(subset=entity, keep="last")[[entity, target]]
    return served.merge(arrived, on=entity, how="left")


def realized_days(config: ModelConfig, frames: dict[str, list[pd.DataFrame]],
                  chosen: list[RetrainingPolicy]) -> pd.DataFrame:
    """The days of every policy with the realized metric of the day and of the 7 days up to it."""
    import pandas as pd

    target = config.target.column
    out = []
    for policy in chosen:
        days = pd.concat(frames[policy.name], ignore_index=True).sort_values("day", ignore_index=True)
        daily, pooled, scored, labelled = [], [], [], []
        for index, joined in enumerate(days["joined"]):
            scored.append(0 if joined is None else len(joined))
            known = None if joined is None else joined[joined[target].notna()]
            labelled.append(0 if known is None else len(known))
            daily.append(_metric(config, [known]))
            pooled.append(_metric(config, list(days["joined"].iloc[max(0, index - POOLED_DAYS + 1):index + 1])))
        days = days.drop(columns="joined").assign(rows_scored=scored, labelled_rows=labelled,
                                                    realized_metric=pd.array(daily, dtype="Float64").astype(float),
                                                    realized_metric_7d=pd.array(pooled, dtype="Float64").astype(float))
        days["day"] = [day.isoformat() for day in days["day"]]
        out.append(days)
    columns = ["policy", "day", "curated", "served_by", "rows_scored", "labelled_rows", "realized_metric",
               "realized_metric_7d", "request", "retrain", "retrain_why", "trained_version", "gate",
               "promoted_version", "train_cpu_seconds"]
    return pd.concat(out, ignore_index=True)[columns]


def _metric(config: ModelConfig, joined: list[pd.DataFrame | None]) -> float | None:
    """The primary metric of served predictions on their labels (`include.monitoring.performance`), or None."""
    import pandas as pd

    from include.monitoring.performance import realized_performance

    present = [frame for frame in joined if frame is not None and len(frame)]
    if not present:
        return None
    frame = pd.concat(present, ignore_index=True)
    frame = frame[frame[config.target.column].notna()]
    if frame.empty:
        return None
    entity = config.schema.entity_column
    value = realized_performance(config, frame[[entity, "probability", "version"]],
                                 frame[[entity, config.target.column]])["value"]
    return None if value is None else round(float(value), 5)
