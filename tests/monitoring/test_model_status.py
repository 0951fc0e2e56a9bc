"""Where each model's loop stands: what the MLOps pages show, read from what the loop recorded.

Two worlds: the status world (`tests/status_world.py`: a fleet with a history written in the loop's own
formats), and, for the delivery moves, versions trained and moved by the real delivery functions.
"""

import datetime as dt
import json

import pytest

from include.core import champion_history, registry, settings, storage
from include.delivery import deployment
from include.monitoring import model_status
from include.monitoring.evidently_reports import snapshot_for_html
from include.monitoring.model_status import fleet_status, reports_of_day
from include.monitoring.model_status import model_status as status_of
from tests.ct_world import fill_stores, ready_mlflow
from tests.deployment_world import register_version, write_model_config
from tests.monitoring_world import day
from tests.status_world import FAILURE, FORCE_REASON, ROLLBACK_REASON, build_status_world, write_replay

FLEET_ROW_KEYS = {"model", "owner", "champion", "challenger", "last_training", "last_check", "degraded", "alert",
                  "quarantined_batches"}
MODEL_KEYS = {"summary", "aliases", "timeline", "monitoring", "quarantine", "reports", "data_docs", "replay"}
DAYS = 90


@pytest.fixture(autouse=True)
def fresh_cache():
    model_status.clear_cache()
    yield
    model_status.clear_cache()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Five models over 90 days (model_04 ends with a degraded champion), built once for the read-only tests."""
    root = tmp_path_factory.mktemp("fleet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_STATE_DIR", str(root / "state"))
        patch.setenv("MLOPS_MODELS_DIR", str(root / "models"))
        patch.delenv("MLOPS_DATA_DIR", raising=False)
        patch.delenv("MLOPS_REPORTS_DIR", raising=False)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'state' / 'mlflow' / 'mlflow.db'}")
        yield {config.name: config for config in build_status_world(5, DAYS)}


def served_on(model: str, when: str) -> str | None:
    return champion_history.champion_on(model, dt.date.fromisoformat(when))


# --- no champion yet -----------------------------------------------------------------------------


def test_a_model_with_no_champion_yet_has_every_key_and_nothing_in_them(state_dir, demo_config):
    status = status_of(demo_config)

    assert set(status) == MODEL_KEYS
    assert status["summary"] == {"model": "credit_default", "owner": "ml-team", "champion": None, "challenger": None,
                                 "last_training": None, "last_check": None, "degraded": False, "alert": None,
                                 "quarantined_batches": 0}
    assert status["aliases"] == {"champion": None, "challenger": None, "previous_champion": None}
    assert status["timeline"] == status["quarantine"] == status["reports"] == status["data_docs"] == []
    assert status["monitoring"]["days"] == status["monitoring"]["requests"] == status["monitoring"]["promotions"] == []
    assert status["replay"] is None
    assert not (state_dir / "mlflow" / "mlflow.db").exists(), "reading must not create the tracking store"


def test_a_model_with_no_champion_yet_sits_in_the_fleet_beside_the_others(fleet, demo_config):
    rows = fleet_status([fleet["model_00"], demo_config])

    assert rows[0]["champion"]["version"] == "6"
    assert rows[1]["model"] == "credit_default"
    assert rows[1]["champion"] is rows[1]["last_training"] is rows[1]["last_check"] is None


# --- the fleet row and the model page from the status world --------------------------------------


def test_rows_follow_the_order_given_and_have_the_contract_keys(fleet):
    configs = list(fleet.values())[::-1]

    rows = fleet_status(configs)

    assert [row["model"] for row in rows] == [config.name for config in configs]
    assert all(set(row) == FLEET_ROW_KEYS for row in rows)
    json.dumps(rows, allow_nan=False)


def test_the_champion_is_shown_with_the_day_it_serves_from_and_the_waiting_challenger(fleet):
    config = fleet["model_00"]
    row = fleet_status([config])[0]

    history = champion_history.read_history(config.name)
    assert row["champion"] == {"version": "6", "since_day": history[-1].effective_day.isoformat(),
                               "promoted_at": history[-1].recorded_at, "event": "promotion"}
    assert row["challenger"] == "7"
    assert row["last_training"]["version"] == "7" and row["last_training"]["reason"] == "schedule"
    assert row["last_training"]["gate_passed"] is True
    assert row["owner"] == "ml-team" and row["quarantined_batches"] == 2
    assert row["degraded"] is False and row["alert"] is None


def test_a_degraded_champion_with_rejected_retrains_raises_the_alert(fleet):
    row = fleet_status([fleet["model_04"]])[0]

    assert row["degraded"] is True
    assert row["challenger"] is None
    assert row["alert"].startswith("model_04: @champion version 6 is degraded")
    assert "versions 7, 8, 9" in row["alert"]


def test_the_aliases_say_where_each_version_came_from(fleet):
    aliases = status_of(fleet["model_01"])["aliases"]

    assert aliases["champion"]["version"] == "6" and aliases["champion"]["compared_with"] == "4"
    assert aliases["champion"]["serving_from"] == served_from(fleet["model_01"].name, "6")
    assert aliases["previous_champion"]["version"] == "4"
    assert aliases["previous_champion"]["gate_passed"] is None, "a Level 0 version was judged by no gate"
    assert aliases["previous_champion"]["gate_summary"] == "level 0: no gate"
    assert aliases["challenger"]["version"] == "7" and aliases["challenger"]["run_id"]


def served_from(model: str, version: str) -> str:
    return [change for change in champion_history.read_history(model) if change.version == version][-1] \
        .effective_day.isoformat()


def test_the_timeline_lists_every_version_newest_first_with_why_it_was_trained(fleet):
    timeline = status_of(fleet["model_00"])["timeline"]

    assert [entry["version"] for entry in timeline] == ["7", "6", "5", "4", "3", "2", "1"]
    reasons = {entry["version"]: entry["reason"] for entry in timeline}
    assert reasons == {"7": "schedule", "6": "new_data", "5": "performance", "4": "on_demand", "3": "drift",
                       "2": "schedule", "1": "on_demand"}
    newest = timeline[0]
    assert newest["aliases"] == ["challenger"]
    assert newest["airflow_dag_id"] == "model_00__continuous_training"
    assert [event["kind"] for event in newest["events"]] == ["registered", "gate_passed"]
    assert "judged against @champion version 6" in newest["events"][1]["detail"]


def test_the_world_history_of_moves_reads_as_events_with_their_reasons(fleet):
    events = {entry["version"]: entry["events"] for entry in status_of(fleet["model_00"])["timeline"]}

    rejected = [event for event in events["2"] if event["kind"] == "gate_rejected"]
    assert "average_precision 0.2810 is below the threshold 0.30" in rejected[0]["detail"]
    rolled_back = [event for event in events["3"] if event["kind"] == "rolled_back"]
    assert ROLLBACK_REASON in rolled_back[0]["detail"]
    forced = [event for event in events["4"] if event["kind"] == "forced"]
    assert FORCE_REASON in forced[0]["detail"] and "admin" in forced[0]["detail"]
    kinds_of_5 = [event["kind"] for event in events["5"]]
    assert kinds_of_5 == ["registered", "gate_passed", "promoted", "deployment_failed", "undone"]
    assert FAILURE in events["5"][3]["detail"]


def test_the_monitoring_series_has_one_point_per_checked_day_of_the_served_version(fleet):
    config = fleet["model_00"]
    monitoring = status_of(config)["monitoring"]

    first = champion_history.read_history(config.name)[0].effective_day
    last = config.source.start_date + dt.timedelta(days=DAYS - 1)
    assert monitoring["days"] == [(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    assert len(monitoring["drift_share"]) == len(monitoring["realized_metric"]) == len(monitoring["days"])
    assert set(monitoring["columns"]) == set(config.features.all)
    assert all(len(scores) == len(monitoring["days"]) for scores in monitoring["columns"].values())
    assert monitoring["column_methods"]["annual_income"] == "ks"
    assert monitoring["column_methods"]["region"] == "chisquare"
    assert monitoring["metric"] == "roc_auc"
    # the day version 3 took effect was checked against version 1 too (drift share 1.0): the point is version 3's
    took_effect = served_from(config.name, "3")
    assert served_on(config.name, took_effect) == "3"
    assert monitoring["drift_share"][monitoring["days"].index(took_effect)] < 1.0


def test_retrain_requests_and_promotions_are_marked_on_the_series(fleet):
    config = fleet["model_00"]
    monitoring = status_of(config)["monitoring"]

    assert [request["reason"] for request in monitoring["requests"]] == ["drift", "performance"]
    assert all(request["day"] in monitoring["days"] for request in monitoring["requests"])
    assert "drifted in 2 consecutive windows" in monitoring["requests"][0]["explanation"]
    assert [(mark["version"], mark["event"]) for mark in monitoring["promotions"]] == [
        ("1", "promotion"), ("3", "promotion"), ("1", "rollback"), ("4", "forced"), ("5", "promotion"),
        ("4", "undo"), ("6", "promotion")]
    assert monitoring["promotions"][-1]["day"] == served_from(config.name, "6")


def test_the_last_check_is_the_newest_day_of_the_version_that_served_it(fleet):
    row = fleet_status([fleet["model_02"]])[0]

    last = fleet["model_02"].source.start_date + dt.timedelta(days=DAYS - 1)
    assert row["last_check"]["day"] == last.isoformat()
    assert row["last_check"]["model_version"] == "6"
    assert row["last_check"]["metric"] == "roc_auc" and row["last_check"]["retrain"] is False
    assert row["last_check"]["explanation"].startswith("no retrain")


def test_a_quarantined_batch_lists_the_rules_it_failed(fleet):
    quarantine = status_of(fleet["model_00"])["quarantine"]

    assert [entry["day"] for entry in quarantine] == sorted((entry["day"] for entry in quarantine), reverse=True)
    schema_break, bad_feed = quarantine
    assert bad_feed["failed_rules"] == [
        "expect_column_values_to_not_be_null(credit_score): 300 of 1000 rows are null",
        "expect_column_values_to_be_between(age): 50 of 1000 rows outside [18, 100], e.g. 7, 142",
    ]
    assert schema_break["failed_rules"] == [
        "expect_table_columns_to_match_set: missing ['annual_income'], unexpected ['income']"]
    assert bad_feed["batch"] == "batch.parquet" and bad_feed["suite"] == "features"
    assert bad_feed["folder"]["root"] == "data"
    folder = settings.data_dir() / bad_feed["folder"]["path"]
    assert (folder / "validation.json").is_file() and (folder / "batch.parquet").is_file()


def test_a_quarantined_hour_of_an_hourly_source_is_listed_with_its_rules(state_dir, demo_config, tmp_path):
    """An hourly batch is quarantined under `day=D/hour=HH/`: the page lists it like a daily one."""
    batch = tmp_path / "batch.parquet"
    batch.write_bytes(b"the hour's bytes")
    report = {"suite_kind": "features", "message": "1 blocking rule failed",
              "blocking_failures": [{"expectation_type": "expect_column_values_to_not_be_null", "column": "age",
                                     "unexpected_count": 3, "rows": 40, "detail": "3 of 40 rows are null"}]}
    storage.quarantine_batch(demo_config.name, dt.datetime(2026, 3, 5, 23), batch, report)
    model_status.clear_cache()

    status = status_of(demo_config)

    (entry,) = status["quarantine"]
    assert entry["day"] == "2026-03-05" and entry["batch"] == "batch.parquet"
    assert entry["failed_rules"] == ["expect_column_values_to_not_be_null(age): 3 of 40 rows are null"]
    assert "/hour=23/" in entry["folder"]["path"]
    assert status["summary"]["quarantined_batches"] == 1


def test_reports_and_data_docs_are_listed_newest_first_under_the_reports_root(fleet):
    status = status_of(fleet["model_00"])

    request_days = [request["day"] for request in status["monitoring"]["requests"]]
    assert sorted({report["day"] for report in status["reports"]}, reverse=True) == sorted(request_days, reverse=True)
    assert {report["kind"] for report in status["reports"]} == {"data_drift", "prediction_drift"}
    assert [report["day"] for report in status["reports"]] == sorted(
        (report["day"] for report in status["reports"]), reverse=True)
    for link in status["reports"]:
        page = settings.reports_dir() / link["path"]
        assert link["root"] == "reports" and page.name == f"{link['kind']}.html"
        assert snapshot_for_html(page).is_file(), "a drift report page is kept as the snapshot it is rendered from"
    for link in status["data_docs"]:
        assert link["root"] == "reports" and (settings.reports_dir() / link["path"]).is_file()
    assert {site["suite"] for site in status["data_docs"]} == {"features", "labels"}
    assert status["data_docs"][0]["day"] > status["data_docs"][-1]["day"]


def test_the_reports_of_one_day_are_what_that_days_tasks_made(fleet):
    config = fleet["model_00"]
    request_day = status_of(config)["monitoring"]["requests"][0]["day"]
    last = config.source.start_date + dt.timedelta(days=DAYS - 1)

    drift = reports_of_day(config, dt.date.fromisoformat(request_day))
    validation = reports_of_day(config, last)

    assert {(report["kind"], report["version"]) for report in drift} == {
        ("data_drift", served_on(config.name, request_day)), ("prediction_drift", served_on(config.name, request_day))}
    assert {(site["kind"], site["suite"]) for site in validation} == {
        ("data_docs", "features"), ("data_docs", "labels")}
    assert reports_of_day(config, dt.date(2020, 1, 1)) == []


def test_the_replay_appears_when_one_exists(fleet):
    with_replay, without = status_of(fleet["model_00"])["replay"], status_of(fleet["model_01"])["replay"]

    assert without is None
    assert with_replay["root"] == "state" and with_replay["created"] == "20261130T041200Z"
    assert (settings.state_dir() / with_replay["png"]).is_file()
    assert with_replay["png"] == "replay/model_00/20261130T041200Z/replay.png"
    assert with_replay["summary"]["policies"]["on_request"]["retrains"] == 6


def test_a_newer_replay_replaces_the_one_shown(state_dir):
    config = build_status_world(1, 30)[0]
    assert status_of(config)["replay"]["created"] == "20261130T041200Z"

    write_replay(config.name, created="20261201T000000Z")

    assert status_of(config)["replay"]["created"] == "20261201T000000Z"


def test_everything_is_json_with_relative_paths(fleet):
    status = status_of(fleet["model_00"])

    text = json.dumps(status, allow_nan=False)
    assert str(settings.state_dir()) not in text
    assert set(status) == MODEL_KEYS and set(status["summary"]) == FLEET_ROW_KEYS


# --- the cache -----------------------------------------------------------------------------------


def test_a_promotion_right_after_a_cached_call_is_seen(state_dir):
    config = build_status_world(1, 30)[0]
    assert fleet_status([config])[0]["champion"]["version"] == "6"
    status_of(config)

    deployment.promote(config, "7", airflow_run_id="manual__promote-7")

    row = fleet_status([config])[0]
    assert row["champion"]["version"] == "7" and row["challenger"] is None
    status = status_of(config)
    assert status["aliases"]["previous_champion"]["version"] == "6"
    assert status["timeline"][0]["events"][-1]["kind"] == "promoted"
    assert status["monitoring"]["promotions"][-1]["version"] == "7"


def test_a_version_registered_without_an_alias_move_is_seen_after_the_ttl(state_dir, monkeypatch):
    config = build_status_world(1, 30)[0]
    assert fleet_status([config])[0]["last_training"]["version"] == "7"
    version = registry.client().get_model_version(config.name, "7")
    registry.client().create_model_version(config.name, version.source, run_id=version.run_id,
                                           tags={registry.TAG_TRIGGER: "drift"})

    monkeypatch.setattr(model_status, "TTL_SECONDS", 1e-6)

    newest = fleet_status([config])[0]["last_training"]
    assert newest["version"] == "8" and newest["reason"] == "drift"
    assert newest["gate_passed"] is None and newest["gate_summary"] is None


def test_a_new_check_in_the_history_is_seen_at_once(state_dir):
    from include.monitoring import retrain_policy

    config = build_status_world(1, 30)[0]
    before = status_of(config)["monitoring"]["days"]
    next_day = dt.date.fromisoformat(before[-1]) + dt.timedelta(days=1)

    retrain_policy.append_check(config.name, retrain_policy.CheckRecord(
        day=next_day, model_version="6", rows=1000, dataset_drifted=False, drift_share=0.0,
        column_scores={name: 0.5 for name in config.features.all}, retrain=True, reason="performance",
        explanation="a drop"))

    monitoring = status_of(config)["monitoring"]
    assert monitoring["days"] == [*before, next_day.isoformat()]
    assert monitoring["requests"][-1] == {"day": next_day.isoformat(), "reason": "performance",
                                          "explanation": "a drop"}


# --- the real delivery's own records -------------------------------------------------------------


@pytest.fixture
def delivered(state_dir, one_openmp_thread):
    """Ten curated days, a version the gate passed (1) and one it rejected (2), registered for real."""
    ready_mlflow(state_dir)
    config = write_model_config()
    fill_stores(config, days=10)
    return config, register_version(config, seed=1), register_version(config, seed=2, passed=False)


def test_after_a_real_promotion_the_champion_serves_from_the_next_data_day(delivered):
    config, passed, _ = delivered
    assert fleet_status([config])[0]["champion"] is None

    deployment.promote(config, passed, airflow_run_id="deploy-1")

    champion = fleet_status([config])[0]["champion"]
    assert champion["version"] == passed and champion["event"] == "promotion"
    assert champion["since_day"] == day(10).isoformat(), "the day after the newest curated day"
    entry = next(entry for entry in status_of(config)["timeline"] if entry["version"] == passed)
    assert [event["kind"] for event in entry["events"]] == ["registered", "gate_passed", "promoted"]
    assert entry["events"][-1]["day"] == day(10).isoformat()


def test_a_real_rejection_forced_deploy_rollback_and_undo_read_as_events_with_their_reasons(delivered):
    config, passed, rejected = delivered
    deployment.promote(config, passed, airflow_run_id="deploy-1")
    deployment.check_candidate(config, rejected, force=True, reason="audit baseline", requested_by="alice")
    deployment.promote(config, rejected, airflow_run_id="deploy-2")
    deployment.roll_back_to(config, passed, "complaints since 10:00 (by bob)", airflow_run_id="rollback-1")
    deployment.promote(config, rejected, airflow_run_id="deploy-3")
    registry.client().set_model_version_tag(config.name, rejected, deployment.TAG_FAILURE, "smoke test: 3 mismatches")
    deployment.undo_promotion(config, rejected, "smoke test: 3 mismatches", airflow_run_id="deploy-3")

    status = status_of(config)

    events = {entry["version"]: entry["events"] for entry in status["timeline"]}
    kinds = [event["kind"] for event in events[rejected]]
    assert kinds == ["registered", "gate_rejected", "forced", "rolled_back", "forced", "deployment_failed", "undone"]
    details = {event["kind"]: event["detail"] for event in events[rejected]}
    assert "roc_auc 0.51 is below the threshold 0.6" in details["gate_rejected"]
    assert "alice" in details["forced"] and "audit baseline" in details["forced"]
    assert "smoke test: 3 mismatches" in details["deployment_failed"]
    assert "smoke test: 3 mismatches" in details["undone"]
    assert [event["kind"] for event in events[passed]] == ["registered", "gate_passed", "promoted", "promoted",
                                                           "promoted"]
    assert "rollback from version" in events[passed][3]["detail"]
    assert status["summary"]["champion"]["version"] == passed
    assert status["summary"]["champion"]["event"] == "undo"
    assert [mark["event"] for mark in status["monitoring"]["promotions"]] == [
        "promotion", "forced", "rollback", "forced", "undo"]


def test_the_rolled_back_reason_is_the_one_the_person_gave(delivered):
    config, passed, rejected = delivered
    deployment.promote(config, passed, airflow_run_id="deploy-1")
    deployment.check_candidate(config, rejected, force=True, reason="audit baseline", requested_by="alice")
    deployment.promote(config, rejected, airflow_run_id="deploy-2")

    deployment.roll_back_to(config, passed, "complaints since 10:00 (by bob)", airflow_run_id="rollback-1")

    events = next(entry["events"] for entry in status_of(config)["timeline"] if entry["version"] == rejected)
    rolled_back = [event for event in events if event["kind"] == "rolled_back"]
    assert len(rolled_back) == 1
    assert "complaints since 10:00 (by bob)" in rolled_back[0]["detail"]
    assert rolled_back[0]["day"] == day(10).isoformat()


# --- names shared with the writers ---------------------------------------------------------------


def test_the_tag_names_read_are_the_ones_the_loop_writes():
    from include.training.continuous_training import LEVEL0_GATE_SUMMARY

    assert model_status.LEVEL0_GATE_SUMMARY == LEVEL0_GATE_SUMMARY
    assert (model_status.TAG_TRIGGER, model_status.TAG_REASON, model_status.TAG_DAG_ID, model_status.TAG_RUN_ID) == (
        registry.TAG_TRIGGER, registry.TAG_REASON, registry.TAG_AIRFLOW_DAG_ID, registry.TAG_AIRFLOW_RUN_ID)
    assert (model_status.TAG_GATE_PASSED, model_status.TAG_GATE_SUMMARY, model_status.TAG_COMPARED_WITH,
            model_status.TAG_CHAMPION_DEGRADED) == (registry.TAG_GATE_PASSED, registry.TAG_GATE_SUMMARY,
                                                    registry.TAG_COMPARED_WITH, registry.TAG_CHAMPION_DEGRADED)
    assert (model_status.TAG_FORCED_BY, model_status.TAG_FORCE_REASON, model_status.TAG_PROMOTED_AT,
            model_status.TAG_ROLLBACK_REASON, model_status.TAG_FAILURE) == (
        deployment.TAG_FORCED_BY, deployment.TAG_FORCE_REASON, deployment.TAG_PROMOTED_AT,
        deployment.TAG_ROLLBACK_REASON, deployment.TAG_FAILURE)
