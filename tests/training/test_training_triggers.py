"""Each continuous-training run knows which of the five triggers started it, and bad conf stops it early."""

import datetime as dt

import pandas as pd
import pytest

from include.core import storage
from include.training import training_triggers
from include.training.training_triggers import InvalidTrainingRequest, check_request, describe_trigger, should_train


def test_a_manual_run_records_the_reason_a_person_gave():
    assert describe_trigger("manual", {}, "new features")["trigger"] == "on_demand"
    assert describe_trigger("manual", {}, "new features")["reason"] == "new features"


def test_a_scheduled_run_is_the_schedule_trigger():
    assert describe_trigger("scheduled", {}, None)["trigger"] == "schedule"


def test_curated_batch_events_are_the_new_data_trigger():
    events = {"credit_default__curated_batch": [{"rows": 10}, {"rows": 12}]}
    assert describe_trigger("asset_triggered", events, None)["trigger"] == "new_data"


def test_a_history_import_is_one_new_data_run_that_counts_its_days(state_dir, demo_config):
    first = dt.date(2026, 1, 1)
    _curate([first + dt.timedelta(days=i) for i in range(600)])
    event = {"first_day": "2026-01-01", "last_day": "2027-08-23", "days": 600, "rows": 100_000, "quarantined": []}

    described = describe_trigger("asset_triggered", {"credit_default__curated_batch": [event, {"day": "2027-08-24"}]},
                                 None)

    assert described["trigger"] == "new_data"
    assert described["reason"] == "601 new curated day(s) in 2 batch event(s)"
    assert should_train(demo_config, "new_data")[0] is True


@pytest.mark.parametrize("reason", ["drift", "performance"])
def test_a_retrain_request_names_drift_or_performance(reason):
    request = {"reason": reason, "window": {"start": "2026-05-01", "end": "2026-05-02"}}
    events = {"credit_default__retrain_request": [request], "credit_default__curated_batch": [{"rows": 1}]}

    described = describe_trigger("asset_triggered", events, None)

    assert described["trigger"] == reason
    assert described["request"] == request


@pytest.mark.parametrize(
    ("conf", "named"),
    [
        ({"window_day": 30}, "window_day"),
        ({"window_days": 0}, "window_days"),
        ({"window_days": "thirty"}, "window_days"),
        ({"hyperparameters": [1, 2]}, "hyperparameters"),
    ],
)
def test_invalid_conf_is_rejected_naming_the_key(conf, named):
    with pytest.raises(InvalidTrainingRequest, match=named):
        check_request(conf)


def test_valid_conf_passes():
    check_request({"reason": "manual", "window_days": 30, "hyperparameters": {"max_iter": 50}, "cutoff": None})


def _curate(days):
    for day in days:
        storage.write_curated_batch("credit_default", day, pd.DataFrame({"a": [1]}))


def test_new_data_waits_for_every_n_batches_then_trains(state_dir, demo_config):
    first = dt.date(2026, 1, 1)
    _curate([first + dt.timedelta(days=i) for i in range(3)])
    training_triggers.record_training("credit_default", first + dt.timedelta(days=2), "run-1")
    _curate([first + dt.timedelta(days=i) for i in range(3, 3 + demo_config.training.every_n_batches - 1)])

    assert should_train(demo_config, "new_data")[0] is False
    assert should_train(demo_config, "drift")[0] is True

    _curate([first + dt.timedelta(days=30)])
    assert should_train(demo_config, "new_data")[0] is True


def test_cutoff_defaults_to_the_newest_curated_day(state_dir, demo_config):
    _curate([dt.date(2026, 1, 1), dt.date(2026, 1, 5)])

    assert training_triggers.resolve_cutoff(demo_config, None) == dt.date(2026, 1, 5)
    assert training_triggers.resolve_cutoff(demo_config, "2026-01-03") == dt.date(2026, 1, 3)


def test_the_run_type_a_live_task_sees_is_recognised_as_the_schedule():
    from airflow.sdk.api.datamodels._generated import DagRunType

    assert str(DagRunType.SCHEDULED) != "scheduled", "the Task SDK enum's str() is not its value"
    assert describe_trigger(DagRunType.SCHEDULED, {}, None)["trigger"] == "schedule"
    assert describe_trigger(DagRunType.MANUAL, {}, "why")["trigger"] == "on_demand"


