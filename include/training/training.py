"""Training: the model is one sklearn Pipeline, preprocessor then the configured estimator.

`build_model` assembles it from `training.estimator` (class and params) plus run-time overrides,
and refuses a bad class or parameter before any data is read, naming the config key and the
value. `fit` trains it and says whether training converged.
"""

from __future__ import annotations

import importlib
import inspect
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline

from include.training.features import build_preprocessor, feature_columns

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from include.core.config import ModelConfig

CLASS_KEY = "training.estimator.class"
PARAMS_KEY = "training.estimator.params"


@dataclass
class FitResult:
    """A fitted model, whether it converged, the warnings training raised and how long it took."""

    model: Pipeline
    converged: bool
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def estimator_class(config: ModelConfig) -> type:
    """The estimator class named by `training.estimator.class`.

    Raises:
        ValueError: naming the key and the value, when the class cannot be imported or is not a
            classifier with `predict_proba`.
    """
    class_path = config.training.estimator.class_path
    where = f"{config.name}.yaml: key '{CLASS_KEY}': got {class_path!r}"
    module_name, _, class_name = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{where}; expected an importable scikit-learn estimator class ({exc})") from None
    if not (isinstance(found, type) and issubclass(found, ClassifierMixin) and hasattr(found, "predict_proba")):
        raise ValueError(f"{where}; expected a scikit-learn classifier that has predict_proba")
    return found


def _known_params(config: ModelConfig) -> list[str]:
    """The constructor parameters of the configured estimator (what `get_params` would list)."""
    signature = inspect.signature(estimator_class(config).__init__)
    return [
        name for name, param in signature.parameters.items()
        if name != "self" and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    ]


def validate_overrides(config: ModelConfig, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Check run-time hyperparameter overrides against the estimator's parameters.

    Returns:
        The overrides as a plain dict (empty when None).

    Raises:
        ValueError: naming the first unknown override and the parameters the estimator has.
    """
    overrides = dict(overrides or {})
    known = _known_params(config)
    for name, value in overrides.items():
        if name not in known:
            raise ValueError(
                f"hyperparameter override {name!r} (= {value!r}): "
                f"{config.training.estimator.class_path} has no parameter {name!r}; "
                f"expected one of {sorted(known)}"
            )
    return overrides


def estimator_params(config: ModelConfig, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The estimator's parameters: `training.estimator.params` updated with the overrides.

    Raises:
        ValueError: an unknown parameter, naming `training.estimator.params.<name>` or the override.
    """
    known = _known_params(config)
    for name, value in config.training.estimator.params.items():
        if name not in known:
            raise ValueError(
                f"{config.name}.yaml: key '{PARAMS_KEY}.{name}': got {value!r}; "
                f"{config.training.estimator.class_path} has no parameter {name!r}; "
                f"expected one of {sorted(known)}"
            )
    return {**config.training.estimator.params, **validate_overrides(config, overrides)}


def build_model(config: ModelConfig, overrides: dict[str, Any] | None = None) -> Pipeline:
    """An unfitted Pipeline([("preprocess", ColumnTransformer), ("estimator", classifier)]).

    Raises:
        ValueError: a bad class path, an unknown parameter or an invalid value, naming the config
            key (`training.estimator.class` or `training.estimator.params.<name>`) and the value.
    """
    params = estimator_params(config, overrides)
    estimator = estimator_class(config)(**params)
    _validate_param_values(config, estimator, params, dict(overrides or {}))
    return Pipeline([("preprocess", build_preprocessor(config)), ("estimator", estimator)])


def _validate_param_values(config: ModelConfig, estimator: Any, params: dict, overrides: dict) -> None:
    """Fail now, not after loading the data, on a value the estimator would refuse at fit time."""
    validate = getattr(estimator, "_validate_params", None)
    if validate is None:
        return
    try:
        validate()
    except ValueError as exc:
        bad = next((name for name in params if f"'{name}' parameter" in str(exc)), None)
        if bad is None:
            raise ValueError(f"{config.name}.yaml: key '{PARAMS_KEY}': {exc}") from None
        source = "hyperparameter override" if bad in overrides else f"{config.name}.yaml: key"
        raise ValueError(f"{source} '{PARAMS_KEY}.{bad}': got {params[bad]!r}; {exc}") from None


def fit(
    config: ModelConfig,
    train_frame: pd.DataFrame,
    overrides: dict[str, Any] | None = None,
    sample_weight: np.ndarray | None = None,
) -> FitResult:
    """Build the model and fit it on the training frame's raw feature columns and target.

    Args:
        sample_weight: one weight per row (see `training_data.change_weights`); an estimator whose
            `fit` takes no weights is fitted unweighted, and the result's warnings say so.

    Returns:
        FitResult whose `converged` is False when sklearn warned that the solver did not converge,
        or when an estimator with early stopping used all of its `max_iter` iterations.
    """
    model = build_model(config, overrides)
    fit_params, unweighted = {}, []
    if sample_weight is not None:
        if "sample_weight" in inspect.signature(model.named_steps["estimator"].fit).parameters:
            fit_params["estimator__sample_weight"] = sample_weight
        else:
            unweighted.append(
                f"{config.training.estimator.class_path}.fit takes no sample_weight: the rows after the "
                "change point were not weighted up"
            )
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(train_frame[feature_columns(config)], train_frame[config.target.column], **fit_params)
    seconds = time.perf_counter() - started
    messages = unweighted + list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    estimator = model.named_steps["estimator"]
    if getattr(estimator, "do_early_stopping_", False) and estimator.n_iter_ >= estimator.max_iter:
        converged = False
        messages.append(
            f"early stopping did not trigger: all max_iter={estimator.max_iter} iterations were used"
        )
    return FitResult(model=model, converged=converged, warnings=messages, seconds=seconds)
