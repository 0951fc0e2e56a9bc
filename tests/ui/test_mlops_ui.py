"""The MLOps pages in Airflow's real api app: behind Airflow's login, fed by the real status library.

The world (`tests/status_world.py`) is three models with 60 days of history in a real MLflow store,
plus the demo model `credit_default`, which has a config and nothing else yet.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import plotly
import pytest
import yaml

from include.core import settings
from include.monitoring import model_status
from include.monitoring.evidently_reports import render_html
from tests.monitoring.test_evidently_reports import embedded_report
from tests.status_world import build_status_world

MODELS = ("model_00", "model_01", "model_02")
ROUTES = [
    "/mlops/",
    "/mlops/ping",
    "/mlops/api/fleet",
    "/mlops/models/model_00",
    "/mlops/api/models/model_00",
    "/mlops/dags/model_00__drift_sensor",
    "/mlops/tasks/model_00__drift_sensor/manual__x/check_windows",
    "/mlops/files/model_00/reports/gx/model_00/day=2026-03-01/features/index.html",
    "/mlops/static/plotly.min.js",
]


@pytest.fixture(scope="module")
def world_days() -> int:
    return 60


@pytest.fixture
def world(state_dir, world_days, airflow_api, airflow_dags):
    """The status world, with the models' DAGs listed by Airflow (unpaused, as `make run` leaves them)."""
    model_status.clear_cache()
    configs = build_status_world(len(MODELS), world_days)
    with airflow_dags(*MODELS, "credit_default"):
        yield {config.name: config for config in configs}


def cell(page: str, model: str, css_class: str) -> str:
    """The text of the fleet table's cell `td.<css_class>` in the row of `model`."""
    row = re.search(rf'<tr data-model="{model}">(.*?)</tr>', page, re.S)
    assert row, f"no fleet row for {model}"
    found = re.search(rf'<td class="{css_class}">(.*?)</td>', row.group(1), re.S)
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def element_text(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)<', page, re.S)
    assert found, f"no #{element_id}"
    return found.group(1).strip()


def links(page: str, css_class: str) -> list[str]:
    return re.findall(rf'<a class="{css_class}" href="([^"]+)"', page)


def chart_figure(page: str) -> dict:
    found = re.search(r"const figure = (\{.*?\});figure.data.forEach", page, re.S)
    assert found, "the page draws no chart"
    return json.loads(found.group(1))


# --- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_an_anonymous_request_is_refused_on_every_route(route, airflow_api, state_dir):
    answer = airflow_api.client(None).get(route)

    assert answer.status_code == 401


def test_every_route_of_the_app_is_in_the_refusal_test():
    from mlops_ui.app import app

    paths = {route.path for route in app.routes if getattr(route, "methods", None)}

    assert len(paths) == len(ROUTES)


def test_a_forged_token_is_refused(airflow_api, state_dir):
    forged = airflow_api.client(None)
    forged.headers["Authorization"] = "Bearer " + airflow_api.tokens["viewer"][:-4] + "AAAA"

    assert forged.get("/mlops/").status_code in (401, 403)


def test_the_cookie_the_airflow_ui_sets_opens_the_pages(world, airflow_api):
    browser = airflow_api.client(None)
    browser.cookies.set("_token", airflow_api.tokens["viewer"])

    assert browser.get("/mlops/").status_code == 200
    assert browser.get("/mlops/models/model_00").status_code == 200


def test_a_user_of_another_team_may_not_open_a_model_nor_see_it_in_the_fleet(state_dir, airflow_api, airflow_dags):
    model_status.clear_cache()
    build_status_world(2, 30)
    outsider = airflow_api.client(None)
    outsider.headers["Authorization"] = f"Bearer {airflow_api.token_for('outsider', 'viewer', ['fraud'])}"
    with airflow_dags("model_00", team="risk"), airflow_dags("model_01", team="fraud"):
        fleet = outsider.get("/mlops/api/fleet").json()
        refused = [outsider.get(route) for route in (
            "/mlops/models/model_00", "/mlops/api/models/model_00", "/mlops/dags/model_00__model_deployment",
            "/mlops/files/model_00/reports/gx/model_00/day=2026-01-30/labels/index.html")]
        allowed = outsider.get("/mlops/models/model_01")

    assert [row["model"] for row in fleet] == ["credit_default", "model_01"]
    assert [answer.status_code for answer in refused] == [403] * 4
    assert "model_00" in refused[0].text
    assert allowed.status_code == 200


