"""Continuous training of a model that keeps its features in Feast: its training set comes from the store."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include.features import feature_store
from include.training import continuous_training as ct
from tests.ct_world import FIRST_DAY, fill_stores, small_config

CUTOFF = FIRST_DAY + dt.timedelta(days=29)


def run_ctx(config: object, number: int) -> ct.RunContext:
    return ct.RunContext(dag_id="credit_default__continuous_training", run_id=f"manual__{number}")


@pytest.mark.slow  # imports Feast: 5 s quiet, up to 30 s on a busy machine
def test_continuous_training_through_feast_assembles_the_same_training_set_as_without(state_dir, demo_config):
    with_store = small_config(demo_config)
    without = with_store.model_copy(update={"feature_store": None})
    fill_stores(with_store, days=30)

    plain = ct.assemble(without, run_ctx(without, 1), CUTOFF, window_days=20)
    assert not feature_store.repo_dir("credit_default").exists()
    from_feast = ct.assemble(with_store, run_ctx(with_store, 2), CUTOFF, window_days=20)

    assert (feature_store.repo_dir("credit_default") / "registry.db").is_file()  # the set came through Feast
    assert from_feast["rows"] > 1000
    assert {key: value for key, value in from_feast.items() if key != "training_set_uri"} == {
        key: value for key, value in plain.items() if key != "training_set_uri"
    }
    for split in ("train", "validation", "holdout"):
        pd.testing.assert_frame_equal(
            ct.read_split(from_feast["training_set_uri"], split), ct.read_split(plain["training_set_uri"], split)
        )
