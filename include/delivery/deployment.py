"""Model delivery: which version may go to production, the alias moves, and how they are undone.

The registry's aliases are the deployment: the prediction service serves whatever `champion`
points to. A deployment of version V

1. checks V's gate verdict (tag `gate_passed`) and that it is current: the champion V was judged
   against (tag `compared_with_champion`) is still the champion. An unblessed or stale version is
   refused unless forced, and a forced one carries who forced it and why (`deployment_forced_by`,
   `deployment_force_reason`);
2. (infra validation and the live checks live in `include.delivery.infra_validation` and
   `include.delivery.service_checks`; their figures are recorded on V by `record_checks`);
3. promotes V: `previous_champion` ← the current champion, `champion` ← V, and `challenger` is
   removed when it points at V. V keeps what it replaced (`replaced_champion`,
   `replaced_previous_champion`), so that
4. a failed deployment is undone exactly (`undo_promotion`), and a later rollback knows where the
   history goes (`roll_back_to`).

Each alias move of `champion` is also appended to the champion history
(`include.core.champion_history`) with the first data day the new champion serves, so monitoring and
batch prediction can ask which version served any past day.

Every function is idempotent: promoting the champion again, or undoing an undone promotion,
changes nothing.

A deployment and a rollback of one model must not interleave their alias moves (a rollback that
chose its target, then a deployment, then the rollback's move would take the new version out
with a reason meant for the old one). Each run reads `@champion` and `@previous_champion` when it
starts (`check_candidate`, `rollback_target`) and hands them to the move (`promote`,
`roll_back_to`), which refuses with `AliasesMoved` when they changed since: a compare-and-set on
the registry. It needs no Airflow pool, so it holds wherever these functions run (DAG, replay,
CLI), and a rollback never waits for a deployment that waits hours for an approval: the deployment
refuses afterwards instead. `include.delivery.alias_moves` makes the compare and the move one step
(a lock per model in the state folder, since MLflow has no compare-and-set) and writes a move of two
aliases down before making it, so that one cut off by an MLflow outage is finished by whoever
touches the aliases next, before they read them.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from include.core import champion_history, registry
from include.delivery import alias_moves

if TYPE_CHECKING:
    from include.core.config import ModelConfig

TAG_STATUS = "deployment_status"
TAG_FORCED_BY = "deployment_forced_by"
TAG_FORCE_REASON = "deployment_force_reason"
TAG_REPLACED_CHAMPION = "replaced_champion"
TAG_REPLACED_PREVIOUS = "replaced_previous_champion"
TAG_PROMOTED_AT = "promoted_at"
TAG_PROMOTED_BY_RUN = "promoted_by_airflow_run"
TAG_ROLLBACK_REASON = "rollback_reason"
TAG_FAILURE = "deployment_failure"
NONE = "none"
DEFAULT_ROLLBACK_REASON = "manual rollback"
"""The rollback form's default reason: enough for `@previous_champion`, not for forcing a version."""

STATUS_PROMOTED = "promoted"
STATUS_SERVING = "serving"
STATUS_ROLLED_BACK = "rolled_back"


class DeploymentRefused(ValueError):
    """The version may not be deployed (or rolled back to); the message says why and what to do."""


class AliasesMoved(DeploymentRefused):
    """Another deployment or rollback moved the aliases since this run read them; nothing moved."""


def resolve_version(config: ModelConfig, requested: str | None = None, announced: str | None = None) -> str:
    """The version to deploy: the one a person named, else the announced challenger, else `@challenger`.

    Raises:
        DeploymentRefused: no such version, or nothing named and no challenger.
    """
    name = config.name
    if requested or announced:
        wanted = str(requested or announced)
        _existing_version(name, wanted)
        return wanted
    challenger = registry.get_alias_version(name, registry.CHALLENGER)
    if challenger is None:
        raise DeploymentRefused(
            f"{name!r} has no @{registry.CHALLENGER} to deploy; trigger with --conf '{{\"version\": \"<n>\"}}'"
        )
    return str(challenger.version)


