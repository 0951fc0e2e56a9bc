"""A soak of the prediction service while the champion alias moves: errors, lost predictions, p99.

One uvicorn worker of our service (`include.delivery.serving:app`) serves `credit_default`, whose
`@champion` is moved twice during the soak (v1 → v2 → v3, the deployment's way: alias, then the admin
reload). Open-loop load for `--seconds` (default 60):

- `--rate` single-record requests a second (default 200), and
- `--batch-rate` requests of `--batch-size` records a second (default 10 of 100),

each request at its scheduled time, with its own `X-Request-ID`. Afterwards the service is stopped
with SIGTERM (as Docker does) and the prediction log is read back: every record of every answered
request must be there, once, with the version that answered it.

Baseline in the same run: the same load for the same time with the alias left alone; the report gives
the p99 of each stream in both runs and their ratio (what the two moves cost callers).

Run: `.venv/bin/python bench/bench_soak.py` (about 3 minutes; `--seconds 20` for a quick look).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

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

ADMIN_TOKEN = "bench-soak"


@dataclass
class Stream:
    """One open-loop stream: what it sent, what came back."""

    name: str
    rows: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answered: dict[str, str] = field(default_factory=dict)  # request id -> version that answered

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def open_loop(url: str, stream: Stream, bodies: list[dict], rate: float, seconds: float, tag: str,
              threads: int) -> None:
    """Send `rate` requests/s for `seconds`; latency from each request's scheduled time to its answer."""
    total = int(rate * seconds)
    lock = threading.Lock()
    start = time.perf_counter() + 0.1

    def send(lane: int) -> None:
        with httpx.Client(timeout=30) as client:
            for i in range(lane, total, threads):
                due = start + i / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                request_id = f"{tag}-{stream.name}-{i}"
                try:
                    response = client.post(url, json=bodies[i % len(bodies)], headers={"X-Request-ID": request_id})
                    problem = None if response.status_code == 200 else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - due) * 1000
                with lock:
                    if problem:
                        stream.errors.append(problem)
                    else:
                        stream.latencies_ms.append(elapsed)
                        stream.answered[request_id] = response.json()["version"]

    workers = [threading.Thread(target=send, args=(lane,)) for lane in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def move_champion(base_url: str, version: str) -> float:
    """Point `@champion` at `version` and have the service reload; seconds until it serves it."""
    from mlflow import MlflowClient

    from include.delivery import service_checks

    started = time.perf_counter()
    MlflowClient().set_registered_model_alias(MODEL, "champion", version)
    service_checks.request_reload(base_url, MODEL, ADMIN_TOKEN)
    service_checks.wait_until_serving(base_url, MODEL, version, admin_token=ADMIN_TOKEN, timeout=60)
    return time.perf_counter() - started


def soak(base_url: str, args: argparse.Namespace, tag: str, moves: list[str]) -> tuple[Stream, Stream, list[str]]:
    """The two streams for `args.seconds`, moving the champion to each of `moves` at even intervals."""
    from include.core.config import load_model_config

    config = load_model_config(DEMO_CONFIG)
    singles = [{"records": [record]} for record in applications(config, 500, seed=7)]
    batches = [{"records": applications(config, args.batch_size, seed=100 + i)} for i in range(20)]
    single, batch = Stream("single", 1), Stream("batch", args.batch_size)
    url = f"{base_url}/models/{MODEL}/predict"
    loads = [
        threading.Thread(target=open_loop, args=(url, single, singles, args.rate, args.seconds, tag, 8)),
        threading.Thread(target=open_loop, args=(url, batch, batches, args.batch_rate, args.seconds, tag, 2)),
    ]
    for load in loads:
        load.start()
    notes = []
    for index, version in enumerate(moves, start=1):
        time.sleep(args.seconds * index / (len(moves) + 1) - (args.seconds * (index - 1) / (len(moves) + 1)))
        notes.append(f"@champion -> v{version}: served after {move_champion(base_url, version):.2f} s")
    for load in loads:
        load.join()
    return single, batch, notes


def logged(tag: str) -> dict[tuple[str, int], str]:
    """(request id, index) -> version, for every logged prediction of this run's requests."""
    import datetime as dt

    from include.delivery.prediction_log import read_prediction_log

    today = dt.datetime.now(dt.UTC).date()
    frame = read_prediction_log(MODEL, today - dt.timedelta(days=1), today)
    frame = frame[frame["request_id"].str.startswith(f"{tag}-")]
    duplicated = int(frame.duplicated(["request_id", "index"]).sum())
    if duplicated:
        print(f"  {duplicated} predictions were logged more than once")
    return {(row.request_id, int(row.index)): str(row.version) for row in frame.itertuples()}


def missing_from_log(streams: list[Stream], log: dict[tuple[str, int], str]) -> tuple[int, int, int]:
    """(records answered, records missing from the log, records logged with another version)."""
    answered = missing = other_version = 0
    for stream in streams:
        for request_id, version in stream.answered.items():
            for index in range(stream.rows):
                answered += 1
                found = log.get((request_id, index))
                missing += found is None
                other_version += found is not None and found != version
    return answered, missing, other_version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=200.0, help="single-record requests per second")
    parser.add_argument("--batch-rate", type=float, default=10.0, help="batch requests per second")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    if not (0 < args.seconds <= 600 and 0 < args.rate <= 1000 and 0 < args.batch_rate <= 100
            and 0 < args.batch_size <= 1000):
        parser.error("keep the load bounded: seconds <= 600, rate <= 1000, batch-rate <= 100, batch-size <= 1000")

    from include.core.config import load_model_config

    config = load_model_config(DEMO_CONFIG)
    state = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    (state / "models").mkdir()
    shutil.copy(DEMO_CONFIG, state / "models" / DEMO_CONFIG.name)
    os.environ.update({
        "MLOPS_STATE_DIR": str(state), "MLOPS_MODELS_DIR": str(state / "models"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}", "MLOPS_SERVING_ADMIN_TOKEN": ADMIN_TOKEN,
        "MLFLOW_DISABLE_TELEMETRY": "true", "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    for name in ("MLOPS_DATA_DIR", "MLOPS_REPORTS_DIR"):
        os.environ.pop(name, None)
    print(f"state folder {state}; {args.rate:g} single-record req/s + {args.batch_rate:g} req/s of "
          f"{args.batch_size} records, {args.seconds:g} s per run; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}")
    try:
        for _ in range(3):  # v1, v2, v3 of the same pipeline; v1 is @champion
            register_champion(config, state, "hgb")
        from mlflow import MlflowClient

        MlflowClient().set_registered_model_alias(MODEL, "champion", "1")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        with server([str(VENV_BIN / "uvicorn"), "include.delivery.serving:app", "--host", "127.0.0.1",
                     "--port", str(port)], f"{base_url}/health",
                    lambda r: r.status_code == 200 and r.json()["models"][MODEL]["ready"],
                    state / "service.log") as process:
            baseline = soak(base_url, args, "still", [])
            moving = soak(base_url, args, "moving", ["2", "3"])
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        for tag, (single, batch, notes) in (("alias left alone", baseline), ("alias moved twice", moving)):
            run_tag = "still" if tag.startswith("alias left") else "moving"
            answered, missing, other = missing_from_log([single, batch], logged(run_tag))
            print(f"\n== {tag} ==")
            for note in notes:
                print(f"  {note}")
            for stream in (single, batch):
                versions = sorted(set(stream.answered.values()))
                print(f"  {stream.name:<6} {len(stream.answered):>6} answered, {len(stream.errors)} errors"
                      f"{' (first: ' + stream.errors[0] + ')' if stream.errors else ''}; p50 {stream.p(50):.1f} ms, "
                      f"p99 {stream.p(99):.1f} ms; versions {', '.join(versions)}")
            print(f"  prediction log after SIGTERM: {answered} records answered, {missing} missing, "
                  f"{other} logged with another version than the one that answered")
        (still_single, still_batch, _), (moving_single, moving_batch, _) = baseline, moving
        print(f"\np99 moving / still: single {moving_single.p(99) / still_single.p(99):.2f}, "
              f"batch {moving_batch.p(99) / still_batch.p(99):.2f}")
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
