"""Model delivery through Airflow: `dag.test()` of deployment and rollback against a live prediction service.

The service is a real uvicorn server on loopback following a real SQLite MLflow registry; the
deployment reaches it over HTTP exactly as it would in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from include.core import registry, settings
from include.delivery import deployment
from tests.deployment_world import MODEL, aliases, register_version, write_model_config
from tests.service_world import ADMIN_TOKEN, Service, running_service

FAST_CHECKS = {"service_timeout_seconds": 20, "load_test_rate": 20, "load_test_seconds": 1, "load_test_attempts": 1}


@pytest.fixture
def delivery_world(state_dir, airflow_db, monkeypatch, one_openmp_thread):
    """A migrated MLflow store and a model config whose live checks take a second."""
    from tests.ct_world import ready_mlflow

    ready_mlflow(state_dir)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return write_model_config(deployment=FAST_CHECKS, serving={"latency_budget_ms": 2000})


@pytest.fixture
def service(delivery_world, monkeypatch) -> Iterator[Service]:
    """The prediction service, which the DAG's tasks find through the environment (as on the stack)."""
    with running_service(poll_seconds=0.5) as running:
        monkeypatch.setenv("MLOPS_SERVING_URL", running.url)
        monkeypatch.setenv("MLOPS_SERVING_ADMIN_TOKEN", ADMIN_TOKEN)
        yield running


def answer_approval_when_asked(dag_id: str, answer: str, seen: dict) -> threading.Thread:
    """Wait in the background for the approval task to ask, note the aliases then, and answer it
    through Airflow's REST API (the call the UI's "Required actions" page makes)."""

    def respond() -> None:
        from airflow.api_fastapi.app import create_app
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from fastapi.testclient import TestClient

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with create_session() as session:
                waiting = session.query(TaskInstance).filter_by(
                    dag_id=dag_id, task_id="approve_promotion", state="awaiting_input").first()
                run_id = waiting.run_id if waiting else None
            if run_id:
                break
            time.sleep(0.3)
        else:
            return
        seen["aliases_while_waiting"] = aliases()
        api = TestClient(create_app(apps="core"))
        seen["response"] = api.patch(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approve_promotion/-1/hitlDetails",
            json={"chosen_options": [answer], "params_input": {}},
        ).status_code

    thread = threading.Thread(target=respond, daemon=True)
    thread.start()
    return thread


