"""The replay (`make replay`, `python -m include.replay`): a short one, run for real, and its refusals.

The module fixture replays the demo world over six weeks around the self-employed crisis with two
policies (triggered and every_day), on a copy of the demo config whose first window is two
weeks, in parallel processes, keeping each policy's state so the tests can look inside.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from include.core import settings
from include.core.config import ConfigError, load_model_config
from include.demo import data_world
from include.replay import policies, runner
from include.replay.__main__ import main as replay_cli
from include.replay.runner import replay

DEMO_CONFIG = settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml"
START, END = dt.date(2026, 4, 10), dt.date(2026, 5, 21)
WINDOW_DAYS = 14
DAYS_COLUMNS = ["policy", "day", "curated", "served_by", "rows_scored", "labelled_rows", "realized_metric",
                "realized_metric_7d", "request", "retrain", "retrain_why", "trained_version", "gate",
                "promoted_version", "train_cpu_seconds"]


def short_config(models: Path, **changes) -> Path:
    """The demo config with a two-week first window (and any other top-level section changed)."""
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["training"]["window_days"] = WINDOW_DAYS
    raw["training"]["min_rows"] = 1000
    raw["training"]["change_point"]["min_labelled_rows"] = 2000
    raw["source"]["rows_per_day"] = 600
    raw.update(changes)
    path = models / DEMO_CONFIG.name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def short_replay(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    models = root / "models"
    models.mkdir()
    short_config(models)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_MODELS_DIR", str(models))
        patch.setenv("MLOPS_STATE_DIR", str(root / "state"))
        done = replay("credit_default", START, END, "triggered,every_day", jobs=2, keep_state=True)
    return done


def rows_of(days: pd.DataFrame, policy: str) -> pd.DataFrame:
    return days[days["policy"] == policy].reset_index(drop=True)


@pytest.mark.slow
def test_a_short_replay_writes_its_days_summary_picture_and_report(short_replay):
    folder = short_replay.folder
    assert folder.parent.name == "credit_default" and folder.parent.parent.name == "replay"

    days = pd.read_csv(folder / "days.csv")
    summary = json.loads((folder / "summary.json").read_text())
    assert list(days.columns) == DAYS_COLUMNS
    first_served = START + dt.timedelta(days=WINDOW_DAYS)
    for policy in ("triggered", "every_day"):
        assert list(rows_of(days, policy)["day"]) == [
            (first_served + dt.timedelta(days=n)).isoformat() for n in range((END - first_served).days + 1)]
        kept = summary["policies"][policy]
        assert set(kept) >= {"mean_metric", "worst_7day_metric", "retrains", "promotions", "train_cpu_seconds"}
        assert 0.6 < kept["mean_metric"] < 0.95
    crisis = summary["scenarios"]["self_employed_crisis"]
    assert crisis["onset"] == "2026-05-01"
    assert set(crisis["triggered"]) >= {"first_request", "recovered_on"}
    assert (folder / "replay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (folder / "report.md").read_text()
    assert "| `triggered` |" in report and "| `every_day` |" in report and "self_employed_crisis" in report
    assert (folder.parent / "latest").resolve() == folder.resolve()


@pytest.mark.slow
def test_every_day_is_served_by_the_version_promoted_the_day_before(short_replay):
    """every_day runs in segments side by side: segment 2's versions are "2.<n>", and its first one ("2.1")
    is trained on the day before the segment, like the version the first segment promoted that day."""
    days = short_replay.days
    for policy in ("triggered", "every_day"):
        rows = rows_of(days, policy)
        serving = rows["served_by"].iloc[0]
        assert serving, f"{policy}: the first model serves from the first replayed day"
        for row in rows.itertuples():
            if policy == "every_day" and row.served_by.endswith(".1"):
                serving = row.served_by
            assert row.served_by == serving, (policy, row.day, row.served_by, serving)
            if row.promoted_version:
                serving = row.promoted_version
    every_day = rows_of(days, "every_day")
    assert (every_day["promoted_version"] != "").all(), "every_day promotes a new version every day"
    assert every_day["served_by"].nunique() == len(every_day)


@pytest.mark.slow
def test_the_served_versions_match_each_policys_promotion_history(short_replay):
    history = json.loads((short_replay.folder / "state" / "triggered" / "data" / "credit_default" / "deployment"
                          / "champion_history.json").read_text())
    promoted = {change["version"]: change["effective_day"] for change in history}
    rows = rows_of(short_replay.days, "triggered")
    for version, effective in promoted.items():
        served = rows[rows["served_by"] == version]["day"]
        if len(served):
            assert served.iloc[0] == max(effective, rows["day"].iloc[0]), (version, effective)


@pytest.mark.slow
def test_training_cpu_seconds_are_positive_and_grow_with_the_retrains(short_replay):
    days = short_replay.days
    retrained = days[days["retrain"] != ""]
    assert (retrained["train_cpu_seconds"] > 0.2).all()
    summary = short_replay.summary["policies"]
    assert summary["every_day"]["retrains"] == len(rows_of(days, "every_day"))
    assert summary["triggered"]["retrains"] < summary["every_day"]["retrains"]
    assert summary["triggered"]["train_cpu_seconds"] < summary["every_day"]["train_cpu_seconds"]
    every_day = rows_of(days, "every_day")["train_cpu_seconds"]
    assert (every_day > 0.2).all(), "every_day trains, and spends CPU, every day"
    per_retrain = {policy: summary[policy]["train_cpu_seconds"] / summary[policy]["retrains"]
                   for policy in ("triggered", "every_day") if summary[policy]["retrains"]}
    assert len(per_retrain) == 2, "the crisis made the triggered policy retrain"
    assert 0.33 < per_retrain["triggered"] / per_retrain["every_day"] < 3, per_retrain


@pytest.mark.slow
def test_the_replay_runs_the_library_steps_the_dags_run(short_replay):
    """Each policy's store holds what the DAG tasks leave: GX-validated batches, MLflow runs tagged with the
    continuous-training DAG, registered versions, and the champion history deployment writes."""
    import mlflow

    state = short_replay.folder / "state"
    curated = state / "data" / "credit_default" / "curated"
    assert len(list(curated.glob("day=*/batch.parquet"))) == (END - START).days + 1
    linked = state / "triggered" / "data" / "credit_default" / "curated" / f"day={END}"
    assert linked.is_symlink() and linked.resolve() == (curated / f"day={END}").resolve()
    store = f"sqlite:///{state / 'every_day' / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("credit_default").experiment_id])
    assert {run.data.tags.get("airflow_dag_id") for run in runs} == {"credit_default__continuous_training"}
    versions = client.search_model_versions("name = 'credit_default'")
    assert all(version.tags.get("gate_summary") == "level 0: no gate" for version in versions)
    assert str(client.get_model_version_by_alias("credit_default", "champion").version) == str(len(versions))


def test_an_unknown_policy_is_refused_naming_it_and_the_choices(capsys):
    assert replay_cli(["credit_default", "--policies", "level0,weekly"]) == 2
    said = capsys.readouterr().err
    assert "'weekly'" in said and "level0, scheduled, triggered, every_day" in said


@pytest.mark.parametrize("value", [",", " "])
def test_empty_policies_are_refused(value, capsys):
    assert replay_cli(["credit_default", "--policies", value]) == 2
    assert "POLICIES names no policy" in capsys.readouterr().err


def test_an_unknown_model_is_refused_naming_it(capsys):
    assert replay_cli(["credit_defualt"]) == 2
    said = capsys.readouterr().err
    assert "'credit_defualt'" in said and "credit_default" in said


@pytest.mark.parametrize(("args", "named"), [
    (["--start", "2026-13-01"], "START"),
    (["--end", "yesterday"], "END"),
    (["--start", "2025-12-01"], "outside the days"),
    (["--start", "2026-12-01"], "too short"),
])
def test_days_the_source_cannot_replay_are_refused(args, named, capsys):
    assert replay_cli(["credit_default", *args]) == 2
    assert named in capsys.readouterr().err


def test_a_config_policy_is_offered_beside_the_built_in_ones(tmp_path):
    path = short_config(tmp_path, replay={"policies": {"level1": {"retrain_on": ["request", "schedule", "new_data"]}}})
    config = load_model_config(path)

    offered = [policy.name for policy in policies.resolve(config, None)]

    assert offered == ["level0", "scheduled", "triggered", "every_day", "level1"]
    level1 = policies.resolve(config, "level1")[0]
    assert level1.listens_to_requests and level1.gate and not level1.memoryless


@pytest.mark.parametrize(("own", "named"), [
    ({"level0": {"retrain_on": ["every_day"]}}, "replay.policies.level0"),
    ({"weekly": {"retrain_on": ["schedule"]}}, "training.schedule is not set"),
    ({"weekly": {"retrain_on": ["monthly"]}}, "replay"),
])
def test_a_config_policy_that_cannot_work_is_a_config_error_naming_the_key(tmp_path, own, named):
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    if "schedule is not set" in named:
        raw["training"]["schedule"] = None
    raw["replay"] = {"policies": own}
    path = tmp_path / DEMO_CONFIG.name
    path.write_text(yaml.safe_dump(raw))

    with pytest.raises(ConfigError, match=named):
        load_model_config(path)


def test_scheduled_is_not_offered_without_a_schedule(tmp_path):
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["training"]["schedule"] = None
    (tmp_path / DEMO_CONFIG.name).write_text(yaml.safe_dump(raw))
    config = load_model_config(tmp_path / DEMO_CONFIG.name)

    assert "scheduled" not in [policy.name for policy in policies.resolve(config, None)]
    with pytest.raises(policies.UnknownPolicy, match="training.schedule is not set"):
        policies.resolve(config, "scheduled")


# --- a user's own files ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_files_source_replays_the_same_and_says_it_has_no_ground_truth(tmp_path, monkeypatch):
    """A user's CSV files with labels: the same replay, the scenario part left out and said so."""
    demo = load_model_config(DEMO_CONFIG)
    features, labels = tmp_path / "applications", tmp_path / "outcomes"
    features.mkdir()
    labels.mkdir()
    first = dt.date(2026, 1, 1)
    world = data_world.with_rows_per_day(demo, 400)
    for offset in range(WINDOW_DAYS + 6 + demo.target.label_delay_days):
        day = first + dt.timedelta(days=offset)
        if offset < WINDOW_DAYS + 6:
            data_world.feature_batch(world, day).to_csv(features / f"{day}.csv", index=False)
        arrived = data_world.labels_arriving_on(world, day)
        if len(arrived):
            arrived.to_csv(labels / f"{day}.csv", index=False)
    models = tmp_path / "models"
    models.mkdir()
    short_config(models, source={"kind": "files", "path": str(features), "pattern": "{day}.csv",
                                 "labels_path": str(labels), "labels_pattern": "{day}.csv",
                                 "start_date": first.isoformat()})
    monkeypatch.setenv("MLOPS_MODELS_DIR", str(models))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    done = replay("credit_default", policies="level0", jobs=1)

    assert done.summary["scenarios"] is None
    assert "no ground truth" in done.summary["scenarios_note"]
    assert "no ground truth" in (done.folder / "report.md").read_text()
    rows = rows_of(done.days, "level0")
    assert rows["day"].iloc[-1] == (first + dt.timedelta(days=WINDOW_DAYS + 5)).isoformat()
    assert rows["realized_metric"].notna().all(), "the labels arriving after the last day are landed too"
    assert list(scratch.iterdir()) == [] and not (done.folder / "state").exists(), "the throw-away state is removed"


def test_a_table_source_without_an_end_date_needs_end_and_has_no_ground_truth(tmp_path):
    """Data that grows in place has no last day of its own: the replay asks for END instead of crashing."""
    path = short_config(tmp_path, source={"kind": "table", "path": str(tmp_path / "applications"),
                                          "start_date": "2026-01-01"})
    config = load_model_config(path)

    with pytest.raises(runner.ReplayError, match="END=YYYY-MM-DD"):
        runner.plan_days(config, None, None)
    start, end, _ = runner.plan_days(config, None, dt.date(2026, 4, 1))
    assert (start, end) == (dt.date(2026, 1, 1), dt.date(2026, 4, 1))
    assert runner.ground_truth(config) is None