def check_candidate(
    config: ModelConfig, version: str, *, force: bool = False, reason: str = "", requested_by: str | None = None
) -> dict:
    """Refuse a version the gate did not bless, or blessed against a champion that has since been
    replaced, unless a person forces it and says why.

    A verdict is current when the champion the version was judged against (`compared_with_champion`,
    "none" before the first promotion) is the champion now, or when the version is the champion.

    Returns:
        {"version", "gate_passed", "gate_current", "gate_summary", "forced", "champion" and
        "previous_champion" (as they are now, or None: `promote` moves them only if they still are),
        "approval_reason": why a person must approve the promotion (`approval_reason`), or None}.

    Raises:
        DeploymentRefused: unblessed or stale and not forced, or forced without a reason.
    """
    name = config.name
    model_version = _existing_version(name, version)
    alias_moves.finish_pending(name)
    passed = model_version.tags.get(registry.TAG_GATE_PASSED) == "true"
    summary = model_version.tags.get(registry.TAG_GATE_SUMMARY, "no gate verdict recorded")
    now = registry.deployment_aliases(name)
    champion = now[registry.CHAMPION]
    judged_against = model_version.tags.get(registry.TAG_COMPARED_WITH)
    current = str(version) == champion or judged_against == (champion or registry.NO_CHAMPION)
    force_hint = (f"--conf '{{\"version\": \"{version}\", \"force\": true, \"reason\": \"<why>\"}}'")
    if not passed and not force:
        raise DeploymentRefused(
            f"version {version} of {name!r} did not pass the gate ({summary}); to deploy it anyway, trigger with "
            f"{force_hint}"
        )
    if not current and not force:
        was = "no champion" if judged_against == registry.NO_CHAMPION else f"@champion version {judged_against}"
        raise DeploymentRefused(
            f"version {version} of {name!r} passed the gate judged against {was}, but @champion is now "
            f"{'version ' + champion if champion else 'none'}; retrain ({name}__continuous_training) to judge a "
            f"candidate against it, or to deploy this one anyway, trigger with {force_hint}"
        )
    forced = not (passed and current)
    if forced:
        _record_force(name, str(version), reason, requested_by,
                      f"forcing version {version} of {name!r} needs a reason (the Param 'reason')")
    return {
        "version": str(version),
        "gate_passed": passed,
        "gate_current": current,
        "gate_summary": summary,
        "forced": forced,
        "champion": champion,
        "previous_champion": now[registry.PREVIOUS_CHAMPION],
        "approval_reason": approval_reason(config, model_version.tags),
    }


def approval_reason(config: ModelConfig, version_tags: dict[str, str]) -> str | None:
    """Why a person must approve promoting the version with these tags, or None when nobody need.

    Besides `deployment.promotion: approval`, a version the gate let pass below a floor because
    the champion is degraded (tag `gate_needs_approval`) waits for a person even when promotion
    is automatic.
    """
    if config.deployment.promotion == "approval":
        return "deployment.promotion is approval: a person approves every promotion"
    if version_tags.get(registry.TAG_NEEDS_APPROVAL) == "true":
        return ("floor exception: the version misses a floor and passed only because @champion is degraded "
                "and it is significantly better (evaluation.degraded_champion.promotion is approval)")
    return None


