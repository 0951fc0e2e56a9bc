"""The degraded-champion alert: counted from the registry, raised through an Airflow notifier."""

import mlflow
import pytest
from mlops_dags import notifiers
from threadpoolctl import threadpool_limits

from include.core import registry
from include.monitoring import alerts
from include.training.training import fit
from tests.ct_world import labelled_frame, ready_mlflow, small_config


@pytest.fixture
def config(demo_config, state_dir):
    ready_mlflow(state_dir)
    return small_config(demo_config)


@pytest.fixture
def model_uri(config):
    """One small logged model; every version below registers it again (only the tags differ)."""
    frame = labelled_frame(config, days=3)
    with threadpool_limits(1):
        model = fit(config, frame).model
    with mlflow.start_run(experiment_id=registry.ensure_experiment(config.name)):
        return registry.log_model(config, model, frame).model_uri


def retrain(config, model_uri, run, *, passed, degraded, compared_with="1"):
    """What continuous training registers after judging a candidate against `compared_with`."""
    verdict = {"passed": passed, "reasons": [] if passed else ["roc_auc: the gain is within noise"],
               "champion_degraded": degraded}
    version, _ = registry.register_candidate(
        config.name, model_uri, airflow_dag_id=f"{config.name}__continuous_training", airflow_run_id=run,
        verdict=verdict, data_fingerprint="f" * 32, compared_with=compared_with,
    )
    return str(version.version)


def promote(config, version):
    registry.client().set_registered_model_alias(config.name, registry.CHAMPION, version)


def test_rejections_while_the_champion_is_degraded_are_counted_since_the_last_pass(config, model_uri):
    promote(config, retrain(config, model_uri, "first", passed=True, degraded=False, compared_with="none"))
    retrain(config, model_uri, "r1", passed=False, degraded=True)
    retrain(config, model_uri, "healthy", passed=False, degraded=False)  # the champion met its floors then
    retrain(config, model_uri, "r2", passed=False, degraded=True)
    retrain(config, model_uri, "r3", passed=False, degraded=True)

    assert alerts.consecutive_rejections_while_degraded(config.name) == ["5", "4"]
    assert alerts.degraded_champion_alert(config) is None  # 2 < alert_after_rejections (3)

    retrain(config, model_uri, "r4", passed=False, degraded=True)
    alert = alerts.degraded_champion_alert(config)

    assert alert["rejections"] == 3 and alert["versions"] == ["6", "5", "4"] and alert["champion"] == "1"
    assert "version 1 is degraded" in alert["message"] and "versions 4, 5, 6" in alert["message"]


def test_a_promotion_starts_the_count_again(config, model_uri):
    promote(config, retrain(config, model_uri, "first", passed=True, degraded=False, compared_with="none"))
    for run in ("r1", "r2", "r3"):
        retrain(config, model_uri, run, passed=False, degraded=True)
    promote(config, retrain(config, model_uri, "better", passed=True, degraded=True))
    retrain(config, model_uri, "after", passed=False, degraded=True, compared_with="5")

    assert alerts.consecutive_rejections_while_degraded(config.name) == ["6"]
    assert alerts.degraded_champion_alert(config) is None


def test_without_a_champion_there_is_nothing_to_count(config):
    assert alerts.consecutive_rejections_while_degraded(config.name) == []


def test_the_default_notifier_writes_the_alert_to_the_task_log(config, capfd):
    notifier = notifiers.build_notifier(config)
    alert = {"message": "credit_default: @champion version 1 is degraded"}

    notifier({alerts.ALERT_CONTEXT_KEY: alert})  # Airflow's structlog logger: the task log in a task

    assert isinstance(notifier, notifiers.LogNotifier)
    written = capfd.readouterr()
    assert "ALERT: credit_default: @champion version 1 is degraded" in written.out + written.err


def test_a_notifier_that_cannot_be_imported_is_named_by_its_key(config):
    missing = "mlops_dags.notifiers.NoSuchNotifier"
    settings = config.evaluation.degraded_champion.model_copy(update={"notifier": missing})
    broken = config.model_copy(update={"evaluation": config.evaluation.model_copy(
        update={"degraded_champion": settings})})

    with pytest.raises(ValueError, match="key 'evaluation.degraded_champion.notifier'.*NoSuchNotifier"):
        notifiers.build_notifier(broken)
