"""Notifiers: how the loop tells a person that it cannot recover by itself (Airflow's notifier mechanism).

`evaluation.degraded_champion.notifier` in a model config names the class; `build_notifier` makes
it. Any `airflow.sdk.BaseNotifier` fits (a provider's Slack or SMTP notifier, say); the default,
`LogNotifier`, needs no connection. The alert itself (when, and what it says) is
`include.monitoring.alerts.degraded_champion_alert`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from include.core.config import ModelConfig


def build_notifier(config: ModelConfig) -> BaseNotifier:
    """The notifier of `evaluation.degraded_champion.notifier`, built with its `notifier_params`.

    Raises:
        ValueError: naming the key when the class cannot be imported or is not a BaseNotifier.
    """
    settings = config.evaluation.degraded_champion
    module_name, _, class_name = settings.notifier.rpartition(".")
    key = f"{config.name}.yaml: key 'evaluation.degraded_champion.notifier'"
    try:
        notifier_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{key}: cannot import {settings.notifier!r}: {exc}") from exc
    if not (isinstance(notifier_class, type) and issubclass(notifier_class, BaseNotifier)):
        raise ValueError(f"{key}: {settings.notifier!r} is not an airflow.sdk.BaseNotifier subclass")
    return notifier_class(**settings.notifier_params)


class LogNotifier(BaseNotifier):
    """The default notifier: writes the alert to the task log, framed so it is seen at a glance.

    Args:
        message: a template rendered with the task's context; by default the alert's message.
    """

    template_fields = ("message",)

    def __init__(self, message: str = "{{ champion_alert.message }}"):
        super().__init__()
        self.message = message

    def notify(self, context) -> None:
        banner = "!" * 100
        self.log.error("\n%s\nALERT: %s\n%s", banner, self.message, banner)
