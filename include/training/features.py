"""Features: which raw columns a model reads, and how they become numbers.

The preprocessor is the first step of the model's own sklearn Pipeline, so the registered model
takes the RAW feature columns, exactly what the prediction service receives, and training and
serving can never transform a column differently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

if TYPE_CHECKING:
    from include.core.config import ModelConfig

MISSING_CATEGORY = "__missing__"


def feature_columns(config: ModelConfig) -> list[str]:
    """The raw columns the model reads, numeric first, in config order."""
    return config.features.all


def non_nullable_features(config: ModelConfig) -> list[str]:
    """Feature columns the schema says must never be null."""
    return [name for name in feature_columns(config) if not config.schema.columns[name].nullable]


def build_preprocessor(config: ModelConfig) -> ColumnTransformer:
    """A ColumnTransformer turning the raw feature columns into a dense numeric matrix.

    Numeric columns get their training median where a value is missing (nullable columns may be
    null; a null in a non-nullable one is caught by validation before it gets here). Categorical
    columns map both NaN and None to one `__missing__` category, then are one-hot encoded;
    a category never seen in training encodes as all zeros instead of failing the request.
    """
    numeric = Pipeline([("impute_median", SimpleImputer(strategy="median"))])
    categorical = Pipeline(
        [
            ("impute_nan", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            (
                "impute_none",
                SimpleImputer(missing_values=None, strategy="constant", fill_value=MISSING_CATEGORY),
            ),
            ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    transformers = []
    if config.features.numeric:
        transformers.append(("numeric", numeric, list(config.features.numeric)))
    if config.features.categorical:
        transformers.append(("categorical", categorical, list(config.features.categorical)))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
