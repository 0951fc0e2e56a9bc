"""Latency and throughput of the prediction service against MLflow's scoring server and raw pyfunc.

    .venv/bin/python bench/bench_serving.py [--rate 100] [--seconds 10] [--batch-sizes 1 100]
                                            [--estimator logistic|hgb] [--online-features]

In a private temporary state folder it trains a tiny scikit-learn pipeline on the demo schema,
registers it as `credit_default` version 1 with the alias `champion`, then for each batch size:

  (a) our service: `uvicorn include.delivery.serving:app` (validation, scoring, prediction log),
  (b) `mlflow models serve -m models:/credit_default@champion --env-manager local`,
  (c) the same model's pyfunc `predict` in this process, on a DataFrame built from the records,

(a) and (b) get an open-loop load of `--rate` requests/s for `--seconds` over keep-alive loopback
connections (a few client threads, so one slow answer does not delay the next request), then a
closed-loop burst of `--burst-seconds` with `--burst-threads` threads for the maximum throughput.
The two servers take turns in one-second slices, so that whatever else the machine is doing
weighs on both alike.
Latency is from sending a request to reading its answer; `CPU/req` is the CPU time the server's
processes used per request, which other load on the machine disturbs much less than latency.
Both servers run one uvicorn worker and score probabilities (the model is logged with
`pyfunc_predict_fn="predict_proba"` for MLflow).

With `--online-features` the bench's copy of the demo config says `feature_store: feast`: one day of
the demo world is written as a curated batch and materialized into the Feast online store (SQLite,
or Redis when `MLOPS_FEAST_REDIS` is set, e.g. `127.0.0.1:6379,db=15`), and a last round compares, on
our service alone and taking turns, single-record requests that send every feature of those
applications with requests that send only their `application_id` (the service reads the features
from the online store): the lookup's cost is the difference at p50 (target: at most +5 ms).

Everything listens on 127.0.0.1 only; the servers it starts are stopped at the end, and the state
folder removed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from include.core.config import ModelConfig, load_model_config  # noqa: E402

MODEL = "credit_default"
DEMO_CONFIG = PROJECT_ROOT / "include" / "models" / f"{MODEL}.yaml"
VENV_BIN = Path(sys.executable).parent


@dataclass
class Figures:
    """What one load run measured."""

    target: str
    rows: int
    latencies_ms: np.ndarray
    seconds: float
    errors: int
    max_lag_ms: float = 0.0
    cpu_seconds: float = 0.0

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.target, self.rows, np.concatenate([self.latencies_ms, other.latencies_ms]),
            self.seconds + other.seconds, self.errors + other.errors, max(self.max_lag_ms, other.max_lag_ms),
            self.cpu_seconds + other.cpu_seconds,
        )

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / max(len(self.latencies_ms), 1)

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")

    def line(self) -> str:
        return (f"{self.target:<18} rows={self.rows:<4} n={len(self.latencies_ms):<5} "
                f"p50={self.p(50):7.2f} ms  p99={self.p(99):7.2f} ms  max={self.p(100):7.2f} ms  "
                f"{self.throughput:7.1f} req/s  {self.throughput * self.rows:8.0f} rows/s  "
                f"CPU/req={self.cpu_ms_per_request:6.2f} ms  errors={self.errors}  "
                f"max_send_lag={self.max_lag_ms:.1f} ms")


# --- the world -----------------------------------------------------------------------------------


def applications(config: ModelConfig, rows: int, seed: int) -> list[dict[str, Any]]:
    """Valid request records of the demo schema (features and entity id)."""
    rng = np.random.default_rng(seed)
    columns = config.schema.columns
    records = [{"application_id": f"bench-{seed}-{i}"} for i in range(rows)]
    for name in config.features.all:
        column = columns[name]
        if column.allowed:
            values = rng.choice(column.allowed, rows).tolist()
        else:
            high = column.max / 10 if column.max > 1000 else column.max
            values = rng.uniform(column.min, high, rows)
            values = values.round().astype(int).tolist() if column.type == "integer" else values.tolist()
        for record, value in zip(records, values, strict=True):
            record[name] = value
    return records


def register_champion(config: ModelConfig, state: Path, estimator: str) -> None:
    """Train the tiny pipeline and register it as the next version of `credit_default`, alias `champion`.

    `estimator` is "logistic" (a LogisticRegression) or "hgb" (the demo config's
    HistGradientBoostingClassifier, which predicts with OpenMP threads).
    """
    import mlflow
    import pandas as pd
    import skops.io
    from mlflow import MlflowClient
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.DataFrame(applications(config, 500, seed=1))
    target = (frame["credit_score"] < 500).astype(int)
    pipeline = make_pipeline(
        make_column_transformer(
            (make_pipeline(SimpleImputer(), StandardScaler()), config.features.numeric),
            (OneHotEncoder(handle_unknown="ignore"), config.features.categorical),
        ),
        LogisticRegression() if estimator == "logistic"
        else HistGradientBoostingClassifier(**config.training.estimator.params),
    ).fit(frame[config.features.all], target)
    client = MlflowClient()
    existing = client.get_experiment_by_name("bench")
    experiment = existing.experiment_id if existing else client.create_experiment(
        "bench", artifact_location=(state / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            pipeline, name="model", registered_model_name=MODEL, pip_requirements=["scikit-learn"],
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)),
        )
    client.set_registered_model_alias(MODEL, "champion", info.registered_model_version)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(command: list[str], ready_url: str, ready: Callable[[httpx.Response], bool], log: Path):
    """Start a server process, wait until `ready` holds for `ready_url`, stop it on exit."""
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                tail = "\n".join(log.read_text().splitlines()[-15:])
                raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{tail}")
            try:
                if ready(httpx.get(ready_url, timeout=2)):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command)} was not ready within 180 s")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- load ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A server under test: where to send requests, what to send, and its process group."""

    name: str
    url: str
    bodies: list[dict]
    rows: int
    process_group: int

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process of the server's group (a load-independent cost)."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.process_group:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")


