"""Airflow's own processes die mid-run, and the loop still registers one model version and one batch a day.

Each topology (tests/chaos/stacks.py: `celery`, the production topology, and `local`, the LocalExecutor
stack of `make run`) is started once, ingests the 3 small days, and then takes these faults:

- the worker is SIGKILLed while `train_candidate` runs: Airflow notices the silent task (short
  heartbeat timeout), retries it, the retry resumes the MLflow run and registers exactly one version;
- the scheduler is SIGKILLed mid-run and started again: the run completes with one version, and the
  curated store still holds one batch per day (a day ingested again replaces its batch).

Every fault adds a row to the fault table of `make chaos` before its assertions, so that a fault the
loop did not survive shows in the table too.
"""

from __future__ import annotations

import datetime as dt
import signal
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest

from scripts import local_stack, verify_release
from tests.chaos.stacks import (
    TOPOLOGIES,
    RunningStack,
    parent_pid,
    running_stack,
    shared_production_stack,
    task_process,
)
from tests.test_local_stack import needs_proc
from tests.test_production_topology import DAYS, FIRST_DAY, LAST_DAY, MODEL, wait_for_dags, wait_for_runs

DAG = {stage: f"{MODEL}__{stage}" for stage in ("data_ingestion", "continuous_training")}
ROWS_PER_DAY = 300
ID_COLUMN = "application_id"
FAULT_WINDOW_S = 300
# CI's 2 cores also run the other faults' stacks: a run takes minutes there, not the seconds it takes alone.
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=pytest.mark.production_stack) if name == "celery" else name for name in TOPOLOGIES])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One topology, started once for all its faults, with the 3 days ingested and training unpaused.

    The `celery` topology is the production topology test's stack, which runs just before these faults
    (tests/conftest.py) and has ingested the days already; it is stopped after the last of them."""
    if request.param == "celery":
        shared = nullcontext(shared_production_stack(tmp_path_factory))
    else:
        shared = running_stack(request.param, tmp_path_factory.mktemp(f"chaos-{request.param}"))
    with shared as running:
        wait_for_dags(running.api, set(DAG.values()))
        running.api.unpause(DAG["data_ingestion"])
        wait_for_runs(running.api, DAG["data_ingestion"], DAYS, RUN_TIMEOUT_S)
        running.api.unpause(DAG["continuous_training"])
        yield running


# --- driving the stack ------------------------------------------------------------------------------


def run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}"


def trigger(stack: RunningStack, dag_id: str, run_id: str, conf: dict) -> None:
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
    stack.api.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body, attempts=1)


def trigger_training(stack: RunningStack, run_id: str) -> None:
    trigger(stack, DAG["continuous_training"], run_id, {"reason": f"chaos: {run_id}", "cutoff": LAST_DAY.isoformat()})


def task_instance(stack: RunningStack, dag_id: str, run_id: str, task_id: str) -> dict:
    return stack.api.request("GET", f"{run_path(dag_id, run_id)}/taskInstances/{task_id}")


def wait_for_task_process(stack: RunningStack, run_id: str, task_id: str) -> int:
    """The pid of the process running `task_id` of the training run, as soon as it runs."""
    deadline = time.monotonic() + FAULT_WINDOW_S
    while time.monotonic() < deadline:
        ti = task_instance(stack, DAG["continuous_training"], run_id, task_id)
        if ti["state"] in ("success", "failed", "upstream_failed", "skipped"):
            pytest.fail(f"{task_id} of {run_id} ended ({ti['state']}) before the fault could hit it")
        pid = task_process(ti["id"]) if ti["state"] == "running" else None
        if pid is not None:
            return pid
        time.sleep(0.3)
    pytest.fail(f"{task_id} of {run_id} did not start within {FAULT_WINDOW_S} s")


@contextmanager
def mlflow_client(stack: RunningStack) -> Iterator:
    """An MlflowClient on the stack's MLflow, logged in as the stack's clients are (the production
    topology's MLflow asks for a login; MLflow's client reads it from the environment at each request)."""
    from mlflow import MlflowClient

    with pytest.MonkeyPatch.context() as patch:
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            if name in stack.topology.env:
                patch.setenv(name, stack.topology.env[name])
        yield MlflowClient(tracking_uri=stack.config.mlflow_url, registry_uri=stack.config.mlflow_url)


def wait_for_training_run(stack: RunningStack, run_id: str, task_pid: int) -> None:
    """Wait until the training task has started its MLflow run (so the fault hits it mid-training)."""
    deadline = time.monotonic() + FAULT_WINDOW_S
    with mlflow_client(stack) as registry:
        while True:
            experiment = registry.get_experiment_by_name(MODEL)
            if experiment and registry.search_runs([experiment.experiment_id], f"tags.airflow_run_id = '{run_id}'"):
                return
            if not local_stack.process_alive(task_pid, None) or time.monotonic() > deadline:
                pytest.fail(f"train_candidate of {run_id} ended before it started its MLflow run")
            time.sleep(0.2)


def versions_of_run(stack: RunningStack, run_id: str) -> list[str]:
    """Every model version that carries the Airflow run's id (include/core/registry.py tags them)."""
    with mlflow_client(stack) as registry:
        found = registry.search_model_versions(f"name = '{MODEL}' and tags.airflow_run_id = '{run_id}'")
    return sorted(version.version for version in found)


