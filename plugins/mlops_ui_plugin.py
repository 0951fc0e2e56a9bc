"""The MLOps plugin: the loop's pages inside the Airflow UI, behind Airflow's own login.

What it adds (listed by `airflow plugins` and `GET /api/v2/plugins`):

- a FastAPI app mounted on the api-server at `/mlops` (routes in `mlops_ui/app.py`);
- a top-level **MLOps** entry (the fleet of models), a **Model** tab on every DAG's page (the page of
  the DAG's model, `<model>__<stage>`) and a **Reports** view on every task instance (the Evidently
  reports and GX Data Docs that task made). Each renders inside the UI (`url_route`).

The pages live in the package `mlops_ui/`, which `.airflowignore` hides from the plugin loader (it
imports every `.py` here as a top-level module) and which is imported as `mlops_ui` (the plugins
folder is on `sys.path`).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

# A chart icon (inline SVG), so the nav entry needs no request of its own.
ICON = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' "
    "stroke='%23017cee' stroke-width='2'><polyline points='3 17 9 11 13 15 21 7'/>"
    "<polyline points='15 7 21 7 21 13'/></svg>"
)


class LazyMLOpsApp:
    """The ASGI app of the plugin: `mlops_ui.app.app`, imported on the first request.

    Airflow imports every plugin in every process, each task's process included (to collect macros
    and listeners); importing FastAPI, Airflow's API security and the status library there would
    slow every task start for nothing. Only the api-server ever calls this object.
    """

    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            from mlops_ui.app import app

            self._app = app
        await self._app(scope, receive, send)


class MLOpsUIPlugin(AirflowPlugin):
    """The MLOps pages: fleet, model, task reports."""

    name = "mlops_ui"
    fastapi_apps = [{"app": LazyMLOpsApp(), "url_prefix": "/mlops", "name": "MLOps"}]
    external_views = [
        {
            "name": "MLOps",
            "href": "/mlops/",
            "destination": "nav",
            "url_route": "mlops",
            "nav_top_level": True,
            "icon": ICON,
        },
        {
            "name": "Model",
            "href": "/mlops/dags/{DAG_ID}",
            "destination": "dag",
            "url_route": "mlops-model",
        },
        {
            "name": "Reports",
            "href": "/mlops/tasks/{DAG_ID}/{RUN_ID}/{TASK_ID}",
            "destination": "task_instance",
            "url_route": "mlops-reports",
        },
    ]
