"""The continuous-training steps end to end: real stores, real GX, real MLflow on SQLite."""

import dataclasses
import datetime as dt
import json
from pathlib import Path

import mlflow
import pytest

from include.core import registry
from include.training import continuous_training as ct
from tests.ct_world import FIRST_DAY, fill_stores, ready_mlflow, small_config

CUTOFF = FIRST_DAY + dt.timedelta(days=39)
WEAK = {"max_iter": 1, "max_leaf_nodes": 2}


pytestmark = pytest.mark.usefixtures("one_openmp_thread")


@pytest.fixture
def config(demo_config, state_dir):
    """The demo model, small, with 40 days of curated data and the labels that arrived."""
    ready_mlflow(state_dir)
    config = small_config(demo_config)
    fill_stores(config, days=40)
    return config


def run_ctx(config, number=1):
    return ct.RunContext(
        dag_id=f"{config.name}__continuous_training",
        run_id=f"scheduled__2026-02-{number:02d}T03:00:00+00:00",
        trigger="schedule",
        data_interval_start="2026-02-01T03:00:00+00:00",
        data_interval_end="2026-02-08T03:00:00+00:00",
        git_commit="0123abc",
    )


def run_pipeline(config, ctx, overrides=None):
    """Every step in DAG order, each fed with the previous steps' returned dicts."""
    assembled = ct.assemble(config, ctx, CUTOFF)
    validated = ct.validate(config, ctx, assembled["training_set_uri"])
    trained = ct.train(config, ctx, assembled["training_set_uri"], overrides)
    evaluated = ct.evaluate(config, ctx, assembled["training_set_uri"], trained["mlflow_run_id"])
    registered = ct.register(config, ctx, trained["mlflow_run_id"])
    return {"assemble": assembled, "validate": validated, "train": trained,
            "evaluate": evaluated, "register": registered}


def promote(config, version):
    """What deployment does: the challenger becomes the champion."""
    client = registry.client()
    client.set_registered_model_alias(config.name, registry.CHAMPION, str(version))
    client.delete_registered_model_alias(config.name, registry.CHALLENGER)


def test_each_step_writes_its_outputs_and_the_first_run_becomes_challenger_v1(config, state_dir):
    ctx = run_ctx(config)

    steps = run_pipeline(config, ctx)

    folder = state_dir / "runs" / config.name / "scheduled__2026-02-01T03_00_00_00_00"
    assert Path(steps["assemble"]["training_set_uri"]) == folder / "training_set"
    for name in ("training_set/train.parquet", "training_set/validation.parquet", "training_set/holdout.parquet",
                 "training_set/manifest.json", "training_set_check.json", "evaluation/gate_verdict.json",
                 "evaluation/plots/roc_curve.png", "evaluation/plots/calibration_curve.png",
                 "evaluation/plots/confusion_matrix.png"):
        assert (folder / name).is_file(), name
    for result in steps.values():
        json.dumps(result, allow_nan=False)
    assert steps["validate"]["passed"] and steps["train"]["converged"]
    assert steps["evaluate"]["passed"] and steps["evaluate"]["champion_version"] is None
    assert steps["register"] == {"version": "1", "alias_set": True,
                                 "verdict": {"passed": True, "reasons": []}, "newly_registered": True}
    assert str(registry.get_alias_version(config.name, registry.CHALLENGER).version) == "1"
    assert registry.get_champion_version(config.name) is None


def test_the_training_run_records_its_origin_data_model_and_verdict(config):
    ctx = run_ctx(config)
    steps = run_pipeline(config, ctx)

    client = registry.client()
    run = client.get_run(steps["train"]["mlflow_run_id"])
    tags = run.data.tags
    assert client.get_experiment(run.info.experiment_id).name == config.name
    assert (tags["airflow_dag_id"], tags["airflow_run_id"]) == (ctx.dag_id, ctx.run_id)
    assert (tags["airflow_trigger"], tags["git_commit"]) == ("schedule", "0123abc")
    assert tags["data_interval_start"] == "2026-02-01T03:00:00+00:00"
    assert tags[registry.TAG_GATE_PASSED] == "true" and tags[registry.TAG_COMPARED_WITH] == "none"
    manifest = ct.read_manifest(steps["assemble"]["training_set_uri"])
    inputs = {
        next(tag.value for tag in item.tags if tag.key == "mlflow.data.context"): item.dataset.digest
        for item in run.inputs.dataset_inputs
    }
    assert inputs == {"training": manifest["splits"]["train"]["digest"],
                      "validation": manifest["splits"]["validation"]["digest"],
                      "holdout": manifest["splits"]["holdout"]["digest"]}
    assert run.data.params["estimator"] == config.training.estimator.class_path
    assert {"train_roc_auc", "validation_roc_auc", "holdout_roc_auc"} <= set(run.data.metrics)
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"evaluation", "golden_examples.json", "data_checks"} <= artifacts
    decision = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/evaluation/gate_verdict.json")
    assert decision["verdict"]["passed"] and decision["compared_with_champion"] == "none"
    version = client.get_model_version(config.name, "1")
    assert version.run_id == run.info.run_id
    assert version.tags[registry.TAG_DATA_FINGERPRINT] == steps["assemble"]["fingerprint"]
    assert version.tags[registry.TAG_GOLDEN_EXAMPLES] == f"runs:/{run.info.run_id}/golden_examples.json"