def open_loop(target: Target, rate: float, seconds: float, threads: int = 4) -> Figures:
    """Send `rate` requests/s for `seconds`, each at its scheduled time, from `threads` threads."""
    url, bodies = target.url, target.bodies
    total = int(rate * seconds)
    latencies = np.full(total, np.nan)
    lags = np.zeros(total)
    errors = [0] * threads
    start = time.perf_counter() + 0.05

    def send(lane: int) -> None:
        with httpx.Client(timeout=10) as client:
            for i in range(lane, total, threads):
                scheduled = start + i / rate
                pause = scheduled - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                sent = time.perf_counter()
                lags[i] = sent - scheduled
                response = client.post(url, json=bodies[i % len(bodies)])
                latencies[i] = time.perf_counter() - sent
                if response.status_code != 200:
                    errors[lane] += 1

    cpu = target.cpu_seconds()
    run(send, threads)
    elapsed = time.perf_counter() - start
    done = latencies[~np.isnan(latencies)] * 1000
    return Figures(target.name, target.rows, done, elapsed, sum(errors), float(lags.max() * 1000),
                   target.cpu_seconds() - cpu)


def closed_loop(target: Target, seconds: float, threads: int) -> Figures:
    """As many requests as `threads` threads can send back to back for `seconds`."""
    url, bodies = target.url, target.bodies
    results: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    start = time.perf_counter()
    stop = start + seconds

    def send(lane: int) -> None:
        with httpx.Client(timeout=10) as client:
            i = lane
            while time.perf_counter() < stop:
                sent = time.perf_counter()
                response = client.post(url, json=bodies[i % len(bodies)])
                results[lane].append(time.perf_counter() - sent)
                errors[lane] += response.status_code != 200
                i += threads

    cpu = target.cpu_seconds()
    run(send, threads)
    elapsed = time.perf_counter() - start
    done = np.array([latency for lane in results for latency in lane]) * 1000
    return Figures(f"{target.name} (burst)", target.rows, done, elapsed, sum(errors), 0.0,
                   target.cpu_seconds() - cpu)


def taking_turns(first: Callable[[], Figures], second: Callable[[], Figures], turns: int) -> tuple[Figures, Figures]:
    """Alternate two one-second runs `turns` times; the summed figures of each."""
    results = [(first(), second()) for _ in range(turns)]
    return sum((a for a, _ in results[1:]), results[0][0]), sum((b for _, b in results[1:]), results[0][1])


