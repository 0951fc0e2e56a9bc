"""Infra validation: can the prediction service's environment serve this model version?

TFX calls this the InfraValidator's "infra blessing"; Google's Level 2 lists "compatibility of
the model with the target infrastructure" among the tests before production. It runs in a fresh
Python process (`python -m include.delivery.infra_validation <model> <version>`, which prints one JSON
object), so nothing a task imported earlier hides a missing package or changes memory figures:

1. **Requirements**: every package pinned in the version's logged `requirements.txt` is installed
   here at that version. Without a network the service cannot build a new environment, so the
   environment it has must be the one the model was trained with.
2. **Load**: through the service's own loader (`serving.load_model_version`), which downloads the
   artifacts, loads the sklearn flavor and checks that it predicts a valid probability.
3. **Golden examples**: the inputs recorded at training give the recorded probabilities within
   their tolerance, through the service's request validation and frame building.
4. **Budgets** from the model config: resident memory added by loading the model and scoring the
   golden examples ≤ `serving.memory_budget_mb`; p99 of the CPU time of single-record scoring
   (validation, frame, `predict_proba` on one thread, as the service does) over `LATENCY_SAMPLES`
   calls ≤ `serving.latency_budget_ms`. CPU time, not wall time: this check asks whether the
   model's own work fits the budget, and wall time on a busy machine (an Airflow worker next to
   other tasks) measures the neighbours. Wall-time percentiles are reported too; the latency that
   callers see is measured against the same budget by the live load test after promotion.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from include.core import settings
from include.core.config import ModelConfig

LATENCY_SAMPLES = 200
TIMEOUT_SECONDS = 600


class InfraValidationFailed(RuntimeError):
    """The version cannot be served here; `report` holds every figure and problem."""

    def __init__(self, report: dict):
        super().__init__("infra validation failed: " + "; ".join(report["problems"]))
        self.report = report


def run_in_fresh_process(model: str, model_version: str, timeout: float = TIMEOUT_SECONDS) -> dict:
    """Validate `model` version `model_version` in a new Python process with this environment.

    Returns:
        The report ({"passed", "problems", "requirements", "memory_mb", "latency_p50_ms", ...}).

    Raises:
        InfraValidationFailed: the report has problems, or the process crashed or timed out.
    """
    command = [sys.executable, "-m", "include.delivery.infra_validation", model, str(model_version)]
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  cwd=settings.PROJECT_ROOT, env=os.environ.copy(), check=False)
    except subprocess.TimeoutExpired:
        raise InfraValidationFailed(_crashed(model, model_version, f"no answer within {timeout:.0f} s")) from None
    lines = finished.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = "\n".join(finished.stderr.strip().splitlines()[-10:])
        raise InfraValidationFailed(
            _crashed(model, model_version, f"the process exited with {finished.returncode}: {tail}")
        ) from None
    if not report["passed"]:
        raise InfraValidationFailed(report)
    return report


def validate(config: ModelConfig, model_version: str) -> dict:
    """Run every check in this process; prefer `run_in_fresh_process`.

    Returns:
        The report; `passed` is False when any check found a problem (listed in `problems`).
    """
    import mlflow
    import numpy as np

    from include.core import registry
    from include.delivery import serving

    client = registry.client()
    name = config.name
    report: dict[str, Any] = {"model": name, "version": str(model_version), "problems": []}
    problems: list[str] = report["problems"]

    mv = client.get_model_version(name, str(model_version))
    report["requirements"] = requirement_mismatches(name, str(model_version))
    for package, (wanted, installed) in report["requirements"].items():
        problems.append(f"requirement {package}=={wanted} but the service has {installed or 'nothing'} installed")

    validator = serving.RecordValidator(config)
    import_serving_stack()
    baseline_mb = resident_memory_mb()
    try:
        served = serving.load_model_version(
            config, mv, settings.mlflow_tracking_uri(), validator.frame([validator.example_record])
        )
    except serving.ModelLoadError as exc:
        problems.append(str(exc))
        return _finish(report)

    golden_uri = mv.tags.get(registry.TAG_GOLDEN_EXAMPLES)
    if not golden_uri:
        problems.append(f"version {model_version} has no golden examples (tag {registry.TAG_GOLDEN_EXAMPLES!r})")
        return _finish(report)
    golden = mlflow.artifacts.load_dict(golden_uri)
    records = validator.parse(json.dumps({"records": golden["inputs"]}).encode())
    got = served.probabilities(validator.frame(records))
    errors = np.abs(got - np.asarray(golden["expected_probabilities"], dtype=float))
    report["golden_max_abs_error"] = float(errors.max()) if len(errors) else 0.0
    wrong = int((~(errors <= golden["tolerance"])).sum())
    if wrong:
        problems.append(f"{wrong} of {len(errors)} golden outputs differ by more than {golden['tolerance']} "
                        f"(largest difference {report['golden_max_abs_error']:.3g})")

    report["memory_mb"] = round(resident_memory_mb() - baseline_mb, 1)
    if report["memory_mb"] > config.serving.memory_budget_mb:
        problems.append(f"loading and scoring took {report['memory_mb']} MB, over the budget of "
                        f"{config.serving.memory_budget_mb:g} MB (serving.memory_budget_mb)")

    wall, cpu = [], []
    for index in range(LATENCY_SAMPLES):
        body = json.dumps({"records": [golden["inputs"][index % len(golden["inputs"])]]}).encode()
        started, started_cpu = time.perf_counter(), time.thread_time()
        served.probabilities(validator.frame(validator.parse(body)))
        cpu.append((time.thread_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    for name, samples in (("latency", wall), ("cpu", cpu)):
        report[f"{name}_p50_ms"] = round(float(np.percentile(samples, 50)), 3)
        report[f"{name}_p99_ms"] = round(float(np.percentile(samples, 99)), 3)
    if report["cpu_p99_ms"] > config.serving.latency_budget_ms:
        problems.append(f"single-record scoring takes {report['cpu_p99_ms']} ms of CPU at p99, over the budget of "
                        f"{config.serving.latency_budget_ms:g} ms (serving.latency_budget_ms)")
    return _finish(report)


def requirement_mismatches(name: str, model_version: str) -> dict[str, tuple[str, str | None]]:
    """Pinned requirements of the version that this environment does not satisfy.

    Returns:
        {package: (logged version, installed version or None)}; empty when all are satisfied.
        Unpinned or ranged requirements are not checked (the load itself tests them).
    """
    import mlflow

    from include.core import registry

    registry.client()
    local = mlflow.artifacts.download_artifacts(f"models:/{name}/{model_version}/requirements.txt")
    mismatches = {}
    for line in Path(local).read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if "==" not in requirement or requirement.startswith("-"):
            continue
        package, wanted = (part.strip() for part in requirement.split("==", 1))
        package = package.split("[")[0]
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = None
        if installed != wanted:
            mismatches[package] = (wanted, installed)
    return mismatches


def import_serving_stack() -> None:
    """Import what every served model needs, so that the memory measured afterwards is the model's."""
    import mlflow.pyfunc  # noqa: F401
    import mlflow.sklearn  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.pipeline  # noqa: F401


def resident_memory_mb() -> float:
    """This process's resident set size now, in MB (Linux `/proc/self/status`)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _finish(report: dict) -> dict:
    report["passed"] = not report["problems"]
    return report


def _crashed(model: str, model_version: str, why: str) -> dict:
    return {"model": model, "version": str(model_version), "passed": False,
            "problems": [f"the validation process failed: {why}"]}


def main(argv: list[str] | None = None) -> int:
    from include.core.config import get_model_config

    parser = argparse.ArgumentParser(description="Validate that a registered model version can be served here.")
    parser.add_argument("model")
    parser.add_argument("version")
    args = parser.parse_args(argv)
    report = validate(get_model_config(args.model), args.version)
    print(json.dumps(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
