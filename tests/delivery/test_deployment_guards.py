"""What keeps a wrong version out of production: a stale gate verdict, an unblessed rollback target, and
a deployment and a rollback moving the aliases at the same time.

Real SQLite MLflow registry and real registered versions; the library functions are called in the order
the DAG tasks call them, interleaved the way two Airflow runs can interleave.
"""

import pytest

from include.core import registry
from include.delivery import deployment
from tests.ct_world import ready_mlflow
from tests.deployment_world import MODEL, aliases, register_version, write_model_config


@pytest.fixture
def config(state_dir, one_openmp_thread):
    ready_mlflow(state_dir)
    return write_model_config()


def judged_against(version: str, champion: str | None) -> str:
    """Record on `version` the champion the gate judged it against, as continuous training does."""
    registry.client().set_model_version_tag(MODEL, version, registry.TAG_COMPARED_WITH,
                                            champion or registry.NO_CHAMPION)
    return version


def as_read(started: dict) -> dict:
    """The aliases a run read when it started (`check_candidate`'s or `rollback_target`'s answer)."""
    return {alias: started[alias] for alias in (registry.CHAMPION, registry.PREVIOUS_CHAMPION)}


@pytest.fixture
def three_served(config):
    """Versions 1, 2, 3 promoted in turn, each judged against the champion before it: 3 serves."""
    versions = []
    for seed in (1, 2, 3):
        version = judged_against(register_version(config, seed=seed), versions[-1] if versions else None)
        deployment.promote(config, version, airflow_run_id=f"deploy-{version}")
        versions.append(version)
    return versions


def test_a_challenger_judged_against_a_champion_replaced_since_is_refused_saying_how_to_proceed(config):
    first = judged_against(register_version(config, seed=1), None)
    deployment.promote(config, first, airflow_run_id="deploy-1")
    second, third = (judged_against(register_version(config, seed=seed), first) for seed in (2, 3))
    deployment.promote(config, second, airflow_run_id="deploy-2")

    with pytest.raises(deployment.DeploymentRefused) as refused:
        deployment.check_candidate(config, third)

    message = str(refused.value)
    assert f"judged against @champion version {first}, but @champion is now version {second}" in message
    assert f"retrain ({MODEL}__continuous_training)" in message and '"force": true' in message
    with pytest.raises(deployment.DeploymentRefused, match="needs a reason"):
        deployment.check_candidate(config, third, force=True)
    forced = deployment.check_candidate(config, third, force=True, reason="v2 is broken, v3 is fine",
                                        requested_by="alice")
    assert (forced["gate_passed"], forced["gate_current"], forced["forced"]) == (True, False, True)
    tags = registry.client().get_model_version(MODEL, third).tags
    assert (tags[deployment.TAG_FORCED_BY], tags[deployment.TAG_FORCE_REASON]) == ("alice", "v2 is broken, v3 is fine")


def test_a_challenger_judged_against_the_serving_champion_is_deployed_without_force(config):
    first = judged_against(register_version(config, seed=1), None)
    deployment.promote(config, first, airflow_run_id="deploy-1")
    second = judged_against(register_version(config, seed=2), first)

    checked = deployment.check_candidate(config, second)

    assert (checked["gate_current"], checked["forced"], checked["champion"]) == (True, False, first)


def test_rolling_back_to_a_named_unblessed_version_needs_force_and_a_reason_of_ones_own(config):
    level0 = register_version(config, seed=1, passed=False)
    deployment.check_candidate(config, level0, force=True, reason="first model, no gate yet")
    deployment.promote(config, level0, airflow_run_id="deploy-1")
    blessed = [judged_against(register_version(config, seed=seed), None) for seed in (2, 3)]
    for version in blessed:
        deployment.promote(config, version, airflow_run_id=f"deploy-{version}")

    with pytest.raises(deployment.DeploymentRefused, match=f"version {level0} .* did not pass the gate"):
        deployment.rollback_target(config, level0)
    with pytest.raises(deployment.DeploymentRefused, match="needs a reason of your own"):
        deployment.rollback_target(config, level0, force=True, reason=deployment.DEFAULT_ROLLBACK_REASON)
    assert registry.client().get_model_version(MODEL, level0).tags[deployment.TAG_FORCE_REASON] == (
        "first model, no gate yet"), "a refused rollback records nothing"

    forced = deployment.rollback_target(config, level0, force=True, reason="v2 and v3 both leak", requested_by="bob")

    assert (forced["target"], forced["forced"], forced["validate"]) == (level0, True, True)
    tags = registry.client().get_model_version(MODEL, level0).tags
    assert (tags[deployment.TAG_FORCED_BY], tags[deployment.TAG_FORCE_REASON]) == ("bob", "v2 and v3 both leak")


def test_the_previous_champion_goes_back_as_before_and_a_named_blessed_version_is_validated_first(
        config, three_served):
    first, second, _ = three_served

    default = deployment.rollback_target(config)
    named_previous = deployment.rollback_target(config, second)
    named_older = deployment.rollback_target(config, first)

    assert (default["target"], default["validate"], default["forced"]) == (second, False, False)
    assert (named_previous["target"], named_previous["validate"]) == (second, False)
    assert (named_older["target"], named_older["validate"], named_older["forced"]) == (first, True, False)


