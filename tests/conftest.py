"""Fixtures that build a private world for each test: state folder, models folder, MLflow store.

Airflow reads its configuration when it is first imported, so the test session's Airflow home
(a temporary folder with its own SQLite metadata database) is set here, before any test module
imports Airflow. The DAG folder is the project's own `dags/`.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from include.core import settings
from include.core.config import ModelConfig, load_model_config

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="mlops-test-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parent.parent / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(Path(__file__).resolve().parent.parent / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "GX_ANALYTICS_ENABLED": "False",
    }
)

DEMO_CONFIG = settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state folder (data, reports, MLflow) for one test, with the demo model config."""
    state = tmp_path / "state"
    models = tmp_path / "models"
    models.mkdir(parents=True)
    shutil.copy(DEMO_CONFIG, models / DEMO_CONFIG.name)
    monkeypatch.setenv("MLOPS_STATE_DIR", str(state))
    monkeypatch.setenv("MLOPS_MODELS_DIR", str(models))
    for name in ("MLOPS_DATA_DIR", "MLOPS_REPORTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    tracking_uri = f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    if "mlflow" in sys.modules:
        # An earlier test's code may have set MLflow's process-wide URIs; they win over the
        # environment, so point them at this test's store too.
        sys.modules["mlflow"].set_tracking_uri(tracking_uri)
        sys.modules["mlflow"].set_registry_uri(tracking_uri)
    (state / "mlflow").mkdir(parents=True)
    return state


@pytest.fixture
def demo_config() -> ModelConfig:
    """The demo model's config, as shipped."""
    return load_model_config(DEMO_CONFIG)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialized Airflow metadata database for `dag.test()` runs (created once per session)."""
    from airflow.utils import db

    db.initdb()
    return _AIRFLOW_HOME


@pytest.fixture
def one_openmp_thread():
    """One OpenMP thread: on a busy 2-core machine more threads make HistGradientBoosting far slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


# --- the production topology stack, shared by the topology test and the Celery faults ------------------

PRODUCTION_STACK_MARK = "production_stack"


def uses_production_stack(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker(PRODUCTION_STACK_MARK) is not None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests marked `production_stack` one after the other, where the first of them was: the
    topology test first, then the faults that kill its worker and scheduler (tests/chaos/stacks.py)."""
    users = [item for item in items if uses_production_stack(item)]
    if not users:
        return
    first = items.index(users[0])
    others = [item for item in items if not uses_production_stack(item)]
    users.sort(key=lambda item: item.get_closest_marker("chaos") is not None)
    items[:] = others[:first] + users + others[first:]


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared production topology after the last test that runs on it, not at the end of the
    session: its services would otherwise spend the 2 cores the rest of the suite needs."""
    if uses_production_stack(item) and not uses_production_stack(nextitem):
        from tests.chaos.stacks import stop_shared_production_stack

        stop_shared_production_stack()


@pytest.fixture
def production_stack(tmp_path_factory: pytest.TempPathFactory):
    """The production topology (tests/chaos/stacks.py `celery`), started by the first test marked
    `production_stack` that asks for it and stopped after the last one (see pytest_runtest_teardown)."""
    from tests.chaos.stacks import shared_production_stack

    return shared_production_stack(tmp_path_factory)


def pytest_sessionfinish() -> None:
    """Should the session end before the last test on the shared production topology, stop it all the same."""
    if "tests.chaos.stacks" in sys.modules:
        sys.modules["tests.chaos.stacks"].stop_shared_production_stack()
