"""Airflow's real api app with the MLOps plugin mounted, its real SimpleAuthManager, and real logins.

The app is built once per session by `airflow.api_fastapi.app.create_app` from the test session's
Airflow home (`tests/conftest.py`), which loads the project's `plugins/` folder. Users log in with
`POST /auth/token` and the password the auth manager generated for them, as a person's browser and
`scripts/local_stack.py` do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

USERS = {"admin": "admin", "viewer": "viewer"}
BUNDLE = "mlops-ui-test"
STAGES = ("data_ingestion", "continuous_training", "model_deployment", "batch_prediction", "drift_sensor",
          "model_rollback", "level0_manual_training")


@dataclass
class AirflowApi:
    """The api app and a logged-in client for each user (`anonymous` sends no credentials)."""

    app: object
    tokens: dict[str, str]

    def client(self, user: str | None = "viewer") -> TestClient:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return TestClient(self.app, headers=headers, follow_redirects=False)

    def token_for(self, username: str, role: str, teams: list[str] | None = None) -> str:
        """A token the auth manager signs for a user it does not list (e.g. one in another team)."""
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role, teams=teams))


@pytest.fixture(scope="session")
def airflow_api(airflow_db: Path) -> Iterator[AirflowApi]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW__CORE__AUTH_MANAGER",
                   "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ",".join(f"{u}:{r}" for u, r in USERS.items()))
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(airflow_db / "ui-test-passwords.json"))
        from airflow.api_fastapi.app import create_app, purge_cached_app
        from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

        purge_cached_app()
        app = create_app(apps="core")
        passwords = json.loads(Path(SimpleAuthManager.get_generated_password_file()).read_text())
        tokens = {}
        with TestClient(app) as client:
            for user in USERS:
                answer = client.post("/auth/token", json={"username": user, "password": passwords[user]})
                assert answer.status_code == 201, answer.text
                tokens[user] = answer.json()["access_token"]
        tokens[None] = ""
        yield AirflowApi(app, tokens)
        purge_cached_app()


@pytest.fixture
def airflow_dags():
    """`airflow_dags(*models, paused=..., team=...)`: a context in which Airflow lists the models' DAGs."""
    return dags_in_airflow


@contextmanager
def dags_in_airflow(*models: str, paused: bool = False, team: str | None = None) -> Iterator[list[str]]:
    """The models' DAGs as Airflow's metadata database lists them (what the DAG processor writes),
    in a bundle of `team` when given; gone afterwards."""
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    dag_ids = [f"{model}__{stage}" for model in models for stage in STAGES]
    bundle_name = f"{BUNDLE}-{team}" if team else BUNDLE
    with create_session() as session:
        bundle = session.get(DagBundleModel, bundle_name) or DagBundleModel(name=bundle_name)
        if team:
            bundle.teams = [session.get(Team, team) or Team(name=team)]
        session.merge(bundle)
        session.flush()
        for dag_id in dag_ids:
            session.merge(DagModel(dag_id=dag_id, bundle_name=bundle_name, is_stale=False, is_paused=paused,
                                   max_active_tasks=16, max_consecutive_failed_dag_runs=0,
                                   has_task_concurrency_limits=False))
    try:
        yield dag_ids
    finally:
        with create_session() as session:
            # Stale, as when their files are gone (a run that `dag.test()` made may still point at them).
            session.query(DagModel).filter(DagModel.dag_id.in_(dag_ids)).update({"is_stale": True},
                                                                                 synchronize_session=False)


def set_paused(dag_ids: list[str], paused: bool) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id.in_(dag_ids)).update({"is_paused": paused},
                                                                             synchronize_session=False)