def test_a_retried_train_or_register_reuses_the_run_and_the_version(config):
    ctx = run_ctx(config)
    first = run_pipeline(config, ctx)
    training_set = first["assemble"]["training_set_uri"]

    trained_again = ct.train(config, ctx, training_set)
    registered_again = ct.register(config, ctx, first["train"]["mlflow_run_id"])

    assert trained_again["reused"] and trained_again["mlflow_run_id"] == first["train"]["mlflow_run_id"]
    assert registered_again["version"] == "1" and not registered_again["newly_registered"]
    assert len(registry.client().search_model_versions(f"name = '{config.name}'")) == 1


def test_a_register_retried_after_deployment_does_not_make_the_champion_a_challenger_again(config):
    ctx = run_ctx(config)
    first = run_pipeline(config, ctx)
    promote(config, first["register"]["version"])

    again = ct.register(config, ctx, first["train"]["mlflow_run_id"])

    assert again["version"] == "1" and again["alias_set"] is False and again["verdict"]["passed"]
    assert registry.get_alias_version(config.name, registry.CHALLENGER) is None


def test_a_train_step_that_crashed_midway_is_resumed_in_the_same_mlflow_run(config):
    ctx = run_ctx(config)
    assembled = ct.assemble(config, ctx, CUTOFF)
    experiment_id = registry.ensure_experiment(config.name)
    tags = {**ctx.tags(), registry.TAG_DATA_FINGERPRINT: assembled["fingerprint"]}
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as crashed:
        mlflow.log_param("estimator", config.training.estimator.class_path)
    registry.client().set_terminated(crashed.info.run_id, status="FAILED")

    trained = ct.train(config, ctx, assembled["training_set_uri"])

    run = registry.client().get_run(trained["mlflow_run_id"])
    assert trained["mlflow_run_id"] == crashed.info.run_id and not trained["reused"]
    assert run.info.status == "FINISHED" and run.data.tags["training_complete"] == "true"


def test_a_worse_candidate_is_rejected_and_leaves_the_aliases_untouched(config):
    champion = run_pipeline(config, run_ctx(config, 1))
    promote(config, champion["register"]["version"])

    worse = run_pipeline(config, run_ctx(config, 2), overrides=WEAK)

    assert not worse["evaluate"]["passed"] and worse["evaluate"]["champion_version"] == "1"
    assert any("roc_auc" in reason for reason in worse["evaluate"]["reasons"])
    assert worse["register"]["version"] == "2" and worse["register"]["alias_set"] is False
    assert str(registry.get_champion_version(config.name).version) == "1"
    assert registry.get_alias_version(config.name, registry.CHALLENGER) is None
    tags = registry.client().get_model_version(config.name, "2").tags
    assert tags[registry.TAG_GATE_PASSED] == "false" and tags[registry.TAG_COMPARED_WITH] == "1"


def test_the_gates_new_facts_reach_the_run_the_verdict_file_and_the_version(config):
    champion = run_pipeline(config, run_ctx(config, 1))
    promote(config, champion["register"]["version"])

    worse = run_pipeline(config, run_ctx(config, 2), overrides=WEAK)

    evaluated = worse["evaluate"]
    gain = evaluated["primary_gain"]
    assert gain["outcome"] == "worse" and gain["interval"]["high"] < 0 and gain["interval"]["samples"] == 1000
    assert (evaluated["champion_degraded"], evaluated["floor_exception"], evaluated["needs_approval"]) == (
        False, False, False)
    run_tags = registry.client().get_run(worse["train"]["mlflow_run_id"]).data.tags
    version_tags = registry.client().get_model_version(config.name, "2").tags
    for tags in (run_tags, version_tags):
        assert tags[registry.TAG_CHAMPION_DEGRADED] == "false" and tags[registry.TAG_NEEDS_APPROVAL] == "false"
        assert tags[registry.TAG_FLOOR_EXCEPTION] == "false"
        gain_tag = tags[registry.TAG_PRIMARY_GAIN]
        assert gain_tag.startswith("worse roc_auc -") and gain_tag.endswith("@0.95")
    verdict = json.loads((ct.run_dir(config, run_ctx(config, 2)) / "evaluation" / ct.VERDICT_FILE).read_text())
    assert verdict["verdict"]["primary_gain"]["rule"].endswith("lies below 0")
    assert {floor["name"] for floor in verdict["verdict"]["champion_floors"]} == {
        "threshold:roc_auc", "threshold:average_precision", "threshold:brier_score"}


