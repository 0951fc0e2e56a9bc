"""The prediction log's durability contract, measured: what SIGTERM, SIGKILL and a full disk cost.

One uvicorn worker of our service (`include.delivery.serving:app`, the log flushed every second as
shipped) takes `--rate` single-record requests a second (default 100), each with its own
`X-Request-ID`. Then:

1. SIGTERM (as Docker stops a container): every answered prediction must be in the log.
2. SIGKILL mid-load: the log may miss at most what one flush interval buffers (rate x 1 s rows);
   the figure is the rows answered but missing.
3. A full disk: the prediction log's folder on a 64 kB tmpfs (needs root to mount; skipped, saying
   so, otherwise). The service must keep answering, `/health` must say `degraded` with the reason,
   and no partial row may be read back.

Baseline in the same run: the answered rows of each phase, so each loss is a share of what was sent.

Run: `.venv/bin/python bench/bench_durability.py` (about a minute, as root for phase 3).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serving import (  # noqa: E402  (bench/ is not a package)
    DEMO_CONFIG,
    MODEL,
    VENV_BIN,
    applications,
    free_port,
    register_champion,
    server,
)
from bench_soak import Stream, open_loop  # noqa: E402

FLUSH_SECONDS = 1.0  # the service's default (`create_app(log_flush_seconds=1.0)`)


def logged_ids(data_dir: Path, tag: str) -> set[str]:
    """Request ids of this phase found in the prediction log under `data_dir`."""
    from include.delivery.prediction_log import read_prediction_log

    os.environ["MLOPS_DATA_DIR"] = str(data_dir)
    today = dt.datetime.now(dt.UTC).date()
    frame = read_prediction_log(MODEL, today - dt.timedelta(days=1), today)
    return set(frame.loc[frame["request_id"].str.startswith(f"{tag}-"), "request_id"])


def start_service(port: int, data_dir: Path, log: Path):
    """The service as a subprocess writing its prediction log under `data_dir` (a context manager)."""
    os.environ["MLOPS_DATA_DIR"] = str(data_dir)
    return server([str(VENV_BIN / "uvicorn"), "include.delivery.serving:app", "--host", "127.0.0.1",
                   "--port", str(port)], f"http://127.0.0.1:{port}/health",
                  lambda r: r.status_code == 200 and r.json()["models"][MODEL]["ready"], log)


def load_then_signal(base_url: str, process: subprocess.Popen, signum: int, tag: str, rate: float,
                     seconds: float, bodies: list[dict]) -> Stream:
    """Load for `seconds`, send `signum` to the service while requests are still coming, wait for it to exit."""
    stream = Stream(tag, 1)
    load = threading.Thread(target=open_loop, args=(f"{base_url}/models/{MODEL}/predict", stream, bodies,
                                                     rate, seconds + 2, tag, 4))
    load.start()
    time.sleep(seconds)
    os.killpg(process.pid, signum)
    process.wait(timeout=30)
    load.join()
    return stream


def phase_signal(name: str, signum: int, args: argparse.Namespace, state: Path, bodies: list[dict]) -> None:
    port, data_dir = free_port(), state / f"data-{name}"
    with start_service(port, data_dir, state / f"{name}.log") as process:
        stream = load_then_signal(f"http://127.0.0.1:{port}", process, signum, name, args.rate, args.seconds,
                                  bodies)
    answered = set(stream.answered)
    missing = answered - logged_ids(data_dir, name)
    budget = "0" if signum == signal.SIGTERM else f"{args.rate * FLUSH_SECONDS:g} (one flush interval)"
    print(f"{name:<8} {len(answered):>5} predictions answered, {len(missing):>4} missing from the log "
          f"({100 * len(missing) / max(len(answered), 1):.1f} %); contract: at most {budget}")


def log_lines(data_dir: Path) -> tuple[int, int]:
    """(lines in the prediction log files under `data_dir`, lines that are not complete JSON)."""
    import json

    lines = partial = 0
    for path in data_dir.rglob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            lines += 1
            try:
                json.loads(line)
            except ValueError:
                partial += 1
    return lines, partial


def phase_full_disk(args: argparse.Namespace, state: Path, bodies: list[dict]) -> None:
    data_dir = state / "data-full"
    data_dir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(data_dir)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        print(f"disk full: skipped, a tmpfs could not be mounted ({mounted.stderr.strip() or 'not root'})")
        return
    try:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        with start_service(port, data_dir, state / "full.log"):
            stream = Stream("full", 1)
            open_loop(f"{base_url}/models/{MODEL}/predict", stream, bodies, args.rate, args.seconds, "full", 4)
            time.sleep(2 * FLUSH_SECONDS)
            health = httpx.get(f"{base_url}/health", timeout=10).json()
            still = httpx.post(f"{base_url}/models/{MODEL}/predict", json=bodies[0], timeout=10).status_code
        logged = logged_ids(data_dir, "full")
        lines, partial = log_lines(data_dir)
        print(f"disk full {len(stream.answered):>5} answered, {len(stream.errors)} errors, a request after it "
              f"filled: {still}; /health: {health['status']} ({'; '.join(health.get('problems', []))[:160]}); "
              f"{len(logged)} rows read back from {lines} lines, {partial} of them partial")
    finally:
        subprocess.run(["umount", str(data_dir)], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="single-record requests per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="load before each signal")
    args = parser.parse_args()
    if not (0 < args.rate <= 500 and 0 < args.seconds <= 60):
        parser.error("keep the load bounded: rate <= 500, seconds <= 60")

    from include.core.config import load_model_config

    config = load_model_config(DEMO_CONFIG)
    state = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    (state / "models").mkdir()
    shutil.copy(DEMO_CONFIG, state / "models" / DEMO_CONFIG.name)
    os.environ.update({
        "MLOPS_STATE_DIR": str(state), "MLOPS_MODELS_DIR": str(state / "models"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    print(f"state folder {state}; {args.rate:g} single-record req/s for {args.seconds:g} s before each signal; "
          f"log flushed every {FLUSH_SECONDS:g} s; load average {os.getloadavg()[0]:.2f}")
    try:
        register_champion(config, state, "hgb")
        bodies = [{"records": [record]} for record in applications(config, 500, seed=11)]
        phase_signal("sigterm", signal.SIGTERM, args, state, bodies)
        phase_signal("sigkill", signal.SIGKILL, args, state, bodies)
        phase_full_disk(args, state, bodies)
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
