"""`<model>__model_deployment` (Levels 1–2): deliver a blessed version to the prediction service.

One DAG per model config in `include/models/`. The task bodies call `include.delivery.deployment`,
`include.delivery.infra_validation` and `include.delivery.service_checks`; heavy libraries load inside the tasks.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from mlops_dags.model_dags import (
    challenger_asset,
    configs_for_stage,
    dag_id,
    dag_tags,
    data_start,
    default_args,
    to_pendulum,
)

from include.core import settings

STAGE = "model_deployment"

DOC = """
### Model deployment for `{model}`

Runs when continuous training announces a new `@challenger` (the `{model}__challenger` Asset),
or when a person triggers it with a version:
`bin/airflow dags trigger {dag_id} --conf '{{"version": "3"}}'`. Promotion is **{promotion}**.

1. **check_candidate**: the version's gate verdict (MLflow tag `gate_passed`), judged against the
   champion that still serves (tag `compared_with_champion`, "judged against …" on the model page).
   An unblessed version (a Level 0 one, or one the gate rejected), or one judged against a champion
   replaced since (retrain to judge a new one), is refused unless `force` is set with a `reason`;
   who forced it and why are recorded on the version.
2. **validate_infrastructure**: in a fresh process with the service's environment: the logged
   requirements are installed, the model loads through the service's loader, reproduces its
   golden examples, and fits the memory budget and, in CPU time per record, the latency budget
   (`serving` in the model config).
3. **approve_promotion** (with `deployment.promotion: approval`, or for a version the gate let
   pass below a floor over a degraded champion when `evaluation.degraded_champion.promotion` is
   `approval`; **needs_approval** then decides per version): a person approves in the UI
   (Required actions); no answer in {approval_hours:g} h counts as a rejection.
4. **promote**: `previous_champion` ← `champion`, `champion` ← the version, `challenger` removed,
   only if `champion` and `previous_champion` are still what check_candidate read: when a rollback
   moved them in between, the run fails saying so and nothing moves (trigger again).
5. **verify_live_service**: the prediction service ({serving_url}) serves the version, answers
   the golden inputs with the golden outputs, and takes a {rate:g} req/s load test for {seconds:g} s
   within the p99 budget of {budget:g} ms; the figures are recorded on the version.
6. **record_deployment**: the version is tagged `deployment_status=serving`; the run succeeds.
7. **roll_back_on_failure** (only when a task failed): when the version had been promoted, the
   aliases are put back and the service is checked to serve the previous version again. The run
   fails; the reason is on the failed task and on the version (`rollback_reason`).