# --- the fleet -----------------------------------------------------------------------------------


def test_the_fleet_shows_each_models_champion(world, airflow_api):
    page = airflow_api.client().get("/mlops/").text

    assert '<table id="fleet">' in page
    assert [cell(page, model, "champion-version") for model in MODELS] == ["6", "6", "6"]
    assert cell(page, "model_00", "challenger") == "7"
    assert cell(page, "model_00", "quarantined") == "2"
    assert "since 2026-02-" in cell(page, "model_00", "champion-since")


def test_a_model_with_no_champion_yet_renders(world, airflow_api):
    client = airflow_api.client()
    fleet = client.get("/mlops/").text
    page = client.get("/mlops/models/credit_default")

    assert cell(fleet, "credit_default", "champion-version") == "none"
    assert page.status_code == 200
    assert element_text(page.text, "champion-version") == "none"
    assert "No drift check yet" in page.text
    assert "No registered version yet" in page.text


def test_a_paused_model_is_shown_as_paused_and_a_paused_stage_is_named(state_dir, airflow_api, airflow_dags):
    from tests.ui.conftest import set_paused

    model_status.clear_cache()
    build_status_world(2, 30)
    client = airflow_api.client()
    with airflow_dags("model_00", paused=True), airflow_dags("model_01") as running:
        set_paused([dag for dag in running if dag.endswith("__drift_sensor")], True)
        fleet = client.get("/mlops/").text
        page = client.get("/mlops/models/model_00").text
        rows = {row["model"]: row for row in client.get("/mlops/api/fleet").json()}

    assert cell(fleet, "model_00", "paused-dags") == "paused"
    assert cell(fleet, "model_01", "paused-dags") == "drift_sensor"
    assert '<span class="badge paused">paused</span>' in page
    assert rows["model_00"]["paused"] and not rows["model_01"]["paused"]
    assert rows["model_01"]["paused_dags"] == ["model_01__drift_sensor"]


# --- a model -------------------------------------------------------------------------------------


def test_the_model_page_has_the_chart_data_and_report_links(world, airflow_api, world_days):
    client = airflow_api.client()
    page = client.get("/mlops/models/model_00").text
    figure = chart_figure(page)
    traces = {trace["name"]: trace for trace in figure["data"]}
    history = client.get("/mlops/api/models/model_00").json()["monitoring"]

    assert element_text(page, "champion-version") == "6"
    assert figure["days"] == history["days"] and len(history["days"]) > world_days // 2
    assert traces["drift share"]["y"] == history["drift_share"]
    assert traces["realized roc_auc"]["y"] == history["realized_metric"]
    assert len(traces["retrain request"]["x"]) == 2
    assert any(re.fullmatch(r"annual_income \(\w+\)", name) for name in traces)
    assert len(figure["layout"]["shapes"]) == len(history["promotions"])
    assert 'src="/mlops/static/plotly.min.js"' in page
    assert len(links(page, "report-link")) == 4
    assert len(links(page, "data-docs-link")) >= 6
    assert 'target="_top" href="/dags/model_00__continuous_training"' in page
    deploy = "airflow dags trigger model_00__model_deployment --conf '{\"version\": \"7\"}'"
    assert html.escape(deploy) in page


def test_the_chart_of_a_first_checked_day_spans_two_weeks_and_a_longer_history_its_own_days():
    from mlops_ui import pages

    first_day = pages.chart_figure({"days": ["2026-01-21"], "drift_share": [0.1], "realized_metric": [0.74],
                                    "promotions": [{"day": "2026-01-21", "version": "1"}]})
    months = pages.chart_figure({"days": ["2026-01-21", "2026-03-30"], "drift_share": [0.1, 0.2]})

    assert first_day["layout"]["xaxis"]["range"] == ["2026-01-14", "2026-01-28"]
    assert "range" not in months["layout"]["xaxis"], "Plotly fits the axis to the checked days"


