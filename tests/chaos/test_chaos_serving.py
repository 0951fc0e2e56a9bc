"""Faults in the prediction service: SIGKILL under load and a restart; the prediction log's disk fills up.

The service runs as it ships (`uvicorn include.delivery.serving:app`, the prediction log flushed every
second) on a champion in a real MLflow store, and takes an open-loop load of single-record requests,
each with its own request id. The load, the service process and the log reading are
bench/bench_durability.py's, which measures the same contract with more load.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from include.core.config import load_model_config
from tests.ct_world import ready_mlflow

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_durability import FLUSH_SECONDS, load_then_signal, log_lines, logged_ids, start_service  # noqa: E402
from bench_serving import MODEL, applications, free_port, register_champion  # noqa: E402
from bench_soak import Stream, open_loop  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(600)]
TOPOLOGY = "prediction service"
RATE = 100  # single-record requests a second
CONTRACT_ROWS = int(RATE * FLUSH_SECONDS)  # what a SIGKILL may lose: one flush interval


@pytest.fixture
def bodies(state_dir, monkeypatch) -> list[dict]:
    """A champion in the test's MLflow store, and single-record request bodies for it."""
    ready_mlflow(state_dir)
    config = load_model_config(state_dir.parent / "models" / f"{MODEL}.yaml")
    register_champion(config, state_dir, "logistic")
    monkeypatch.setenv("MLOPS_DATA_DIR", str(state_dir / "data"))  # start_service sets it; undone afterwards
    return [{"records": [record]} for record in applications(config, 500, seed=11)]


def served_version(base_url: str) -> str:
    return httpx.get(f"{base_url}/models/{MODEL}", timeout=10).json()["version"]


def test_sigkill_under_load_loses_at_most_one_flush_interval_and_restarts_on_the_same_champion(
    state_dir, bodies, chaos_table
):
    data_dir, port = state_dir / "data", free_port()
    base_url = f"http://127.0.0.1:{port}"
    with start_service(port, data_dir, state_dir / "serving-1.log") as process:
        before = served_version(base_url)
        stream = load_then_signal(base_url, process, signal.SIGKILL, "kill", RATE, 4, bodies)
    restarted = time.monotonic()
    with start_service(port, data_dir, state_dir / "serving-2.log"):
        back_in = time.monotonic() - restarted
        after = served_version(base_url)
        again = httpx.post(f"{base_url}/models/{MODEL}/predict", json=bodies[0], timeout=10)

    answered = set(stream.answered)
    missing = answered - logged_ids(data_dir, "kill")
    assert len(answered) >= 20, f"the load ran before the kill: {len(answered)} answered, {stream.errors[:3]}"
    assert len(missing) <= CONTRACT_ROWS, f"{len(missing)} answered predictions are not in the log"
    assert after == before and again.status_code == 200
    chaos_table.add(fault=f"SIGKILL the prediction service under {RATE} req/s, then restart it", topology=TOPOLOGY,
                    runs=f"{len(answered)} predictions",
                    lost=f"{len(missing)} rows (contract: at most {CONTRACT_ROWS})",
                    outcome=f"back in {back_in:.0f} s on the same champion (version {after})")


def test_a_full_disk_under_the_prediction_log_keeps_the_service_answering_and_health_degraded(
    state_dir, bodies, chaos_table
):
    data_dir = state_dir / "data"
    data_dir.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(data_dir)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a 64 kB tmpfs could not be mounted (needs root): {mounted.stderr.strip()}")
    try:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        with start_service(port, data_dir, state_dir / "serving.log"):
            stream = Stream("full", 1)
            open_loop(f"{base_url}/models/{MODEL}/predict", stream, bodies, RATE, 4, "full", 4)
            time.sleep(2 * FLUSH_SECONDS)
            health = httpx.get(f"{base_url}/health", timeout=10).json()
            after = httpx.post(f"{base_url}/models/{MODEL}/predict", json=bodies[0], timeout=10)
        read_back = logged_ids(data_dir, "full")
        lines, partial = log_lines(data_dir)
    finally:
        subprocess.run(["umount", str(data_dir)], capture_output=True)

    assert stream.errors == [] and after.status_code == 200, stream.errors[:3]
    assert health["status"] == "degraded" and any("prediction log" in problem for problem in health["problems"])
    assert 0 < len(read_back) < len(stream.answered), "the disk filled up partway"
    assert partial == 0, "no partial row in the log"
    log = health["prediction_log"]
    chaos_table.add(fault="the prediction log's disk full (64 kB tmpfs)", topology=TOPOLOGY,
                    runs=f"{len(stream.answered)} predictions",
                    lost=f"{log['dropped_rows']} rows dropped; {log['pending_rows']} wait in memory for space",
                    outcome=f"every request answered; /health degraded; {len(read_back)} rows on disk, 0 partial")
