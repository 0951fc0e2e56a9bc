"""Where each model's loop stands: champion, candidates, checks, quarantine and reports, read for people.

The MLOps pages of the Airflow UI show what the loop already records, and nothing else:

- the MLflow registry: the aliases, and on every version the gate verdict (`gate_passed`,
  `gate_summary`, `compared_with_champion`, `champion_degraded`), the Airflow run that made it and
  its trigger (`airflow_trigger`), and what delivery did to it (`promoted_at`,
  `deployment_forced_by`, `deployment_force_reason`, `rollback_reason`, `deployment_failure`);
- the champion history (`include.core.champion_history`): every move of `@champion`, its event and
  the data day it took effect;
- the monitoring history (`include.monitoring.retrain_policy.read_history`): one row per checked
  (day, version), with drift share, `score__<column>` scores, realized metric and the decision;
- the files: quarantined batches beside their `validation.json`, the Evidently reports of the
  drift sensor, the GX Data Docs sites, and the replay's `latest` output.

Everything returned is plain JSON-able data (dates as ISO strings, versions as strings) and file
locations are POSIX paths relative to one of three roots, named by `root`: "reports"
(`settings.reports_dir()`), "data" (`settings.data_dir()`) or "state" (`settings.state_dir()`).
This module never writes: a tracking store that does not exist yet is read as an empty registry
rather than created.

Speed. A fleet page shows 50 models, so nothing is read twice while it has not changed:

- a file read whole (champion history, monitoring history, `validation.json`, replay summary) is parsed
  again only when its (mtime, size) changes;
- MLflow is read with two searches per call whatever the number of models (`name IN (...)`: registered
  models with their aliases, and every version with its tags), for the models whose champion history
  changed (a promotion, rollback or undo writes it, so the page sees it at once) or that were never read;
  after `TTL_SECONDS` a model's data is checked with the first search only (see `_registries`), and with
  no search at all while a SQLite store's file is unchanged;
- report and Data Docs folders are listed again when their newest day changes, or after `RESCAN_SECONDS`.

Results are shared between calls: callers must not modify them.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from include.core import champion_history, settings, storage
from include.monitoring.evidently_reports import html_name, snapshot_path

if TYPE_CHECKING:
    from include.core.config import ModelConfig

TTL_SECONDS = 5.0
"""How long MLflow data is reused unchecked. Files read whole are reused until they change."""

RESCAN_SECONDS = 60.0
"""How long a list of reports or Data Docs is reused while its newest day is unchanged: the loop writes into the
newest day (seen at once); a report rewritten in an older day (a re-run check) is seen within this."""

MLFLOW_BATCH = 50
"""Model names per `name IN (...)` search."""

LEVEL0_GATE_SUMMARY = "level 0: no gate"
"""`include.training.continuous_training.LEVEL0_GATE_SUMMARY`, repeated here so that the UI does not import
the training stack (scikit-learn) to read a tag; a test keeps the two equal."""

TAG_TRIGGER = "airflow_trigger"
TAG_REASON = "training_reason"
TAG_DAG_ID = "airflow_dag_id"
TAG_RUN_ID = "airflow_run_id"
TAG_GATE_PASSED = "gate_passed"
TAG_GATE_SUMMARY = "gate_summary"
TAG_COMPARED_WITH = "compared_with_champion"
TAG_CHAMPION_DEGRADED = "champion_degraded"
TAG_FORCED_BY = "deployment_forced_by"
TAG_FORCE_REASON = "deployment_force_reason"
TAG_PROMOTED_AT = "promoted_at"
TAG_ROLLBACK_REASON = "rollback_reason"
TAG_FAILURE = "deployment_failure"
"""Tag names of `include.core.registry` and `include.delivery.deployment` (a test keeps them equal), repeated
so that importing this module costs no MLflow, numpy or scikit-learn import."""

ALIASES = ("champion", "challenger", "previous_champion")
REPORT_KINDS = ("data_drift", "prediction_drift", "feature_skew")
DATA_DOCS_SUITES = ("features", "labels")

_cache: dict[tuple, tuple[Any, Any]] = {}
_registry_cache: dict[tuple[str, str], tuple[_Registry, float, tuple[int, int] | None, tuple | None]] = {}
"""(tracking URI, model) → (its registry facts, when they were last checked, its champion history's stamp and
the SQLite store's stamp then)."""


def clear_cache() -> None:
    """Forget everything read so far (tests, or after a state folder was replaced)."""
    _cache.clear()
    _registry_cache.clear()
    _paths.clear()


# --- the public calls ----------------------------------------------------------------------------


def fleet_status(configs: Iterable[ModelConfig]) -> list[dict]:
    """One summary row per model, in the order given (the fleet page).

    Returns:
        [{"model", "owner", "champion", "challenger", "last_training", "last_check", "degraded",
          "alert", "quarantined_batches"}], see the module's contract.
    """
    roots = _roots()
    models = [_Model(roots, config) for config in configs]
    registries = _registries(roots, models)
    return [_summary(model, registries[model.name]) for model in models]


def model_status(config: ModelConfig) -> dict:
    """Everything a model page shows: summary, aliases, version timeline, monitoring series,
    quarantined batches, reports, Data Docs and the latest replay.

    A model with no champion, no versions and no history yields the same keys, with None and empty lists.
    """
    model = _Model(_roots(), config)
    facts = _registries(model.roots, [model])[model.name]
    moves = _moves(model, facts)
    monitoring = _monitoring(model)
    return {
        "summary": _summary(model, facts),
        "aliases": {alias: _alias_detail(facts, alias) for alias in ALIASES},
        "timeline": model.memo("timeline", (facts, moves), lambda: _timeline(facts, moves)),
        "monitoring": {
            "metric": config.evaluation.primary_metric,
            **{key: monitoring[key] for key in ("days", "drift_share", "realized_metric", "columns", "requests")},
            "column_methods": model.memo("column_methods", config, lambda: _column_methods(config)),
            "promotions": [{"day": move.day, "version": move.version, "event": move.label} for move in moves],
        },
        "quarantine": _quarantine_details(model),
        "reports": _reports(model),
        "data_docs": _data_docs(model),
        "replay": _replay(model),
    }


def reports_of_day(config: ModelConfig, day: dt.date) -> list[dict]:
    """The reports made for one data day (what a drift-check or validation task made): the drift
    sensor's Evidently reports of every version checked that day, then the day's Data Docs sites.
    Read from that day's folders at each call, so a task's report is there as soon as the task is done.

    Returns:
        [{"day", "kind": "data_drift" | "prediction_drift" | "feature_skew" | "data_docs", "version" (None for
          Data Docs), "suite" (None for drift reports), "root": "reports", "path"}].
    """
    model = _Model(_roots(), config)
    partition = f"day={day.isoformat()}"
    drift = [{**report, "suite": None}
             for report in _drift_reports_in(model.roots.reports, model.paths.drift_reports / partition)]
    docs = [{**site, "kind": "data_docs", "version": None}
            for site in _data_docs_in(model.roots.reports, model.paths.data_docs / partition)]
    return drift + docs


# --- where things are, and caching ---------------------------------------------------------------


@dataclass(frozen=True)
class _Roots:
    """The three file roots and the tracking store of one call (tests switch them between calls)."""

    state: Path
    data: Path
    reports: Path
    tracking_uri: str
    key: tuple[str, str, str, str]
    """The same as strings: what cache entries are filed under (cheaper to compare than paths)."""


def _roots() -> _Roots:
    state, data, reports = settings.state_dir(), settings.data_dir(), settings.reports_dir()
    uri = settings.mlflow_tracking_uri()
    return _Roots(state, data, reports, uri, (str(state), str(data), str(reports), uri))


@dataclass(frozen=True)
class _Paths:
    """Where one model's records are, from the library's own layout functions (made once per state folder)."""

    champion_history: str
    monitoring: str
    quarantine: str
    drift_reports: Path
    data_docs: Path
    replay: Path


_paths: dict[tuple[tuple[str, str, str, str], str], _Paths] = {}


class _Model:
    """One model within one call: its config, the roots, its paths, and its champion history's stamp
    (stat once per call: several parts are keyed by it)."""

    def __init__(self, roots: _Roots, config: ModelConfig):
        self.roots, self.config, self.name = roots, config, config.name
        paths = _paths.get((roots.key, self.name))
        if paths is None:
            from include.monitoring.retrain_policy import history_path

            paths = _paths[(roots.key, self.name)] = _Paths(
                champion_history=str(champion_history.history_path(self.name)),
                monitoring=str(history_path(self.name)),
                quarantine=str(storage.model_root(self.name) / "quarantine"),
                drift_reports=roots.reports / self.name / "drift",
                data_docs=roots.reports / "gx" / self.name,
                replay=roots.state / "replay" / self.name,
            )
        self.paths = paths
        self.history_stamp = _stamp(paths.champion_history)

    def memo(self, part: str, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()`, reused while `key` is unchanged (per state folder, model and part)."""
        slot = (self.roots.key, self.name, part)
        hit = _cache.get(slot)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = compute()
        _cache[slot] = (key, value)
        return value


def _stamp(path: str | Path) -> tuple[int, int] | None:
    """What says a file changed: its (mtime in ns, size), None when it does not exist."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


def _scan_key(folder: Path, nested: bool) -> tuple:
    """What says a folder of day partitions changed: the newest day folder's name and stamp (and, `nested`, the
    stamps of the folders inside it), and the current `RESCAN_SECONDS` period for changes in older days."""
    try:
        days = [entry.path for entry in os.scandir(folder) if entry.name.startswith("day=")]
    except OSError:
        return (None,)
    newest = max(days, default=None)
    inside: tuple = ()
    if newest is not None and nested:
        try:
            inside = tuple(sorted((entry.name, _stamp(entry.path)) for entry in os.scandir(newest)))
        except OSError:
            inside = ()
    return len(days), newest, newest and _stamp(newest), inside, int(time.monotonic() // RESCAN_SECONDS)


# --- the MLflow registry -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Version:
    version: str
    registered_at: str
    run_id: str | None
    tags: dict[str, str]


@dataclass(frozen=True)
class _Registry:
    """One model's versions and aliases, and when the registered model last changed (a version was added)."""

    versions: dict[str, _Version]
    aliases: dict[str, str]
    updated: int | None
    newest_first: list[_Version] = field(init=False)

    def __post_init__(self):
        newest = sorted(self.versions.values(), key=lambda found: int(found.version), reverse=True)
        object.__setattr__(self, "newest_first", newest)

    def alias(self, name: str) -> _Version | None:
        version = self.aliases.get(name)
        return None if version is None else self.versions.get(version)


def _registries(roots: _Roots, models: list[_Model]) -> dict[str, _Registry]:
    """The registry facts of `models`.

    Read again when a model's champion history changed since (every alias move of `@champion` writes it:
    the versions and aliases are searched at once). Older than `TTL_SECONDS` (and, for a SQLite store, if
    its file changed since), they are checked with one search of the registered models (aliases and last
    update, which a new version moves): only the models that changed have their versions searched again,
    and the others keep their facts (and what was derived from them). A tag set on an old version with no
    alias move, champion change or new version (nothing the loop shows does that) is seen with the next of
    those.
    """
    uri = roots.tracking_uri
    now = time.monotonic()
    store = _store_stamp(uri)
    found: dict[str, _Registry] = {}
    expired: list[_Model] = []
    changed: list[_Model] = []
    for model in models:
        cached = _registry_cache.get((uri, model.name))
        if cached is None or cached[2] != model.history_stamp:
            changed.append(model)
        elif now - cached[1] > TTL_SECONDS and (store is None or store != cached[3]):
            expired.append(model)
        else:
            found[model.name] = cached[0]
    if expired:
        heads = _registered_models(uri, [model.name for model in expired])
        for model in expired:
            facts = _registry_cache[(uri, model.name)][0]
            if heads.get(model.name, ({}, None)) == (facts.aliases, facts.updated):
                _registry_cache[(uri, model.name)] = (facts, now, model.history_stamp, store)
                found[model.name] = facts
            else:
                changed.append(model)
    if changed:
        names = [model.name for model in changed]
        heads, versions = _registered_models(uri, names), _model_versions(uri, names)
        for model in changed:
            aliases, updated = heads.get(model.name, ({}, None))
            facts = _Registry(versions.get(model.name, {}), aliases, updated)
            _registry_cache[(uri, model.name)] = (facts, now, model.history_stamp, store)
            found[model.name] = facts
    return found


def _store_stamp(uri: str) -> tuple | None:
    """For a SQLite tracking store, the stamps of its database file (and its write-ahead log): while they
    are unchanged nothing was written to MLflow, and data older than the TTL is still current. None for a
    tracking server, which is asked."""
    if urlparse(uri).scheme != "sqlite":
        return None
    database = uri.removeprefix("sqlite:///")
    return _stamp(database), _stamp(f"{database}-wal")


def _registered_models(uri: str, models: list[str]) -> dict[str, tuple[dict[str, str], int | None]]:
    """Each registered model's aliases and last update, by name (one search per `MLFLOW_BATCH` models)."""
    heads = {}
    for query in _queries(uri, models):
        for registered in _all_pages(_client(uri).search_registered_models, query, 1000):
            aliases = {alias: str(version) for alias, version in (registered.aliases or {}).items()}
            heads[registered.name] = (aliases, registered.last_updated_timestamp)
    return heads


def _model_versions(uri: str, models: list[str]) -> dict[str, dict[str, _Version]]:
    """Every version of `models` with its tags, by name and version (one search per `MLFLOW_BATCH` models)."""
    versions: dict[str, dict[str, _Version]] = {}
    for query in _queries(uri, models):
        for found in _all_pages(_client(uri).search_model_versions, query, 10_000):
            versions.setdefault(found.name, {})[str(found.version)] = _Version(
                version=str(found.version),
                registered_at=_iso_from_ms(found.creation_timestamp),
                run_id=found.run_id or None,
                tags=dict(found.tags or {}),
            )
    return versions


def _queries(uri: str, models: list[str]) -> list[str]:
    """The `name IN (...)` filters for `models`; none when the store is a SQLite file that does not exist
    (nothing was ever registered, and opening it would create it)."""
    if urlparse(uri).scheme == "sqlite" and not Path(uri.removeprefix("sqlite:///")).exists():
        return []
    quoted = ["'" + name.replace("'", "\\'") + "'" for name in models]
    batches = [quoted[start:start + MLFLOW_BATCH] for start in range(0, len(quoted), MLFLOW_BATCH)]
    return [f"name IN ({', '.join(batch)})" for batch in batches]


def _all_pages(search: Callable[..., Any], query: str, page_size: int) -> list:
    found, token = [], None
    while True:
        page = search(query, max_results=page_size, page_token=token)
        found.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return found


_clients: dict[str, Any] = {}


def _client(uri: str):
    """One MlflowClient per tracking URI, made without touching MLflow's process-wide URIs."""
    if uri not in _clients:
        from mlflow import MlflowClient

        _clients[uri] = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return _clients[uri]


def _iso_from_ms(milliseconds: int | None) -> str | None:
    if milliseconds is None:
        return None
    return dt.datetime.fromtimestamp(milliseconds / 1000, dt.UTC).isoformat(timespec="seconds")


def _gate_passed(version: _Version) -> bool | None:
    """The gate's verdict on the version; None when no gate judged it (Level 0, or no verdict recorded)."""
    tag = version.tags.get(TAG_GATE_PASSED)
    if tag is None or version.tags.get(TAG_GATE_SUMMARY) == LEVEL0_GATE_SUMMARY:
        return None
    return tag == "true"


def _alias_detail(facts: _Registry, alias: str) -> dict | None:
    version = facts.alias(alias)
    if version is None:
        return None
    return {
        "version": version.version,
        "registered_at": version.registered_at,
        "gate_passed": _gate_passed(version),
        "gate_summary": version.tags.get(TAG_GATE_SUMMARY),
        "compared_with": version.tags.get(TAG_COMPARED_WITH),
        "run_id": version.run_id,
        "serving_from": version.tags.get(champion_history.TAG_SERVING_FROM),
    }


# --- champion moves ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Move:
    """One move of `@champion` from the champion history, with the version it replaced."""

    version: str | None
    previous: str | None
    day: str
    event: str
    label: str  # promotion | forced | rollback | undo
    at: str | None


def _moves(model: _Model, facts: _Registry) -> list[_Move]:
    """The champion history as moves, oldest first (a promotion of a version a person forced is "forced")."""

    def build() -> list[_Move]:
        moves, previous = [], None
        for change in champion_history.read_history(model.name):
            label = change.event
            version = facts.versions.get(change.version or "")
            if change.event == champion_history.PROMOTION and version is not None and _was_forced(version):
                label = "forced"
            moves.append(_Move(change.version, previous, change.effective_day.isoformat(), change.event, label,
                               change.recorded_at or None))
            previous = change.version
        return moves

    return model.memo("moves", (model.history_stamp, facts), build)


def _was_forced(version: _Version) -> bool:
    return TAG_FORCED_BY in version.tags and version.tags.get(TAG_GATE_PASSED) != "true"


def _champion(facts: _Registry, moves: list[_Move]) -> dict | None:
    version = facts.alias("champion")
    if version is None:
        return None
    move = next((move for move in reversed(moves) if move.version == version.version), None)
    if move is None:  # an alias set before the champion history existed
        return {"version": version.version, "since_day": version.tags.get(champion_history.TAG_SERVING_FROM),
                "promoted_at": version.tags.get(TAG_PROMOTED_AT),
                "event": "forced" if _was_forced(version) else champion_history.PROMOTION}
    return {"version": version.version, "since_day": move.day, "promoted_at": move.at, "event": move.label}


# --- the summary row -----------------------------------------------------------------------------


def _summary(model: _Model, facts: _Registry) -> dict:
    """The fleet row, rebuilt only when one of its parts changed."""
    moves = _moves(model, facts)
    monitoring = _monitoring(model)
    quarantined = _quarantine_folders(model)
    return model.memo("summary", (model.config, facts, moves, monitoring, quarantined),
                      lambda: _build_summary(model, facts, moves, monitoring, quarantined))


def _build_summary(model: _Model, facts: _Registry, moves: list[_Move], monitoring: dict,
                   quarantined: dict[str, list[Path]]) -> dict:
    config = model.config
    newest = next(iter(facts.newest_first), None)
    degraded, alert_possible = _degradation(facts)
    return {
        "model": config.name,
        "owner": config.owner,
        "champion": _champion(facts, moves),
        "challenger": facts.aliases.get("challenger"),
        "last_training": None if newest is None else {
            "version": newest.version,
            "registered_at": newest.registered_at,
            "reason": newest.tags.get(TAG_TRIGGER),
            "why": newest.tags.get(TAG_REASON),
            "gate_passed": _gate_passed(newest),
            "gate_summary": newest.tags.get(TAG_GATE_SUMMARY),
        },
        "last_check": monitoring["last_check"],
        "degraded": degraded,
        "alert": _alert(model, facts) if alert_possible else None,
        "quarantined_batches": sum(len(batches) for batches in quarantined.values()),
    }


def _degradation(facts: _Registry) -> tuple[bool, bool]:
    """(Is the champion degraded, per the newest verdict judged against it; could the degraded-champion
    alert fire: that newest verdict is also a rejection, where `alerts` starts counting)."""
    champion = facts.aliases.get("champion")
    if champion is None:
        return False, False
    judged = next((version for version in facts.newest_first if version.tags.get(TAG_COMPARED_WITH) == champion),
                  None)
    if judged is None:
        return False, False
    degraded = judged.tags.get(TAG_CHAMPION_DEGRADED) == "true"
    return degraded, degraded and judged.tags.get(TAG_GATE_PASSED) == "false"


def _alert(model: _Model, facts: _Registry) -> str | None:
    """`alerts.degraded_champion_alert`'s message, asked only when it could fire, once per registry read."""

    def build() -> str | None:
        from include.monitoring import alerts

        raised = alerts.degraded_champion_alert(model.config)
        return None if raised is None else raised["message"]

    return model.memo("alert", facts, build)


# --- the version timeline ------------------------------------------------------------------------


def _timeline(facts: _Registry, moves: list[_Move]) -> list[dict]:
    """One entry per version, newest first, each with its events in the order they happened."""
    holders: dict[str, list[str]] = {}
    for alias, version in facts.aliases.items():
        holders.setdefault(version, []).append(alias)
    entries = []
    for version in facts.newest_first:
        tags = version.tags
        entries.append({
            "version": version.version,
            "registered_at": version.registered_at,
            "reason": tags.get(TAG_TRIGGER),
            "why": tags.get(TAG_REASON),
            "airflow_dag_id": tags.get(TAG_DAG_ID),
            "airflow_run_id": tags.get(TAG_RUN_ID),
            "gate_passed": _gate_passed(version),
            "gate_summary": tags.get(TAG_GATE_SUMMARY),
            "compared_with": tags.get(TAG_COMPARED_WITH),
            "aliases": sorted(holders.get(version.version, []), key=ALIASES.index),
            "events": _events(version, moves),
        })
    return entries


def _events(version: _Version, moves: list[_Move]) -> list[dict]:
    tags = version.tags
    trigger = tags.get(TAG_TRIGGER)
    made_by = tags.get(TAG_DAG_ID) or "an unknown run"
    events = [_event("registered", version.registered_at, None,
                     f"registered by {made_by}" + (f" (trigger: {trigger})" if trigger else ""))]
    passed = _gate_passed(version)
    if passed is not None:
        compared = tags.get(TAG_COMPARED_WITH)
        against = (f"judged against @champion version {compared}" if compared and compared != "none"
                   else "no champion to judge against")
        events.append(_event("gate_passed" if passed else "gate_rejected", version.registered_at, None,
                             f"{tags.get(TAG_GATE_SUMMARY, 'no summary recorded')} ({against})"))
    failure_told = False
    for move in moves:
        if move.version == version.version:
            events.append(_arrival(version, move))
        elif move.previous == version.version:
            if move.event == champion_history.UNDO and TAG_FAILURE in tags and not failure_told:
                events.append(_event("deployment_failed", move.at, move.day, tags[TAG_FAILURE]))
                failure_told = True
            departure = _departure(version, move)
            if departure is not None:
                events.append(departure)
    if not any(move.version == version.version for move in moves) and TAG_PROMOTED_AT in tags:
        # promoted before the champion history existed: only the tags tell
        events.append(_event("forced" if _was_forced(version) else "promoted", tags[TAG_PROMOTED_AT],
                             tags.get(champion_history.TAG_SERVING_FROM), "promoted to @champion"))
    if TAG_FAILURE in tags and not failure_told:
        events.append(_event("deployment_failed", tags.get(TAG_PROMOTED_AT), None, tags[TAG_FAILURE]))
    return events


def _arrival(version: _Version, move: _Move) -> dict:
    """The event of `version` becoming `@champion` by `move`."""
    replacing = f"replacing version {move.previous}" if move.previous else "the first champion"
    if move.label == "forced":
        tags = version.tags
        detail = (f"forced to @champion by {tags.get(TAG_FORCED_BY, 'unknown')}: "
                  f"{tags.get(TAG_FORCE_REASON, 'no reason recorded')} (the gate had not passed it; {replacing})")
        return _event("forced", move.at, move.day, detail)
    if move.event == champion_history.ROLLBACK:
        detail = f"back to @champion by a rollback from version {move.previous}"
    elif move.event == champion_history.UNDO:
        detail = f"back to @champion: the promotion of version {move.previous} was undone"
    else:
        detail = f"promoted to @champion, {replacing}"
    return _event("promoted", move.at, move.day, f"{detail}; serves from {move.day}")


def _departure(version: _Version, move: _Move) -> dict | None:
    """The event of `version` losing `@champion` by `move` (None for a promotion of another version: the
    successor's own event tells it)."""
    reason = version.tags.get(TAG_ROLLBACK_REASON, "no reason recorded")
    successor = f"version {move.version}" if move.version else "no version"
    if move.event == champion_history.ROLLBACK:
        return _event("rolled_back", move.at, move.day, f"rolled back ({reason}); {successor} serves from {move.day}")
    if move.event == champion_history.UNDO:
        return _event("undone", move.at, move.day, f"promotion undone ({reason}); {successor} serves from {move.day}")
    return None


def _event(kind: str, at: str | None, day: str | None, detail: str) -> dict:
    return {"kind": kind, "at": at, "day": day, "detail": detail}


# --- the monitoring history ----------------------------------------------------------------------


def _monitoring(model: _Model) -> dict:
    """The drift sensor's history, one point per checked day (the check of the version that served it),
    read once per change of the history or of the champion history."""
    key = (_stamp(model.paths.monitoring), model.history_stamp, model.config.evaluation.primary_metric)
    return model.memo("monitoring", key, lambda: _read_monitoring(model.config, Path(model.paths.monitoring)))


def _read_monitoring(config: ModelConfig, path: Path) -> dict:
    """The history's series, one point per day: the check of the version that served the day (the one the
    retrain policy counts, `champion_history.champion_on`), else the check of the newest version."""
    empty = {"days": [], "drift_share": [], "realized_metric": [], "columns": {}, "requests": [], "last_check": None}
    if not path.exists():
        return empty
    import pyarrow.parquet as pq

    from include.monitoring.retrain_policy import SCORE_PREFIX

    table = pq.read_table(path)
    data = {name: [_value(value) for value in table.column(name).to_pylist()] for name in table.column_names}
    days = [_iso_day(value) for value in data.get("day", [])]
    if not days:
        return empty
    versions = [str(value) for value in data["model_version"]]
    changes = champion_history.read_history(config.name)
    effective = [change.effective_day.isoformat() for change in changes]
    chosen: dict[str, tuple[tuple[bool, tuple[int, str]], int]] = {}
    for row, (day, version) in enumerate(zip(days, versions, strict=True)):
        index = bisect_right(effective, day) - 1
        rank = (index >= 0 and changes[index].version == version, _version_order(version))
        if day not in chosen or rank >= chosen[day][0]:
            chosen[day] = (rank, row)
    picked = [chosen[day][1] for day in sorted(chosen)]

    def values(column: str) -> list:
        found = data.get(column)
        return [None] * len(picked) if found is None else [found[row] for row in picked]

    last = picked[-1]
    drifted = values("dataset_drifted")[-1]
    return {
        "days": sorted(chosen),
        "drift_share": values("drift_share"),
        "realized_metric": values("realized_metric"),
        "columns": {name.removeprefix(SCORE_PREFIX): values(name) for name in data if name.startswith(SCORE_PREFIX)},
        "requests": [{"day": days[row], "reason": data["reason"][row], "explanation": data["explanation"][row]}
                     for row in picked if data["retrain"][row]],
        "last_check": {
            "day": days[last],
            "model_version": versions[last],
            "drift_share": data["drift_share"][last],
            "dataset_drifted": None if drifted is None else bool(drifted),
            "realized_metric": data["realized_metric"][last],
            "metric": config.evaluation.primary_metric,
            "retrain": bool(data["retrain"][last]),
            "explanation": data["explanation"][last] or "",
        },
    }


def _value(value: Any) -> Any:
    """A parquet value as JSON: NaN as None (pandas writes a missing number as NaN or as null)."""
    return None if isinstance(value, float) and value != value else value


def _iso_day(value: Any) -> str:
    return value.isoformat()[:10] if hasattr(value, "isoformat") else str(value)[:10]


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def _column_methods(config: ModelConfig) -> dict[str, str]:
    """How to read each column's score (`ks`, `chisquare`: a p-value; `psi`, `wasserstein`: a distance)."""
    from include.monitoring.drift import column_methods

    try:
        return {name: chosen.method for name, chosen in column_methods(config).items()}
    except ValueError:
        return {}


# --- files: quarantine, reports, Data Docs, replay -----------------------------------------------


def _quarantine_folders(model: _Model) -> dict[str, list[Path]]:
    """The quarantine folders by day, oldest day first (a listing redone when a day folder changes)."""
    try:
        days = sorted(entry.path for entry in os.scandir(model.paths.quarantine)
                      if entry.name.startswith("day=") and entry.is_dir())
    except OSError:
        return {}
    key = tuple((day, _stamp(day), *(_stamp(hour) for hour in glob.glob(os.path.join(day, "hour=*")))) for day in days)

    def listing() -> dict[str, list[Path]]:
        found = {}
        for day in days:
            folders = sorted(_batch_folders(Path(day)))
            if folders:
                found[os.path.basename(day).removeprefix("day=")] = folders
        return found

    return model.memo("quarantine", key, listing)


def _batch_folders(day: Path) -> list[Path]:
    """A day's quarantined batch folders, an hourly source's under their `hour=HH` folders."""
    folders = []
    for entry in os.scandir(day):
        if entry.is_dir() and entry.name.startswith("hour="):
            folders += [Path(inner.path) for inner in os.scandir(entry.path) if inner.is_dir()]
        elif entry.is_dir():
            folders.append(Path(entry.path))
    return folders


def _quarantine_details(model: _Model) -> list[dict]:
    """Each quarantined batch with the rules it failed, newest day first."""
    found = []
    for day, folders in reversed(_quarantine_folders(model).items()):
        for folder in folders:
            report_path = folder / storage.REPORT_FILE
            report = model.memo(f"validation {report_path}", _stamp(report_path),
                                lambda path=report_path: _report(path))
            batches = sorted(entry.name for entry in os.scandir(folder) if entry.name != storage.REPORT_FILE)
            found.append({
                "day": day,
                "batch": batches[0] if batches else None,
                "suite": report.get("suite_kind"),
                "message": report.get("message"),
                "failed_rules": report["failed_rules"],
                "curated": storage.curated_path(model.name, dt.date.fromisoformat(day)).exists(),
                "folder": {"root": "data", "path": folder.relative_to(model.roots.data).as_posix()},
            })
    return found


def _report(path: Path) -> dict:
    """What the page needs of a `validation.json`: its suite, its message and each failed rule in words."""
    from include.data.validation import Finding

    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"failed_rules": [f"{path.name} is missing or unreadable"]}
    rules = []
    for failure in report.get("blocking_failures") or []:
        try:
            rules.append(str(Finding(**failure)))
        except TypeError:
            rules.append(str(failure))
    return {"suite_kind": report.get("suite_kind"), "message": report.get("message"), "failed_rules": rules}


def _reports(model: _Model) -> list[dict]:
    """The drift sensor's Evidently report pages, newest day first (a scan kept for `TTL_SECONDS`)."""
    root, drift = model.roots.reports, model.paths.drift_reports

    def scan() -> list[dict]:
        found = [report for day_dir in _subfolders(drift, "day=") for report in _drift_reports_in(root, day_dir)]
        found.sort(key=lambda report: (report["day"], _version_order(report["version"])), reverse=True)
        return found

    return model.memo("reports", _scan_key(drift, nested=True), scan)


def _drift_reports_in(root: Path, day_dir: Path) -> list[dict]:
    """The report pages of a day: `<kind>.html`, kept as a snapshot that the UI renders when opened
    (`evidently_reports`), or, from an earlier version of the project, written out whole."""
    found = []
    for version_dir in _subfolders(day_dir, "version="):
        for kind in REPORT_KINDS:
            html = version_dir / html_name(kind)
            if snapshot_path(version_dir, kind).is_file() or html.is_file():
                found.append({"day": day_dir.name.removeprefix("day="),
                              "version": version_dir.name.removeprefix("version="), "kind": kind,
                              "root": "reports", "path": html.relative_to(root).as_posix()})
    return found


def _data_docs(model: _Model) -> list[dict]:
    """The GX Data Docs sites of the model's validations, newest day first (a scan kept for `TTL_SECONDS`)."""
    root, sites = model.roots.reports, model.paths.data_docs

    def scan() -> list[dict]:
        return [site for day_dir in reversed(_subfolders(sites, "day=")) for site in _data_docs_in(root, day_dir)]

    return model.memo("data_docs", _scan_key(sites, nested=False), scan)


def _data_docs_in(root: Path, day_dir: Path) -> list[dict]:
    found = []
    for suite in DATA_DOCS_SUITES:
        index = day_dir / suite / "index.html"
        if index.is_file():
            found.append({"day": day_dir.name.removeprefix("day="), "suite": suite, "root": "reports",
                          "path": index.relative_to(root).as_posix()})
    return found


def _subfolders(folder: Path, prefix: str) -> list[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(Path(entry.path) for entry in entries if entry.name.startswith(prefix) and entry.is_dir())


def _replay(model: _Model) -> dict | None:
    """The newest replay of the model (`<state>/replay/<model>/latest`), or None when none was made."""
    try:
        created = Path(os.readlink(model.paths.replay / "latest")).name
    except OSError:
        return None
    root, folder = model.roots.state, model.paths.replay / created
    summary_path = folder / "summary.json"

    def read() -> dict | None:
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            return None
        return {
            "root": "state",
            "png": (folder / "replay.png").relative_to(root).as_posix() if (folder / "replay.png").is_file() else None,
            "report": (folder / "report.md").relative_to(root).as_posix() if (folder / "report.md").is_file() else None,
            "summary": summary,
            "created": created,
        }

    return model.memo("replay", (created, _stamp(summary_path)), read)