def test_a_report_link_opens_the_evidently_report_rendered_from_its_snapshot(world, airflow_api):
    client = airflow_api.client()
    report = links(client.get("/mlops/models/model_00").text, "report-link")[0]
    page = Path(report.split("/mlops/files/model_00/reports/", 1)[1])
    answer = client.get(report)

    assert not (settings.reports_dir() / page).exists(), "the page is kept as its snapshot only"
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "Drift in column" in answer.text and len(answer.text) > 1_000_000
    kept = settings.reports_dir() / page.parent / page.name.replace(".html", ".snapshot.json.xz")
    assert embedded_report(answer.text) == embedded_report(render_html(kept))


def test_a_report_page_written_whole_by_an_earlier_version_still_opens(world, airflow_api):
    client = airflow_api.client()
    report = links(client.get("/mlops/models/model_00").text, "report-link")[0]
    page = settings.reports_dir() / report.split("/mlops/files/model_00/reports/", 1)[1]
    page.with_name(page.name.replace(".html", ".snapshot.json.xz")).unlink()
    page.write_text("<html><body>a report written whole in 2025</body></html>")

    answer = client.get(report)

    assert answer.status_code == 200 and "written whole in 2025" in answer.text


def test_an_unreadable_report_snapshot_is_an_error_naming_the_report(world, airflow_api):
    client = airflow_api.client()
    report = links(client.get("/mlops/models/model_00").text, "report-link")[-1]
    page = settings.reports_dir() / report.split("/mlops/files/model_00/reports/", 1)[1]
    page.with_name(page.name.replace(".html", ".snapshot.json.xz")).write_bytes(b"cut short")

    answer = client.get(report)

    assert answer.status_code == 500
    assert page.name in html.unescape(answer.text) and "model_00" in answer.text


def test_the_timeline_tells_each_versions_verdict_and_fate(world, airflow_api):
    page = airflow_api.client().get("/mlops/models/model_00").text
    timeline = page[page.index('<table id="timeline">'):]

    assert "gate rejected" in timeline and "average_precision 0.2810 is below the threshold 0.30" in timeline
    assert "rolled back" in timeline and "complaints from the call centre" in timeline
    assert "forced" in timeline and "level 0 model for the audit demo" in timeline


def test_quarantined_batches_are_listed_with_their_failed_rules(world, airflow_api):
    page = airflow_api.client().get("/mlops/models/model_00").text
    quarantine = page[page.index('<table id="quarantine">'):]

    assert "300 of 1000 rows are null" in quarantine
    assert "missing [&#x27;annual_income&#x27;], unexpected [&#x27;income&#x27;]" in quarantine


def test_the_replay_picture_is_shown_when_there_is_one(world, airflow_api):
    client = airflow_api.client()
    page = client.get("/mlops/models/model_00").text
    picture = re.search(r'<img class="replay" alt="[^"]*" src="([^"]+)"', page).group(1)

    assert client.get(picture).headers["content-type"] == "image/png"
    assert "<img" not in client.get("/mlops/models/model_01").text


def test_what_the_model_says_is_escaped(world, airflow_api):
    config_file = settings.models_dir() / "model_01.yaml"
    raw = yaml.safe_load(config_file.read_text())
    config_file.write_text(yaml.safe_dump({**raw, "description": "<script>alert(1)</script>"}, sort_keys=False))
    page = airflow_api.client().get("/mlops/models/model_01")

    assert page.status_code == 200, page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text


def test_a_missing_model_is_a_404_naming_it(world, airflow_api):
    client = airflow_api.client()

    for route in ("/mlops/models/no_such_model", "/mlops/api/models/no_such_model"):
        answer = client.get(route)
        assert answer.status_code == 404
        assert "no_such_model" in answer.text


# --- files ---------------------------------------------------------------------------------------


def test_a_report_file_is_served_and_a_path_out_of_its_root_is_refused(world, airflow_api):
    client = airflow_api.client()
    docs = "/mlops/files/model_00/reports/gx/model_00/day=2026-03-01/features/index.html"
    outside = settings.state_dir().parent / "secret.txt"
    outside.write_text("the content of a file outside the roots")
    (settings.reports_dir() / "model_00" / "escape").symlink_to(outside)

    assert client.get(docs).status_code == 200
    for route in (
        "/mlops/files/model_00/reports/model_00/%2e%2e/%2e%2e/secret.txt",
        "/mlops/files/model_00/reports/%2e%2e/secret.txt",
        "/mlops/files/model_00/reports/model_00/escape",
        "/mlops/files/model_00/reports/%2Ftmp/secret.txt",
        "/mlops/files/model_00/reports/model_01/drift",
        "/mlops/files/model_00/elsewhere/model_00/x.html",
        "/mlops/files/model_00/state/mlflow/mlflow.db",
    ):
        answer = client.get(route)
        assert answer.status_code == 404, route
        assert "the content of a file outside" not in answer.text


