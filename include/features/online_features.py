"""Online feature lookups for the prediction service: a model's features read from its Feast online store.

For a model with `feature_store: feast`, a request record may carry the entity id and only some of the
features (or none): the service reads the features the record lacks from the online store that
Airflow's materialization fills (`include.features.feature_store.materialize_day`), by entity id.
A feature the record carries is used as sent.

The lookup is Feast's own read of its online store (SQLite, or Redis with `MLOPS_FEAST_REDIS`):
`OnlineStore.online_read`, the call under `FeatureStore.get_online_features`, given the feature view
generated from the config (`feature_store.definitions`, the one materialization applies) and kept
with one online store object per model. `get_online_features` itself spends about 3 times the CPU
per one-entity call (0.21 ms against 0.08 ms on the 2-core dev machine, answers turned into values)
on resolving feature references in the registry and building its response, which each prediction
would pay. The store is still opened with `open_store`, which applies the
definitions and so creates the online store's tables: an entity never materialized is "not found",
not an error.

Feast is imported by `OnlineFeatures.open`, never by this module: a service whose models do not use
the feature store never pays its import (seconds of CPU).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore

    from include.core.config import ModelConfig


class OnlineStoreUnavailable(RuntimeError):
    """The online store could not be read (down, unreachable, broken); the message says which and why."""


class OnlineFeatures:
    """Reads the features of one model's entities from its Feast online store."""

    def __init__(self, config: ModelConfig, store: FeatureStore) -> None:
        from feast.infra.online_stores.helpers import get_online_store_from_config
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

        from include.features.feature_store import definitions, online_store_kind

        self.model = config.name
        self.entity_column = config.schema.entity_column
        self.features = list(config.features.all)
        self.store_kind = online_store_kind()
        entity, self._view = definitions(config)
        self._entity_type = entity.value_type
        self._repo_config = store.config
        self._online_store = get_online_store_from_config(store.config.online_store)
        # Feast's helpers kept on the instance: this module must stay importable without importing Feast.
        self._entity_key = EntityKey
        self._to_proto = python_values_to_proto_values
        self._to_python = feast_value_type_to_python_type

    @classmethod
    def open(cls, config: ModelConfig) -> OnlineFeatures:
        """The model's online features: its feature store opened with the definitions of `config` applied.

        Raises:
            include.features.feature_store.FeatureStoreNotEnabled: the config does not use the store.
            Exception: whatever Feast raises when the registry or online store cannot be opened.
        """
        from include.features.feature_store import open_store

        return cls(config, open_store(config))

    def read(self, entity_ids: Sequence[Any]) -> list[dict[str, Any] | None]:
        """The stored features of each entity, in order; None for an entity the online store does not hold.

        One call to the online store for all of them. Values are as a request would send them: numbers,
        strings and booleans, a missing value or NaN as None, a timestamp as an ISO 8601 string.

        Raises:
            OnlineStoreUnavailable: the online store could not be read.
        """
        keys = [
            self._entity_key(join_keys=[self.entity_column], entity_values=[value])
            for value in self._to_proto(list(entity_ids), self._entity_type)
        ]
        try:  # a copy of the names: Feast's Redis store appends its timestamp key to the list it is given
            rows = self._online_store.online_read(self._repo_config, self._view, keys, list(self.features))
        except Exception as exc:
            raise OnlineStoreUnavailable(
                f"the {self.store_kind} online store of model {self.model!r} cannot be read: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return [self._features(values) for _, values in rows]

    def _features(self, values: dict[str, Any] | None) -> dict[str, Any] | None:
        """An entity's features from what `online_read` gave for it; None when the store does not hold it.

        SQLite gives no values for an unknown entity; Redis gives every feature as an empty value (and a
        1970 timestamp). So, as `get_online_features` marks a feature NOT_FOUND when its value is empty,
        an entity is found when at least one of its features holds a value.
        """
        if not values or all(proto.WhichOneof("val") is None for proto in values.values()):
            return None
        return {name: self._value(values.get(name)) for name in self.features}

    def _value(self, proto: Any) -> Any:
        return None if proto is None else _as_sent(self._to_python(proto))


def _as_sent(value: Any) -> Any:
    """A stored value as a caller would send it in JSON (what the log records and the model's frame parses)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