def promote(
    config: ModelConfig, version: str, airflow_run_id: str, effective_day: dt.date | None = None, *,
    expected: dict[str, str | None] | None = None,
) -> dict:
    """`previous_champion` ← champion, `champion` ← `version`, `challenger` removed if it was `version`.

    Args:
        effective_day: the first data day `version` serves; None = the data clock's tomorrow
            (`champion_history.next_data_day`: the newest curated day + 1).
        expected: `@champion` and `@previous_champion` as the run read them (`check_candidate`'s
            "champion" and "previous_champion"); None = move without comparing.

    Returns:
        {"version", "replaced_champion", "changed", "serving_from"}; `changed` is False when
        `version` already was the champion before this run, and then no alias moves. A retry whose
        first try was cut off midway finishes that try's move (`alias_moves`) and says changed.

    Raises:
        AliasesMoved: the aliases differ from `expected` (another run moved them); nothing moved.
    """
    with alias_moves.exclusive(config.name):
        name = config.name
        client = registry.client()
        finished = alias_moves.finish_pending(name)
        champion = registry.get_champion_version(name)
        previous = registry.get_alias_version(name, registry.PREVIOUS_CHAMPION)
        changed = champion is None or str(champion.version) != str(version)
        if changed:
            _refuse_if_moved(name, expected, f"promoting version {version}")
            tags = {
                TAG_REPLACED_CHAMPION: str(champion.version) if champion else NONE,
                TAG_REPLACED_PREVIOUS: str(previous.version) if previous else NONE,
                TAG_PROMOTED_AT: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                TAG_PROMOTED_BY_RUN: airflow_run_id,
                TAG_STATUS: STATUS_PROMOTED,
            }
            for key, value in tags.items():
                client.set_model_version_tag(name, version, key, value)
            moves = {registry.PREVIOUS_CHAMPION: str(champion.version)} if champion else {}
            alias_moves.move(name, moves | {registry.CHAMPION: str(version)}, by_run=airflow_run_id,
                             replacing=str(champion.version) if champion else None)
        elif finished is not None and finished["by_run"] == airflow_run_id:
            changed = True
        challenger = registry.get_alias_version(name, registry.CHALLENGER)
        if challenger is not None and str(challenger.version) == str(version):
            client.delete_registered_model_alias(name, registry.CHALLENGER)
        served = _record_change(config, str(version), effective_day, champion_history.PROMOTION, airflow_run_id)
        replaced = client.get_model_version(name, version).tags.get(TAG_REPLACED_CHAMPION, NONE)
        return {"version": str(version), "replaced_champion": _version_or_none(replaced), "changed": changed,
                "serving_from": served.effective_day.isoformat()}


def undo_promotion(
    config: ModelConfig, version: str, reason: str, airflow_run_id: str | None = None,
    effective_day: dt.date | None = None,
) -> dict:
    """Put the aliases back as they were before `version` was promoted, and say why on `version`.

    Nothing moves when `version` is not the champion (it was never promoted, or is already
    undone); the service then serves what it served before. The restored champion is recorded in
    the champion history from `effective_day` (None = the data clock's tomorrow).

    Returns:
        {"undone": bool, "champion": the champion afterwards or None}.
    """
    with alias_moves.exclusive(config.name):
        name = config.name
        client = registry.client()
        finished = alias_moves.finish_pending(name)
        resumed = (finished is not None and finished["replacing"] == str(version)
                   and finished["by_run"] == airflow_run_id)
        champion = registry.get_champion_version(name)
        if not resumed and (champion is None or str(champion.version) != str(version)):
            current = str(champion.version) if champion else None
            if _history_names(name, str(version)):  # a retried task: the aliases moved, the record did not
                _record_change(config, current, effective_day, champion_history.UNDO, airflow_run_id)
            return {"undone": False, "champion": current}
        tags = client.get_model_version(name, version).tags
        restored = tags.get(TAG_REPLACED_CHAMPION, NONE)
        if not resumed:
            before = {registry.CHAMPION: _version_or_none(restored),
                      registry.PREVIOUS_CHAMPION: _version_or_none(tags.get(TAG_REPLACED_PREVIOUS, NONE))}
            alias_moves.move(name, before, by_run=airflow_run_id, replacing=str(version))
        client.set_model_version_tag(name, version, TAG_STATUS, STATUS_ROLLED_BACK)
        client.set_model_version_tag(name, version, TAG_ROLLBACK_REASON, reason[:5000])
        restored = None if restored == NONE else restored
        _record_change(config, restored, effective_day, champion_history.UNDO, airflow_run_id)
        return {"undone": True, "champion": restored}


