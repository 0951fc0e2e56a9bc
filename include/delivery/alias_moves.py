"""Moving `@champion` and `@previous_champion` together, even when MLflow stops answering between the two.

MLflow moves one alias per request, and a deployment, a rollback or an undo moves two. When the
tracking server goes away after the first request, the registry is left half-moved (after a
promotion's first step both aliases name the old champion), and the run's retry would find aliases
it did not expect and refuse to move them. So a move is written down before it is made: a tag on the
registered model (`pending_alias_move`: the aliases to set, which run set them, and what they
replace), then each alias, then the tag is removed. Whoever touches the aliases next (the same run's
retry, another deployment, a rollback) first finishes a move it finds written down: the move was
decided and checked against the registry before it was written, so finishing it is rolling forward,
never guessing. The prediction service only reads `@champion`, which names the old version or the
new one at every moment, never none.

MLflow has no compare-and-set either, so two runs that read the aliases and move them within the
same few milliseconds could both pass their check. `exclusive` holds a lock per model from the check
to the end of the move: a file lock in the state folder, which every worker of the production
topology mounts (the data store is there too), so it holds across processes and machines.
"""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from include.core import registry, settings

PENDING_MOVE_TAG = "pending_alias_move"
_HELD = threading.local()


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Hold the lock on `name`'s deployment aliases (re-entrant within a thread)."""
    held: dict[str, int] = _HELD.__dict__.setdefault("counts", {})
    if held.get(name):
        held[name] += 1
        try:
            yield
        finally:
            held[name] -= 1
        return
    path = settings.state_dir() / "locks" / f"{name}.aliases.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        held[name] = 1
        try:
            yield
        finally:
            held[name] = 0
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def move(name: str, aliases: dict[str, str | None], *, by_run: str | None, replacing: str | None = None) -> None:
    """Point each alias at its version (None removes it), recorded first so that it always completes.

    Args:
        aliases: {alias: version or None}, set in this order.
        by_run: the Airflow run making the move, so that its retry knows the move was its own.
        replacing: the champion the move takes out of service, for the retry's bookkeeping.
    """
    client = registry.client()
    record = {"aliases": aliases, "by_run": by_run, "replacing": replacing}
    with exclusive(name):
        client.set_registered_model_tag(name, PENDING_MOVE_TAG, json.dumps(record))
        _apply(name, aliases)
        client.delete_registered_model_tag(name, PENDING_MOVE_TAG)


def pending(name: str) -> dict | None:
    """The move a run began and did not end ({"aliases", "by_run", "replacing"}), or None."""
    from mlflow.exceptions import MlflowException

    try:
        tags = registry.client().get_registered_model(name).tags
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return None
        raise
    return json.loads(tags[PENDING_MOVE_TAG]) if PENDING_MOVE_TAG in tags else None


def finish_pending(name: str) -> dict | None:
    """Finish the move a run began and did not end; the move, or None when there was none."""
    with exclusive(name):
        record = pending(name)
        if record is None:
            return None
        _apply(name, record["aliases"])
        registry.client().delete_registered_model_tag(name, PENDING_MOVE_TAG)
        return record


def _apply(name: str, aliases: dict[str, str | None]) -> None:
    client = registry.client()
    for alias, version in aliases.items():
        if version is not None:
            client.set_registered_model_alias(name, alias, str(version))
        elif registry.get_alias_version(name, alias) is not None:
            client.delete_registered_model_alias(name, alias)
