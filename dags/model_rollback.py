"""`<model>__model_rollback` (Level 2): one manual trigger puts an earlier version back in production.

One DAG per model config in `include/models/`. The task bodies call `include.delivery.deployment` and
`include.delivery.service_checks`; heavy libraries load inside the tasks.
"""

from __future__ import annotations

import os

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from mlops_dags.model_dags import configs_for_stage, dag_id, dag_tags, data_start, default_args, to_pendulum

STAGE = "model_rollback"

DOC = """
### Model rollback for `{model}`

Only a person triggers it: `bin/airflow dags trigger {dag_id}` restores `@previous_champion`;
`--conf '{{"version": "2", "reason": "…"}}'` restores a named version.

1. **choose_target**: the named version, else `@previous_champion`. A named version other than
   `@previous_champion` must have passed the gate (tag `gate_passed`); one that did not (a Level 0
   version, one the gate rejected) needs `force` and a reason of your own, both recorded on it.
2. **validate_infrastructure** (a named version only; skipped for `@previous_champion`, which
   served just before): the same fresh-process checks a deployment runs.
3. **restore_champion**: `champion` ← the target; `previous_champion` ← the version the target had
   itself replaced, so a second rollback goes one step further back, only if `champion` and
   `previous_champion` are still what choose_target read: when a deployment moved them in between,
   the run fails saying so and nothing moves (trigger again). The version taken out of
   service is tagged `deployment_status=rolled_back` with the reason. The champion history records
   that the target serves again from the next data day (the newest curated day + 1), so batch
   prediction and the drift sensor judge each day by the version that served it.
4. **verify_live_service**: the prediction service serves the target and answers its golden
   examples with their recorded outputs.

A deployment that fails its post-promotion checks rolls itself back without this DAG.
"""


def build(config):
    @dag(
        dag_id=dag_id(config.name, STAGE),
        schedule=None,
        start_date=to_pendulum(data_start(config)),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=config.paused_on_start,
        tags=dag_tags(config, 2),
        default_args=default_args(config),
        doc_md=DOC.format(model=config.name, dag_id=dag_id(config.name, STAGE)),
        params={
            "version": Param(None, type=["null", "string"], title="Version to restore",
                             description="Empty = @previous_champion."),
            "force": Param(False, type="boolean", title="Force",
                           description="Restore a named version the gate did not bless (needs a reason of "
                                       "your own)."),
            # The default is deployment.DEFAULT_ROLLBACK_REASON, which a forced rollback refuses (not
            # imported: this file parses without numpy).
            "reason": Param("manual rollback", type="string", minLength=1, title="Reason",
                            description="Why; recorded on the version taken out of service (and on a forced "
                                        "target)."),
        },
    )
    def model_rollback():
        @task(retries=0)
        def choose_target(**context) -> dict:
            """The version to restore, fixed once so that a retried task never goes further back."""
            from include.delivery import deployment

            params = context["params"]
            try:
                return deployment.rollback_target(config, params["version"], force=params["force"],
                                                  reason=params["reason"],
                                                  requested_by=context["dag_run"].triggering_user_name)
            except deployment.DeploymentRefused as exc:
                raise AirflowFailException(str(exc)) from exc

        @task(retries=0)
        def validate_infrastructure(target: dict) -> dict:
            """A named version is checked like a deployment; @previous_champion served just before."""
            from include.delivery import deployment, infra_validation

            if not target["validate"]:
                raise AirflowSkipException(f"version {target['target']} is @previous_champion")
            try:
                return deployment.validate_infrastructure(config, target["target"])
            except infra_validation.InfraValidationFailed as exc:
                raise AirflowFailException(str(exc)) from exc

        @task(trigger_rule="none_failed_min_one_success")
        def restore_champion(target: dict, **context) -> dict:
            """Point @champion at the target (nothing moves when it already is the champion), unless
            another run moved the aliases since choose_target read them."""
            from include.delivery import deployment

            who = context["dag_run"].triggering_user_name or "unknown"
            expected = {alias: target[alias] for alias in ("champion", "previous_champion")}
            try:
                restored = deployment.roll_back_to(config, target["target"],
                                                   f"{context['params']['reason']} (by {who})",
                                                   airflow_run_id=context["dag_run"].run_id, expected=expected)
            except deployment.AliasesMoved as exc:
                raise AirflowFailException(str(exc)) from exc
            print(f"@champion of {config.name} is version {restored['champion']} "
                  f"(was {restored['rolled_back_from'] or 'already'})")
            return restored

        @task
        def verify_live_service(restored: dict) -> dict:
            """The service serves the restored version and answers its golden examples."""
            from include.core import settings
            from include.delivery import deployment, service_checks

            version = restored["champion"]
            try:
                return deployment.check_served_version(config, version, settings.serving_url(),
                                                       os.environ.get("MLOPS_SERVING_ADMIN_TOKEN"))
            except (service_checks.ServiceCheckFailed, deployment.DeploymentRefused) as exc:
                raise AirflowFailException(f"version {version} is @champion again, but {exc}") from exc

        target = choose_target()
        validated = validate_infrastructure(target)
        restored = restore_champion(target)
        validated >> restored
        verify_live_service(restored)

    return model_rollback()


for model_config in configs_for_stage(STAGE):
    build(model_config)
