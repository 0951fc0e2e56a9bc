"""`<model>__level0_manual_training` (Level 0): a person trains and registers a model; nothing else happens.

One DAG per model config in `include/models/`. The task bodies call the same library as continuous
training (`include.training.continuous_training`), minus its gates; heavy libraries load inside the tasks,
never when this file is parsed.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException
from mlops_dags.model_dags import (
    configs_for_stage,
    dag_id,
    dag_tags,
    data_start,
    default_args,
    to_pendulum,
    training_params,
)

STAGE = "level0_manual_training"
TRIGGER = "manual"

DOC = """
### Level 0 manual training for `{model}`

Google's **Level 0**, kept as a baseline: every step is started by a person, and a model is
handed over by hand. Only a person triggers this DAG (this form, or
`bin/airflow dags trigger {dag_id} --conf '{{"reason": "…"}}'`); it has no schedule and listens
to no Asset.

1. **load_data**: the curated rows of the window joined with the labels known by the cutoff,
   split by time into train / validation / holdout (run `{model}__data_ingestion` first).
2. **train_model**: fit the sklearn Pipeline of `include/models/{model}.yaml`; log params,
   metrics, datasets and the model to MLflow.
3. **evaluate_model**: holdout metrics, slices, plots and golden examples on the MLflow run.
4. **register_model**: a new version of `{model}` in the MLflow registry, **with no alias**.

What Level 0 does **not** do: no data validation gate, no comparison with `@champion`, no
gate on the metrics, no alias, and it **never deploys**. The version is tagged
`gate_passed = false`, `gate_summary = "level 0: no gate"`.

**To deploy it**, a person triggers `{model}__model_deployment` with the version; since no gate
blessed it, deployment refuses it unless forced with a reason:
`bin/airflow dags trigger {model}__model_deployment --conf '{{"version": "<N>", "force": true, "reason": "…"}}'`.

When retraining by hand becomes a chore, or the data changes faster than people can react, move
up to Level 1: `{model}__continuous_training` retrains on new data and on drift, and only hands
over a version that beat `@champion`.
"""


def build(config):
    @dag(
        dag_id=dag_id(config.name, STAGE),
        schedule=None,
        start_date=to_pendulum(data_start(config)),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=config.paused_on_start,
        tags=dag_tags(config, 0),
        default_args=default_args(config),
        doc_md=DOC.format(model=config.name, dag_id=dag_id(config.name, STAGE)),
        params=training_params(config, "Why you are training; printed in the task log."),
    )
    def level0_manual_training():
        @task(retries=0)
        def load_data(**context) -> dict:
            """Check the request, then write the point-in-time training set split by time."""
            from include.training import continuous_training as ct
            from include.training import training, training_triggers

            dag_run, params = context["dag_run"], context["params"]
            try:
                training_triggers.check_request(dag_run.conf or {})
                hyperparameters = training.validate_overrides(config, params["hyperparameters"])
                cutoff = training_triggers.resolve_cutoff(config, params["cutoff"])
                run_ctx = ct.RunContext(dag_id=dag_run.dag_id, run_id=dag_run.run_id, trigger=TRIGGER,
                                        git_commit=ct.current_git_commit(), reason=params["reason"])
                assembled = ct.assemble(config, run_ctx, cutoff, params["window_days"])
            except (training_triggers.InvalidTrainingRequest, ValueError, ct.NotTrainable) as exc:
                raise AirflowFailException(str(exc)) from exc
            print(f"Level 0 training of {config.name} ({params['reason']}): {assembled['rows']} rows up to {cutoff}")
            return {**assembled, "run_ctx": run_ctx.__dict__, "hyperparameters": hyperparameters}

        @task
        def train_model(loaded: dict) -> dict:
            """Fit the model and log it to MLflow (a retry finds the run again)."""
            from include.training import continuous_training as ct

            return ct.train(config, loaded["run_ctx"], loaded["training_set_uri"], loaded["hyperparameters"])

        @task
        def evaluate_model(loaded: dict, trained: dict) -> dict:
            """Score the model on the holdout and log the scores and golden examples; no gate."""
            from include.training import continuous_training as ct

            return ct.evaluate_without_gate(config, loaded["run_ctx"], loaded["training_set_uri"],
                                            trained["mlflow_run_id"])

        @task
        def register_model(loaded: dict, trained: dict, evaluated: dict) -> dict:
            """Register a new version with no alias, and say how a person deploys it."""
            from include.training import continuous_training as ct

            registered = ct.register_without_gate(config, loaded["run_ctx"], trained["mlflow_run_id"])
            conf = f'{{"version": "{registered["version"]}", "force": true, "reason": "…"}}'
            print(f"Registered {config.name} version {registered['version']} with no alias "
                  f"({ct.LEVEL0_GATE_SUMMARY}); holdout metrics {evaluated['metrics']}. To deploy it: "
                  f"bin/airflow dags trigger {dag_id(config.name, 'model_deployment')} --conf '{conf}'")
            return registered

        loaded = load_data()
        trained = train_model(loaded)
        register_model(loaded, trained, evaluate_model(loaded, trained))

    return level0_manual_training()


for model_config in configs_for_stage(STAGE):
    build(model_config)
