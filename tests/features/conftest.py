"""The demo model with its feature store on (`feature_store: feast`), whatever the shipped config says."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from include.core import settings
from include.core.config import ModelConfig


@pytest.fixture
def state_dir(state_dir: Path) -> Path:
    """The root fixture's state folder, with the copied demo config set to use the feature store."""
    path = settings.models_dir() / "credit_default.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["feature_store"] = "feast"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return state_dir


@pytest.fixture
def demo_config(demo_config: ModelConfig) -> ModelConfig:
    return demo_config.model_copy(update={"feature_store": "feast"})
