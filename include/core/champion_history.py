"""Which version was `@champion` on a given data day: the append-only record of every change.

The `champion` alias says what serves now; monitoring, batch prediction and the replay need what
served THEN. Every move of the alias (a promotion, the undo of a failed deployment, a rollback)
is appended here with the first data day the new champion serves, its `effective_day`:

    <data>/<model>/deployment/champion_history.json
    [{"version": "2", "effective_day": "2026-03-02", "event": "promotion",
      "airflow_run_id": "…", "recorded_at": "…"}, …]

Days are data days, not wall time (the data clock): a version promoted while the newest curated
day is D serves from D + 1 (`next_data_day`), so it never "served" the days it was trained on.
`version` is None when the change left no champion (the undo of a first promotion).

Rules that keep the record truthful and a retried task harmless:

- a change that does not change the champion is not recorded (promoting the champion again, a
  retried promotion, an undo that was already done): "the same promotion recorded twice is one
  entry";
- a change never takes effect before the previous one (its effective day is at least the
  previous effective day), so the record is ordered by data day as well as by time, and when two
  changes share a day the later one is what served that day;
- the file is rewritten whole through a temporary file (`write_json_atomically`), never edited in
  place.

The version also gets the tag `serving_from` (its latest effective day) in the registry, for people.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from include.core import storage
from include.core.jsonable import write_json_atomically

if TYPE_CHECKING:
    from include.core.config import ModelConfig

HISTORY_FILE = "champion_history.json"
TAG_SERVING_FROM = "serving_from"

PROMOTION = "promotion"
UNDO = "undo"
ROLLBACK = "rollback"


@dataclass(frozen=True)
class ChampionChange:
    """One move of `@champion`: `version` serves from `effective_day` on (None: no champion)."""

    version: str | None
    effective_day: dt.date
    event: str
    airflow_run_id: str
    recorded_at: str

    def to_dict(self) -> dict:
        return {**asdict(self), "effective_day": self.effective_day.isoformat()}


def history_path(model: str) -> Path:
    return storage.model_root(model) / "deployment" / HISTORY_FILE


def read_history(model: str) -> list[ChampionChange]:
    """Every recorded change of `@champion`, oldest first (empty when none was ever recorded)."""
    path = history_path(model)
    if not path.exists():
        return []
    return [
        ChampionChange(
            version=None if entry["version"] is None else str(entry["version"]),
            effective_day=dt.date.fromisoformat(entry["effective_day"]),
            event=entry["event"],
            airflow_run_id=entry.get("airflow_run_id") or "",
            recorded_at=entry.get("recorded_at") or "",
        )
        for entry in json.loads(path.read_text())
    ]


def next_data_day(config: ModelConfig) -> dt.date:
    """The first data day a change made now applies to: the newest curated day + 1 (the data
    clock's tomorrow), or the model's first data day when nothing was curated yet."""
    days = storage.curated_days(config.name)
    return days[-1] + dt.timedelta(days=1) if days else config.source.start_date


def record_champion_change(
    model: str, version: str | int | None, effective_day: dt.date, event: str, airflow_run_id: str | None
) -> ChampionChange:
    """Append that `version` is the champion from `effective_day` on; tag the version `serving_from`.

    Idempotent: when the newest entry already names `version`, nothing is appended (the champion
    did not change) and that entry is returned.

    Returns:
        The entry that records `version` as the current champion.
    """
    version = None if version is None else str(version)
    history = read_history(model)
    if history and history[-1].version == version:
        return history[-1]
    if history and effective_day < history[-1].effective_day:
        effective_day = history[-1].effective_day
    change = ChampionChange(
        version=version,
        effective_day=effective_day,
        event=event,
        airflow_run_id=airflow_run_id or "",
        recorded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    write_json_atomically(history_path(model), [entry.to_dict() for entry in [*history, change]])
    if version is not None:
        from include.core import registry

        registry.client().set_model_version_tag(model, version, TAG_SERVING_FROM, effective_day.isoformat())
    return change


def champion_on(model: str, day: dt.date, history: list[ChampionChange] | None = None) -> str | None:
    """The version that served `day`, or None when no version did.

    When no change was ever recorded for the model (an alias set by hand, as before this record
    existed), the current `@champion` stands for every day.

    Args:
        history: `read_history(model)`, when the caller already has it (a loop over many days).
    """
    history = read_history(model) if history is None else history
    if not history:
        from include.core import registry

        current = registry.get_champion_version(model)
        return None if current is None else str(current.version)
    served = [change for change in history if change.effective_day <= day]
    return served[-1].version if served else None


def first_served_day(history: list[ChampionChange]) -> dt.date | None:
    """The first day any version served, from a non-empty history (None when none ever did)."""
    return next((change.effective_day for change in history if change.version is not None), None)


def why_none_served(model: str, day: dt.date) -> str:
    """The sentence saying why no version served `day`: no champion yet, or not on that day."""
    from include.core import registry

    history = read_history(model)
    first = first_served_day(history)
    if first is None:
        return (f"{model} has no @{registry.CHAMPION} yet (train a model and deploy it first: "
                "continuous_training, then model_deployment)")
    if day < first:
        return f"no version of {model} was @{registry.CHAMPION} on {day} (the first champion serves from {first})"
    return f"no version of {model} was @{registry.CHAMPION} on {day} (the promotion before it was undone)"
