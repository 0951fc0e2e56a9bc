"""Model config files: the demo validates, and every mistake is named by file, key, value and expectation."""

import pytest
import yaml

from include.core.config import ConfigError, discover_model_configs, load_model_config
from tests.conftest import DEMO_CONFIG


def write_variant(tmp_path, change, name="credit_default"):
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    change(raw)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_demo_config_is_valid(demo_config):
    assert demo_config.name == "credit_default"
    assert demo_config.schema.entity_column == "application_id"
    assert demo_config.target.label_delay_days == 7
    assert demo_config.evaluation.primary_metric == "roc_auc"


def test_wrong_type_names_file_key_value_and_expectation(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["training"].update(window_days="sixty"))

    with pytest.raises(ConfigError) as error:
        load_model_config(path)

    message = str(error.value)
    assert str(path) in message
    assert "key 'training.window_days'" in message
    assert "got 'sixty'" in message
    assert "valid integer" in message


def test_a_config_without_paused_on_start_is_not_paused_on_start(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw.pop("paused_on_start", None))

    assert load_model_config(path).paused_on_start is False


def test_paused_on_start_must_be_a_boolean(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw.update(paused_on_start="sometimes"))

    with pytest.raises(ConfigError) as error:
        load_model_config(path)

    message = str(error.value)
    assert str(path) in message
    assert "key 'paused_on_start': got 'sometimes'" in message
    assert "valid boolean" in message


def test_missing_key_is_named(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw.pop("target"))

    with pytest.raises(ConfigError, match=r"key 'target': got missing"):
        load_model_config(path)


def test_unknown_key_is_rejected_rather_than_ignored(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["training"].update(windw_days=30))

    with pytest.raises(ConfigError, match=r"key 'training.windw_days'.*[Ee]xtra inputs are not permitted"):
        load_model_config(path)


def test_unknown_column_type_lists_the_allowed_types(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["schema"]["columns"]["age"].update(type="int"))

    with pytest.raises(ConfigError, match=r"key 'schema.columns.age.type': got 'int'.*'integer'"):
        load_model_config(path)


def test_feature_that_is_not_a_schema_column_is_named(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["features"]["numeric"].append("salary"))

    with pytest.raises(ConfigError, match=r"features.numeric names columns not in schema.columns: \['salary'\]"):
        load_model_config(path)


def test_target_among_the_features_is_refused_as_leakage(tmp_path):
    def add_target_column(raw):
        raw["schema"]["columns"]["default"] = {"type": "integer"}

    path = write_variant(tmp_path, add_target_column)

    with pytest.raises(ConfigError, match="would leak the answer"):
        load_model_config(path)


def test_range_with_min_above_max_is_refused(tmp_path):
    path = write_variant(tmp_path, lambda raw: raw["schema"]["columns"]["age"].update(min=90, max=18))

    with pytest.raises(ConfigError, match=r"schema.columns.age.*min 90.0 is greater than max 18.0"):
        load_model_config(path)


def test_file_name_must_match_the_model_name(tmp_path):
    path = write_variant(tmp_path, lambda raw: None, name="other_name")

    with pytest.raises(ConfigError, match=r"key 'name': got 'credit_default'; expected the file's name 'other_name'"):
        load_model_config(path)


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")

    with pytest.raises(ConfigError, match=rf"{path}: not valid YAML"):
        load_model_config(path)


def test_discovery_keeps_broken_files_apart_from_valid_ones(tmp_path):
    write_variant(tmp_path, lambda raw: None)
    (tmp_path / "broken.yaml").write_text("name: broken\n")

    found = discover_model_configs(tmp_path)

    assert list(found.valid) == ["credit_default"]
    assert [path.name for path in found.errors] == ["broken.yaml"]


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        (lambda ev: ev["metrics"]["average_precision"].update(non_inferiority_margin=-0.01),
         "evaluation.metrics.average_precision.non_inferiority_margin", "greater than or equal to 0"),
        (lambda ev: ev["comparison"].update(ties="maybe"),
         "evaluation.comparison.ties", "'reject', 'promote' or 'promote_on_request'"),
        (lambda ev: ev["comparison"].update(confidence=1.5), "evaluation.comparison.confidence", "less than 1"),
        (lambda ev: ev["comparison"].update(bootstrap_samples=10),
         "evaluation.comparison.bootstrap_samples", "greater than or equal to 100"),
        (lambda ev: ev["degraded_champion"].update(promotion="sometimes"),
         "evaluation.degraded_champion.promotion", "'automatic' or 'approval'"),
        (lambda ev: ev["degraded_champion"].update(alert_after_rejections=0),
         "evaluation.degraded_champion.alert_after_rejections", "greater than or equal to 1"),
        (lambda ev: ev["degraded_champion"].update(notifier="LogNotifier"),
         "evaluation.degraded_champion.notifier", "dotted path"),
    ],
)
def test_gate_settings_errors_name_the_file_and_key(tmp_path, change, key, expected):
    path = write_variant(tmp_path, lambda raw: change(raw["evaluation"]))

    with pytest.raises(ConfigError) as error:
        load_model_config(path)

    message = str(error.value)
    assert str(path) in message and f"key '{key}'" in message and expected in message


def test_the_gate_settings_default_to_a_cautious_team(tmp_path):
    def drop_them(raw):
        for key in ("comparison", "degraded_champion"):
            raw["evaluation"].pop(key)

    config = load_model_config(write_variant(tmp_path, drop_them))

    comparison, degraded = config.evaluation.comparison, config.evaluation.degraded_champion
    assert (comparison.bootstrap_samples, comparison.confidence, comparison.seed) == (1000, 0.95, 0)
    assert comparison.ties == "promote_on_request"
    assert degraded.promotion == "approval" and degraded.alert_after_rejections == 3
    assert degraded.notifier == "mlops_dags.notifiers.LogNotifier"


def test_the_demo_promotes_over_a_degraded_champion_automatically_so_its_loop_recovers(demo_config):
    assert demo_config.evaluation.degraded_champion.promotion == "automatic"
    margins = {name: rule.non_inferiority_margin for name, rule in demo_config.evaluation.metrics.items()}
    assert margins == {"roc_auc": None, "average_precision": 0.01, "brier_score": 0.005}
