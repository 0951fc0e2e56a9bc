"""Verify a running deployment (the production topology, or the local stack) before trusting it.

    scripts/verify_release.py --airflow-url http://127.0.0.1:8080 --serving-url http://127.0.0.1:8000
    make verify-release AIRFLOW_URL=… SERVING_URL=…          (the same; CD runs it after each deploy)

For every model (`--model`, default: every valid config in the models folder) it checks, and prints
as PASS or FAIL with the figures:

1. DAGs: Airflow reports no DAG import error, and each of the model's DAGs (`<model>__<stage>`) exists.
2. Golden outputs: the prediction service answers the golden inputs of the version it serves (the
   champion) with the outputs recorded at training (`include.delivery.service_checks.smoke_test`).
3. Latency: a short open-loop load test (`service_checks.load_test`, by default the model config's
   `deployment.load_test_rate` and `load_test_seconds`) has no errors and a p99 within
   `serving.latency_budget_ms`.
4. Continuous training, only with `--with-training` (`make verify-release … WITH_TRAINING=1`):
   `<model>__continuous_training`, triggered through Airflow's REST API, runs to success. A
   candidate the gate rejects is a success too: the pipeline worked and kept the champion.

By default the script changes nothing where it points, so it is safe against production: checks 1-3
only read and send predictions (marked as service checks). The training check is opt-in because its
run may register a candidate that beats the champion and is delivered at once: the pipeline doing its
job, but a release check must not change production's model. CD runs it against staging only. A
training DAG that someone paused stays paused: the check is skipped and says so. The service is
checked before training, because a delivered candidate would change the champion under the check.

Credentials: AIRFLOW_USERNAME (default admin) and AIRFLOW_PASSWORD, else AIRFLOW_ADMIN_PASSWORD (the
name in .env), else the password the local stack generated (state/airflow/...passwords.json.generated).
The golden examples come from the MLflow registry at `--mlflow-url` (default MLFLOW_TRACKING_URI, else
the local stack's MLflow server, http://127.0.0.1:5000 unless MLFLOW_PORT says otherwise). An MLflow that
asks for a login (the production topology's basic-auth app) gets MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD, which MLflow's client reads itself; without them the golden-outputs check
fails with MLflow's 401.
Exit code: 0 when every check passed, 1 when one failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from include.core import settings  # noqa: E402  (needs the project root on sys.path, set just above)
from include.core.config import ModelConfig, discover_model_configs  # noqa: E402
from scripts.local_stack import ADMIN_USER, AirflowApi, StackConfig  # noqa: E402

# The STAGE of each file in dags/ (importing them would import Airflow); a model has one DAG per stage.
STAGES = (
    "data_ingestion",
    "continuous_training",
    "model_deployment",
    "batch_prediction",
    "drift_sensor",
    "model_rollback",
    "level0_manual_training",
    "history_import",
)
# Stages only a model that opts in has (`feature_store: feast`); verify-release does not check them yet.
OPT_IN_STAGES = ("feature_materialization",)
TRAINING_REASON = "release verification"
FINISHED = {"success", "failed"}
POLL_SECONDS = 5


class VerificationError(Exception):
    """A check could not be made at all (no credentials, no model config); the message says why."""


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict and the figures behind it, as printed."""

    name: str
    passed: bool | None  # None: skipped on request
    detail: str

    @property
    def label(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]

    def line(self) -> str:
        return f"{self.label}  {self.name}: {self.detail}"


@dataclass
class Report:
    """The checks made so far; the release is verified when at least one ran and none failed."""

    results: list[CheckResult] = field(default_factory=list)
    out: TextIO = field(default_factory=lambda: sys.stdout)  # the stdout of the moment, not of the import

    def add(self, result: CheckResult) -> CheckResult:
        self.results.append(result)
        print(result.line(), file=self.out, flush=True)
        return result

    @property
    def failed(self) -> list[CheckResult]:
        return [result for result in self.results if result.passed is False]

    @property
    def verified(self) -> bool:
        return not self.failed and any(result.passed for result in self.results)

    def summary(self) -> str:
        ran = [result for result in self.results if result.passed is not None]
        if self.verified:
            return f"Release verified: {len(ran)} check(s) passed."
        if not ran:
            return "Release NOT verified: no check ran."
        return f"Release NOT verified: {len(self.failed)} of {len(ran)} check(s) failed."

    def exit_code(self) -> int:
        return 0 if self.verified else 1