"""


def build(config):
    deploy = config.deployment
    some_promotions_need_approval = (
        deploy.promotion == "automatic" and config.evaluation.degraded_champion.promotion == "approval"
    )

    @dag(
        dag_id=dag_id(config.name, STAGE),
        schedule=[challenger_asset(config)],
        start_date=to_pendulum(data_start(config)),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=config.paused_on_start,
        tags=dag_tags(config, 1, 2),
        default_args=default_args(config),
        doc_md=DOC.format(
            model=config.name, dag_id=dag_id(config.name, STAGE), promotion=deploy.promotion,
            approval_hours=deploy.approval_timeout_hours, serving_url=settings.serving_url(),
            rate=deploy.load_test_rate, seconds=deploy.load_test_seconds, budget=config.serving.latency_budget_ms,
        ),
        params={
            "version": Param(None, type=["null", "string"], title="Model version",
                             description="The registered version to deploy; empty = the current @challenger."),
            "force": Param(False, type="boolean", title="Force",
                           description="Deploy a version the gate did not bless (needs a reason)."),
            # Nullable: the form opens without an error and deploys the challenger as it opens; a
            # forced deployment without a reason is refused by check_candidate, saying so.
            "reason": Param(None, type=["null", "string"], title="Reason",
                            description="Why you force this deployment (needed with Force); recorded on the "
                                        "model version."),
            "load_test_rate": Param(None, type=["null", "number"], exclusiveMinimum=0, title="Load test rate (req/s)",
                                    description=f"Requests per second of the post-deploy load test; empty = "
                                                f"{deploy.load_test_rate:g} from the model config."),
        },
    )
    def model_deployment():
        @task(retries=0)
        def check_candidate(**context) -> dict:
            """Which version, and may it go to production? An unblessed one only when forced."""
            from include.delivery import deployment

            params, dag_run = context["params"], context["dag_run"]
            announced = [
                event.extra.get("version")
                for events in context["triggering_asset_events"].values()
                for event in events
                if event.extra and event.extra.get("version")
            ]
            try:
                version = deployment.resolve_version(config, params["version"], announced[-1] if announced else None)
                candidate = deployment.check_candidate(
                    config, version, force=params["force"], reason=params["reason"] or "",
                    requested_by=dag_run.triggering_user_name,
                )
            except deployment.DeploymentRefused as exc:
                raise AirflowFailException(str(exc)) from exc
            forced = f" (FORCED: {params['reason']})" if candidate["forced"] else ""
            print(f"Deploying version {version} of {config.name}{forced}; champion now: {candidate['champion']}")
            return candidate

        @task(retries=0)
        def validate_infrastructure(candidate: dict) -> dict:
            """Load and check the version in a fresh process with the service's environment."""
            from include.delivery import deployment, infra_validation

            try:
                return deployment.validate_infrastructure(config, candidate["version"])
            except infra_validation.InfraValidationFailed as exc:
                raise AirflowFailException(str(exc)) from exc

        # With automatic promotion, only a floor exception over a degraded champion may wait for a
        # person: approve_promotion is then skipped for every other version, and promote runs anyway.
        @task(trigger_rule="none_failed_min_one_success" if some_promotions_need_approval else "all_success")
        def promote(candidate: dict, infra: dict, **context) -> dict:
            """Move the aliases: the version becomes @champion, the old one @previous_champion, unless
            another run moved them since check_candidate read them."""
            from include.delivery import deployment

            expected = {alias: candidate[alias] for alias in ("champion", "previous_champion")}
            try:
                return deployment.promote(config, candidate["version"], context["dag_run"].run_id,
                                          expected=expected)
            except deployment.AliasesMoved as exc:
                raise AirflowFailException(str(exc)) from exc

        @task(retries=0)
        def verify_live_service(candidate: dict, promoted: dict, **context) -> dict:
            """The live service serves the version, answers its golden examples, and takes the load."""
            from include.delivery import deployment, service_checks

            try:
                verified = deployment.verify_live_service(
                    config, candidate["version"], settings.serving_url(),
                    admin_token=os.environ.get("MLOPS_SERVING_ADMIN_TOKEN"),
                    load_test_rate=context["params"]["load_test_rate"],
                )
            except (service_checks.ServiceCheckFailed, deployment.DeploymentRefused) as exc:
                raise AirflowFailException(str(exc)) from exc
            load = verified["load_test"]
            print(f"Load test: {load['qps']} req/s, p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms, "
                  f"{load['errors']} errors")
            return verified

        @task
        def record_deployment(candidate: dict, verified: dict) -> dict:
            """Mark the version as serving. Runs only when every check passed, so it is also the
            task whose state says whether the deployment succeeded."""
            from include.delivery import deployment

            deployment.mark_serving(config, candidate["version"])
            return {"version": candidate["version"], **verified}

        @task(trigger_rule="one_failed", retries=2)
        def roll_back_on_failure(**context) -> dict:
            """Something failed: if the version was promoted, restore the aliases and check the service."""
            from include.delivery import deployment, service_checks

            candidate = context["ti"].xcom_pull(task_ids="check_candidate")
            if not candidate:
                raise AirflowSkipException("no version was chosen, so nothing was promoted")
            version = candidate["version"]
            reason = (deployment.failure_reason(config, version)
                      or "a task after promotion failed; see the run's task logs")
            undone = deployment.undo_promotion(config, version, reason, airflow_run_id=context["dag_run"].run_id)
            if not undone["undone"]:
                raise AirflowSkipException(f"version {version} is not @champion, so there is nothing to undo")
            restored = undone["champion"]
            service_checks.wait_until_serving(
                settings.serving_url(), config.name, restored, timeout=deploy.service_timeout_seconds,
                admin_token=os.environ.get("MLOPS_SERVING_ADMIN_TOKEN"),
            )
            serving = f"version {restored}" if restored else "no version (there was no champion before)"
            print(f"Deployment of version {version} failed and was rolled back; the service serves {serving}. "
                  f"Why: {reason}")
            return {"rolled_back": version, "champion": restored, "reason": reason}

        candidate = check_candidate()
        infra = validate_infrastructure(candidate)
        promoted = promote(candidate, infra)
        if deploy.promotion == "approval" or some_promotions_need_approval:
            from airflow.providers.standard.operators.hitl import ApprovalOperator

            approve_promotion = ApprovalOperator(
                task_id="approve_promotion",
                subject=f"Promote version {{{{ ti.xcom_pull(task_ids='check_candidate')['version'] }}}} of "
                        f"{config.name} to @champion?",
                body="Why you decide: {{ ti.xcom_pull(task_ids='check_candidate')['approval_reason'] }}\n\n"
                     "Gate: {{ ti.xcom_pull(task_ids='check_candidate')['gate_summary'] }}\n\n"
                     "Infra validation: {{ ti.xcom_pull(task_ids='validate_infrastructure') }}\n\n"
                     "Current champion: {{ ti.xcom_pull(task_ids='check_candidate')['champion'] }}",
                defaults="Reject",
                response_timeout=dt.timedelta(hours=deploy.approval_timeout_hours),
                params={},
            )
            if some_promotions_need_approval:

                @task.short_circuit(ignore_downstream_trigger_rules=False)
                def needs_approval(candidate: dict) -> bool:
                    """Does this version wait for a person? Only a floor exception does; else promote at once."""
                    print(f"Approval: {candidate['approval_reason'] or 'not needed; promoting automatically'}")
                    return bool(candidate["approval_reason"])

                infra >> needs_approval(candidate) >> approve_promotion >> promoted
            else:
                infra >> approve_promotion >> promoted
        verified = verify_live_service(candidate, promoted)
        record_deployment(candidate, verified)
        verified >> roll_back_on_failure()

    return model_deployment()


for model_config in configs_for_stage(STAGE):
    build(model_config)
