"""Each continuous-training run knows which of the five triggers started it, and bad conf stops it early."""

import datetime as dt

import pandas as pd
import pytest

from include import storage, training_triggers
from include.training_triggers import InvalidTrainingRequest, check_request, describe_trigger, should_train


def test_a_manual_run_records_the_reason_a_person_gave():
    assert describe_trigger("manual", {}, "new features")["trigger"] == "on_demand"
    assert describe_trigger("manual", {}, "new features")["reason"] == "new features"


def test_a_scheduled_run_is_the_schedule_trigger():
    assert describe_trigger("scheduled", {}, None)["trigger"] == "schedule"


def test_curated_batch_events_are_the_new_data_trigger():
    events = {"credit_default__curated_batch": [{"rows": 10}, {"rows": 12}]}
    assert describe_trigger("asset_triggered", events, None)["trigger"] == "new_data"


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
