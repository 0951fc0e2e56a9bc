"""Faults in the model registry: MLflow dies mid-registration or mid-promotion, three runs move the
aliases at once, a model artifact is corrupted.

A real `mlflow server` (SQLite, artifacts served by the server) behind `OutageProxy`, which kills it
at the request a test names and restarts it on the same database. The library functions are called
as the DAG tasks call them, and an Airflow retry is the same call again with the same run id: what
Airflow adds (retries, the worker and scheduler dying) is in test_chaos_airflow.py.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator

import pytest
from mlflow.exceptions import MlflowException

from include.core import registry
from include.delivery import deployment, infra_validation
from tests.chaos.mlflow_outage import MlflowServer, OutageProxy
from tests.ct_world import ready_mlflow
from tests.deployment_world import MODEL, aliases, log_version, register_logged, write_model_config
from tests.test_local_stack import free_ports

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(600)]
TOPOLOGY = "MLflow server"


@pytest.fixture(scope="module")
def mlflow_behind_proxy(tmp_path_factory) -> Iterator[OutageProxy]:
    """One real MLflow server for the module (a start costs seconds), behind the outage proxy."""
    folder = tmp_path_factory.mktemp("chaos-mlflow")
    (folder / "mlflow").mkdir()
    ready_mlflow(folder)
    [port] = free_ports(1)
    server = MlflowServer(folder / "mlflow", port)
    server.start()
    outage_proxy = OutageProxy(server)
    try:
        yield outage_proxy
    finally:
        outage_proxy.close()
        server.stop()


@pytest.fixture
def proxy(mlflow_behind_proxy, state_dir, one_openmp_thread, monkeypatch) -> OutageProxy:
    """The server with an empty registry; every client of the test goes through the proxy, and MLflow's
    client retries a failed request after 0, 1, 2, 4... s (its default waits up to 64 s between tries)."""
    from mlflow import MlflowClient

    server = mlflow_behind_proxy.server
    if not server.healthy():  # an earlier test's outage is still being repaired
        mlflow_behind_proxy.wait_until_restored()
    direct = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    if direct.search_registered_models(f"name = '{MODEL}'"):
        direct.delete_registered_model(MODEL)
    mlflow_behind_proxy.outage = None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_behind_proxy.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    return mlflow_behind_proxy


@pytest.fixture
def config(proxy):
    return write_model_config()


_LOGGED: dict[str, tuple[str, str]] = {}


def logged_model(config) -> tuple[str, str]:
    """One trained and logged model for the module (its URI and golden examples): every test registers
    versions of it, since a registered version is what the faults are about, and training is the slow part."""
    if "model" not in _LOGGED:
        _LOGGED["model"] = log_version(config, seed=1)
    return _LOGGED["model"]


def new_version(config, seed: int) -> str:
    """A version of the module's model registered by the Airflow run "seed-<seed>"."""
    return register_logged(config, seed, *logged_model(config))