def test_a_scheduled_run_carrying_the_sdk_enum_counts_as_automatic():
    import importlib.util
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType

    from include.core import settings

    spec = importlib.util.spec_from_file_location("ct_dag", settings.PROJECT_ROOT / "dags" / "continuous_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = {"dag_run": SimpleNamespace(run_type=DagRunType.SCHEDULED), "triggering_asset_events": {}}

    assert module.trigger_is_automatic(context)


# --- a change of the world ------------------------------------------------------------------------


@pytest.fixture
def labelled_world(state_dir, demo_config):
    """40 days of curated batches (150 rows a day) and the labels that arrived (7 days later)."""
    from tests.ct_world import fill_stores, small_config

    config = small_config(demo_config)
    config = config.model_copy(update={"training": config.training.model_copy(update={
        "change_point": config.training.change_point.model_copy(update={"min_labelled_rows": 450})})})
    fill_stores(config, days=40)
    return config


def drift_request(start: str) -> dict:
    request = {"reason": "drift", "window": {"start": start, "end": start}, "change_start": start}
    return describe_trigger("asset_triggered", {"credit_default__retrain_request": [request]}, None)


def test_a_request_whose_changed_world_has_too_few_labels_is_deferred_then_trained_by_a_later_run(labelled_world):
    config = labelled_world
    change = dt.date(2026, 1, 30)

    early = training_triggers.plan_training(config, drift_request(change.isoformat()), cutoff=dt.date(2026, 2, 6))
    scheduled = describe_trigger("scheduled", {}, None)
    still_early = training_triggers.plan_training(config, scheduled, cutoff=dt.date(2026, 2, 7))
    ready = training_triggers.plan_training(config, scheduled, cutoff=dt.date(2026, 2, 8))

    assert not early["train"] and early["why"].startswith("deferred: 150 labelled rows from the change on 2026-01-30")
    assert still_early["train"] and still_early["trigger"] == "schedule", "other runs are not held up by it"
    assert "a drift request waits for labels (300 labelled rows" in still_early["why"]
    assert ready["train"] and ready["trigger"] == "drift" and ready["change_start"] == "2026-01-30"
    assert "deferred 2026-02-06" in ready["reason"]
    assert training_triggers.pending_request(config.name)["refit_at_rows"] == 900, (
        "once it trains, the request waits again as a refit, for twice the labelled rows it trained on")
    after = training_triggers.plan_training(config, scheduled, cutoff=dt.date(2026, 2, 8))
    assert after["trigger"] == "schedule" and after["change_start"] == "2026-01-30", "the change point is remembered"


def test_an_honoured_request_is_refit_as_the_changed_worlds_labels_grow_until_the_window_is_past_it(labelled_world):
    config = labelled_world
    change = dt.date(2026, 1, 30)
    scheduled = describe_trigger("scheduled", {}, None)
    training_triggers.plan_training(config, drift_request(change.isoformat()), cutoff=dt.date(2026, 2, 8))

    not_yet = training_triggers.plan_training(config, scheduled, cutoff=dt.date(2026, 2, 10))
    ready = training_triggers.pending_request_ready(config, dt.date(2026, 2, 11))
    refit = training_triggers.plan_training(config, scheduled, cutoff=dt.date(2026, 2, 11))

    assert not_yet["trigger"] == "schedule" and "needs 900" in not_yet["why"]
    assert ready and refit["train"] and refit["trigger"] == "drift" and refit["change_start"] == "2026-01-30"
    assert "refit of the" in refit["reason"]
    assert training_triggers.pending_request(config.name)["refit_at_rows"] == 1800
    window_past_change = change + dt.timedelta(days=config.training.window_days - 1)
    assert training_triggers.pending_request(config.name)["refit_by"] == window_past_change.isoformat()
    last = training_triggers.plan_training(config, scheduled, cutoff=window_past_change)
    assert last["train"] and last["trigger"] == "drift", (
        "the last refit comes on the first day the window lies wholly after the change, labels or not")
    assert training_triggers.pending_request(config.name) is None, "no refit once the window lies after the change"


def test_a_new_request_replaces_a_waiting_refit_with_its_own_change(labelled_world):
    config = labelled_world
    training_triggers.plan_training(config, drift_request("2026-01-20"), cutoff=dt.date(2026, 2, 1))
    assert "refit_at_rows" in training_triggers.pending_request(config.name)

    newer = training_triggers.plan_training(config, drift_request("2026-02-03"), cutoff=dt.date(2026, 2, 5))

    assert not newer["train"] and newer["change_start"] == "2026-02-03"
    assert training_triggers.pending_request(config.name)["change_start"] == "2026-02-03"


def test_a_persons_change_point_with_too_few_labels_fails_naming_them(labelled_world):
    on_demand = describe_trigger("manual", {}, "the market changed")

    with pytest.raises(InvalidTrainingRequest, match="150 labelled rows from the change on 2026-01-30.*needs 450"):
        training_triggers.plan_training(labelled_world, on_demand, cutoff="2026-02-06", change_start="2026-01-30")
    assert training_triggers.pending_request(labelled_world.name) is None


def test_a_newer_request_for_the_same_change_keeps_the_earlier_change_point(labelled_world):
    config = labelled_world
    training_triggers.plan_training(config, drift_request("2026-01-30"), cutoff=dt.date(2026, 2, 5))

    again = training_triggers.plan_training(config, drift_request("2026-02-03"), cutoff=dt.date(2026, 2, 8))

    assert again["train"] and again["change_start"] == "2026-01-30", (
        "a request re-sent after the cooldown must not push the change later and defer it for ever")