def test_plotly_is_served_from_the_installed_package(airflow_api, state_dir):
    answer = airflow_api.client().get("/mlops/static/plotly.min.js")

    assert answer.status_code == 200
    assert answer.content == (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()


# --- the DAG tab and the task view ---------------------------------------------------------------


def test_the_dag_tab_maps_a_dag_to_its_model(world, airflow_api):
    client = airflow_api.client()
    tab = client.get("/mlops/dags/model_01__model_deployment")
    other = client.get("/mlops/dags/some_dag")
    unknown = client.get("/mlops/dags/nobody__drift_sensor")

    assert tab.status_code == 200 and '<h1 data-model="model_01">' in tab.text
    assert other.status_code == 404 and "some_dag" in other.text
    assert unknown.status_code == 404 and "nobody__drift_sensor" in unknown.text


@pytest.mark.slow
def test_the_task_view_lists_the_reports_of_the_days_the_check_worked_on(world, airflow_api):
    """A real `dag.test()` run of the drift sensor: it skips (the world has no curated batch), so the view
    falls back to the run's day; once the task's return value names the days it checked, those count."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    request_day = world["model_00"].source.start_date + dt.timedelta(days=int(60 * 0.35) - 1)
    dag = DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags" / "drift_sensor.py")).dags["model_00__drift_sensor"]
    run = dag.test(logical_date=None, run_conf={"day": request_day.isoformat()})
    client = airflow_api.client()
    route = f"/mlops/tasks/model_00__drift_sensor/{run.run_id}/check_windows"
    by_run_day = client.get(route).text
    other_day = world["model_00"].source.start_date + dt.timedelta(days=57)
    with create_session() as session:
        session.add(XComModel(dag_run_id=run.id, task_id="check_windows", map_index=-1, key="return_value",
                              dag_id=run.dag_id, run_id=run.run_id,
                              value=json.dumps({"checked": [{"day": other_day.isoformat()}]})))
    by_return_value = client.get(route).text

    assert f"Days: {request_day}" in by_run_day and "the run&#x27;s day" in by_run_day
    assert len(links(by_run_day, "report-link")) == 2 and not links(by_run_day, "data-docs-link")
    assert f"Days: {other_day}" in by_return_value and "return value" in by_return_value
    assert not links(by_return_value, "report-link")
    assert client.get("/mlops/tasks/model_00__drift_sensor/no_such_run/check_windows").status_code == 404


# --- the plugin ----------------------------------------------------------------------------------


def test_the_plugin_is_registered_with_its_views_and_app(airflow_api, state_dir):
    client = airflow_api.client("admin")
    plugins = client.get("/api/v2/plugins").json()["plugins"]
    import_errors = client.get("/api/v2/plugins/importErrors").json()
    plugin = next(plugin for plugin in plugins if plugin["name"] == "mlops_ui")
    views = {view["name"]: view for view in plugin["external_views"]}

    assert plugin["fastapi_apps"] == [{"app": "mlops_ui_plugin.LazyMLOpsApp", "url_prefix": "/mlops", "name": "MLOps"}]
    assert views["MLOps"]["href"] == "/mlops/" and views["MLOps"]["nav_top_level"]
    assert views["Model"] == {**views["Model"], "href": "/mlops/dags/{DAG_ID}", "destination": "dag"}
    assert views["Reports"]["href"] == "/mlops/tasks/{DAG_ID}/{RUN_ID}/{TASK_ID}"
    assert views["Reports"]["destination"] == "task_instance"
    assert all(view["url_route"] for view in views.values())
    assert import_errors["import_errors"] == []  # the package mlops_ui/ is not loaded as plugin files
    assert [plugin["name"] for plugin in plugins].count("mlops_ui") == 1
