"""The post-deploy load test's verdict: a latency miss is measured again before a version is refused."""

from __future__ import annotations

from include.delivery.service_checks import LoadTestResult, load_test_confirmed


def measured(p99_ms: float, errors: int = 0) -> LoadTestResult:
    """What `service_checks.load_test` reports for 100 requests at 20/s with this p99."""
    return LoadTestResult(requests=100, errors=errors, seconds=5.0, qps=20.0, p50_ms=3.0, p99_ms=p99_ms,
                          max_ms=p99_ms, first_error="500 boom" if errors else None)


def measurements(*results: LoadTestResult):
    """A load test that answers with `results` in turn, and the list of the calls it got."""
    calls: list[LoadTestResult] = []

    def run() -> LoadTestResult:
        calls.append(results[len(calls)])
        return calls[-1]

    return run, calls


def test_a_single_latency_miss_is_measured_again_and_passes_when_the_service_is_fast():
    run, calls = measurements(measured(258.0), measured(41.0))

    result, problem, attempts = load_test_confirmed(run, 200, pause_seconds=0)

    assert problem is None and attempts == 2 and result.p99_ms == 41.0
    assert len(calls) == 2


def test_a_service_slow_in_every_measurement_is_refused_saying_so():
    run, _ = measurements(measured(258.0), measured(599.0), measured(301.0))

    result, problem, attempts = load_test_confirmed(run, 200, attempts=3, pause_seconds=0)

    assert attempts == 3
    assert problem == "p99 301 ms is over the budget of 200 ms (in each of 3 measurements)"


def test_a_latency_miss_is_final_when_the_config_allows_one_measurement():
    run, calls = measurements(measured(258.0), measured(41.0))

    _, problem, attempts = load_test_confirmed(run, 200, attempts=1, pause_seconds=0)

    assert attempts == 1 and len(calls) == 1
    assert problem == "p99 258 ms is over the budget of 200 ms"


def test_failed_requests_fail_at_once_without_a_second_measurement():
    run, calls = measurements(measured(20.0, errors=3), measured(20.0))

    _, problem, attempts = load_test_confirmed(run, 200, pause_seconds=0)

    assert attempts == 1 and len(calls) == 1
    assert problem.startswith("3 of 100 requests failed")


def test_a_fast_service_is_measured_once():
    run, calls = measurements(measured(12.0))

    assert load_test_confirmed(run, 200, pause_seconds=0) == (measured(12.0), None, 1)
    assert len(calls) == 1
