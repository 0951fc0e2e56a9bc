"""The HTML of the MLOps pages, rendered from the plain dicts of `include.monitoring.model_status`.

Every value that goes into the HTML passes through `esc` (`html.escape`); data for the chart goes
into the page as JSON that cannot close its `<script>`. No Airflow imports: the caller hands in
what it learnt from Airflow (paused DAGs, a task's days).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from urllib.parse import quote

from mlops_ui.airflow_access import ModelDags

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 20px;color:#1f2328}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #d0d7de}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse;width:100%}th,td{padding:5px 8px;border-bottom:1px solid #eaeef2;
text-align:left;vertical-align:top}th{background:#f6f8fa;font-weight:600}
.muted{color:#656d76;font-size:12px}.nav{margin-bottom:12px;font-size:13px}
.badge{display:inline-block;padding:0 6px;border-radius:10px;font-size:12px;background:#eaeef2}
.ok{background:#dafbe1;color:#116329}.bad{background:#ffebe9;color:#a40e26}.warn{background:#fff8c5;color:#7d4e00}
.paused,.paused-banner{background:#eaeef2;color:#57606a;font-weight:600}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;
min-width:200px;flex:1}.card .v{font-size:22px;font-weight:600}
.banner{padding:8px 12px;border-radius:6px;margin:8px 0}
code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:1px 4px;border-radius:4px}
pre{padding:6px 8px;white-space:pre-wrap;margin:4px 0}
ul.events{margin:0;padding-left:16px}ul.links{columns:2;margin:0;padding-left:16px}
#monitoring-chart{min-height:80px}img.replay{max-width:100%;border:1px solid #d0d7de}
"""


def esc(value) -> str:
    """`value` as HTML text: escaped, None as empty."""
    return "" if value is None else html.escape(str(value))