def test_a_candidate_better_than_the_champion_becomes_the_challenger(config):
    weak = run_pipeline(config, run_ctx(config, 1), overrides=WEAK)
    promote(config, weak["register"]["version"])

    better = run_pipeline(config, run_ctx(config, 2))

    evaluated = better["evaluate"]
    assert evaluated["passed"], evaluated["reasons"]
    assert evaluated["metrics"]["roc_auc"] > evaluated["champion_metrics"]["roc_auc"]
    assert better["register"] == {"version": "2", "alias_set": True,
                                  "verdict": {"passed": True, "reasons": []}, "newly_registered": True}
    assert str(registry.get_champion_version(config.name).version) == "1"


def test_data_that_cannot_be_trained_on_is_a_broken_run_not_a_rejection(config, state_dir):
    demanding = small_config(config, min_rows=1_000_000)
    ctx = run_ctx(demanding)
    assembled = ct.assemble(demanding, ctx, CUTOFF)

    with pytest.raises(ct.NotTrainable, match="enough_rows"):
        ct.validate(demanding, ctx, assembled["training_set_uri"])

    report = json.loads((ct.run_dir(demanding, ctx) / "training_set_check.json").read_text())
    assert report["passed"] is False and report["reasons"]


def test_a_window_whose_labels_have_not_arrived_cannot_be_assembled(config):
    early = FIRST_DAY + dt.timedelta(days=config.target.label_delay_days - 1)

    with pytest.raises(ct.NotTrainable, match="labelled rows"):
        ct.assemble(config, run_ctx(config), early)


def test_an_unknown_override_raises_naming_it_before_any_mlflow_run(config):
    ctx = run_ctx(config)
    assembled = ct.assemble(config, ctx, CUTOFF)

    with pytest.raises(ValueError, match="override 'max_depthh'"):
        ct.train(config, ctx, assembled["training_set_uri"], {"max_depthh": 3})

    assert registry.client().get_experiment_by_name(config.name) is None


def test_a_cutoff_may_be_a_date_an_iso_string_or_an_aware_datetime():
    day = dt.date(2026, 3, 1)
    late_evening_in_new_york = dt.datetime(2026, 2, 28, 21, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))

    assert ct.as_date(day) == ct.as_date("2026-03-01") == ct.as_date("2026-03-01T03:00:00+00:00") == day
    assert ct.as_date(late_evening_in_new_york) == day


def test_the_git_commit_comes_from_the_environment_or_from_git(monkeypatch):
    monkeypatch.setenv("MLOPS_GIT_COMMIT", "feedbeef")
    assert ct.current_git_commit() == "feedbeef"

    monkeypatch.delenv("MLOPS_GIT_COMMIT")
    commit = ct.current_git_commit()
    assert commit == "unknown" or len(commit) == 40


def test_a_run_context_may_travel_between_tasks_as_a_dict(config):
    ctx = run_ctx(config)

    assert ct.RunContext.of(dataclasses.asdict(ctx)) == ctx
    assert ct.run_dir(config, dataclasses.asdict(ctx)) == ct.run_dir(config, ctx)


def test_run_ids_become_safe_folder_names():
    assert ct.sanitize_run_id("manual__2026-03-01T03:00:00+00:00") == "manual__2026-03-01T03_00_00_00_00"
    assert ct.sanitize_run_id("../../etc") == "etc"


def test_a_change_point_puts_the_holdout_in_the_new_world_and_weights_it_in_training(config):
    ctx = run_ctx(config)
    change = CUTOFF - dt.timedelta(days=12)

    assembled = ct.assemble(config, ctx, CUTOFF, change_start=change)
    trained = ct.train(config, ctx, assembled["training_set_uri"])

    holdout = ct.read_split(assembled["training_set_uri"], "holdout")
    assert assembled["change_start"] == change.isoformat()
    assert holdout[config.schema.timestamp_column].min() >= dt.datetime.combine(change, dt.time.min)
    params = registry.client().get_run(trained["mlflow_run_id"]).data.params
    assert params["change_start"] == change.isoformat() and params["weighted_after_change"] == "True"


def test_a_change_point_before_the_window_changes_nothing(config):
    before_window = CUTOFF - dt.timedelta(days=20)

    assembled = ct.assemble(config, run_ctx(config), CUTOFF, window_days=10, change_start=before_window)

    assert assembled["change_start"] is None
