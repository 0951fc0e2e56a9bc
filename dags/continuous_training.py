"""`<model>__continuous_training` (Level 1): retrain, judge against `@champion`, register, hand over.

One DAG per model config in `include/models/`. The task bodies call `include.training.continuous_training`;
heavy libraries load inside the tasks, never when this file is parsed.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from mlops_dags.model_dags import (
    challenger_asset,
    configs_for_stage,
    curated_batch_asset,
    dag_id,
    dag_tags,
    data_start,
    default_args,
    retrain_request_asset,
    to_pendulum,
    training_params,
)

STAGE = "continuous_training"
# Runs nobody asked for by hand: when the data is not ready yet they skip (and say why) instead
# of failing, and the next batch or schedule tries again. A person's or a monitor's request fails.
AUTOMATIC_TRIGGERS = ("schedule", "new_data")


def trigger_is_automatic(context) -> bool:
    from include.training.training_triggers import run_type_name

    return run_type_name(context["dag_run"].run_type) in ("scheduled", "asset_triggered") and not any(
        name.endswith("__retrain_request")
        for name in (getattr(asset, "name", "") for asset in context["triggering_asset_events"])
    )

DOC = """
### Continuous training for `{model}`

Google's Level 1: the pipeline, not a person, retrains on fresh data and hands over only a
better model. Five triggers, recorded on every run (MLflow tag `airflow_trigger`):
**on_demand** (this form or `bin/airflow dags trigger {dag_id} --conf '{{"reason": "…"}}'`),
**schedule** (`{schedule}`), **new_data** (every {every_n} curated batches),
**drift** and **performance** (the drift sensor's `{model}__retrain_request` Asset).

1. **plan_run**: check the conf, name the trigger, decide whether to train. A drift or
   performance request names when the world changed; it waits (the run is skipped, saying so)
   until {min_labelled} labelled rows exist from then on, and the next run of any kind trains for it.
2. **assemble_training_set**: curated rows of the window joined with labels that had arrived
   by the cutoff (point-in-time correct), split by time into train / validation / holdout; with a
   change point in the window the holdout comes from after it and those rows weigh more in training.
3. **validate_training_set**: GX checks that the data can be trained on.
4. **train_candidate**: fit the sklearn Pipeline; log params, metrics, dataset and model to MLflow.
5. **evaluate_candidate**: candidate and `@champion` on the same holdout; the gate's verdict
   (floors on both models, the bootstrap gain and its ties rule, non-inferiority margins,
   slices, NaN, convergence) goes on the MLflow run.
6. **register_candidate**: register the version; only a blessed one becomes `@challenger`.
   A rejection is a normal outcome: the run succeeds and says why.
7. **announce_challenger**: update `{model}__challenger` for delivery (skipped on rejection).
8. **alert_on_degraded_champion**: after {alert_after} rejected retrains in a row while `@champion`
   misses its own floors, the notifier `{notifier}` raises an alert and this task fails, so the
   run stands out: the loop is not recovering by itself.
"""


def build(config):
    curated = curated_batch_asset(config)
    retrain = retrain_request_asset(config)
    challenger = challenger_asset(config)
    assets = curated | retrain
    if config.training.schedule:
        schedule = AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(config.training.schedule, timezone="UTC"), assets=assets
        )
    else:
        schedule = assets

    @dag(
        dag_id=dag_id(config.name, STAGE),
        schedule=schedule,
        start_date=to_pendulum(data_start(config)),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=config.paused_on_start,
        tags=dag_tags(config, 1),
        default_args=default_args(config),
        doc_md=DOC.format(
            model=config.name,
            dag_id=dag_id(config.name, STAGE),
            schedule=config.training.schedule or "no schedule",
            every_n=config.training.every_n_batches,
            min_labelled=config.training.change_point.min_labelled_rows,
            alert_after=config.evaluation.degraded_champion.alert_after_rejections,
            notifier=config.evaluation.degraded_champion.notifier,
        ),
        params={
            **training_params(config, "Why you are retraining; recorded on the MLflow run."),
            "change_start": Param(None, type=["null", "string"], format="date", title="Change point",
                                  description="First day of a changed world (YYYY-MM-DD): the holdout comes from "
                                              "the labelled rows from then on, which also weigh more in training."),
        },
    )
    def continuous_training():
        @task(retries=0)
        def plan_run(**context) -> dict:
            """Validate the conf, name the trigger, and skip a new-data run that should wait."""
            from include.training import continuous_training as ct
            from include.training import training_triggers

            dag_run, params = context["dag_run"], context["params"]
            try:
                training_triggers.check_request(dag_run.conf or {})
                events = {
                    getattr(asset, "name", str(asset)): [dict(event.extra or {}) for event in asset_events]
                    for asset, asset_events in context["triggering_asset_events"].items()
                }
                trigger = training_triggers.describe_trigger(dag_run.run_type, events, params["reason"])
                planned = training_triggers.plan_training(config, trigger, params["cutoff"], params["change_start"])
            except training_triggers.InvalidTrainingRequest as exc:
                if trigger_is_automatic(context):
                    raise AirflowSkipException(f"not training yet: {exc}") from exc
                raise AirflowFailException(str(exc)) from exc
            if not planned["train"]:
                raise AirflowSkipException(planned["why"])
            start, end = context.get("data_interval_start"), context.get("data_interval_end")
            run_ctx = ct.RunContext(
                dag_id=dag_run.dag_id,
                run_id=dag_run.run_id,
                trigger=planned["trigger"],
                data_interval_start=start.isoformat() if start else None,
                data_interval_end=end.isoformat() if end else None,
                git_commit=ct.current_git_commit(),
                reason=planned["reason"],
            )
            print(f"Training {config.name}: trigger {planned['trigger']} ({planned['reason']}); {planned['why']}; "
                  f"data up to {planned['cutoff']}, change point {planned['change_start'] or 'none'}")
            return {
                "run_ctx": run_ctx.__dict__,
                "trigger": {**trigger, "trigger": planned["trigger"], "reason": planned["reason"]},
                "cutoff": planned["cutoff"],
                "change_start": planned["change_start"],
                "window_days": params["window_days"],
                "hyperparameters": context["params"]["hyperparameters"] or {},
            }

        @task
        def assemble_training_set(plan: dict) -> dict:
            """Point-in-time correct training set, split by time; written as Parquet."""
            from include.training import continuous_training as ct

            try:
                return ct.assemble(config, plan["run_ctx"], plan["cutoff"], plan["window_days"], plan["change_start"])
            except ct.NotTrainable as exc:
                if plan["trigger"]["trigger"] in AUTOMATIC_TRIGGERS:
                    raise AirflowSkipException(f"not training yet, the data is not ready: {exc}") from exc
                raise AirflowFailException(str(exc)) from exc

        @task(retries=0)
        def validate_training_set(plan: dict, assembled: dict) -> dict:
            """GX checks that the data can be trained on; fails the run when it cannot."""
            from include.training import continuous_training as ct

            try:
                return ct.validate(config, plan["run_ctx"], assembled["training_set_uri"])
            except ct.NotTrainable as exc:
                if plan["trigger"]["trigger"] in AUTOMATIC_TRIGGERS:
                    raise AirflowSkipException(f"not training yet, the data is not ready: {exc}") from exc
                raise AirflowFailException(str(exc)) from exc

        @task
        def train_candidate(plan: dict, assembled: dict, validated: dict) -> dict:
            """Fit the candidate and log it to MLflow (a retry finds the run again)."""
            from include.training import continuous_training as ct

            return ct.train(config, plan["run_ctx"], assembled["training_set_uri"], plan["hyperparameters"])

        @task
        def evaluate_candidate(plan: dict, assembled: dict, trained: dict) -> dict:
            """Judge the candidate against @champion on the same holdout; record the verdict."""
            from include.training import continuous_training as ct

            return ct.evaluate(config, plan["run_ctx"], assembled["training_set_uri"], trained["mlflow_run_id"])

        @task
        def register_candidate(plan: dict, trained: dict, evaluated: dict) -> dict:
            """Register the version; set @challenger only when the gate passed."""
            import datetime as dt

            from include.training import continuous_training as ct
            from include.training import training_triggers

            registered = ct.register(config, plan["run_ctx"], trained["mlflow_run_id"])
            training_triggers.record_training(config.name, dt.date.fromisoformat(plan["cutoff"]),
                                              plan["run_ctx"]["run_id"])
            return registered

        @task(outlets=[challenger])
        def announce_challenger(plan: dict, registered: dict, **context) -> dict:
            """Tell model delivery there is a new challenger (skipped when the gate rejected it)."""
            if not registered["alias_set"]:
                raise AirflowSkipException("the candidate was rejected; there is no new challenger")
            event = {"version": str(registered["version"]), "trigger": plan["trigger"]["trigger"],
                     "run_id": plan["run_ctx"]["run_id"]}
            context["outlet_events"][challenger].extra = event
            return event

        @task(retries=0)
        def alert_on_degraded_champion(registered: dict, **context) -> dict:
            """Fail, loudly, when the degraded champion outlasts N rejected retrains in a row."""
            from mlops_dags import notifiers

            from include.monitoring import alerts

            alert = alerts.degraded_champion_alert(config)
            if alert is None:
                return {"alert": False}
            context[alerts.ALERT_CONTEXT_KEY] = alert
            notifiers.build_notifier(config)(context)
            raise AirflowFailException(alert["message"])

        plan = plan_run()
        assembled = assemble_training_set(plan)
        validated = validate_training_set(plan, assembled)
        trained = train_candidate(plan, assembled, validated)
        evaluated = evaluate_candidate(plan, assembled, trained)
        registered = register_candidate(plan, trained, evaluated)
        announce_challenger(plan, registered)
        alert_on_degraded_champion(registered)

    return continuous_training()


for model_config in configs_for_stage(STAGE):
    build(model_config)
