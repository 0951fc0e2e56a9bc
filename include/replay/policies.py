"""Retraining policies: when a replayed model retrains, and whether its candidates face the gate.

The built-in four answer the question a team asks before adopting Level 1 (what does automatic
retraining buy over training once or on a timer, and at what compute?):

    level0      train once on the first window, never retrain (Google's Level 0)
    scheduled   retrain on `training.schedule`, through the gate
    triggered   retrain on the drift sensor's requests (drift, performance), through the gate
    every_day   retrain every day, no gate: the freshness ceiling, at the highest cost

A model config may add its own under `replay.policies` (`include.core.config.ReplayPolicy`), e.g. the
Level 1 DAGs' full set of triggers: `{retrain_on: [request, schedule, new_data]}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from include.core.config import BUILT_IN_REPLAY_POLICIES

if TYPE_CHECKING:
    from include.core.config import ModelConfig


class UnknownPolicy(ValueError):
    """A policy name the model's config does not offer; the message lists those it does."""


@dataclass(frozen=True)
class RetrainingPolicy:
    """One way of keeping a model fresh.

    Attributes:
        retrain_on: what starts a training: "request", "schedule", "new_data", "every_day".
        gate: whether a candidate must pass the gate against the champion to be promoted; without
            it every trained version is promoted (the Level 0 path: evaluated, judged by nobody).
    """

    name: str
    description: str
    retrain_on: tuple[str, ...] = ()
    gate: bool = True

    @property
    def listens_to_requests(self) -> bool:
        """Whether the drift sensor's requests retrain it (only such policies are monitored in a replay)."""
        return "request" in self.retrain_on

    @property
    def memoryless(self) -> bool:
        """Whether each day's model depends on the data alone (retrained daily, never judged).

        Such a policy's days can be replayed in independent segments, in parallel.
        """
        return self.retrain_on == ("every_day",) and not self.gate

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "retrain_on": list(self.retrain_on),
                "gate": self.gate, "listens_to_requests": self.listens_to_requests}


BUILT_IN = {
    "level0": RetrainingPolicy("level0", "train once on the first window, never retrain", (), gate=False),
    "scheduled": RetrainingPolicy("scheduled", "retrain on training.schedule, through the gate", ("schedule",)),
    "triggered": RetrainingPolicy("triggered", "retrain on drift and performance requests, through the gate",
                                  ("request",)),
    "every_day": RetrainingPolicy("every_day", "retrain every day, no gate (the freshness ceiling)",
                                  ("every_day",), gate=False),
}
assert tuple(BUILT_IN) == BUILT_IN_REPLAY_POLICIES


def available(config: ModelConfig) -> dict[str, RetrainingPolicy]:
    """The policies a replay of `config` can run: the built-in ones, then the config's own.

    `scheduled` is left out when the config has no `training.schedule` (there is nothing to follow).
    """
    policies = {name: policy for name, policy in BUILT_IN.items()
                if name != "scheduled" or config.training.schedule}
    for name, own in config.replay.policies.items():
        said = f"retrain on {', '.join(own.retrain_on) or 'nothing'}{', through the gate' if own.gate else ', no gate'}"
        policies[name] = RetrainingPolicy(name, own.description or said, tuple(own.retrain_on), own.gate)
    return policies


def resolve(config: ModelConfig, names: str | list[str] | None) -> list[RetrainingPolicy]:
    """The policies named (comma-separated, as `POLICIES=level0,triggered`), or all available ones.

    Raises:
        UnknownPolicy: a name the config does not offer, or no name at all; the message names the
            value and lists the choices.
    """
    offered = available(config)
    if names is None:
        return list(offered.values())
    wanted = [name.strip() for name in names.split(",")] if isinstance(names, str) else [str(n).strip() for n in names]
    wanted = [name for name in wanted if name]
    if not wanted:
        raise UnknownPolicy(f"POLICIES names no policy (got {names!r}); choose from {', '.join(offered)}")
    for name in wanted:
        if name not in offered:
            why = (" (training.schedule is not set in its config)" if name == "scheduled" else "")
            raise UnknownPolicy(f"POLICIES: unknown policy {name!r} for model {config.name!r}{why}; "
                                f"choose from {', '.join(offered)}")
    return [offered[name] for name in dict.fromkeys(wanted)]
