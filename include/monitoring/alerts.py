"""Alerts: when the loop cannot recover by itself, a person hears about it.

A champion that misses its own floors on the holdout is degraded (see `include.training.evaluation`).
Retraining is the loop's answer; when `evaluation.degraded_champion.alert_after_rejections`
retrained candidates in a row are rejected while the champion is degraded, the answer is not
working and `<model>__continuous_training` raises an alert through an Airflow notifier: the class
named by `evaluation.degraded_champion.notifier` (any `airflow.sdk.BaseNotifier`, e.g. a provider's
Slack or SMTP notifier; the default is `plugins/notifiers.py`'s `LogNotifier`), built with
`notifier_params`. Its templates see the alert as `{{ champion_alert.message }}` (and
`.rejections`, `.champion`, `.versions`). This module decides when; it imports no Airflow.

Training/serving skew is the other case (`include.monitoring.feature_skew`): retraining cannot mend
a service fed other feature values than the model learned from, so `<model>__drift_sensor` raises
`feature_skew_alert` through the same notifier, under the same context key (`.message`, and
`.kind = "feature_skew"`, `.day`, `.shares`, `.withheld_days`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.core import registry

if TYPE_CHECKING:
    from include.core.config import ModelConfig

ALERT_CONTEXT_KEY = "champion_alert"
"""Where the alert is in the context a notifier renders its templates with."""


def consecutive_rejections_while_degraded(model: str) -> list[str]:
    """The versions rejected in a row, newest first, while the current `@champion` was degraded.

    Only versions judged against the current champion count (registered since it was promoted;
    Level 0 versions, judged against nobody, do not). The run of rejections ends at the newest
    version that passed the gate or that found the champion healthy.

    Returns:
        Version numbers as strings, newest first; empty without a champion.
    """
    from mlflow.exceptions import MlflowException

    champion = registry.get_champion_version(model)
    if champion is None:
        return []
    query = (f"name = '{registry.quoted(model)}' and "
             f"tags.{registry.TAG_COMPARED_WITH} = '{registry.quoted(str(champion.version))}'")
    try:
        judged = registry.client().search_model_versions(query, order_by=["version_number DESC"])
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    rejected = []
    for version in sorted(judged, key=lambda found: int(found.version), reverse=True):
        tags = version.tags
        if tags.get(registry.TAG_GATE_PASSED) != "false" or tags.get(registry.TAG_CHAMPION_DEGRADED) != "true":
            break
        rejected.append(str(version.version))
    return rejected


def degraded_champion_alert(config: ModelConfig) -> dict[str, Any] | None:
    """The alert to raise now, or None: `alert_after_rejections` or more rejections in a row while
    the champion is degraded (`consecutive_rejections_while_degraded`).

    Returns:
        {"model", "champion", "rejections", "versions" (newest first), "message"} or None.
    """
    needed = config.evaluation.degraded_champion.alert_after_rejections
    versions = consecutive_rejections_while_degraded(config.name)
    if len(versions) < needed:
        return None
    champion = str(registry.get_champion_version(config.name).version)
    newest = registry.client().get_model_version(config.name, versions[0])
    message = (
        f"{config.name}: @champion version {champion} is degraded (it misses its own floors on the current "
        f"holdout) and the last {len(versions)} retrained candidates were rejected (versions "
        f"{', '.join(reversed(versions))}): the loop is not replacing it by itself. The newest verdict: "
        f"{newest.tags.get(registry.TAG_GATE_SUMMARY, 'not recorded')}. Look at the gate verdicts; a person may "
        f"deploy a version with force and a reason, or revisit evaluation.metrics in the model config."
    )
    return {"model": config.name, "champion": champion, "rejections": len(versions), "versions": versions,
            "message": message}


def feature_skew_alert(config: ModelConfig, checked: list[dict]) -> dict[str, Any] | None:
    """The alert to raise after a run of the drift sensor, or None: a day it checked found the features
    the service used differing from the feature store's offline ones beyond `monitoring.skew_max_share`.

    Args:
        checked: the run's checks, oldest first (`monitoring.run_checks`' "checked").

    Returns:
        {"model", "kind": "feature_skew", "day" (the newest such check), "shares" (its skewed
        features), "withheld_days" (checks of the run whose retrain request was withheld),
        "message"} or None.
    """
    over = [check for check in checked if (check.get("feature_skew") or {}).get("over_threshold")]
    if not over:
        return None
    newest = over[-1]["feature_skew"]
    withheld = [check["day"] for check in checked if check["decision"].get("withheld")]
    held = (f"the retrain request of {', '.join(withheld)} was withheld" if withheld
            else "no retrain request goes out while it lasts")
    message = (
        f"{config.name}: {newest['explanation']}. {held}, and continuous training skips its automatic runs. "
        f"Retraining cannot mend this: the examples in check.json of {newest['day']} show served and offline "
        "values; fix the side that is wrong (the caller's features, the online store's materialization, or "
        "ingestion). A person may still train on demand."
    )
    return {"model": config.name, "kind": "feature_skew", "day": newest["day"],
            "shares": {name: newest["shares"][name] for name in newest["skewed_features"]},
            "withheld_days": withheld, "message": message}