def test_a_rollback_whose_target_was_chosen_before_a_deployment_refuses_to_move_afterwards(config, three_served):
    _, second, third = three_served
    fourth = judged_against(register_version(config, seed=4), third)

    rollback = deployment.rollback_target(config)  # the rollback run reads: champion 3, target 2
    candidate = deployment.check_candidate(config, fourth)  # a deployment run reads the same aliases
    deployment.promote(config, fourth, "deploy-4", expected=as_read(candidate))
    with pytest.raises(deployment.AliasesMoved, match="@champion was 3, now 4"):
        deployment.roll_back_to(config, rollback["target"], "complaints about v3", "rollback-1",
                                expected=as_read(rollback))

    assert aliases() == {"champion": fourth, "challenger": None, "previous_champion": third}, \
        "as if the deployment alone had run"
    assert deployment.TAG_ROLLBACK_REASON not in registry.client().get_model_version(MODEL, fourth).tags
    again = deployment.rollback_target(config)  # triggered again: the serial order deployment, then rollback
    deployment.roll_back_to(config, again["target"], "complaints about v4", "rollback-2",
                            expected=as_read(again))
    assert aliases() == {"champion": third, "challenger": None, "previous_champion": second}


def test_a_deployment_checked_before_a_rollback_refuses_to_promote_afterwards(config, three_served):
    first, second, third = three_served
    fourth = judged_against(register_version(config, seed=4), third)

    candidate = deployment.check_candidate(config, fourth)  # the deployment reads champion 3, then awaits approval
    rollback = deployment.rollback_target(config)
    deployment.roll_back_to(config, rollback["target"], "complaints about v3", "rollback-1",
                            expected=as_read(rollback))
    with pytest.raises(deployment.AliasesMoved, match="@champion was 3, now 2"):
        deployment.promote(config, fourth, "deploy-4",
                           expected=as_read(candidate))

    assert aliases() == {"champion": second, "challenger": None, "previous_champion": first}, \
        "as if the rollback alone had run"
    with pytest.raises(deployment.DeploymentRefused, match="judged against @champion version 3"):
        deployment.check_candidate(config, fourth)  # triggered again: the serial order rollback, then deployment


class RegistryGoesAway:
    """MLflow stops answering right after the `after`-th alias move of the test (a server that went down)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after: int):
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.moves = 0
        real = MlflowClient.set_registered_model_alias

        def set_alias(client, *args, **kwargs):
            if self.moves >= after:
                raise MlflowException("API request to http://mlflow:5000 failed: Connection refused")
            self.moves += 1
            return real(client, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, "set_registered_model_alias", set_alias)
        self.undo = lambda: monkeypatch.setattr(MlflowClient, "set_registered_model_alias", real)


def test_a_promotion_cut_off_between_its_two_alias_moves_is_finished_by_the_retry(config, three_served, monkeypatch):
    _, second, third = three_served
    fourth = judged_against(register_version(config, seed=4), third)
    candidate = deployment.check_candidate(config, fourth)
    outage = RegistryGoesAway(monkeypatch, after=1)  # @previous_champion moves, then MLflow is gone

    with pytest.raises(Exception, match="Connection refused"):
        deployment.promote(config, fourth, "deploy-4", expected=as_read(candidate))
    outage.undo()
    promoted = deployment.promote(config, fourth, "deploy-4", expected=as_read(candidate))  # Airflow's retry

    assert promoted["changed"] is True and promoted["replaced_champion"] == third
    assert aliases() == {"champion": fourth, "challenger": None, "previous_champion": third}
    assert deployment.undo_promotion(config, fourth, "the live check failed", "deploy-4")["champion"] == third
    assert aliases() == {"champion": third, "challenger": None, "previous_champion": second}, \
        "the undo restores the aliases from before the promotion"


def test_a_half_moved_promotion_is_finished_before_another_run_reads_the_aliases(config, three_served, monkeypatch):
    _, second, third = three_served
    fourth = judged_against(register_version(config, seed=4), third)
    candidate = deployment.check_candidate(config, fourth)
    outage = RegistryGoesAway(monkeypatch, after=1)
    with pytest.raises(Exception, match="Connection refused"):
        deployment.promote(config, fourth, "deploy-4", expected=as_read(candidate))
    outage.undo()

    rollback = deployment.rollback_target(config)  # the deployment's retries never came: a person rolls back
    deployment.roll_back_to(config, rollback["target"], "v4 misbehaves", "rollback-1", expected=as_read(rollback))

    assert aliases() == {"champion": third, "challenger": None, "previous_champion": second}, \
        "the serial order: the promotion, then the rollback"


def test_a_rollback_and_an_undo_cut_off_midway_are_finished_by_their_retries(config, three_served, monkeypatch):
    first, second, third = three_served
    rollback = deployment.rollback_target(config)
    outage = RegistryGoesAway(monkeypatch, after=1)
    with pytest.raises(Exception, match="Connection refused"):
        deployment.roll_back_to(config, rollback["target"], "v3 misbehaves", "rollback-1", expected=as_read(rollback))
    outage.undo()
    restored = deployment.roll_back_to(config, rollback["target"], "v3 misbehaves", "rollback-1",
                                       expected=as_read(rollback))
    assert restored == {"champion": second, "rolled_back_from": third, "changed": True}
    assert aliases() == {"champion": second, "challenger": None, "previous_champion": first}
    assert registry.client().get_model_version(MODEL, third).tags[deployment.TAG_STATUS] == "rolled_back"

    fourth = judged_against(register_version(config, seed=4), second)
    deployment.promote(config, fourth, "deploy-4", expected=as_read(deployment.check_candidate(config, fourth)))
    outage = RegistryGoesAway(monkeypatch, after=1)
    with pytest.raises(Exception, match="Connection refused"):
        deployment.undo_promotion(config, fourth, "the live check failed", "deploy-4")
    outage.undo()
    assert deployment.undo_promotion(config, fourth, "the live check failed", "deploy-4") == {
        "undone": True, "champion": second}
    assert aliases() == {"champion": second, "challenger": None, "previous_champion": first}