# --- arguments and credentials ----------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line; `--airflow-url` and `--serving-url` are required (exit 2 without them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--airflow-url", required=True, help="Base URL of the Airflow API server")
    parser.add_argument("--serving-url", required=True, help="Base URL of the prediction service")
    parser.add_argument("--mlflow-url", default=None,
                        help="MLflow tracking server holding the golden examples (default: $MLFLOW_TRACKING_URI, "
                             "else the local stack's MLflow server)")
    parser.add_argument("--model", action="append", dest="models", metavar="NAME",
                        help="A model to verify (repeatable); default: every valid config in the models folder")
    parser.add_argument("--with-training", action="store_true",
                        help="Also run the continuous-training pipeline, which may register and deliver a new "
                             "champion (for staging; the default changes nothing)")
    parser.add_argument("--training-timeout", type=positive_float, default=1800.0, metavar="SECONDS",
                        help="How long the training run may take (default: 1800)")
    parser.add_argument("--load-rate", type=positive_float, metavar="PER_SECOND",
                        help="Load test rate (default: the model config's deployment.load_test_rate)")
    parser.add_argument("--load-seconds", type=positive_float, metavar="SECONDS",
                        help="Load test duration (default: the model config's deployment.load_test_seconds)")
    args = parser.parse_args(argv)
    args.mlflow_url = args.mlflow_url or os.environ.get("MLFLOW_TRACKING_URI") or StackConfig.from_environ().mlflow_url
    for name in ("airflow_url", "serving_url"):
        url = getattr(args, name)
        if urllib.parse.urlparse(url).scheme not in ("http", "https"):
            parser.error(f"--{name.replace('_', '-')} must be an http(s) URL, got {url!r}")
        setattr(args, name, url.rstrip("/"))
    return args


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def airflow_credentials(environ: Mapping[str, str], passwords_file: Path) -> tuple[str, str]:
    """(user, password) for Airflow's API: AIRFLOW_USERNAME / AIRFLOW_PASSWORD, else AIRFLOW_ADMIN_PASSWORD,
    else the local stack's generated password for the user.

    Raises:
        VerificationError: no password anywhere.
    """
    user = environ.get("AIRFLOW_USERNAME") or ADMIN_USER
    password = environ.get("AIRFLOW_PASSWORD") or environ.get("AIRFLOW_ADMIN_PASSWORD")
    if password:
        return user, password
    try:
        generated = json.loads(passwords_file.read_text())
    except (OSError, ValueError):
        generated = {}
    if user in generated:
        return user, generated[user]
    raise VerificationError(
        f"no Airflow password: set AIRFLOW_PASSWORD (and AIRFLOW_USERNAME if not {ADMIN_USER!r}); "
        f"the local stack's generated file {passwords_file} has none for {user!r}"
    )


def models_to_verify(names: Iterable[str] | None, models_dir: Path) -> list[ModelConfig]:
    """The configs of the named models, or of every valid config in `models_dir`.

    Raises:
        VerificationError: a named model has no valid config, or there is no config at all.
    """
    found = discover_model_configs(models_dir)
    if not names:
        if not found.valid:
            raise VerificationError(f"no valid model config in {models_dir}: nothing to verify")
        return list(found.valid.values())
    missing = [name for name in names if name not in found.valid]
    if missing:
        valid = ", ".join(found.valid) or "none"
        raise VerificationError(f"no valid model config for {', '.join(missing)} in {models_dir} (valid: {valid})")
    return [found.valid[name] for name in names]


def expected_dag_ids(model: str) -> list[str]:
    return [f"{model}__{stage}" for stage in STAGES]


# --- the checks -------------------------------------------------------------------------------------


def check_dags(api: AirflowApi, models: Sequence[str]) -> CheckResult:
    """No DAG import errors, and every DAG of every model exists in Airflow."""
    try:
        errors = api.import_errors()
        present = {dag["dag_id"] for dag in api.dags()}
    except (OSError, ValueError, KeyError) as exc:
        return CheckResult("DAGs", False, f"Airflow's API did not answer: {describe_error(exc)}")
    missing = [dag_id for model in models for dag_id in expected_dag_ids(model) if dag_id not in present]
    problems = []
    if errors:
        files = ", ".join(sorted({error["filename"] for error in errors}))
        problems.append(f"{len(errors)} import error(s) in {files}")
    if missing:
        problems.append(f"missing DAG(s): {', '.join(missing)}")
    expected = len(models) * len(STAGES)
    if problems:
        return CheckResult("DAGs", False, "; ".join(problems))
    return CheckResult("DAGs", True, f"0 import errors; all {expected} DAGs of {', '.join(models)} present")