def rollback_target(
    config: ModelConfig, requested: str | None = None, *, force: bool = False, reason: str = "",
    requested_by: str | None = None,
) -> dict:
    """The version a rollback restores: the one named, else `@previous_champion`.

    `@previous_champion` served just before the champion, so it goes back as it is. Any other named
    version must have passed the gate (tag `gate_passed`: the blessing a deployment needs; how long
    ago does not matter, a rollback goes back by design), and is checked like a deployment
    (`validate_infrastructure`) before it moves. A version without that blessing (a Level 0 one,
    one the gate rejected, or one that only served because someone forced it) needs `force` and a
    reason other than the default; who forced it and why are recorded on it, as for a deployment.

    Returns:
        {"target", "champion", "previous_champion" (as they are now, or None: `roll_back_to`
        moves them only if they still are), "validate": does the target need infra validation,
        "forced"}.

    Raises:
        DeploymentRefused: the version does not exist, there is no previous champion, or the
            named version is unblessed and not forced with a real reason.
    """
    name = config.name
    alias_moves.finish_pending(name)
    now = registry.deployment_aliases(name)
    previous = now[registry.PREVIOUS_CHAMPION]
    if not requested and previous is None:
        raise DeploymentRefused(
            f"{name!r} has no @{registry.PREVIOUS_CHAMPION} to roll back to; name a version with "
            "--conf '{\"version\": \"<n>\"}'"
        )
    target = str(_existing_version(name, str(requested)).version) if requested else previous
    named = target != previous
    forced = False
    if named and _existing_version(name, target).tags.get(registry.TAG_GATE_PASSED) != "true":
        if not force:
            raise DeploymentRefused(
                f"version {target} of {name!r} is not @{registry.PREVIOUS_CHAMPION} and did not pass the gate; "
                f"to restore it anyway, trigger with --conf '{{\"version\": \"{target}\", \"force\": true, "
                f"\"reason\": \"<why>\"}}'"
            )
        real_reason = "" if reason.strip() == DEFAULT_ROLLBACK_REASON else reason
        _record_force(name, target, real_reason, requested_by,
                      f"forcing a rollback to version {target} of {name!r} needs a reason of your own (the Param "
                      f"'reason', not {DEFAULT_ROLLBACK_REASON!r})")
        forced = True
    return {"target": target, **now, "validate": named, "forced": forced}


def roll_back_to(
    config: ModelConfig, target: str, reason: str, airflow_run_id: str | None = None,
    effective_day: dt.date | None = None, *, expected: dict[str, str | None] | None = None,
) -> dict:
    """`champion` ← `target`; `previous_champion` ← the version `target` itself had replaced.

    So a second rollback goes one step further back in the deployment history, never forward
    to the version just rolled back. The version that was champion is tagged `rolled_back`
    with the reason; `target` is recorded in the champion history from `effective_day` (None =
    the data clock's tomorrow). Idempotent: when `target` is already the champion, nothing moves.

    Args:
        expected: `@champion` and `@previous_champion` as the run read them (`rollback_target`);
            None = move without comparing.

    Returns:
        {"champion": target, "rolled_back_from": the former champion or None, "changed"}.

    Raises:
        AliasesMoved: the aliases differ from `expected` (another run moved them); nothing moved.
    """
    with alias_moves.exclusive(config.name):
        name = config.name
        client = registry.client()
        finished = alias_moves.finish_pending(name)
        champion = registry.get_champion_version(name)
        replaced = str(champion.version) if champion else None
        if finished is not None and finished["by_run"] == airflow_run_id and airflow_run_id is not None:
            replaced = finished["replacing"]  # this run's first try moved the aliases and was cut off
        elif champion is not None and str(champion.version) == str(target):
            _record_change(config, str(target), effective_day, champion_history.ROLLBACK, airflow_run_id)
            return {"champion": str(target), "rolled_back_from": None, "changed": False}
        else:
            _refuse_if_moved(name, expected, f"rolling back to version {target}")
            before = _existing_version(name, target).tags.get(TAG_REPLACED_CHAMPION, NONE)
            previous = None if before in (NONE, str(target)) else before
            alias_moves.move(name, {registry.PREVIOUS_CHAMPION: previous, registry.CHAMPION: str(target)},
                             by_run=airflow_run_id, replacing=replaced)
        if replaced is not None:
            client.set_model_version_tag(name, replaced, TAG_STATUS, STATUS_ROLLED_BACK)
            client.set_model_version_tag(name, replaced, TAG_ROLLBACK_REASON, reason[:5000])
        client.set_model_version_tag(name, target, TAG_STATUS, STATUS_SERVING)
        _record_change(config, str(target), effective_day, champion_history.ROLLBACK, airflow_run_id)
        return {"champion": str(target), "rolled_back_from": replaced, "changed": True}