def load_dag(stage: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags" / f"{stage}.py")).dags[f"{MODEL}__{stage}"]


def run_dag(stage: str, conf: dict | None = None, mark_success: str | None = None):
    return load_dag(stage).test(logical_date=None, run_conf=conf or {}, mark_success_pattern=mark_success)


def form_conf(stage: str, **typed) -> dict:
    """The conf the UI's trigger form sends: every field as the form opens, plus what a person typed."""
    from tests.dags.test_trigger_forms import form_params

    return {**{name: spec["value"] for name, spec in form_params(load_dag(stage)).items()}, **typed}


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def version_tags(version: str) -> dict[str, str]:
    return registry.client().get_model_version(MODEL, version).tags


def judged_against(version: str, champion: str) -> str:
    """Record on `version` the champion the gate judged it against, as continuous training does."""
    registry.client().set_model_version_tag(MODEL, version, registry.TAG_COMPARED_WITH, champion)
    return version


@pytest.mark.slow
def test_a_new_challenger_becomes_champion_and_is_served_after_live_checks(delivery_world, service):
    first = register_version(delivery_world, seed=1)
    registry.set_challenger(MODEL, first)
    assert run_dag("model_deployment").state == "success"
    second = judged_against(register_version(delivery_world, seed=2), first)
    registry.set_challenger(MODEL, second)

    dag_run = run_dag("model_deployment", form_conf("model_deployment"))  # the form's Trigger, untouched

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states["roll_back_on_failure"] == "skipped"
    assert aliases() == {"champion": second, "challenger": None, "previous_champion": first}
    assert service.model_info()["version"] == second
    tags = version_tags(second)
    assert tags[deployment.TAG_STATUS] == "serving"
    assert float(tags["load_test_qps"]) > 0 and float(tags["load_test_p99_ms"]) > 0
    assert tags["load_test_errors"] == "0" and tags["smoke_test_records"] == "20"
    assert float(tags["infra_memory_mb"]) < 1024 and float(tags["infra_latency_p99_ms"]) > 0


@pytest.mark.slow
def test_a_failing_smoke_test_rolls_back_and_the_service_serves_the_previous_version(delivery_world, service):
    good = register_version(delivery_world, seed=1)
    registry.client().set_registered_model_alias(MODEL, registry.CHAMPION, good)
    service.wait_for(lambda info: info["version"] == good, "the first champion to be served")
    bad = judged_against(register_version(delivery_world, seed=2, golden_shift=0.3), good)
    registry.set_challenger(MODEL, bad)

    # Infra validation would refuse this version before promotion (see the next test); marking it
    # done makes the live smoke test the check that finds the fault.
    dag_run = run_dag("model_deployment", mark_success="validate_infrastructure")

    states = task_states(dag_run)
    assert dag_run.state == "failed"
    assert (states["promote"], states["verify_live_service"], states["roll_back_on_failure"]) == (
        "success", "failed", "success")
    assert states["record_deployment"] == "upstream_failed"
    assert aliases()["champion"] == good
    assert service.model_info()["version"] == good
    tags = version_tags(bad)
    assert tags[deployment.TAG_STATUS] == "rolled_back"
    assert "golden outputs differ" in tags[deployment.TAG_ROLLBACK_REASON]


@pytest.mark.slow
def test_a_live_load_test_over_the_latency_budget_rolls_back(delivery_world, service):
    good = register_version(delivery_world, seed=1)
    registry.client().set_registered_model_alias(MODEL, registry.CHAMPION, good)
    service.wait_for(lambda info: info["version"] == good, "the first champion to be served")
    write_model_config(serving={"latency_budget_ms": 0.001})
    slow = judged_against(register_version(delivery_world, seed=2), good)
    registry.set_challenger(MODEL, slow)

    # Infra validation would already refuse a 1 µs budget; marked done, the live load test decides.
    dag_run = run_dag("model_deployment", {"load_test_rate": 5}, mark_success="validate_infrastructure")

    states = task_states(dag_run)
    assert dag_run.state == "failed"
    assert (states["verify_live_service"], states["roll_back_on_failure"]) == ("failed", "success")
    assert aliases()["champion"] == good and service.model_info()["version"] == good
    tags = version_tags(slow)
    assert tags["load_test_requests"] == "5", "the load_test_rate Param sets the rate (5 req/s for 1 s)"
    assert "over the budget" in tags[deployment.TAG_ROLLBACK_REASON]


@pytest.mark.slow
def test_infra_validation_refuses_a_version_that_does_not_reproduce_its_golden_examples(delivery_world, service):
    bad = register_version(delivery_world, seed=2, golden_shift=0.3)
    registry.set_challenger(MODEL, bad)

    dag_run = run_dag("model_deployment")

    states = task_states(dag_run)
    assert dag_run.state == "failed"
    assert states["validate_infrastructure"] == "failed" and states["promote"] == "upstream_failed"
    assert states["roll_back_on_failure"] == "skipped"
    assert aliases() == {"champion": None, "challenger": bad, "previous_champion": None}
    assert version_tags(bad)["infra_passed"] == "false"


@pytest.mark.slow
def test_an_unblessed_version_is_refused_unless_forced_with_a_reason(delivery_world, service):
    unblessed = register_version(delivery_world, seed=1, passed=False)

    refused = run_dag("model_deployment", {"version": unblessed})
    assert (refused.state, task_states(refused)["check_candidate"]) == ("failed", "failed")
    without_reason = run_dag("model_deployment", {"version": unblessed, "force": True})
    assert (without_reason.state, task_states(without_reason)["check_candidate"]) == ("failed", "failed")
    assert aliases()["champion"] is None

    forced = run_dag("model_deployment", {"version": unblessed, "force": True, "reason": "hotfix for ticket 42"})

    assert forced.state == "success", task_states(forced)
    assert aliases()["champion"] == unblessed
    tags = version_tags(unblessed)
    assert tags[deployment.TAG_FORCE_REASON] == "hotfix for ticket 42"
    assert tags[deployment.TAG_FORCED_BY]


def test_forcing_a_deployment_in_the_form_without_a_reason_is_refused_saying_so(delivery_world, capfd):
    unblessed = register_version(delivery_world, seed=1, passed=False)

    refused = run_dag("model_deployment", form_conf("model_deployment", version=unblessed, force=True))

    assert (refused.state, task_states(refused)["check_candidate"]) == ("failed", "failed")
    logs = capfd.readouterr().out
    assert f"forcing version {unblessed} of 'credit_default' needs a reason (the Param 'reason')" in logs
    assert aliases()["champion"] is None


@pytest.mark.slow
def test_the_rollback_dag_restores_the_previous_champion_and_checks_the_service(delivery_world, service):
    client = registry.client()
    versions = [register_version(delivery_world, seed=seed) for seed in (1, 2, 3)]
    for version in versions:
        deployment.promote(delivery_world, version, airflow_run_id=f"deploy-{version}")
    service.wait_for(lambda info: info["version"] == versions[2], "the third version to be served")

    dag_run = run_dag("model_rollback", {"reason": "complaints about v3"})

    assert dag_run.state == "success", task_states(dag_run)
    assert task_states(dag_run)["validate_infrastructure"] == "skipped", "@previous_champion served just before"
    assert aliases() == {"champion": versions[1], "challenger": None, "previous_champion": versions[0]}
    assert service.model_info()["version"] == versions[1]
    assert client.get_model_version(MODEL, versions[2]).tags[deployment.TAG_ROLLBACK_REASON].startswith(
        "complaints about v3")


def test_a_challenger_judged_against_a_champion_replaced_since_is_refused_by_the_deployment(delivery_world, capfd):
    first, stale = (register_version(delivery_world, seed=seed) for seed in (1, 2))
    deployment.promote(delivery_world, first, airflow_run_id="deploy-1")
    registry.set_challenger(MODEL, stale)  # judged against no champion, before version 1 was promoted

    refused = run_dag("model_deployment")

    assert (refused.state, task_states(refused)["check_candidate"]) == ("failed", "failed")
    logs = capfd.readouterr().out
    assert f"version {stale} of 'credit_default' passed the gate judged against no champion, but @champion is " \
           f"now version {first}; retrain (credit_default__continuous_training)" in logs
    assert aliases() == {"champion": first, "challenger": stale, "previous_champion": None}


def test_rolling_back_to_an_unblessed_version_is_refused_without_force_and_with_the_forms_reason(delivery_world,
                                                                                             capfd):
    level0 = register_version(delivery_world, seed=1, passed=False)
    served = register_version(delivery_world, seed=2)
    deployment.promote(delivery_world, served, airflow_run_id="deploy-1")

    for typed in ({"version": level0}, {"version": level0, "force": True}):
        refused = run_dag("model_rollback", form_conf("model_rollback", **typed))
        assert (refused.state, task_states(refused)["choose_target"]) == ("failed", "failed")

    logs = capfd.readouterr().out
    assert f"version {level0} of 'credit_default' is not @previous_champion and did not pass the gate" in logs
    assert "needs a reason of your own (the Param 'reason', not 'manual rollback')" in logs
    assert aliases()["champion"] == served


def test_a_rollback_to_a_named_version_passes_infra_validation_before_it_moves(delivery_world):
    broken = register_version(delivery_world, seed=1, golden_shift=0.3)
    second, third = (register_version(delivery_world, seed=seed) for seed in (2, 3))
    for version in (broken, second, third):
        deployment.promote(delivery_world, version, airflow_run_id=f"deploy-{version}")

    dag_run = run_dag("model_rollback", {"version": broken, "reason": "v3 is slower"})

    states = task_states(dag_run)
    assert dag_run.state == "failed"
    assert (states["validate_infrastructure"], states["restore_champion"]) == ("failed", "upstream_failed"), states
    assert aliases() == {"champion": third, "challenger": None, "previous_champion": second}
    assert version_tags(broken)["infra_passed"] == "false"


@pytest.mark.slow
def test_approval_mode_waits_for_a_person_before_promoting(state_dir, airflow_db, service, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    config = write_model_config(deployment={**FAST_CHECKS, "promotion": "approval"})
    version = register_version(config, seed=1)
    registry.set_challenger(MODEL, version)
    seen: dict = {}
    approver = answer_approval_when_asked(f"{MODEL}__model_deployment", "Approve", seen)

    dag_run = run_dag("model_deployment")

    approver.join(timeout=10)
    assert seen["aliases_while_waiting"] == {"champion": None, "challenger": version, "previous_champion": None}
    assert seen["response"] == 200
    assert dag_run.state == "success", task_states(dag_run)
    assert aliases()["champion"] == version
    assert service.model_info()["version"] == version


def test_a_floor_exception_needs_approval_even_when_promotion_is_automatic(demo_config):
    def configured(promotion, degraded_promotion):
        evaluation = demo_config.evaluation.model_copy(update={
            "degraded_champion": demo_config.evaluation.degraded_champion.model_copy(
                update={"promotion": degraded_promotion})})
        return demo_config.model_copy(update={
            "evaluation": evaluation, "deployment": demo_config.deployment.model_copy(update={"promotion": promotion})})

    floor_exception = {registry.TAG_GATE_PASSED: "true", registry.TAG_NEEDS_APPROVAL: "true"}
    plain = {registry.TAG_GATE_PASSED: "true", registry.TAG_NEEDS_APPROVAL: "false"}

    assert "floor exception" in deployment.approval_reason(configured("automatic", "approval"), floor_exception)
    assert deployment.approval_reason(configured("automatic", "approval"), plain) is None
    assert "every promotion" in deployment.approval_reason(configured("approval", "automatic"), plain)


@pytest.mark.slow
def test_with_automatic_promotion_only_a_floor_exception_waits_for_a_person(state_dir, airflow_db, service,
                                                                             monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    config = write_model_config(deployment={**FAST_CHECKS, "promotion": "automatic"},
                                evaluation={"degraded_champion": {"promotion": "approval"}})
    plain, exception = register_version(config, seed=1), register_version(config, seed=2)
    registry.client().set_model_version_tag(MODEL, exception, registry.TAG_NEEDS_APPROVAL, "true")

    registry.set_challenger(MODEL, plain)
    straight = run_dag("model_deployment")

    assert straight.state == "success", task_states(straight)
    assert task_states(straight)["approve_promotion"] == "skipped" and aliases()["champion"] == plain

    registry.set_challenger(MODEL, judged_against(exception, plain))
    seen: dict = {}
    approver = answer_approval_when_asked(f"{MODEL}__model_deployment", "Approve", seen)
    waited = run_dag("model_deployment")

    approver.join(timeout=10)
    assert seen["aliases_while_waiting"]["champion"] == plain and seen["response"] == 200
    assert waited.state == "success", task_states(waited)
    assert aliases()["champion"] == exception
