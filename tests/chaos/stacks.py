"""Running stacks for fault injection: the production topology and the local stack, started once each.

A fault test needs a stack it may damage: kill a service, start it again, and watch what Airflow
makes of it. Starting one costs a minute or two, so each topology is started once for all its faults
(a module-scoped fixture in the test module) and holds on to its processes, so that a test can kill
and restart one service while the others run on.

The two topologies are the ones users run, both built by scripts/local_stack.py as
tests/test_production_topology.py builds them:

- `celery`: PostgreSQL databases, the CeleryExecutor with a Redis broker and one Celery worker
  (what docker-compose.yaml runs);
- `local`: SQLite files and the LocalExecutor, whose scheduler runs the tasks itself (`make run`).

Both get a short task-instance heartbeat timeout, so that Airflow notices a task whose supervisor was
killed within seconds instead of Airflow's default 5 minutes.

The `celery` stack is the production topology test's too (tests/test_production_topology.py): one stack,
started for the first test that asks for it (`shared_production_stack`), serves that test and then the
Celery faults, which tests/conftest.py runs right after it; it is stopped once the last of them is done
(`stop_shared_production_stack`), not at the end of the session, so it costs the rest of the suite nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from scripts import local_stack
from scripts.local_stack import StackConfig
from tests.test_production_topology import (
    Owned,
    Topology,
    owned_resources,
    small_model_config,
    stack_config,
    started_stack,
)

TOPOLOGIES = tuple(os.environ.get("MLOPS_CHAOS_STACKS", "celery").split(","))
"""The topologies the Airflow faults run on: CI (`make test`) takes the production topology only, to keep
the suite within its time budget; `make chaos` sets MLOPS_CHAOS_STACKS=celery,local for both."""
HEARTBEAT_TIMEOUT_S = 30
"""[scheduler] task_instance_heartbeat_timeout: a killed task's try is failed (and retried) this many
seconds after its supervisor's last heartbeat. Short enough for a test, long enough that a live task on
two busy cores still heartbeats in time (its supervisor does so every few seconds)."""
FAULT_SETTINGS = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    # A restarted scheduler adopts (Celery) or resets (LocalExecutor) the tasks its killed predecessor
    # queued once that one's heartbeat is stale; Airflow looks every 5 minutes by default.
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "15",
}


@dataclass
class RunningStack:
    """A started topology, with its processes by service name, so that a fault can hit one of them."""

    name: str
    topology: Topology
    started: dict[str, tuple[subprocess.Popen, local_stack.ServiceProcess]] = field(default_factory=dict)
    owned: Owned | None = None
    """The PostgreSQL databases and Redis keys of the `celery` topology (None for `local`)."""

    @property
    def config(self) -> StackConfig:
        return self.topology.config

    @property
    def api(self) -> local_stack.AirflowApi:
        return self.topology.api

    def start(self, service_name: str) -> None:
        """Start `service_name` (again) and wait until it is healthy."""
        [service] = [each for each in local_stack.stack_services(self.config) if each.name == service_name]
        self.started[service_name] = local_stack.start_service(service, self.config, self.topology.env)
        local_stack.wait_until_healthy({service_name: self.started[service_name]}, time.monotonic(),
                                       local_stack.HEALTH_TIMEOUT_S)

    def kill(self, service_name: str) -> list[int]:
        """SIGKILL every process of the service's session, as the death of its machine or container
        would: its process group and the groups its task processes put themselves in. Returns the pids."""
        process, record = self.started[service_name]
        pids = session_members(record.pgid)
        local_stack.signal_pids(pids, signal.SIGKILL)
        process.wait(timeout=10)
        assert local_stack.wait_until(lambda: not session_members(record.pgid), 10), \
            f"{service_name}: processes outlived SIGKILL: {session_members(record.pgid)}"
        return pids

    def kill_group(self, service_name: str) -> list[int]:
        """SIGKILL the service's process group only (what `kill -9 -<pgid>` does); return the pids hit.

        Task processes that put themselves in a group of their own survive it."""
        process, record = self.started[service_name]
        pids = local_stack.live_group_members([record.pgid])
        local_stack.signal_groups([record.pgid], signal.SIGKILL)
        process.wait(timeout=10)
        assert local_stack.wait_until(lambda: not local_stack.live_group_members([record.pgid]), 10)
        return pids


def session_members(session: int) -> list[int]:
    """Pids of the running processes of session `session`."""
    return [pid for pid in local_stack.all_pids()
            if local_stack.proc_session(pid) == session and local_stack.process_alive(pid, None)]


def task_process(ti_id: str) -> int | None:
    """The pid of the process running task-instance try `ti_id` (it names itself `airflow worker -- <id>`)."""
    title = f"airflow worker -- {ti_id}"
    for pid in local_stack.all_pids():
        if local_stack.command_line(pid).startswith(title) and local_stack.process_alive(pid, None):
            return pid
    return None


def parent_pid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def quiet_model_config(folder: Path) -> Path:
    """The production topology test's small model config, with every DAG paused at creation: the faults
    need only ingestion and training, which the fixture unpauses; the prediction, drift and deployment
    runs that each batch would otherwise start only slow the faults down on CI's 2 cores."""
    path = small_model_config(folder)
    raw = yaml.safe_load(path.read_text())
    raw["paused_on_start"] = True
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@contextmanager
def running_stack(name: str, folder: Path) -> Iterator[RunningStack]:
    """Topology `name` ("celery" or "local") started in `folder`, healthy; every process stopped and
    everything it owns removed afterwards, whatever happened."""
    with owned_resources("mlops_chaos") if name == "celery" else nullcontext() as owned:
        quiet_model_config(folder / "models")
        stack = RunningStack(name, None, owned=owned)
        feature_store = {"MLOPS_FEAST_REDIS": owned.feast_redis_setting} if owned else {}
        with started_stack(stack_config(folder, owned), stack.started, FAULT_SETTINGS | feature_store) as topology:
            stack.topology = topology
            yield stack


_SHARED: dict[str, object] = {}


def shared_production_stack(tmp_path_factory: pytest.TempPathFactory) -> RunningStack:
    """The `celery` stack shared by the production topology test and the Celery faults, started in a new
    temporary folder by the first caller; later callers get the same running stack."""
    if "stack" not in _SHARED:
        owner = ExitStack()
        try:
            _SHARED["stack"] = owner.enter_context(running_stack("celery", tmp_path_factory.mktemp("chaos-celery")))
        except BaseException:
            owner.close()
            raise
        _SHARED["owner"] = owner
    return _SHARED["stack"]


def stop_shared_production_stack() -> None:
    """Stop the shared stack, if one runs: every process stopped, its databases dropped, its keys deleted."""
    owner = _SHARED.pop("owner", None)
    _SHARED.pop("stack", None)
    if owner is not None:
        owner.close()
