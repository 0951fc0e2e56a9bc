"""Online feature lookups for the prediction service: a model's features read from its Feast online store.

For a model with `feature_store: feast`, a request record may carry the entity id and only some of the
features (or none): the service reads the features the record lacks from the online store that
Airflow's materialization fills (`include.features.feature_store.materialize_day`), by entity id.
A feature the record carries is used as sent. The lookup goes through Feast's own
`FeatureStore.get_online_features`, on one store object kept per model, so each call reads the
online store (SQLite, or Redis with `MLOPS_FEAST_REDIS`) and nothing else: the registry is read when
the store is opened, and again only when the model's config changes (the service opens a new one).

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
        from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

        from include.features.feature_store import feature_view_name, online_store_kind

        self.model = config.name
        self.entity_column = config.schema.entity_column
        self.features = list(config.features.all)
        self.store_kind = online_store_kind()
        self._store = store
        self._references = [f"{feature_view_name(config)}:{name}" for name in self.features]
        self._not_found = FieldStatus.NOT_FOUND

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
        rows = [{self.entity_column: entity_id} for entity_id in entity_ids]
        try:
            response = self._store.get_online_features(features=self._references, entity_rows=rows)
            columns = response.to_dict()
        except Exception as exc:
            raise OnlineStoreUnavailable(
                f"the {self.store_kind} online store of model {self.model!r} cannot be read: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        found = [False] * len(rows)
        names = response.proto.metadata.feature_names.val
        for name, vector in zip(names, response.proto.results, strict=True):
            if name != self.entity_column:  # the response echoes the entity id as a column of its own
                for index, status in enumerate(vector.statuses):
                    found[index] = found[index] or status != self._not_found
        return [
            {name: _as_sent(columns[name][index]) for name in self.features} if found[index] else None
            for index in range(len(rows))
        ]


def _as_sent(value: Any) -> Any:
    """A stored value as a caller would send it in JSON (what the log records and the model's frame parses)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
