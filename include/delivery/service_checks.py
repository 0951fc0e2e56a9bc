"""Checks of a running prediction service through its HTTP API, as a caller sees it.

Deployment, rollback and release verification use the same three checks:

- `wait_until_serving`: the service answers with the expected version of a model (after asking it
  to reload at once when an admin token is at hand, else waiting for its alias poll);
- `smoke_test`: the golden inputs give the golden outputs, and the answer names that version;
- `load_test`: a short open-loop load at a fixed rate of single-record requests; QPS, p50, p99.

Google's Level 2 asks for exactly these before trusting a model in production: "calling the
service API with expected inputs" and a "load test for QPS and latency".
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

import httpx

from include.delivery.prediction_log import SERVICE_CHECK_REQUEST_PREFIX


class ServiceCheckFailed(RuntimeError):
    """The live service did not behave as the check expects; the message says how."""


def model_url(base_url: str, model: str, endpoint: str = "") -> str:
    return f"{base_url.rstrip('/')}/models/{model}{endpoint}"


def served_version(base_url: str, model: str, timeout: float = 5.0) -> str | None:
    """The version the service serves for `model` now (None while it serves none).

    Raises:
        ServiceCheckFailed: the service is unreachable or does not know the model.
    """
    try:
        response = httpx.get(model_url(base_url, model), timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServiceCheckFailed(f"the prediction service at {base_url} is unreachable: {exc}") from exc
    if _is_unknown_model(response):
        raise ServiceCheckFailed(unknown_model_problem(base_url, model))
    if response.status_code != 200:
        raise ServiceCheckFailed(f"GET {model_url(base_url, model)} answered {response.status_code}: {response.text}")
    return response.json().get("version")


def _is_unknown_model(response: httpx.Response) -> bool:
    if response.status_code != 404:
        return False
    try:
        return response.json().get("error") == "unknown_model"
    except ValueError:
        return False


def unknown_model_problem(base_url: str, model: str) -> str:
    """Why the service answers 404 for `model`, from its `/health`: the models it serves, the folder it
    reads the configs from, and the error of the model's config file if it has one there."""
    try:
        health = httpx.get(f"{base_url.rstrip('/')}/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        health = {}
    served = ", ".join(sorted(health.get("models") or {})) or "no model"
    problem = f"the prediction service at {base_url} does not know the model {model!r} (it serves: {served})"
    folder = health.get("models_dir")
    if folder is None:
        return (f"{problem}; this service reads the model configs only when it starts (it does not report "
                f"its models folder): restart it")
    broken = [error for source, error in (health.get("config_errors") or {}).items()
              if source == model or PurePath(source).stem == model]
    if broken:
        return f"{problem}; its config in {folder} does not load: {broken[0]}"
    return (f"{problem}; it reads the model configs in {folder}, where it finds no {model}.yaml: put the "
            "config there (the service picks it up while it runs)")


def request_reload(base_url: str, model: str, admin_token: str, timeout: float = 120.0) -> dict:
    """Ask the service to read the `champion` alias and load its version now.

    Raises:
        ServiceCheckFailed: the service refused (wrong token) or could not load the version.
    """
    try:
        response = httpx.post(model_url(base_url, model, "/reload"), timeout=timeout,
                              headers={"Authorization": f"Bearer {admin_token}"})
    except httpx.HTTPError as exc:
        raise ServiceCheckFailed(f"the prediction service at {base_url} is unreachable: {exc}") from exc
    if response.status_code != 200:
        raise ServiceCheckFailed(f"the service could not reload {model!r}: {response.status_code} {response.text}")
    return response.json()


def service_check_headers(name: str, admin_token: str | None) -> dict[str, str]:
    """Headers of a check's predict request: its request id, and the admin token that makes the
    service log it as a service check (a request id alone does not)."""
    headers = {"X-Request-ID": f"{SERVICE_CHECK_REQUEST_PREFIX}{name}"}
    if admin_token:
        headers["Authorization"] = f"Bearer {admin_token}"
    return headers


def wait_until_serving(
    base_url: str, model: str, version: str | None, *, timeout: float, admin_token: str | None = None
) -> dict:
    """Wait until the service serves `version` of `model` (None: serves nothing).

    With an admin token the service is first told to reload, so a promotion is live in the time
    a load takes; without one the service finds the new alias at its next poll.

    Returns:
        The service's `GET /models/{model}` answer once it serves `version`.

    Raises:
        ServiceCheckFailed: not serving it within `timeout` seconds (saying what it serves and
            the service's last error, or that it does not know the model:
            `unknown_model_problem`), or the service is unreachable that long.
    """
    if admin_token:
        try:
            request_reload(base_url, model, admin_token)
        except ServiceCheckFailed:
            pass  # the wait below says what the service serves and why
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    problem = ""
    unknown = False
    while True:
        try:
            response = httpx.get(model_url(base_url, model), timeout=5)
            last, problem, unknown = response.json(), "", _is_unknown_model(response)
            if response.status_code == 200 and last.get("version") == (None if version is None else str(version)):
                return last
        except (httpx.HTTPError, ValueError) as exc:
            problem, unknown = f"unreachable: {exc}", False
        if time.monotonic() > deadline and unknown:
            raise ServiceCheckFailed(f"{unknown_model_problem(base_url, model)} (waited {timeout:.0f} s)")
        if time.monotonic() > deadline:
            serving = problem or f"it serves version {last.get('version')} (last error: {last.get('last_error')})"
            wanted = f"version {version}" if version is not None else "no version"
            raise ServiceCheckFailed(
                f"the prediction service at {base_url} did not serve {wanted} of {model!r} within {timeout:.0f} s: "
                f"{serving}"
            )
        time.sleep(0.5)


def smoke_test(
    base_url: str, model: str, version: str, golden: dict, timeout: float = 30.0, admin_token: str | None = None
) -> dict:
    """Send the golden inputs in one request; expect the golden probabilities from `version`.

    Args:
        golden: the model version's golden examples (`registry.golden_examples`): `inputs`,
            `expected_probabilities`, `tolerance`.
        admin_token: the service's admin token; with it the predictions are logged as a service
            check and left out of monitoring, without it they count as production traffic.

    Returns:
        {"records", "max_abs_error", "version"}.

    Raises:
        ServiceCheckFailed: a non-200 answer, another version answered, a wrong number of
            predictions, or probabilities outside the tolerance (naming the first records).
    """
    try:
        response = httpx.post(
            model_url(base_url, model, "/predict"), json={"records": golden["inputs"]}, timeout=timeout,
            headers=service_check_headers(f"smoke-{version}", admin_token),
        )
    except httpx.HTTPError as exc:
        raise ServiceCheckFailed(f"smoke test: the prediction service at {base_url} is unreachable: {exc}") from exc
    if response.status_code != 200:
        raise ServiceCheckFailed(f"smoke test: the golden inputs got {response.status_code}: {response.text}")
    body = response.json()
    if str(body.get("version")) != str(version):
        raise ServiceCheckFailed(f"smoke test: version {body.get('version')} answered, not version {version}")
    got = [prediction["probability"] for prediction in body["predictions"]]
    expected = golden["expected_probabilities"]
    if len(got) != len(expected):
        raise ServiceCheckFailed(f"smoke test: {len(got)} predictions for {len(expected)} golden inputs")
    errors = [abs(a - b) for a, b in zip(got, expected, strict=True)]
    wrong = [index for index, error in enumerate(errors) if not error <= golden["tolerance"]]
    if wrong:
        shown = ", ".join(f"#{i}: got {got[i]:.6f}, expected {expected[i]:.6f}" for i in wrong[:3])
        raise ServiceCheckFailed(
            f"smoke test: {len(wrong)} of {len(expected)} golden outputs differ by more than "
            f"{golden['tolerance']} ({shown})"
        )
    return {"records": len(expected), "max_abs_error": max(errors, default=0.0), "version": str(version)}


@dataclass(frozen=True)
class LoadTestResult:
    """What a load test measured: requests sent and answered, their latencies, the rate achieved."""

    requests: int
    errors: int
    seconds: float
    qps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    first_error: str | None

    def as_dict(self) -> dict:
        return asdict(self)

    def problem(self, budget_ms: float) -> str | None:
        """Why the service failed the load test (a request failed, or p99 is over `budget_ms`), or None."""
        if self.errors:
            return f"{self.errors} of {self.requests} requests failed (first: {self.first_error})"
        if not self.p99_ms <= budget_ms:
            return f"p99 {self.p99_ms:g} ms is over the budget of {budget_ms:g} ms"
        return None


def load_test(
    base_url: str, model: str, records: list[dict], *, rate: float, seconds: float, clients: int = 4,
    admin_token: str | None = None,
) -> LoadTestResult:
    """Send single-record predict requests at `rate` per second for `seconds` (open loop).

    Request i is due at i / rate after the start whatever happened to earlier ones, so a slow
    answer shows up as latency instead of quietly lowering the load; `clients` keep-alive
    connections share the schedule. Latency is from the request's due time to its answer.
    With `admin_token` the predictions are left out of monitoring (see `smoke_test`).
    """
    total = max(1, math.floor(rate * seconds))
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))
    start = time.perf_counter() + 0.05

    def send() -> None:
        with httpx.Client(timeout=10) as http:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                due = start + index / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                try:
                    response = http.post(model_url(base_url, model, "/predict"),
                                         json={"records": [records[index % len(records)]]},
                                         headers=service_check_headers(f"load-{index}", admin_token))
                    problem = None if response.status_code == 200 else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - due) * 1000
                with lock:
                    if problem:
                        errors.append(problem)
                    else:
                        latencies.append(elapsed)

    threads = [threading.Thread(target=send, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - start
    ordered = sorted(latencies)
    return LoadTestResult(
        requests=total, errors=len(errors), seconds=round(took, 3), qps=round(len(ordered) / took, 2),
        p50_ms=round(_percentile(ordered, 50), 2), p99_ms=round(_percentile(ordered, 99), 2),
        max_ms=round(ordered[-1], 2) if ordered else math.nan, first_error=errors[0] if errors else None,
    )


def load_test_confirmed(
    run: Callable[[], LoadTestResult], budget_ms: float, *, attempts: int = 3, pause_seconds: float = 10.0
) -> tuple[LoadTestResult, str | None, int]:
    """Run a load test; when its only problem is a p99 over `budget_ms`, measure again before judging.

    At 20 requests a second for 5 seconds, p99 is the second-slowest of 100 requests: on a machine
    busy with other work (the demo's first catch-up runs four task processes, the scheduler and the
    service on 2 cores) one stall of the client or the service decides it. A failed request fails
    at once; a latency miss fails only if it repeats in each of `attempts` measurements,
    `pause_seconds` apart, so a slow model is still refused and rolled back.

    Returns:
        (the last result, why it failed or None, how many measurements were made).
    """
    result = run()
    problem = result.problem(budget_ms)
    made = 1
    while problem and not result.errors and made < attempts:
        time.sleep(pause_seconds)
        result = run()
        problem = result.problem(budget_ms)
        made += 1
    if problem and made > 1:
        problem += f" (in each of {made} measurements)"
    return result, problem, made


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]