def validate_infrastructure(config: ModelConfig, version: str) -> dict:
    """Load and check `version` in a fresh process with the service's environment
    (`infra_validation.run_in_fresh_process`), recording the figures on it as `infra_*` tags,
    whether it passed or not. Deployment and a rollback to a named version both call it.

    Returns:
        The report's headline figures (memory, latency and CPU per record, golden error).

    Raises:
        infra_validation.InfraValidationFailed: the version cannot be served here.
    """
    from include.delivery import infra_validation

    try:
        report = infra_validation.run_in_fresh_process(config.name, version)
    except infra_validation.InfraValidationFailed as exc:
        record_checks(config, version, "infra", exc.report)
        raise
    record_checks(config, version, "infra", report)
    return {key: report.get(key) for key in ("memory_mb", "latency_p50_ms", "latency_p99_ms",
                                              "cpu_p50_ms", "cpu_p99_ms", "golden_max_abs_error")}


def golden_examples(config: ModelConfig, version: str) -> dict:
    """The golden examples recorded with `version` at training (inputs and expected outputs).

    Raises:
        DeploymentRefused: the version has none (it cannot be smoke-tested).
    """
    import mlflow

    model_version = _existing_version(config.name, version)
    uri = model_version.tags.get(registry.TAG_GOLDEN_EXAMPLES)
    if not uri:
        raise DeploymentRefused(
            f"version {version} of {config.name!r} has no golden examples (tag {registry.TAG_GOLDEN_EXAMPLES!r}), "
            "so the live service cannot be checked with it"
        )
    registry.client()
    return mlflow.artifacts.load_dict(uri)


def check_served_version(config: ModelConfig, version: str, serving_url: str, admin_token: str | None = None) -> dict:
    """The live service serves `version` (within `deployment.service_timeout_seconds`) and answers
    the version's golden inputs with its golden outputs.

    Returns:
        The smoke test's figures ({"records", "max_abs_error", "version"}).

    Raises:
        service_checks.ServiceCheckFailed: it does not serve the version (or does not know the model:
            the message names the models it serves and the folder it reads the configs from), or
            answers wrongly.
        DeploymentRefused: the version has no golden examples.
    """
    from include.delivery import service_checks

    service_checks.wait_until_serving(serving_url, config.name, version, admin_token=admin_token,
                                      timeout=config.deployment.service_timeout_seconds)
    return service_checks.smoke_test(serving_url, config.name, version, golden_examples(config, version),
                                     admin_token=admin_token)


