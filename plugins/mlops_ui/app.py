"""The MLOps FastAPI app, mounted by Airflow's api-server at `/mlops`.

Every route is behind Airflow's own login, declared once on the app so no route can forget it: the
user comes from Airflow's JWT (the `Authorization: Bearer` header, or the `_token` cookie the UI
sets) and needs the auth manager's view access (anonymous: 401). A model's pages and files also
need read access to that model's DAGs (else 403), and the fleet lists only the models whose DAGs
the user may read (see `airflow_access`).

Routes (HTML unless said):
  GET /                                    the fleet
  GET /models/{model}                      a model
  GET /dags/{dag_id}                       the Model tab of a DAG: the page of its model (`<model>__<stage>`)
  GET /tasks/{dag_id}/{run_id}/{task_id}   the reports a task instance made
  GET /files/{model}/{root}/{path}         a report, Data Docs or replay file (see `files`); a drift
                                           report page rendered from its snapshot (`rendered_reports`)
  GET /static/plotly.min.js                Plotly's JavaScript, from the installed plotly package
  GET /api/fleet, GET /api/models/{model}  what the pages render, as JSON
  GET /ping                                a trivial route (the baseline of bench/bench_ui.py)

Nothing here changes anything: actions are links to Airflow's own DAG pages and trigger button.
"""

from __future__ import annotations

import threading
from pathlib import Path

import plotly
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_view
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from include.core import settings
from include.core.config import ModelConfig, discover_model_configs
from include.monitoring import model_status
from include.monitoring.evidently_reports import UnreadableSnapshot
from mlops_ui import files, pages
from mlops_ui.airflow_access import (
    ModelDags,
    may_read_model,
    model_dags,
    model_of_dag,
    readable_models,
    stage_of_dag,
    task_days,
)
from mlops_ui.rendered_reports import RenderedPages

MOUNT_PATH = "/mlops"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# Text the browser should show rather than download.
MEDIA_TYPES = {".md": "text/plain; charset=utf-8", ".json": "application/json", ".csv": "text/plain; charset=utf-8"}