def finish(stack: RunningStack, dag_id: str, run_id: str) -> tuple[str | None, dict]:
    """The run's final state and its task states."""
    state = verify_release.wait_for_run(stack.api, dag_id, run_id, RUN_TIMEOUT_S)
    return state, verify_release.task_states(stack.api, dag_id, run_id)


def curated_store(stack: RunningStack) -> tuple[list[Path], int, int]:
    """(files under the model's curated store, rows, distinct ids) of the stack's curated data."""
    import pandas as pd

    files = sorted(path for path in (stack.config.state / "data" / MODEL / "curated").rglob("*") if path.is_file())
    frame = pd.concat([pd.read_parquet(path) for path in files]) if files else pd.DataFrame({ID_COLUMN: []})
    return files, len(frame), frame[ID_COLUMN].nunique()


# --- the faults ------------------------------------------------------------------------------------


def kill_worker(stack: RunningStack, task_pid: int) -> list[int]:
    """SIGKILL "the worker" of the running task whose process is `task_pid`; return the pids killed.

    - Celery: the celery-worker service, all of it: its process group (the main process and the pool
      processes that supervise tasks) and the task processes, which put themselves in process groups
      of their own inside its session: what the death of the worker's container does.
    - LocalExecutor: the scheduler runs tasks in worker processes of its own; the worker of this task
      is the LocalExecutor worker process supervising it (the task process's parent), killed with
      the task process. The scheduler lives on and starts a fresh worker process.
    """
    if stack.name == "celery":
        killed = stack.kill("celery-worker")
        assert task_pid in killed, "the task process ran outside the Celery worker's session"
        return killed
    supervisor = parent_pid(task_pid)
    assert local_stack.command_line(supervisor).startswith("airflow worker -- LocalExecutor"), \
        local_stack.command_line(supervisor)
    local_stack.signal_pids([supervisor, task_pid], signal.SIGKILL)
    assert local_stack.wait_until(lambda: not any(local_stack.process_alive(pid, None)
                                                  for pid in (supervisor, task_pid)), 10)
    return [supervisor, task_pid]


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.timeout(1500)
@needs_proc
def test_a_worker_killed_during_train_candidate_is_retried_and_registers_exactly_one_version(stack, chaos_table):
    run_id = "chaos_worker_sigkill"
    trigger_training(stack, run_id)
    task_pid = wait_for_task_process(stack, run_id, "train_candidate")
    wait_for_training_run(stack, run_id, task_pid)
    kill_worker(stack, task_pid)
    if stack.name == "celery":
        stack.start("celery-worker")

    state, tasks = finish(stack, DAG["continuous_training"], run_id)
    versions = versions_of_run(stack, run_id)
    tries = task_instance(stack, DAG["continuous_training"], run_id, "train_candidate")["try_number"]
    chaos_table.add(fault="worker SIGKILL during train_candidate", topology=stack.name, runs=1,
                    lost=f"{max(0, 1 - len(versions))} versions",
                    outcome=f"run {state}, train_candidate try {tries}, {len(versions)} version(s) registered")

    assert state == "success", verify_release.format_states(tasks)
    assert tries > 1, "the killed try should have been retried"
    assert len(versions) == 1, f"the run registered versions {versions}"


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.timeout(1500)
@needs_proc
def test_a_scheduler_killed_mid_run_comes_back_and_the_run_completes_without_duplicates(stack, chaos_table):
    """The scheduler's process group is SIGKILLed while `train_candidate` runs (a task with retries:
    under the LocalExecutor the scheduler's group holds the tasks' supervisors, so the kill ends the
    running task too). While it is down, a person asks to ingest the first day again."""
    run_id, reingest_id = "chaos_scheduler_sigkill", "chaos_reingest_first_day"
    trigger_training(stack, run_id)
    wait_for_task_process(stack, run_id, "train_candidate")
    stack.kill_group("scheduler")
    trigger(stack, DAG["data_ingestion"], reingest_id, {"day": FIRST_DAY.isoformat()})
    stack.start("scheduler")

    state, tasks = finish(stack, DAG["continuous_training"], run_id)
    reingested, ingestion_tasks = finish(stack, DAG["data_ingestion"], reingest_id)
    versions = versions_of_run(stack, run_id)
    files, rows, distinct = curated_store(stack)
    expected_rows = DAYS * ROWS_PER_DAY
    chaos_table.add(fault="scheduler SIGKILL mid-run, restarted", topology=stack.name, runs=2,
                    lost=f"{max(0, 1 - len(versions))} versions, {expected_rows - distinct} rows",
                    outcome=f"training {state} with {len(versions)} version(s); re-ingestion {reingested}; "
                            f"{len(files)} curated batches of {rows} rows")

    assert state == "success", verify_release.format_states(tasks)
    assert len(versions) == 1, f"the run registered versions {versions}"
    assert reingested == "success", verify_release.format_states(ingestion_tasks)
    assert [path.parent.name for path in files] == [
        f"day={FIRST_DAY + dt.timedelta(days=offset)}" for offset in range(DAYS)
    ], files
    assert rows == distinct == expected_rows