def golden_inputs(config: ModelConfig, serving_url: str) -> tuple[str, dict]:
    """(version, its golden examples) for the version the service serves now.

    Raises:
        service_checks.ServiceCheckFailed: the service is unreachable or serves no version.
        deployment.DeploymentRefused: the version has no golden examples.
    """
    from include.delivery import deployment, service_checks

    version = service_checks.served_version(serving_url, config.name)
    if version is None:
        raise service_checks.ServiceCheckFailed(
            f"the service serves no version of {config.name!r} (no @champion yet, or it failed to load)"
        )
    return version, deployment.golden_examples(config, version)


def check_golden_outputs(config: ModelConfig, serving_url: str, attempts: int = 3) -> tuple[CheckResult, dict | None]:
    """The service answers its version's golden inputs with the golden outputs.

    A deployment may swap the champion between reading the version and sending the request; the
    check then starts again with the new version (up to `attempts` times).

    Returns:
        (the result, the golden examples for the load test, or None when they could not be read).
    """
    from mlflow.exceptions import MlflowException

    from include.delivery import deployment, service_checks

    name = f"{config.name} golden outputs"
    for attempt in range(1, attempts + 1):
        version, golden = None, None
        try:
            version, golden = golden_inputs(config, serving_url)
            smoke = service_checks.smoke_test(serving_url, config.name, version, golden,
                                              admin_token=os.environ.get("MLOPS_SERVING_ADMIN_TOKEN"))
        except (service_checks.ServiceCheckFailed, deployment.DeploymentRefused, MlflowException, OSError) as exc:
            if version is not None and attempt < attempts and serves_another_version(config, serving_url, version):
                continue
            return CheckResult(name, False, describe_error(exc)), golden
        detail = (f"version {smoke['version']} answered {smoke['records']} golden inputs, max |error| "
                  f"{smoke['max_abs_error']:.2g} (tolerance {golden['tolerance']:g})")
        return CheckResult(name, True, detail), golden
    raise AssertionError("unreachable: the last attempt always returns")


def serves_another_version(config: ModelConfig, serving_url: str, version: str) -> bool:
    """Whether the service now serves a version other than `version` (a deployment swapped it)."""
    from include.delivery import service_checks

    try:
        now = service_checks.served_version(serving_url, config.name)
    except service_checks.ServiceCheckFailed:
        return False
    return now is not None and str(now) != str(version)


def check_latency(
    config: ModelConfig, serving_url: str, golden: dict | None, rate: float | None, seconds: float | None
) -> CheckResult:
    """A load test of single-record requests: no errors and p99 within the model's latency budget."""
    from include.delivery import service_checks

    name = f"{config.name} latency"
    if golden is None:
        return CheckResult(name, False, "not measured: no golden inputs to send (see the check above)")
    rate = rate or config.deployment.load_test_rate
    seconds = seconds or config.deployment.load_test_seconds
    load = service_checks.load_test(serving_url, config.name, golden["inputs"], rate=rate, seconds=seconds,
                                    admin_token=os.environ.get("MLOPS_SERVING_ADMIN_TOKEN"))
    return latency_verdict(name, load, config.serving.latency_budget_ms, rate)


def latency_verdict(name: str, load: Any, budget_ms: float, rate: float) -> CheckResult:
    """PASS when every request was answered and p99 is within `budget_ms`; the figures either way."""
    figures = (f"{load.requests} requests at {rate:g}/s over {load.seconds:g} s: {load.errors} errors, "
               f"{load.qps:g} answered/s, p50 {load.p50_ms:g} ms, p99 {load.p99_ms:g} ms (budget {budget_ms:g} ms)")
    problem = load.problem(budget_ms)
    return CheckResult(name, problem is None, f"{figures}; {problem}" if problem else figures)


def check_continuous_training(api: AirflowApi, model: str, timeout: float) -> CheckResult:
    """Trigger `<model>__continuous_training` and wait until the run finishes; success passes.

    A paused DAG is left paused (a person paused it) and the check is skipped, saying so: its run
    would only queue.
    """
    name = f"{model} continuous training"
    dag_id = f"{model}__continuous_training"
    try:
        if api.request("GET", f"/api/v2/dags/{urllib.parse.quote(dag_id)}")["is_paused"]:
            return CheckResult(name, None, f"{dag_id} is paused and stays paused; unpause it to include this check")
        run_id = trigger_run(api, dag_id, {"reason": TRAINING_REASON})
        t0 = time.monotonic()
        state = wait_for_run(api, dag_id, run_id, timeout)
        took = time.monotonic() - t0
        tasks = task_states(api, dag_id, run_id)
    except (OSError, ValueError, KeyError) as exc:
        return CheckResult(name, False, f"Airflow's API: {describe_error(exc)}")
    if state is None:
        return CheckResult(name, False, f"run {run_id} did not finish within {timeout:g} s; task states: "
                                        f"{format_states(tasks)}")
    if state != "success":
        failed = [task for task, task_state in tasks.items() if task_state in ("failed", "upstream_failed")]
        return CheckResult(name, False, f"run {run_id} {state} after {took:.0f} s; failed task(s): "
                                        f"{', '.join(failed) or 'none recorded'}")
    outcome = training_outcome(api, dag_id, run_id, tasks)
    return CheckResult(name, True, f"run {run_id} succeeded in {took:.0f} s; {outcome}")