def verify_live_service(
    config: ModelConfig, version: str, serving_url: str, *, admin_token: str | None = None,
    load_test_rate: float | None = None,
) -> dict:
    """After promotion: `check_served_version`, then a load test (`deployment.load_test_rate`
    requests/s unless `load_test_rate`, for `deployment.load_test_seconds`) without errors and with
    p99 within `serving.latency_budget_ms` (a p99 miss is measured again, up to
    `deployment.load_test_attempts` times in all, before it fails:
    `service_checks.load_test_confirmed`). The figures go on the version (`smoke_test_*`,
    `load_test_*`); a failure's reason goes on it as `deployment_failure` for the rollback to quote.

    Returns:
        {"smoke_test": figures, "load_test": figures}.

    Raises:
        service_checks.ServiceCheckFailed, DeploymentRefused: the service failed a check.
    """
    from include.delivery import service_checks

    deploy = config.deployment
    try:
        smoke = check_served_version(config, version, serving_url, admin_token)
        record_checks(config, version, "smoke_test", smoke)
        golden = golden_examples(config, version)
        load, problem, attempts = service_checks.load_test_confirmed(
            lambda: service_checks.load_test(serving_url, config.name, golden["inputs"],
                                             rate=load_test_rate or deploy.load_test_rate,
                                             seconds=deploy.load_test_seconds, admin_token=admin_token),
            config.serving.latency_budget_ms, attempts=deploy.load_test_attempts,
        )
        record_checks(config, version, "load_test", {**load.as_dict(), "measurements": attempts})
        if problem:
            raise service_checks.ServiceCheckFailed(f"load test: {problem}")
    except (service_checks.ServiceCheckFailed, DeploymentRefused) as exc:
        registry.client().set_model_version_tag(config.name, version, TAG_FAILURE, str(exc)[:5000])
        raise
    return {"smoke_test": smoke, "load_test": load.as_dict()}


def failure_reason(config: ModelConfig, version: str) -> str | None:
    """Why the live checks of `version` failed, as `verify_live_service` recorded it."""
    return _existing_version(config.name, version).tags.get(TAG_FAILURE)


def record_checks(config: ModelConfig, version: str, prefix: str, figures: dict) -> None:
    """Record check figures on the version as tags `<prefix>_<key>` (numbers and short texts)."""
    client = registry.client()
    for key, value in figures.items():
        if value is None or isinstance(value, dict | list):
            continue
        client.set_model_version_tag(config.name, version, f"{prefix}_{key}", json.dumps(value)
                                     if isinstance(value, bool) else str(value))


def mark_serving(config: ModelConfig, version: str) -> None:
    registry.client().set_model_version_tag(config.name, version, TAG_STATUS, STATUS_SERVING)


def _record_change(
    config: ModelConfig, version: str | None, effective_day: dt.date | None, event: str, airflow_run_id: str | None
) -> champion_history.ChampionChange:
    """Append the alias move to the champion history (nothing when it already says so)."""
    day = effective_day or champion_history.next_data_day(config)
    return champion_history.record_champion_change(config.name, version, day, event, airflow_run_id)


def _record_force(name: str, version: str, reason: str, requested_by: str | None, no_reason: str) -> None:
    """Record on the version who forced it and why; refuse (saying `no_reason`) without a reason."""
    if not reason.strip():
        raise DeploymentRefused(no_reason)
    client = registry.client()
    client.set_model_version_tag(name, version, TAG_FORCED_BY, requested_by or "unknown")
    client.set_model_version_tag(name, version, TAG_FORCE_REASON, reason.strip())


def _refuse_if_moved(name: str, expected: dict[str, str | None] | None, doing: str) -> None:
    """The compare of the compare-and-set: raise AliasesMoved when the aliases differ from `expected`."""
    if expected is None:
        return
    now = registry.deployment_aliases(name)
    moved = [f"@{alias} was {expected.get(alias) or 'none'}, now {now[alias] or 'none'}"
             for alias in now if now[alias] != expected.get(alias)]
    if moved:
        raise AliasesMoved(
            f"{doing} of {name!r} refused: another deployment or rollback moved the aliases since this run read "
            f"them ({'; '.join(moved)}); nothing was changed. Look at the model page, then trigger again if "
            "it is still wanted"
        )


def _history_names(model: str, version: str) -> bool:
    """Does the champion history still name `version` as the current champion?"""
    history = champion_history.read_history(model)
    return bool(history) and history[-1].version == version


def _version_or_none(tag_value: str) -> str | None:
    """A version from a tag that says "none" when there was none."""
    return None if tag_value == NONE else tag_value


def _existing_version(name: str, version: str):
    from mlflow.exceptions import MlflowException

    try:
        return registry.client().get_model_version(name, str(version))
    except MlflowException as exc:
        raise DeploymentRefused(f"{name!r} has no version {version!r} in the model registry") from exc
