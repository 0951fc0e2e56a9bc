"""Feature logic: which raw columns the model reads and how the preprocessor treats them."""

import numpy as np
import pandas as pd
import pytest

from include.training.features import MISSING_CATEGORY, build_preprocessor, feature_columns, non_nullable_features


@pytest.fixture
def raw_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "application_id": ["a", "b", "c", "d"],
            "event_timestamp": pd.to_datetime(["2026-01-01"] * 4),
            "age": [30, 40, 50, 60],
            "annual_income": [10_000.0, 20_000.0, 30_000.0, 40_000.0],
            "loan_amount": [1_000.0, 2_000.0, 3_000.0, 4_000.0],
            "loan_term_months": [12, 24, 36, 48],
            "credit_score": [600, 650, 700, 750],
            "debt_to_income": [0.1, 0.2, 0.3, 0.4],
            "employment_type": ["salaried", "retired", "salaried", "student"],
            "home_ownership": ["own", "rent", "own", "rent"],
            "region": ["north", "south", "east", "west"],
            "default": [0, 1, 0, 1],
        }
    )


def test_feature_columns_are_the_numeric_then_the_categorical_ones_in_config_order(demo_config):
    assert feature_columns(demo_config) == [*demo_config.features.numeric, *demo_config.features.categorical]


def test_only_columns_the_schema_marks_nullable_may_be_null(demo_config):
    assert "debt_to_income" not in non_nullable_features(demo_config)
    assert "credit_score" in non_nullable_features(demo_config)


def test_preprocessor_reads_only_feature_columns_and_ignores_entity_time_and_target(demo_config, raw_rows):
    transformed = build_preprocessor(demo_config).fit(raw_rows)

    assert list(transformed.feature_names_in_) == list(raw_rows.columns)
    names = list(transformed.get_feature_names_out())
    assert not {"application_id", "event_timestamp", "default"} & set(names)
    assert names[:6] == demo_config.features.numeric


def test_a_null_in_a_nullable_numeric_column_becomes_the_training_median(demo_config, raw_rows):
    preprocessor = build_preprocessor(demo_config).fit(raw_rows)
    request = raw_rows.head(1).assign(debt_to_income=np.nan)

    encoded = pd.DataFrame(preprocessor.transform(request), columns=preprocessor.get_feature_names_out())

    assert encoded.loc[0, "debt_to_income"] == pytest.approx(0.25)


def test_none_and_nan_in_a_categorical_column_share_one_missing_category(demo_config, raw_rows):
    with_gaps = raw_rows.astype({"region": object})
    with_gaps.loc[0, "region"] = None
    with_gaps.loc[1, "region"] = np.nan
    preprocessor = build_preprocessor(demo_config).fit(with_gaps)

    encoded = pd.DataFrame(preprocessor.transform(with_gaps), columns=preprocessor.get_feature_names_out())

    assert encoded[f"region_{MISSING_CATEGORY}"].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_a_category_never_seen_in_training_encodes_as_zeros_instead_of_failing(demo_config, raw_rows):
    preprocessor = build_preprocessor(demo_config).fit(raw_rows)
    request = raw_rows.head(1).assign(employment_type="astronaut")

    encoded = pd.DataFrame(preprocessor.transform(request), columns=preprocessor.get_feature_names_out())

    employment = [name for name in encoded.columns if name.startswith("employment_type_")]
    assert encoded.loc[0, employment].sum() == 0.0