def run(send: Callable[[int], None], threads: int) -> None:
    workers = [threading.Thread(target=send, args=(lane,)) for lane in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def in_process(model: Any, config: ModelConfig, batches: list[list[dict]], rows: int, seconds: float) -> Figures:
    """The pyfunc model's predict on a DataFrame of the records, back to back, for `seconds`."""
    import pandas as pd

    features = config.features.all
    latencies = []
    cpu = time.process_time()
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        began = time.perf_counter()
        model.predict(pd.DataFrame.from_records(batches[i % len(batches)], columns=features))
        latencies.append(time.perf_counter() - began)
        i += 1
    return Figures("raw pyfunc", rows, np.array(latencies) * 1000, time.perf_counter() - start, 0, 0.0,
                   time.process_time() - cpu)


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second (open loop)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each open-loop run")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--burst-seconds", type=float, default=3.0)
    parser.add_argument("--burst-threads", type=int, default=4)
    parser.add_argument("--estimator", choices=["logistic", "hgb"], default="logistic",
                        help="the pipeline's last step: LogisticRegression, or the demo's gradient boosting")
    parser.add_argument("--online-features", action="store_true",
                        help="also compare requests that send every feature with ones the online store completes")
    args = parser.parse_args()
    if not (0 < args.rate <= 1000 and 0 < args.seconds <= 120 and 0 < args.burst_seconds <= 60):
        parser.error("keep the load bounded: rate <= 1000, seconds <= 120, burst-seconds <= 60")

    config = load_model_config(DEMO_CONFIG)
    state = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    (state / "models").mkdir()
    shutil.copy(DEMO_CONFIG, state / "models" / DEMO_CONFIG.name)
    if args.online_features:
        config = with_feature_store(config, state / "models" / DEMO_CONFIG.name)
    os.environ.update({
        "MLOPS_STATE_DIR": str(state),
        "MLOPS_MODELS_DIR": str(state / "models"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}",
        "MLOPS_SERVING_ADMIN_TOKEN": "bench",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    for name in ("MLOPS_DATA_DIR", "MLOPS_REPORTS_DIR"):
        os.environ.pop(name, None)
    print(f"state folder {state}; {args.estimator} model; load {args.rate:g} req/s for {args.seconds:g} s per run; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    started = time.monotonic()
    try:
        register_champion(config, state, args.estimator)
        stored = materialized_applications(config) if args.online_features else None
        ours_port, mlflow_port = free_port(), free_port()
        figures: list[Figures] = []
        with ExitStack() as stack:
            ours = stack.enter_context(server(
                [str(VENV_BIN / "uvicorn"), "include.delivery.serving:app", "--host", "127.0.0.1",
                 "--port", str(ours_port)],
                f"http://127.0.0.1:{ours_port}/health",
                lambda r: r.status_code == 200 and r.json()["models"][MODEL]["ready"],
                state / "ours.log",
            ))
            theirs = stack.enter_context(server(
                [str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion",
                 "--env-manager", "local", "--host", "127.0.0.1", "--port", str(mlflow_port)],
                f"http://127.0.0.1:{mlflow_port}/ping",
                lambda r: r.status_code == 200,
                state / "mlflow.log",
            ))
            import mlflow

            pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
            for rows in args.batch_sizes:
                round_figures = measure(rows, config, pyfunc, (ours, ours_port), (theirs, mlflow_port), args)
                report(rows, round_figures)
                figures.extend(round_figures)
            if stored is not None:
                lookup_figures = measure_lookup(config, stored, (ours, ours_port), args)
                report_lookup(lookup_figures)
                figures.extend(lookup_figures)
        logged = logged_predictions(config)
        sent = sum(len(f.latencies_ms) * f.rows for f in figures if f.target.startswith("ours"))
        print(f"\nprediction log after a clean shutdown: {logged} rows (>= {sent} sent in measured runs, "
              "plus warm-up)")
        print(f"total time {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(state, ignore_errors=True)


def measure(
    rows: int, config: ModelConfig, pyfunc: Any, ours: tuple[subprocess.Popen, int],
    theirs: tuple[subprocess.Popen, int], args: argparse.Namespace,
) -> list[Figures]:
    """Ours, MLflow's server (taking turns), raw pyfunc, and both servers' bursts, for `rows`-row requests."""
    features = config.features.all
    batches = [applications(config, rows, seed=seed) for seed in range(20)]
    our_target = Target(
        "ours", f"http://127.0.0.1:{ours[1]}/models/{MODEL}/predict",
        [{"records": batch} for batch in batches], rows, ours[0].pid,
    )
    their_target = Target(
        "mlflow serve", f"http://127.0.0.1:{theirs[1]}/invocations",
        [{"dataframe_records": [{k: r[k] for k in features} for r in batch]} for batch in batches],
        rows, theirs[0].pid,
    )
    for target in (our_target, their_target):
        closed_loop(target, 1.0, 1)
    in_process(pyfunc, config, batches, rows, 0.5)
    ours_open, theirs_open = taking_turns(
        lambda: open_loop(our_target, args.rate, 1.0),
        lambda: open_loop(their_target, args.rate, 1.0),
        math.ceil(args.seconds),
    )
    ours_burst, theirs_burst = taking_turns(
        lambda: closed_loop(our_target, 1.0, args.burst_threads),
        lambda: closed_loop(their_target, 1.0, args.burst_threads),
        math.ceil(args.burst_seconds),
    )
    raw = in_process(pyfunc, config, batches, rows, min(args.seconds, 5.0))
    return [ours_open, theirs_open, raw, ours_burst, theirs_burst]


def with_feature_store(config: ModelConfig, path: Path) -> ModelConfig:
    """Turn the feature store on in the bench's copy of the demo config (`path`); the config."""
    import yaml

    raw = yaml.safe_load(path.read_text())
    raw["feature_store"] = "feast"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_model_config(path)


def materialized_applications(config: ModelConfig, rows: int = 200) -> list[dict[str, Any]]:
    """One day of the demo world written as a curated batch and materialized into the online store
    (Feast imported here, in the bench's process); its records with every feature, as a caller sends them."""
    import pandas as pd

    from include.core import storage
    from include.demo import data_world
    from include.features import feature_store

    day = config.source.start_date
    batch = data_world.applications_for_day(data_world.with_rows_per_day(config, rows), day)
    storage.write_curated_batch(config.name, day, batch[list(config.schema.columns)])
    started = time.perf_counter()
    feature_store.materialize_day(config, day)
    print(f"materialized {rows} applications of {day} into the {feature_store.online_store_kind()} online store "
          f"in {time.perf_counter() - started:.1f} s")
    records = batch[[config.schema.entity_column, *config.features.all]].to_dict("records")
    return [{name: None if pd.isna(value) else value for name, value in record.items()} for record in records]


def in_process_lookups(config: ModelConfig, stored: list[dict[str, Any]], seconds: float) -> Figures:
    """The service's own lookup (`OnlineFeatures.read` of one entity) in this process, back to back:
    the part of the difference that is the online store, without HTTP and scheduling noise."""
    from include.features.online_features import OnlineFeatures

    online = OnlineFeatures.open(config)
    entity = config.schema.entity_column
    latencies = []
    cpu = time.process_time()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        began = time.perf_counter()
        online.read([stored[len(latencies) % len(stored)][entity]])
        latencies.append(time.perf_counter() - began)
    return Figures("lookup in process", 1, np.array(latencies) * 1000, time.perf_counter() - start, 0, 0.0,
                   time.process_time() - cpu)


def measure_lookup(
    config: ModelConfig, stored: list[dict[str, Any]], ours: tuple[subprocess.Popen, int], args: argparse.Namespace
) -> list[Figures]:
    """Single-record requests to our service, taking turns: every feature sent, then only the entity id;
    and the lookup alone, in this process."""
    url = f"http://127.0.0.1:{ours[1]}/models/{MODEL}/predict"
    entity = next(iter(stored[0]))
    sent = Target("ours, all sent", url, [{"records": [record]} for record in stored], 1, ours[0].pid)
    looked_up = Target("ours, looked up", url, [{"records": [{entity: record[entity]}]} for record in stored], 1,
                       ours[0].pid)
    for target in (sent, looked_up):
        closed_loop(target, 1.0, 1)
    figures = taking_turns(
        lambda: open_loop(sent, args.rate, 1.0), lambda: open_loop(looked_up, args.rate, 1.0), math.ceil(args.seconds)
    )
    return [*figures, in_process_lookups(config, stored, min(args.seconds, 5.0))]


def report_lookup(figures: list[Figures]) -> None:
    sent, looked_up, alone = figures
    print("\n== 1-row requests: every feature sent vs only the entity id (features from the online store) ==")
    for figure in figures:
        print(figure.line())
    print(f"lookup cost: p50 {looked_up.p(50) - sent.p(50):+.2f} ms (target <= +5 ms)  "
          f"p99 {looked_up.p(99) - sent.p(99):+.2f} ms  "
          f"server CPU per request {looked_up.cpu_ms_per_request - sent.cpu_ms_per_request:+.2f} ms   "
          f"the lookup alone: p50 {alone.p(50):.2f} ms")


def report(rows: int, figures: list[Figures]) -> None:
    ours, theirs, raw, ours_burst, theirs_burst = figures
    print(f"\n== {rows}-row requests ==")
    for figure in figures:
        print(figure.line())
    print(f"ratios p50: ours/mlflow {ours.p(50) / theirs.p(50):.2f}  ours/raw {ours.p(50) / raw.p(50):.2f}   "
          f"p99: ours/mlflow {ours.p(99) / theirs.p(99):.2f}  ours/raw {ours.p(99) / raw.p(99):.2f}   "
          f"max throughput ours/mlflow {ours_burst.throughput / theirs_burst.throughput:.2f}   "
          f"server CPU per request ours/mlflow {ours.cpu_ms_per_request / theirs.cpu_ms_per_request:.2f}")


def logged_predictions(config: ModelConfig) -> int:
    from include.delivery.prediction_log import read_prediction_log

    today = dt.datetime.now(dt.UTC).date()
    return len(read_prediction_log(config.name, today - dt.timedelta(days=1), today))


if __name__ == "__main__":
    main()