app = FastAPI(
    title="MLOps",
    dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


class ModelConfigs:
    """The valid model configs of the models folder, read again only when one of its files changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._configs: dict[str, ModelConfig] = {}

    def current(self) -> dict[str, ModelConfig]:
        folder = settings.models_dir()
        try:
            key = (str(folder), tuple((path.name, path.stat().st_mtime_ns) for path in sorted(folder.glob("*.yaml"))))
        except FileNotFoundError:  # a file removed while listing: read the folder again
            key = None
        with self._lock:
            if key is None or key != self._key:
                self._configs = discover_model_configs(folder).valid
                self._key = key
            return self._configs


model_configs = ModelConfigs()
rendered_pages = RenderedPages()


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, exc: StarletteHTTPException):
    """JSON for the API routes; a small page saying what went wrong for the pages (they show in the UI)."""
    if _route_path(request).startswith("/api/"):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    titles = {401: "Not logged in", 403: "Not allowed", 404: "Not found"}
    text = pages.message_page(titles.get(exc.status_code, "Error"), str(exc.detail), _links(request))
    return HTMLResponse(text, status_code=exc.status_code, headers=exc.headers)


def _route_path(request: Request) -> str:
    return request.url.path.removeprefix(request.scope.get("root_path", ""))


def _links(request: Request) -> pages.Links:
    """Links under the path the app is mounted at (and Airflow's own pages under Airflow's root)."""
    base = request.scope.get("root_path", "").rstrip("/")
    return pages.Links(base=base, airflow=base.removesuffix(MOUNT_PATH))


def _config(model: str) -> ModelConfig:
    config = model_configs.current().get(model)
    if config is None:
        raise HTTPException(404, f"No model named {model!r}: no valid config {model}.yaml in the models folder.")
    return config


def _readable_model(user, model: str) -> tuple[ModelConfig, ModelDags]:
    """The model's config and DAGs, once the user may read it (404 for no such model, 403 without access)."""
    config = _config(model)
    dags = model_dags([model])[model]
    if not may_read_model(user, model, dags):
        raise HTTPException(403, f"You may not read the DAGs of model {model!r}.")
    return config, dags


def _fleet(user) -> tuple[list[dict], dict[str, ModelDags]]:
    configs = model_configs.current()
    dags = model_dags(configs)
    readable = readable_models(user, dags)
    rows = model_status.fleet_status([config for name, config in configs.items() if name in readable])
    return rows, dags


def _paused(dags: ModelDags) -> dict:
    return {"paused": dags.all_paused, "paused_dags": sorted(dag for dag, paused in dags.paused.items() if paused)}


@app.get("/ping")
def ping() -> PlainTextResponse:
    return PlainTextResponse("pong")


@app.get("/")
def fleet_page(request: Request, user: GetUserDep) -> HTMLResponse:
    rows, dags = _fleet(user)
    return HTMLResponse(pages.fleet_page(rows, dags, _links(request)))


@app.get("/api/fleet")
def fleet_json(user: GetUserDep) -> JSONResponse:
    rows, dags = _fleet(user)
    return JSONResponse([{**row, **_paused(dags[row["model"]])} for row in rows])


@app.get("/models/{model}")
def model_page(model: str, request: Request, user: GetUserDep) -> HTMLResponse:
    config, dags = _readable_model(user, model)
    return HTMLResponse(pages.model_page(model_status.model_status(config), dags, _links(request), config.description))


@app.get("/api/models/{model}")
def model_json(model: str, user: GetUserDep) -> JSONResponse:
    config, dags = _readable_model(user, model)
    return JSONResponse({**model_status.model_status(config), **_paused(dags)})


@app.get("/dags/{dag_id}")
def dag_tab(dag_id: str, request: Request, user: GetUserDep) -> HTMLResponse:
    model = model_of_dag(dag_id)
    if model is None or model not in model_configs.current():
        raise HTTPException(404, f"DAG {dag_id!r} is not a model's DAG (<model>__<stage> with a model config).")
    return model_page(model, request, user)


@app.get("/tasks/{dag_id}/{run_id}/{task_id}")
def task_reports(dag_id: str, run_id: str, task_id: str, request: Request, user: GetUserDep) -> HTMLResponse:
    model = model_of_dag(dag_id)
    if model is None or model not in model_configs.current():
        raise HTTPException(404, f"DAG {dag_id!r} is not a model's DAG (<model>__<stage> with a model config).")
    config, _ = _readable_model(user, model)
    found = task_days(dag_id, run_id, task_id)
    if found is None:
        raise HTTPException(404, f"DAG {dag_id!r} has no run {run_id!r}.")
    reports = [report for day in found.days for report in model_status.reports_of_day(config, day)]
    return HTMLResponse(pages.task_page(model, stage_of_dag(dag_id), dag_id, run_id, task_id, found.days,
                                        found.source, reports, _links(request)))


@app.get("/files/{model}/{root}/{path:path}")
def report_file(model: str, root: str, path: str, user: GetUserDep) -> Response:
    """The file, or for a drift report page kept as a snapshot, the page rendered from it."""
    _readable_model(user, model)
    found = files.resolve(model, root, path)
    if found is not None:
        return FileResponse(found, media_type=MEDIA_TYPES.get(found.suffix))
    snapshot = files.report_snapshot(model, root, path)
    if snapshot is None:
        raise HTTPException(404, f"No file {path!r} under {root!r} for model {model!r}.")
    try:
        return HTMLResponse(rendered_pages.page(snapshot))
    except (OSError, UnreadableSnapshot) as error:
        raise HTTPException(500, f"The report {path!r} of model {model!r} cannot be shown: its snapshot "
                                 f"{snapshot.name} is unreadable ({type(error).__name__}).") from error


@app.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(PLOTLY_JS, media_type="text/javascript",
                        headers={"Cache-Control": "private, max-age=86400"})
