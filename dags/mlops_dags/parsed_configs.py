"""The model configs of a DAG file parse, served from the discovery cache without the config schema.

Each DAG file is parsed in a fresh process, and importing include/core/config.py (its 28 pydantic
classes) costs two to three times a whole trivial DAG's parse. When the discovery cache holds the
models folder's current listing (`include.core.config_cache`), the parse gets one
`ParsedModelConfig` per valid config instead: it answers the config's plain values
(`include.core.config.plain_facts`: the name, owner, schedules, start date ...) from the cache,
which is all a DAG factory reads, and turns into the real `ModelConfig`, unpickled from the same
cache entry, the first time anything else is asked of it: when `dag.test()` runs a task in the
parsing process, say. It passes `isinstance` checks and compares, hashes and pickles as the real
config does.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from pathlib import Path

from lazy_object_proxy import Proxy

from include.core import config_cache, settings

_SCHEMA_MODULE = "include.core.config"


class ParsedModelConfig(Proxy):
    """A model config (or one of its sections) that answers its plain values without being loaded."""

    __slots__ = ("_facts",)  # set through the slot: a proxy forwards attribute writes to the real object

    def __getattribute__(self, name: str):
        facts = _FACTS.__get__(self)
        if name in facts:
            value = facts[name]
            if type(value) is dict:  # a section: a proxy of its own, made on first use (isinstance would load it)
                value = facts[name] = _proxy(value, lambda: getattr(self.__wrapped__, name))
            return value
        if name == "__class__" and _SCHEMA_MODULE not in sys.modules:
            # Airflow looks for DAGs among a DAG file's globals with isinstance(), which reads
            # `__class__`. Until the schema is imported, no code holds its classes to test against,
            # so this answer changes no verdict; afterwards the real class answers.
            return ParsedModelConfig
        return super().__getattribute__(name)


_FACTS = ParsedModelConfig._facts


def _proxy(facts: dict, load: Callable[[], object]) -> ParsedModelConfig:
    proxy = ParsedModelConfig(load)
    _FACTS.__set__(proxy, facts)
    return proxy


def parsed_model_configs(folder: Path | None = None) -> list[ParsedModelConfig] | None:
    """The models folder's valid configs from the discovery cache, by file name; None when it does not hold
    the folder's current listing (then `include.core.config.discover_model_configs` reads the folder)."""
    folder = folder or settings.models_dir()
    entry_file = config_cache.cache_file(folder, sorted(folder.glob("*.yaml")))
    entry = config_cache.read(entry_file) if entry_file is not None else None
    if entry is None:
        return None
    discovered = []

    def real(name: str):
        if not discovered:
            discovered.append(pickle.loads(entry["discovered"]))
        return discovered[0].valid[name]

    return [_proxy(facts, lambda name=name: real(name)) for name, facts in entry["facts"].items()]