def script_json(value) -> str:
    """JSON for inside a `<script>`: `<`, `>` and `&` escaped so no value can end the script."""
    text = json.dumps(value, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def when(iso: str | None) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM UTC` (or the text itself when it is not a time)."""
    if not iso:
        return ""
    try:
        moment = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def percent(share: float | None) -> str:
    return "" if share is None else f"{share:.0%}"


def number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class Links:
    """URLs of the plugin's pages (under its mount path) and of Airflow's own pages (under Airflow's root)."""

    base: str
    airflow: str = ""

    def fleet(self) -> str:
        return f"{self.base}/"

    def model(self, model: str) -> str:
        return f"{self.base}/models/{quote(model, safe='')}"

    def file(self, model: str, root: str, path: str) -> str:
        return f"{self.base}/files/{quote(model, safe='')}/{quote(root, safe='')}/{quote(path, safe='/=')}"

    def plotly(self) -> str:
        return f"{self.base}/static/plotly.min.js"

    def dag(self, dag_id: str) -> str:
        return f"{self.airflow}/dags/{quote(dag_id, safe='')}"

    def dag_run(self, dag_id: str, run_id: str) -> str:
        return f"{self.dag(dag_id)}/runs/{quote(run_id, safe='')}"


# Airflow renders these pages in an iframe sandboxed without `allow-top-navigation`, so a plain
# `target="_top"` link to an Airflow page is blocked. The frame keeps its origin (`allow-same-origin`),
# so it may drive the UI's own router instead: push the URL on the top window's history and tell the
# router, as a click inside the UI would. Opened on its own (not framed), a link behaves as usual.
TOP_LINKS_SCRIPT = """<script>
document.addEventListener("click", function (event) {
  var link = event.target.closest('a[target="_top"]');
  if (!link || window.top === window || event.ctrlKey || event.metaKey || event.shiftKey) return;
  var url = new URL(link.href, window.location.href);
  try {
    if (url.origin !== window.top.location.origin) return;
    event.preventDefault();
    window.top.history.pushState(null, "", url.pathname + url.search + url.hash);
    window.top.dispatchEvent(new PopStateEvent("popstate"));
  } catch (error) {
    window.open(url.href, "_blank");
  }
});
</script>"""


def page(title: str, body: str, *, head: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style>{head}</head><body>{body}{TOP_LINKS_SCRIPT}</body></html>")


def message_page(title: str, message: str, links: Links) -> str:
    """A page that only says something (e.g. what was not found), with the way back to the fleet."""
    return page(title, f'<div class="nav"><a href="{esc(links.fleet())}">MLOps</a></div>'
                       f"<h1>{esc(title)}</h1><p>{esc(message)}</p>")


# --- the fleet -----------------------------------------------------------------------------------


def paused_cell(dags: ModelDags) -> str:
    """`paused` when nothing of the model's loop runs by itself; else the paused stages, if any."""
    if not dags.paused:
        return '<span class="muted">no DAGs in Airflow yet</span>'
    if dags.all_paused:
        return f'<span class="badge paused" title="all {len(dags.paused)} DAGs are paused">paused</span>'
    if dags.paused_stages:
        return f'<span class="badge warn">{esc(", ".join(dags.paused_stages))}</span>'
    return '<span class="muted">none</span>'


def gate_badge(passed: bool | None, summary: str | None) -> str:
    if passed is None:
        return f'<span class="badge" title="{esc(summary)}">not judged</span>'
    label, kind = ("gate passed", "ok") if passed else ("gate rejected", "bad")
    return f'<span class="badge {kind}" title="{esc(summary)}">{label}</span>'


def health_cell(row: dict) -> str:
    if row.get("alert"):
        return f'<span class="badge bad">alerting</span> <span class="muted">{esc(row["alert"])}</span>'
    if row.get("degraded"):
        return '<span class="badge warn" title="the champion misses its own floors">degraded</span>'
    if row.get("champion") is None:
        return '<span class="muted">no champion</span>'
    return '<span class="badge ok">healthy</span>'


def reason_text(training: dict) -> str:
    """Why a version was trained: its trigger, and the reason in words when one was recorded."""
    trigger, why = training.get("reason") or "unknown reason", training.get("why")
    return f"{trigger}: {why}" if why and why != trigger else trigger


def last_training_cell(training: dict | None) -> str:
    if not training:
        return '<span class="muted">never</span>'
    return (f'v{esc(training["version"])} · {esc(reason_text(training))}<br>'
            f'<span class="muted">{esc(when(training.get("registered_at")))}</span> '
            f'{gate_badge(training.get("gate_passed"), training.get("gate_summary"))}')


def last_check_cell(check: dict | None) -> str:
    if not check:
        return '<span class="muted">never</span>'
    parts = [esc(check["day"])]
    if check.get("drift_share") is not None:
        parts.append(f'drift {esc(percent(check["drift_share"]))}')
    if check.get("realized_metric") is not None:
        parts.append(f'{esc(check.get("metric"))} {esc(number(check["realized_metric"]))}')
    flags = []
    if check.get("dataset_drifted"):
        flags.append('<span class="badge warn">drifted</span>')
    if check.get("retrain"):
        flags.append('<span class="badge bad">retrain requested</span>')
    return (f'<span title="{esc(check.get("explanation"))}">{" · ".join(parts)}</span> {" ".join(flags)}'
            f'<br><span class="muted">served by v{esc(check.get("model_version"))}</span>')


def fleet_row(row: dict, dags: ModelDags, links: Links) -> str:
    champion = row.get("champion")
    if champion:
        since = f'since {esc(champion.get("since_day"))}'
        if champion.get("event") not in (None, "promotion"):
            since += f' <span class="badge">{esc(champion["event"])}</span>'
    else:
        since = ""
    quarantined = row.get("quarantined_batches") or 0
    return (
        f'<tr data-model="{esc(row["model"])}">'
        f'<td class="model"><a href="{esc(links.model(row["model"]))}">{esc(row["model"])}</a>'
        f'<br><span class="muted">{esc(row.get("owner"))}</span></td>'
        f'<td class="champion-version">{esc(champion["version"]) if champion else "none"}</td>'
        f'<td class="champion-since">{since}</td>'
        f'<td class="challenger">{esc(row.get("challenger") or "")}</td>'
        f'<td class="last-training">{last_training_cell(row.get("last_training"))}</td>'
        f'<td class="last-check">{last_check_cell(row.get("last_check"))}</td>'
        f'<td class="health">{health_cell(row)}</td>'
        f'<td class="quarantined">{quarantined if quarantined else ""}</td>'
        f'<td class="paused-dags">{paused_cell(dags)}</td></tr>'
    )


def fleet_page(rows: list[dict], dags_by_model: dict[str, ModelDags], links: Links) -> str:
    """One row per model the user may read: champion and since when, challenger, last retrain and why,
    last drift check, health, quarantined batches, paused DAGs."""
    if rows:
        body_rows = "".join(fleet_row(row, dags_by_model[row["model"]], links) for row in rows)
        table = (
            '<table id="fleet"><thead><tr><th>Model</th><th>@champion</th><th></th><th>@challenger</th>'
            "<th>Last retrain</th><th>Last drift check</th><th>Health</th><th>Quarantined batches</th>"
            f"<th>Paused DAGs</th></tr></thead><tbody>{body_rows}</tbody></table>"
        )
    else:
        table = ('<table id="fleet"><tbody></tbody></table><p>No model to show: none is configured, or you may '
                 "read none of their DAGs.</p>")
    return page("MLOps", f'<h1>MLOps</h1><p class="muted">{len(rows)} model(s). Times in UTC.</p>{table}')


# --- a model -------------------------------------------------------------------------------------


def alias_card(alias: str, detail: dict | None, dom_id: str) -> str:
    if not detail:
        return (f'<div class="card"><div class="muted">@{esc(alias)}</div>'
                f'<div class="v" id="{dom_id}">none</div></div>')
    lines = [f'registered {esc(when(detail.get("registered_at")))}']
    if detail.get("serving_from"):
        lines.append(f'serving from {esc(detail["serving_from"])}')
    if detail.get("compared_with"):
        lines.append(f'judged against {esc(detail["compared_with"])}')
    return (
        f'<div class="card"><div class="muted">@{esc(alias)}</div><div class="v" id="{dom_id}">'
        f'{esc(detail["version"])}</div><div>{gate_badge(detail.get("gate_passed"), detail.get("gate_summary"))}</div>'
        f'<div class="muted">{"<br>".join(lines)}</div>'
        f'<div class="muted">{esc(detail.get("gate_summary"))}</div></div>'
    )


def action(title: str, dag_id: str, conf: dict, explanation: str, links: Links) -> str:
    conf_text = json.dumps(conf)
    return (
        f'<div class="card"><b>{esc(title)}</b><div class="muted">{esc(explanation)}</div>'
        f'<div>Open <a class="action-link" target="_top" href="{esc(links.dag(dag_id))}">{esc(dag_id)}</a>, '
        f"press <b>Trigger</b>, with the run parameters:</div><pre>{esc(conf_text)}</pre>"
        f"<div class=\"muted\">or from a shell:</div><pre>airflow dags trigger {esc(dag_id)} --conf "
        f"{esc(shell_quote(conf_text))}</pre></div>"
    )


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def actions_section(model: str, challenger: str | None, links: Links) -> str:
    """Links to Airflow's own DAG pages, where the Trigger button is: Airflow's auth and audit log cover
    every action; the plugin has no endpoint that changes anything."""
    return (
        '<h2>Actions</h2><div class="cards">'
        + action("Retrain", f"{model}__continuous_training", {"reason": "manual"},
                 "Train a candidate now; the gate judges it against @champion.", links)
        + action("Deploy a version", f"{model}__model_deployment", {"version": challenger or "N"},
                 "Validate and promote a registered version (empty version: the current @challenger).", links)
        + action("Roll back", f"{model}__model_rollback", {"reason": "why you roll back"},
                 "Put @previous_champion back in service (or the version you name).", links)
        + "</div>"
    )


def chart_figure(monitoring: dict) -> dict:
    """The monitoring chart as Plotly JSON: drift share, per-column scores and the realized metric over
    time, one panel each on a shared time axis, with retrain requests and promotions marked.

    The checked days are sent once (`days`); the page gives them to every trace that has no `x` of its own,
    which halves the page of a year of history."""
    days = monitoring.get("days") or []
    metric = monitoring.get("metric") or "metric"
    methods = monitoring.get("column_methods") or {}
    traces = [{"type": "scatter", "mode": "lines+markers", "name": "drift share",
               "y": monitoring.get("drift_share") or [], "yaxis": "y", "line": {"color": "#cf222e"},
               "marker": {"size": 3}, "connectgaps": False}]
    for column, scores in sorted((monitoring.get("columns") or {}).items()):
        name = f"{column} ({methods[column]})" if methods.get(column) else column
        traces.append({"type": "scatter", "mode": "lines", "name": name, "y": scores, "yaxis": "y2",
                       "legendgroup": "columns", "line": {"width": 1}})
    traces.append({"type": "scatter", "mode": "lines+markers", "name": f"realized {metric}",
                   "y": monitoring.get("realized_metric") or [], "yaxis": "y3", "line": {"color": "#0969da"},
                   "marker": {"size": 3}})
    requests = monitoring.get("requests") or []
    if requests:
        traces.append({"type": "scatter", "mode": "markers", "name": "retrain request",
                       "x": [request["day"] for request in requests], "y": [1.0] * len(requests), "yaxis": "y",
                       "marker": {"symbol": "triangle-down", "size": 11, "color": "#bf8700"},
                       "text": [f'{request.get("reason")}: {request.get("explanation") or ""}' for request in requests],
                       "hovertemplate": "%{x}<br>%{text}<extra>retrain request</extra>"})
    shapes, annotations = [], []
    for promotion in monitoring.get("promotions") or []:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": promotion["day"], "x1": promotion["day"],
                       "y0": 0, "y1": 1, "line": {"color": "#1a7f37", "width": 1, "dash": "dot"}})
        label = f'v{promotion.get("version")}'
        if promotion.get("event") not in (None, "promotion"):
            label += f' ({promotion["event"]})'
        annotations.append({"x": promotion["day"], "xref": "x", "y": 1, "yref": "paper", "text": label,
                            "showarrow": False, "yanchor": "bottom", "font": {"size": 10, "color": "#1a7f37"}})
    marked = [*days, *(request["day"] for request in requests),
              *(promotion["day"] for promotion in monitoring.get("promotions") or [])]
    layout = {
        "height": 620, "margin": {"l": 60, "r": 20, "t": 30, "b": 40}, "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.08}, "shapes": shapes, "annotations": annotations,
        "xaxis": {"type": "date", "anchor": "y3", **time_range(marked)},
        "yaxis": {"domain": [0.7, 1], "title": {"text": "drift share"}, "range": [0, 1.08], "tickformat": ".0%"},
        "yaxis2": {"domain": [0.37, 0.63], "title": {"text": "column drift score"}},
        "yaxis3": {"domain": [0, 0.3], "title": {"text": metric}},
    }
    return {"days": days, "data": traces, "layout": layout}


CHART_MIN_DAYS = 14


def time_range(days: list[str]) -> dict:
    """A time axis at least CHART_MIN_DAYS wide around `days` (ISO dates), so that the first checks of a new
    champion show as days; Plotly would otherwise zoom one checked day to milliseconds. Wider spans: {}."""
    if not days:
        return {}
    first, last = dt.date.fromisoformat(min(days)[:10]), dt.date.fromisoformat(max(days)[:10])
    missing = CHART_MIN_DAYS - (last - first).days
    if missing <= 0:
        return {}
    pad = dt.timedelta(days=(missing + 1) // 2)
    return {"range": [(first - pad).isoformat(), (last + pad).isoformat()]}


def monitoring_section(monitoring: dict, links: Links) -> tuple[str, str]:
    """The chart's container and the script that draws it (empty when nothing was checked yet)."""
    if not monitoring.get("days"):
        return ('<h2>Monitoring</h2><div id="monitoring-chart"><p class="muted">No drift check yet.</p></div>', "")
    figure = chart_figure(monitoring)
    script = (f'<script src="{esc(links.plotly())}"></script><script>'
              f"const figure = {script_json(figure)};"
              "figure.data.forEach(trace => { trace.x = trace.x || figure.days; });"
              'Plotly.newPlot("monitoring-chart", figure.data, figure.layout, {responsive: true, displaylogo: false});'
              "</script>")
    note = ('<p class="muted">One point per checked day, against the version that served it. Triangles: retrain '
            "requests. Dotted lines: a version starts serving. Column scores are read as their method says "
            "(a p-value is low when drifted, a distance high).</p>")
    return f'<h2>Monitoring</h2>{note}<div id="monitoring-chart"></div>', script


def event_item(event: dict) -> str:
    moment = event.get("day") or when(event.get("at"))
    return (f'<li><b>{esc(event.get("kind", "").replace("_", " "))}</b> <span class="muted">{esc(moment)}</span>'
            f' {esc(event.get("detail"))}</li>')


def timeline_section(model: str, timeline: list[dict], links: Links) -> str:
    if not timeline:
        return '<h2>Versions</h2><p class="muted">No registered version yet.</p>'
    rows = []
    for entry in timeline:
        trained_by = ""
        if entry.get("airflow_dag_id") and entry.get("airflow_run_id"):
            run_link = links.dag_run(entry["airflow_dag_id"], entry["airflow_run_id"])
            trained_by = f'<br><a target="_top" href="{esc(run_link)}">{esc(entry["airflow_run_id"])}</a>'
        aliases = " ".join(f'<span class="badge ok">@{esc(alias)}</span>' for alias in entry.get("aliases") or [])
        events = "".join(event_item(event) for event in entry.get("events") or [])
        rows.append(
            f'<tr data-version="{esc(entry["version"])}"><td><b>v{esc(entry["version"])}</b> {aliases}</td>'
            f'<td>{esc(when(entry.get("registered_at")))}<br><span class="muted">{esc(reason_text(entry))}</span>'
            f"{trained_by}</td>"
            f'<td>{gate_badge(entry.get("gate_passed"), entry.get("gate_summary"))}'
            f'<br><span class="muted">vs {esc(entry.get("compared_with"))}</span></td>'
            f'<td class="gate-summary">{esc(entry.get("gate_summary"))}</td>'
            f'<td><ul class="events">{events}</ul></td></tr>'
        )
    return ('<h2>Versions</h2><table id="timeline"><thead><tr><th>Version</th><th>Registered</th><th>Gate</th>'
            f'<th>Why</th><th>Events</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def quarantine_section(quarantine: list[dict]) -> str:
    if not quarantine:
        return '<h2>Quarantined batches</h2><p class="muted">None.</p>'
    rows = "".join(
        f'<tr><td>{esc(item.get("day"))}</td><td>{esc(item.get("batch"))} {esc(item.get("suite"))}'
        f'<br><span class="muted">{esc(item.get("message"))}</span><br><span class="muted">'
        f'{esc((item.get("folder") or {}).get("root"))}/{esc((item.get("folder") or {}).get("path"))}</span></td>'
        f'<td><ul class="events">{"".join(f"<li>{esc(rule)}</li>" for rule in item.get("failed_rules") or [])}'
        f"</ul></td></tr>"
        for item in quarantine
    )
    return ('<h2>Quarantined batches</h2><table id="quarantine"><thead><tr><th>Day</th><th>Batch</th>'
            f"<th>Failed rules</th></tr></thead><tbody>{rows}</tbody></table>")


def report_link(model: str, report: dict, links: Links) -> str:
    """A link to an Evidently report (`kind`) or a GX Data Docs site (`suite`)."""
    href = esc(links.file(model, report["root"], report["path"]))
    if report.get("suite"):
        return (f'<li><a class="data-docs-link" href="{href}">{esc(report.get("day"))} · '
                f'{esc(report["suite"])}</a></li>')
    version = f' · v{esc(report["version"])}' if report.get("version") else ""
    return (f'<li><a class="report-link" href="{href}">{esc(report.get("day"))} · '
            f'{esc(str(report.get("kind", "report")).replace("_", " "))}{version}</a></li>')


def reports_section(model: str, reports: list[dict], data_docs: list[dict], links: Links) -> str:
    drift = ("".join(report_link(model, report, links) for report in reports)
             if reports else '<li class="muted">None yet.</li>')
    docs = ("".join(report_link(model, site, links) for site in data_docs)
            if data_docs else '<li class="muted">None yet.</li>')
    return (f'<h2>Evidently reports</h2><ul class="links" id="reports">{drift}</ul>'
            f'<h2>GX Data Docs</h2><ul class="links" id="data-docs">{docs}</ul>')


def replay_section(model: str, replay: dict | None, links: Links) -> str:
    if not replay:
        return ""
    root = replay.get("root", "state")
    parts = [f'<h2>Replay</h2><p class="muted">Made {esc(replay.get("created"))}.']
    if replay.get("report"):
        parts.append(f' <a href="{esc(links.file(model, root, replay["report"]))}">report</a>')
    parts.append("</p>")
    policies = (replay.get("summary") or {}).get("policies") or {}
    if policies:
        rows = "".join(
            f"<tr><td>{esc(name)}</td><td>{esc(number(values.get('mean_metric')))}</td>"
            f"<td>{esc(number(values.get('worst_7day_metric')))}</td><td>{esc(values.get('retrains'))}</td>"
            f"<td>{esc(values.get('promotions'))}</td><td>{esc(values.get('train_cpu_seconds'))}</td></tr>"
            for name, values in policies.items() if isinstance(values, dict)
        )
        parts.append('<table id="replay"><thead><tr><th>Policy</th><th>Mean metric</th><th>Worst 7 days</th>'
                     f"<th>Retrains</th><th>Promotions</th><th>Training CPU (s)</th></tr></thead>{rows}</table>")
    if replay.get("png"):
        parts.append(f'<p><img class="replay" alt="replay of {esc(model)}" '
                     f'src="{esc(links.file(model, root, replay["png"]))}"></p>')
    return "".join(parts)


def model_page(status: dict, dags: ModelDags, links: Links, description: str = "") -> str:
    """Everything about one model: aliases, actions, the monitoring chart, versions, quarantine, reports, replay."""
    summary = status["summary"]
    model = summary["model"]
    aliases = status.get("aliases") or {}
    banners = []
    if dags.all_paused:
        banners.append('<div class="banner paused-banner">This model is <span class="badge paused">paused</span>: '
                       "all its DAGs are paused, so nothing runs by itself. Unpause them on their DAG pages.</div>")
    elif dags.paused_stages:
        banners.append(f'<div class="banner warn">Paused DAGs: {esc(", ".join(dags.paused_stages))}</div>')
    if summary.get("alert"):
        banners.append(f'<div class="banner bad">{esc(summary["alert"])}</div>')
    elif summary.get("degraded"):
        banners.append('<div class="banner warn">@champion is degraded: it misses its own floors.</div>')
    champion = summary.get("champion")
    since = ""
    if champion:
        since = (f'<p class="muted">@champion v{esc(champion["version"])} since {esc(champion.get("since_day"))} '
                 f'({esc(champion.get("event"))} {esc(when(champion.get("promoted_at")))})</p>')
    chart, chart_script = monitoring_section(status.get("monitoring") or {}, links)
    challenger = aliases.get("challenger")
    body = (
        f'<div class="nav"><a href="{esc(links.fleet())}">MLOps</a> › {esc(model)}</div>'
        f'<h1 data-model="{esc(model)}">{esc(model)}</h1><p class="muted">{esc(description)} owner: '
        f'{esc(summary.get("owner"))}</p>{"".join(banners)}'
        '<div class="cards">'
        + alias_card("champion", aliases.get("champion"), "champion-version")
        + alias_card("challenger", challenger, "challenger-version")
        + alias_card("previous_champion", aliases.get("previous_champion"), "previous-champion-version")
        + f"</div>{since}"
        + actions_section(model, challenger["version"] if challenger else None, links)
        + chart
        + timeline_section(model, status.get("timeline") or [], links)
        + quarantine_section(status.get("quarantine") or [])
        + reports_section(model, status.get("reports") or [], status.get("data_docs") or [], links)
        + replay_section(model, status.get("replay"), links)
        + chart_script
    )
    return page(f"MLOps · {model}", body)


# --- a task instance -----------------------------------------------------------------------------

# Which reports each reporting task makes: the drift sensor's check (Evidently), the ingestion's
# validation of the batch and of the labels (GX Data Docs of the features and labels suites).
TASK_REPORTS = {
    ("drift_sensor", "check_windows"): lambda report: not report.get("suite"),
    ("data_ingestion", "validate_batch"): lambda report: report.get("suite") == "features",
    ("data_ingestion", "land_labels"): lambda report: report.get("suite") == "labels",
}


def task_page(model: str, stage: str, dag_id: str, run_id: str, task_id: str, days: list[dt.date], source: str,
              reports: list[dict], links: Links) -> str:
    """The reports a task instance made, found by the days it worked on."""
    made_by_task = TASK_REPORTS.get((stage, task_id))
    shown = [report for report in reports if made_by_task(report)] if made_by_task else reports
    day_text = ", ".join(day.isoformat() for day in days) or "none"
    how = ("named by the task's return value" if source == "return value"
           else "the run's day (the task returned nothing)")
    heading = "Reports this task made" if made_by_task else "Reports of the run's day (this task makes none itself)"
    items = ("".join(report_link(model, report, links) for report in shown)
             if shown else '<li class="muted">No report for these days.</li>')
    body = (
        f'<div class="nav"><a href="{esc(links.fleet())}">MLOps</a> › <a href="{esc(links.model(model))}">'
        f"{esc(model)}</a> › {esc(task_id)}</div>"
        f"<h1>{esc(heading)}</h1>"
        f'<p class="muted">Task <code>{esc(task_id)}</code> of run <a target="_top" '
        f'href="{esc(links.dag_run(dag_id, run_id))}">{esc(run_id)}</a>. Days: {esc(day_text)} ({esc(how)}).</p>'
        f'<ul class="links" id="task-reports">{items}</ul>'
    )
    return page(f"MLOps · {task_id}", body)