def client_gives_up_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    """One retry a second later: the outage outlasts MLflow's client, so the task fails and Airflow retries."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")


def test_mlflow_dying_after_creating_a_version_and_before_answering_leaves_one_version(config, proxy, chaos_table):
    model_uri, golden_uri = logged_model(config)
    outage = proxy.arm("/model-versions/create", forward_first=True, down_for=3)

    version = register_logged(config, 1, model_uri, golden_uri)  # MLflow's client re-sends the lost request

    runs_versions = registry.versions_of_airflow_run(MODEL, "seed-1")
    all_versions = registry.client().search_model_versions(f"name = '{MODEL}'")
    assert outage.happened_at is not None, "the fault was injected"
    assert [v.version for v in runs_versions] == [version] and len(all_versions) == 1
    chaos_table.add(fault="MLflow killed after creating a version, before answering (back in 3 s)",
                    topology=TOPOLOGY, runs=1, lost="0 versions; 0 duplicates",
                    outcome=f"MLflow's client re-sent the request; the copy it made was deleted: "
                            f"version {version} only")


def test_mlflow_down_longer_than_the_clients_retries_during_registration_leaves_one_version(
    config, proxy, monkeypatch, chaos_table
):
    model_uri, golden_uri = logged_model(config)
    client_gives_up_quickly(monkeypatch)
    proxy.arm("/model-versions/create", forward_first=True, down_for=8)

    with pytest.raises((MlflowException, OSError)):
        register_logged(config, 1, model_uri, golden_uri)
    proxy.wait_until_restored()
    version = register_logged(config, 1, model_uri, golden_uri)  # Airflow's retry of register_candidate

    assert [v.version for v in registry.versions_of_airflow_run(MODEL, "seed-1")] == [version]
    assert len(registry.client().search_model_versions(f"name = '{MODEL}'")) == 1
    chaos_table.add(fault="MLflow down 8 s during register_candidate (longer than the client's retries)",
                    topology=TOPOLOGY, runs=1, lost="0 versions; 0 duplicates",
                    outcome=f"the try failed; the retry found version {version} by its Airflow run id")


@pytest.fixture
def two_served(config) -> list[str]:
    """Versions 1 and 2 promoted in turn, each judged against the champion before it: 2 serves, 1 is previous."""
    versions: list[str] = []
    for seed in (1, 2):
        version = new_version(config, seed)
        registry.client().set_model_version_tag(MODEL, version, registry.TAG_COMPARED_WITH,
                                                versions[-1] if versions else registry.NO_CHAMPION)
        deployment.promote(config, version, airflow_run_id=f"deploy-{version}")
        versions.append(version)
    return versions


def judged_against_champion(config, seed: int) -> str:
    version = new_version(config, seed)
    champion = registry.get_champion_version(MODEL).version
    registry.client().set_model_version_tag(MODEL, version, registry.TAG_COMPARED_WITH, str(champion))
    return version


def test_mlflow_down_between_the_two_alias_moves_of_a_promotion_is_finished_by_the_retry(
    config, proxy, two_served, monkeypatch, chaos_table
):
    _, second = two_served
    third = judged_against_champion(config, seed=3)
    candidate = deployment.check_candidate(config, third)
    expected = {alias: candidate[alias] for alias in ("champion", "previous_champion")}
    client_gives_up_quickly(monkeypatch)
    proxy.arm("/registered-models/alias", nth=2, forward_first=False, down_for=8)  # @champion's move

    with pytest.raises((MlflowException, OSError)):
        deployment.promote(config, third, "deploy-3", expected=expected)
    proxy.wait_until_restored()
    between = aliases()
    promoted = deployment.promote(config, third, "deploy-3", expected=expected)  # Airflow's retry of promote

    assert between["champion"] == second and between["previous_champion"] == second, "the fault hit between the moves"
    assert promoted["changed"] and promoted["replaced_champion"] == second
    assert aliases() == {"champion": third, "challenger": None, "previous_champion": second}
    chaos_table.add(fault="MLflow down 8 s between promote's two alias moves", topology=TOPOLOGY, runs=1,
                    lost="0 versions", outcome=f"half-moved until the retry (both aliases on {second}); the retry "
                                               f"finished the recorded move: champion {third}, previous {second}")


def deploy_or_roll_back(config, action: str, version: str | None, start, answers) -> None:
    """One run in its own process: read the aliases, wait for the others, then move them (compare-and-set)."""
    try:
        if action == "deploy":
            read = deployment.check_candidate(config, version)
            expected = {alias: read[alias] for alias in ("champion", "previous_champion")}
            start.wait(timeout=60)
            deployment.promote(config, version, f"deploy-{version}", expected=expected)
        else:
            read = deployment.rollback_target(config)
            expected = {alias: read[alias] for alias in ("champion", "previous_champion")}
            start.wait(timeout=60)
            deployment.roll_back_to(config, read["target"], "chaos", "rollback-1", expected=expected)
        answers.put((action, version, "moved"))
    except deployment.AliasesMoved as refused:
        answers.put((action, version, f"refused: {refused}"))
    except BaseException as error:  # noqa: BLE001 - reported to the test, which fails on it
        answers.put((action, version, f"error: {error!r}"))


def test_two_deployments_and_a_rollback_at_once_end_in_one_serial_order(config, proxy, two_served, chaos_table):
    first, second = two_served
    third = judged_against_champion(config, seed=3)
    fourth = judged_against_champion(config, seed=4)
    serial_effect = {  # what each run does alone, from champion 2 / previous 1
        ("deploy", third): {"champion": third, "challenger": None, "previous_champion": second},
        ("deploy", fourth): {"champion": fourth, "challenger": None, "previous_champion": second},
        ("rollback", None): {"champion": first, "challenger": None, "previous_champion": None},
    }
    context = multiprocessing.get_context("fork")
    start, answers = context.Barrier(3), context.Queue()
    runs = [context.Process(target=deploy_or_roll_back, args=(config, action, version, start, answers))
            for action, version in serial_effect]
    for run in runs:
        run.start()
    outcomes = [answers.get(timeout=240) for _ in runs]
    for run in runs:
        run.join(timeout=60)

    moved = [(action, version) for action, version, outcome in outcomes if outcome == "moved"]
    refused = [outcome for *_, outcome in outcomes if outcome.startswith("refused")]
    assert len(moved) == 1 and len(refused) == 2, outcomes
    assert all("another deployment or rollback moved the aliases" in outcome for outcome in refused)
    assert aliases() == serial_effect[moved[0]], "as if the winner had run alone and the others after it, refused"
    action, version = moved[0]
    winner = f"deployment of version {version}" if version else "rollback"
    chaos_table.add(fault="two deployments and a rollback of one model at once", topology=TOPOLOGY, runs=3,
                    lost="0 versions", outcome=f"the {winner} moved the aliases, the other two were refused "
                                               "(AliasesMoved): one serial order")


def corrupt_model_file(server: MlflowServer, version: str) -> None:
    """Overwrite the registered version's model file in the server's artifact store with garbage."""
    model_id = registry.client().get_model_version(MODEL, version).source.removeprefix("models:/")
    [model_file] = (server.folder / "artifacts").glob(f"*/models/{model_id}/artifacts/model.skops")
    model_file.write_bytes(b"\x00not a model\x00" * 64)


def test_a_corrupted_model_artifact_registered_as_challenger_is_refused_by_infrastructure_validation(
    config, proxy, chaos_table
):
    champion = new_version(config, 1)
    deployment.promote(config, champion, airflow_run_id="deploy-1")
    broken = register_logged(config, 2, *log_version(config, seed=2))  # a model of its own, to corrupt
    registry.client().set_model_version_tag(MODEL, broken, registry.TAG_COMPARED_WITH, champion)
    corrupt_model_file(proxy.server, broken)
    registry.set_challenger(MODEL, broken)

    deployment.check_candidate(config, broken)  # the gate blessed it: only loading it can tell
    started = time.monotonic()
    with pytest.raises(infra_validation.InfraValidationFailed) as refused:
        deployment.validate_infrastructure(config, broken)

    assert aliases()["champion"] == champion
    reason, seconds = str(refused.value).splitlines()[0][:120], time.monotonic() - started
    chaos_table.add(fault="a corrupted model artifact registered as challenger", topology=TOPOLOGY, runs=1,
                    lost="0 versions", outcome=f"refused by infrastructure validation in {seconds:.0f} s "
                                               f"({reason}); champion {champion} serves")
