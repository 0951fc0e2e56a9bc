"""Which version served a data day: promotions, undos and rollbacks recorded with their effective days."""

import pytest

from include.core import champion_history, registry
from include.core.champion_history import champion_on, read_history
from include.delivery import deployment
from tests.ct_world import fill_stores, ready_mlflow
from tests.deployment_world import MODEL, register_version, write_model_config
from tests.monitoring_world import day


@pytest.fixture
def config(state_dir, one_openmp_thread):
    """Ten curated days (the data clock's today is day 9) and a migrated MLflow store."""
    ready_mlflow(state_dir)
    config = write_model_config()
    fill_stores(config, days=10)
    return config


def test_a_promotion_serves_from_the_day_after_the_newest_curated_day(config):
    version = register_version(config, seed=1)

    promoted = deployment.promote(config, version, airflow_run_id="deploy-1")

    assert promoted["serving_from"] == day(10).isoformat()
    assert champion_on(MODEL, day(9)) is None, "the days it was trained on were never served by it"
    assert champion_on(MODEL, day(10)) == champion_on(MODEL, day(60)) == version
    tags = registry.client().get_model_version(MODEL, version).tags
    assert tags[champion_history.TAG_SERVING_FROM] == day(10).isoformat()


def test_a_retried_promotion_is_recorded_once(config):
    version = register_version(config, seed=1)

    deployment.promote(config, version, airflow_run_id="deploy-1", effective_day=day(5))
    fill_stores(config, days=3, first_day=day(10))
    deployment.promote(config, version, airflow_run_id="deploy-1")

    [change] = read_history(MODEL)
    assert (change.version, change.effective_day, change.event) == (version, day(5), champion_history.PROMOTION)


def test_promotions_an_undo_and_a_rollback_each_say_which_version_served_which_day(config):
    first, second, third = (register_version(config, seed=seed) for seed in (1, 2, 3))

    deployment.promote(config, first, "deploy-1", effective_day=day(5))
    deployment.promote(config, second, "deploy-2", effective_day=day(10))
    deployment.undo_promotion(config, second, "load test failed", "deploy-2", effective_day=day(12))
    deployment.promote(config, third, "deploy-3", effective_day=day(20))
    deployment.roll_back_to(config, first, "realized AUC fell", "rollback-1", effective_day=day(25))

    served = {offset: champion_on(MODEL, day(offset)) for offset in (4, 5, 9, 10, 11, 12, 19, 20, 24, 25, 90)}
    assert served == {4: None, 5: first, 9: first, 10: second, 11: second, 12: first, 19: first,
                      20: third, 24: third, 25: first, 90: first}
    assert [change.event for change in read_history(MODEL)] == ["promotion", "promotion", "undo", "promotion",
                                                                "rollback"]
    assert str(registry.get_champion_version(MODEL).version) == first


def test_an_undone_first_promotion_leaves_no_champion_from_its_day(config):
    version = register_version(config, seed=1)
    deployment.promote(config, version, "deploy-1", effective_day=day(5))

    deployment.undo_promotion(config, version, "smoke test failed", "deploy-1", effective_day=day(5))

    assert champion_on(MODEL, day(5)) is None and champion_on(MODEL, day(30)) is None
    assert "no @champion yet" not in champion_history.why_none_served(MODEL, day(30))


def test_a_change_never_takes_effect_before_the_previous_one(config):
    first, second = (register_version(config, seed=seed) for seed in (1, 2))
    deployment.promote(config, first, "deploy-1", effective_day=day(8))

    deployment.promote(config, second, "deploy-2", effective_day=day(3))

    assert [change.effective_day for change in read_history(MODEL)] == [day(8), day(8)]
    assert champion_on(MODEL, day(7)) is None and champion_on(MODEL, day(8)) == second


def test_without_a_recorded_history_the_alias_set_by_hand_stands_for_every_day(config):
    assert champion_on(MODEL, day(3)) is None
    version = register_version(config, seed=1)

    registry.client().set_registered_model_alias(MODEL, registry.CHAMPION, version)

    assert read_history(MODEL) == []
    assert champion_on(MODEL, day(0)) == champion_on(MODEL, day(300)) == version