def trigger_run(api: AirflowApi, dag_id: str, conf: dict) -> str:
    """Trigger a run now (no logical date) with `conf`; return its run id."""
    run_id = f"release_verification__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
    run = api.request("POST", f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns", body, attempts=1)
    return run["dag_run_id"]


def wait_for_run(
    api: AirflowApi, dag_id: str, run_id: str, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> str | None:
    """The run's final state ("success" or "failed"), or None when it has not finished in `timeout` s."""
    path = f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns/{urllib.parse.quote(run_id)}"
    deadline = time.monotonic() + timeout
    while True:
        state = api.request("GET", path)["state"]
        if state in FINISHED:
            return state
        if time.monotonic() >= deadline:
            return None
        sleep(POLL_SECONDS)


def task_states(api: AirflowApi, dag_id: str, run_id: str) -> dict[str, str | None]:
    path = f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances"
    return {ti["task_id"]: ti["state"] for ti in api.request("GET", path)["task_instances"]}


def format_states(tasks: Mapping[str, str | None]) -> str:
    return ", ".join(f"{task}={state}" for task, state in tasks.items()) or "none yet"


def training_outcome(api: AirflowApi, dag_id: str, run_id: str, tasks: Mapping[str, str | None]) -> str:
    """What the run decided: a new challenger, or a candidate the gate rejected (from its XComs)."""
    registered = xcom_value(api, dag_id, run_id, "register_candidate") or {}
    version = f"version {registered['version']}" if registered.get("version") else "the candidate"
    if tasks.get("announce_challenger") == "success":
        return f"{version} passed the gate and is the new @challenger (model_deployment delivers it)"
    reasons = "; ".join((registered.get("verdict") or {}).get("reasons") or [])
    why = f": {reasons}" if reasons else ""
    return f"{version} was rejected by the gate{why} (the champion stays; that is a success)"


def xcom_value(api: AirflowApi, dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's return value, or None when it cannot be read."""
    path = (f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/"
            f"{task_id}/xcomEntries/return_value")
    try:
        value = api.request("GET", path)["value"]
        return json.loads(value) if isinstance(value, str) else value
    except (OSError, ValueError, KeyError):
        return None


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        body = exc.read().decode(errors="replace")[:300]
        return f"HTTP {exc.code} from {exc.filename}: {body}"
    return f"{exc}" or type(exc).__name__


# --- putting it together ----------------------------------------------------------------------------

NO_TRAINING = "not run: it may register and deliver a new champion; add --with-training (WITH_TRAINING=1) for staging"


def verify(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO | None = None) -> Report:
    """Run every check against the deployment named in `args`; the report of all of them."""
    out = out or sys.stdout
    report = Report(out=out)
    print(f"Verifying the release at Airflow {args.airflow_url} and the prediction service {args.serving_url}",
          file=out, flush=True)
    try:
        configs = models_to_verify(args.models, settings.models_dir())
        user, password = airflow_credentials(environ, StackConfig.from_environ().passwords_file)
    except VerificationError as exc:
        report.add(CheckResult("setup", False, str(exc)))
        return report
    os.environ["MLFLOW_TRACKING_URI"] = args.mlflow_url  # what include.core.registry reads
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps the report readable in CI logs
    api = AirflowApi(args.airflow_url, user, password)
    names = [config.name for config in configs]
    report.add(check_dags(api, names))
    for config in configs:
        golden_check, golden = check_golden_outputs(config, args.serving_url)
        report.add(golden_check)
        report.add(check_latency(config, args.serving_url, golden, args.load_rate, args.load_seconds))
    for config in configs:
        if args.with_training:
            report.add(check_continuous_training(api, config.name, args.training_timeout))
        else:
            report.add(CheckResult(f"{config.name} continuous training", None, NO_TRAINING))
    return report


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    report = verify(args, os.environ)
    print(report.summary(), flush=True)
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
