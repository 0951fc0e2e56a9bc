"""`scripts/verify_release.py` without a deployment: what it accepts, what it decides, how it exits.

The checks against a live deployment run in tests/test_production_topology.py; here the parts a
person meets before or after them: the command line, the credentials, which models, the verdicts
and the exit code. Where a check talks to a service, the service is a real one on loopback: an
HTTP server that refuses connections is a port nobody listens on.
"""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys

import pytest

from include.delivery.service_checks import LoadTestResult
from scripts import verify_release
from scripts.verify_release import CheckResult, Report, VerificationError

SCRIPT = verify_release.PROJECT_ROOT / "scripts" / "verify_release.py"


def load_result(p99_ms: float, errors: int = 0, first_error: str | None = None) -> LoadTestResult:
    """What `service_checks.load_test` reports for 100 requests at 20/s with this p99."""
    return LoadTestResult(requests=100, errors=errors, seconds=5.0, qps=20.0, p50_ms=3.0, p99_ms=p99_ms,
                          max_ms=p99_ms, first_error=first_error)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- command line -----------------------------------------------------------------------------------


def test_both_urls_are_required_and_a_missing_one_is_a_usage_error_with_exit_2():
    result = subprocess.run([sys.executable, str(SCRIPT), "--airflow-url", "http://127.0.0.1:8080"],
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 2
    assert "--serving-url" in result.stderr


def test_a_url_without_a_scheme_is_refused_naming_the_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        verify_release.parse_args(["--airflow-url", "127.0.0.1:8080", "--serving-url", "http://127.0.0.1:8000"])

    assert exit_info.value.code == 2
    assert "--airflow-url must be an http(s) URL, got '127.0.0.1:8080'" in capsys.readouterr().err


def test_urls_lose_their_trailing_slash_and_models_can_be_named_more_than_once():
    args = verify_release.parse_args([
        "--airflow-url", "http://airflow:8080/", "--serving-url", "https://serving.example/",
        "--model", "credit_default", "--model", "churn", "--with-training", "--load-rate", "5",
    ])

    assert (args.airflow_url, args.serving_url) == ("http://airflow:8080", "https://serving.example")
    assert args.models == ["credit_default", "churn"]
    assert args.with_training and args.load_rate == 5.0


def test_a_load_rate_of_zero_is_refused():
    with pytest.raises(SystemExit):
        verify_release.parse_args(["--airflow-url", "http://a", "--serving-url", "http://b", "--load-rate", "0"])


def test_the_mlflow_url_comes_from_the_option_then_the_environment_then_the_local_stack(monkeypatch):
    base = ["--airflow-url", "http://a", "--serving-url", "http://b"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert verify_release.parse_args(base).mlflow_url == "http://mlflow:5000"
    assert verify_release.parse_args([*base, "--mlflow-url", "http://other:5000"]).mlflow_url == "http://other:5000"

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("MLFLOW_PORT", "15000")
    assert verify_release.parse_args(base).mlflow_url == "http://127.0.0.1:15000"


# --- credentials and models ---------------------------------------------------------------------


def test_credentials_come_from_airflow_password_then_the_compose_admin_password(tmp_path):
    missing = tmp_path / "none.json"

    assert verify_release.airflow_credentials({"AIRFLOW_PASSWORD": "p"}, missing) == ("admin", "p")
    assert verify_release.airflow_credentials(
        {"AIRFLOW_USERNAME": "ops", "AIRFLOW_ADMIN_PASSWORD": "from-env-file"}, missing
    ) == ("ops", "from-env-file")


def test_without_a_password_the_local_stacks_generated_one_is_used(tmp_path):
    generated = tmp_path / "passwords.json.generated"
    generated.write_text(json.dumps({"admin": "generated-secret"}))

    assert verify_release.airflow_credentials({}, generated) == ("admin", "generated-secret")


def test_no_password_anywhere_is_an_error_that_says_which_variable_to_set(tmp_path):
    with pytest.raises(VerificationError, match="AIRFLOW_PASSWORD"):
        verify_release.airflow_credentials({}, tmp_path / "missing.json")


def test_every_valid_model_config_is_verified_unless_models_are_named(state_dir):
    models_dir = state_dir.parent / "models"

    assert [config.name for config in verify_release.models_to_verify(None, models_dir)] == ["credit_default"]
    with pytest.raises(VerificationError, match="churn"):
        verify_release.models_to_verify(["churn"], models_dir)


def test_an_empty_models_folder_is_an_error_not_a_vacuous_pass(tmp_path):
    with pytest.raises(VerificationError, match="no valid model config"):
        verify_release.models_to_verify(None, tmp_path)


def test_the_dags_expected_of_a_model_are_one_per_stage_file_in_dags():
    dags = verify_release.PROJECT_ROOT / "dags"
    stages = {match for path in dags.glob("*.py") for match in re.findall(r'^STAGE = "(\w+)"', path.read_text(), re.M)}

    assert set(verify_release.STAGES) | set(verify_release.OPT_IN_STAGES) == stages


def test_a_model_has_eight_dags_named_model_double_underscore_stage():
    dag_ids = verify_release.expected_dag_ids("credit_default")

    assert len(dag_ids) == 8
    assert "credit_default__continuous_training" in dag_ids
    assert all(dag_id.startswith("credit_default__") for dag_id in dag_ids)


# --- verdicts and exit codes ------------------------------------------------------------------------


def a_report(*verdicts: bool | None) -> Report:
    report = Report(out=io.StringIO())
    for index, passed in enumerate(verdicts):
        report.add(CheckResult(f"check {index}", passed, "figures"))
    return report


def test_all_checks_passing_verifies_the_release_with_exit_0():
    report = a_report(True, True, None)

    assert report.exit_code() == 0
    assert report.summary() == "Release verified: 2 check(s) passed."


def test_one_failed_check_fails_the_release_with_exit_1_and_counts_it():
    report = a_report(True, False, True)

    assert report.exit_code() == 1
    assert report.summary() == "Release NOT verified: 1 of 3 check(s) failed."


def test_a_run_where_every_check_was_skipped_verifies_nothing():
    report = a_report(None, None)

    assert report.exit_code() == 1
    assert report.summary() == "Release NOT verified: no check ran."


def test_each_check_is_printed_as_pass_fail_or_skip_with_its_figures_as_it_completes():
    out = io.StringIO()
    report = Report(out=out)

    report.add(CheckResult("DAGs", True, "0 import errors"))
    report.add(CheckResult("credit_default latency", False, "p99 80 ms (budget 50 ms)"))
    report.add(CheckResult("credit_default continuous training", None, "skipped (--skip-training)"))

    assert out.getvalue().splitlines() == [
        "PASS  DAGs: 0 import errors",
        "FAIL  credit_default latency: p99 80 ms (budget 50 ms)",
        "SKIP  credit_default continuous training: skipped (--skip-training)",
    ]


def test_latency_within_budget_passes_and_shows_p50_and_p99():
    result = verify_release.latency_verdict("m latency", load_result(p99_ms=42.0), budget_ms=50, rate=20)

    assert result.passed
    assert "p99 42 ms" in result.detail and "budget 50 ms" in result.detail


def test_latency_over_budget_fails_even_without_errors():
    result = verify_release.latency_verdict("m latency", load_result(p99_ms=51.0), budget_ms=50, rate=20)

    assert not result.passed
    assert "over the budget" in result.detail


def test_a_single_failed_request_fails_the_latency_check_and_quotes_the_error():
    load = load_result(p99_ms=5.0, errors=1, first_error="503 no champion")

    result = verify_release.latency_verdict("m latency", load, budget_ms=50, rate=20)

    assert not result.passed
    assert "503 no champion" in result.detail


def test_an_unreachable_deployment_fails_every_check_and_exits_1(state_dir, monkeypatch):
    dead = f"http://127.0.0.1:{unused_port()}"
    monkeypatch.setenv("AIRFLOW_PASSWORD", "whatever")
    args = verify_release.parse_args(["--airflow-url", dead, "--serving-url", dead, "--mlflow-url", dead,
                                      "--with-training", "--training-timeout", "5"])
    out = io.StringIO()

    report = verify_release.verify(args, {"AIRFLOW_PASSWORD": "whatever"}, out=out)

    assert report.exit_code() == 1
    assert [result.label for result in report.results] == ["FAIL"] * 4
    assert "unreachable" in out.getvalue()
    assert "Airflow's API" in out.getvalue()


def test_main_prints_the_summary_and_returns_the_exit_code(state_dir, monkeypatch, capsys):
    dead = f"http://127.0.0.1:{unused_port()}"
    monkeypatch.setenv("AIRFLOW_PASSWORD", "whatever")

    code = verify_release.main(["--airflow-url", dead, "--serving-url", dead, "--mlflow-url", dead])

    out = capsys.readouterr().out
    assert code == 1
    assert out.rstrip().splitlines()[-1] == "Release NOT verified: 3 of 3 check(s) failed."
    assert "SKIP  credit_default continuous training: not run: it may register and deliver a new champion" in out
