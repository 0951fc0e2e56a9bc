"""The MLflow model registry: one experiment and one registered model per model config.

Aliases are the contracts between stages (never the deprecated stages):

- `champion`: the version the prediction service serves;
- `challenger`: passed the gate, awaiting deployment;
- `previous_champion`: the rollback target.

Each registered version carries tags that later stages read instead of recomputing: the gate
verdict (`gate_passed`, `gate_summary`), the Airflow run that made it (`airflow_dag_id`,
`airflow_run_id`, so a retried task never registers a second version), the data fingerprint,
where its golden examples are, and which champion it was compared with (the rollback pointer).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from include.core import settings
from include.training.features import feature_columns

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from include.core.config import ModelConfig

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"

TAG_AIRFLOW_DAG_ID = "airflow_dag_id"
TAG_AIRFLOW_RUN_ID = "airflow_run_id"
TAG_TRIGGER = "airflow_trigger"
TAG_REASON = "training_reason"
TAG_GIT_COMMIT = "git_commit"
TAG_DATA_FINGERPRINT = "data_fingerprint"
TAG_GATE_PASSED = "gate_passed"
TAG_GATE_SUMMARY = "gate_summary"
TAG_GOLDEN_EXAMPLES = "golden_examples"
TAG_COMPARED_WITH = "compared_with_champion"
TAG_CHAMPION_DEGRADED = "champion_degraded"
TAG_FLOOR_EXCEPTION = "gate_floor_exception"
TAG_NEEDS_APPROVAL = "gate_needs_approval"
TAG_PRIMARY_GAIN = "gate_primary_gain_interval"
NO_CHAMPION = "none"

GOLDEN_EXAMPLES_FILE = "golden_examples.json"
LOGGED_MODEL_NAME = "model"

SKOPS_TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)
"""Types inside scikit-learn's own fitted estimators that skops does not trust by default.

Models are saved in MLflow's default `skops` format (no pickle). skops refuses these types unless
told to trust them, because a crafted file could abuse them; we trust them only for models our
own training logged, and refuse to log a model needing any other type until someone reviews it
(the list is recorded in the model's MLmodel file, which MLflow reads back when loading).
"""


def client() -> MlflowClient:
    """An MlflowClient on `settings.mlflow_tracking_uri()`, tracking and registry alike.

    Also points MLflow's fluent API (`mlflow.start_run`, `register_model`, `load_model`) there.
    """
    import mlflow

    uri = settings.mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def local_artifact_root() -> Path:
    """Where artifacts go when the library talks to a database or folder directly (no server)."""
    return settings.state_dir() / "mlflow" / "artifacts"


def ensure_experiment(name: str) -> str:
    """The id of the experiment named after the model, created on first use.

    Without a tracking server (a `sqlite:` or file store), MLflow would put artifacts in the
    working directory's `mlruns`; they go to `local_artifact_root()` inside the state folder instead.
    A server decides its own artifact location.
    """
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if urlparse(settings.mlflow_tracking_uri()).scheme in ("", "file", "sqlite"):
        location = (local_artifact_root() / name).as_uri()
    return mlflow_client.create_experiment(name, artifact_location=location)


def get_alias_version(name: str, alias: str) -> ModelVersion | None:
    """The version holding `alias`, or None when no version (or no registered model) has it."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def get_champion_version(name: str) -> ModelVersion | None:
    """The version serving as `@champion`, or None before the first promotion."""
    return get_alias_version(name, CHAMPION)


def deployment_aliases(name: str) -> dict[str, str | None]:
    """Which version `@champion` and `@previous_champion` point at now ({alias: version or None}).

    A deployment or rollback reads them when it starts and moves them only if they still say the
    same (`include.delivery.deployment.AliasesMoved`), so two runs never interleave their moves.
    """
    found = {}
    for alias in (CHAMPION, PREVIOUS_CHAMPION):
        version = get_alias_version(name, alias)
        found[alias] = str(version.version) if version else None
    return found


_LOADED_MODELS: OrderedDict[tuple[str, str, str, str], Any] = OrderedDict()
LOADED_MODELS_KEPT = 4
"""How many loaded versions a process keeps: a replay or a drift-sensor run scores day after day with
the same one or two versions, and loading one from its skops file takes longer than scoring a day."""


def load_model_version(name: str, version: str | int) -> Any:
    """The registered sklearn Pipeline of `name` version `version` (raw feature columns in).

    A version's model never changes once registered, so the last few loaded are kept in memory,
    keyed by the tracking store, the version and the logged model it points at.
    """
    import mlflow.sklearn

    source = client().get_model_version(name, str(version)).source
    key = (settings.mlflow_tracking_uri(), name, str(version), source)
    if key in _LOADED_MODELS:
        _LOADED_MODELS.move_to_end(key)
        return _LOADED_MODELS[key]
    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    _LOADED_MODELS[key] = model
    while len(_LOADED_MODELS) > LOADED_MODELS_KEPT:
        _LOADED_MODELS.popitem(last=False)
    return model


def find_version_for_airflow_run(name: str, airflow_run_id: str, dag_id: str | None = None) -> ModelVersion | None:
    """The version an Airflow run (optionally of a given DAG) already registered, if any.

    Returns:
        The ModelVersion with its aliases (a search alone leaves them out), or None.
    """
    found = versions_of_airflow_run(name, airflow_run_id, dag_id)
    return client().get_model_version(name, found[0].version) if found else None


def versions_of_airflow_run(name: str, airflow_run_id: str, dag_id: str | None = None) -> list[ModelVersion]:
    """Every version carrying the Airflow run's id (and DAG id, if given), oldest first."""
    from mlflow.exceptions import MlflowException

    query = f"name = '{quoted(name)}' and tags.{TAG_AIRFLOW_RUN_ID} = '{quoted(airflow_run_id)}'"
    if dag_id is not None:
        query += f" and tags.{TAG_AIRFLOW_DAG_ID} = '{quoted(dag_id)}'"
    try:
        return client().search_model_versions(query, order_by=["version_number ASC"])
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise


def quoted(value: str) -> str:
    """A value made safe to put between single quotes in an MLflow search filter."""
    return value.replace("'", "\\'")


def gate_facts_tags(verdict: dict) -> dict[str, str]:
    """The gate's facts that later stages read, as tags: was the champion degraded, did the
    candidate pass by a floor exception, does its promotion need a person's approval, and the
    primary metric's gain interval ("<outcome> <metric> <difference> [<low>, <high>] @<confidence>")."""
    tags = {
        TAG_CHAMPION_DEGRADED: str(bool(verdict.get("champion_degraded"))).lower(),
        TAG_FLOOR_EXCEPTION: str(bool(verdict.get("floor_exception"))).lower(),
        TAG_NEEDS_APPROVAL: str(bool(verdict.get("needs_approval"))).lower(),
    }
    gain = verdict.get("primary_gain")
    if gain:
        interval = gain["interval"]
        numbers = [interval[key] for key in ("difference", "low", "high")]
        shown = ["nan" if value is None else f"{value:+.4f}" for value in numbers]
        tags[TAG_PRIMARY_GAIN] = (f"{gain['outcome']} {interval['metric']} {shown[0]} [{shown[1]}, {shown[2]}] "
                                  f"@{interval['confidence']:g}")
    return tags


def register_candidate(
    name: str,
    model_uri: str,
    *,
    airflow_dag_id: str,
    airflow_run_id: str,
    verdict: dict,
    data_fingerprint: str,
    compared_with: str,
    golden_examples: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> tuple[ModelVersion, bool]:
    """Register the run's logged model as a new version, once per Airflow run.

    Args:
        model_uri: the logged model (`models:/<model_id>` from `log_model`).
        verdict: the gate verdict (`passed`, `reasons`, optionally `summary` and the facts of
            `gate_facts_tags`, copied to the version).
        compared_with: the champion version the candidate was judged against, or "none".
        golden_examples: the artifact URI of the golden examples.

    MLflow's client re-sends a request whose answer was lost (a server that died after creating the
    version and before answering, then came back), and the version it creates the second time is a
    copy no one has seen: it is deleted, so that the run has exactly one version (the first).

    Returns:
        The version, and whether this call created it (False: the Airflow run had registered it).
    """
    import mlflow

    existing = find_version_for_airflow_run(name, airflow_run_id, airflow_dag_id)
    if existing is not None:
        return existing, False
    tags = {
        TAG_AIRFLOW_DAG_ID: airflow_dag_id,
        TAG_AIRFLOW_RUN_ID: airflow_run_id,
        TAG_GATE_PASSED: str(bool(verdict["passed"])).lower(),
        TAG_GATE_SUMMARY: verdict.get("summary") or "; ".join(verdict.get("reasons", [])) or "passed",
        TAG_DATA_FINGERPRINT: data_fingerprint,
        TAG_COMPARED_WITH: compared_with,
        **gate_facts_tags(verdict),
        **({TAG_GOLDEN_EXAMPLES: golden_examples} if golden_examples else {}),
        **(extra_tags or {}),
    }
    mlflow_client = client()
    mlflow.register_model(model_uri, name, tags=tags)
    first, *copies = versions_of_airflow_run(name, airflow_run_id, airflow_dag_id)
    for copy in copies:
        mlflow_client.delete_model_version(name, str(copy.version))
    return mlflow_client.get_model_version(name, first.version), True


def set_challenger(name: str, version: str | int) -> None:
    """Point `@challenger` at `version` (moving it from any older challenger)."""
    client().set_registered_model_alias(name, CHALLENGER, str(version))


def log_model(config: ModelConfig, model: Any, frame: pd.DataFrame) -> Any:
    """Log the fitted Pipeline to the active run as an sklearn-flavor MLflow model (a LoggedModel).

    The input example is five rows of `frame`'s raw feature columns, numeric ones as float, so the
    signature accepts a null in any numeric column and a JSON number for an integer one; the
    output is `predict_proba`'s matrix, which is also what the pyfunc flavor returns.
    Requirements are pinned explicitly (MLflow need not infer them in a subprocess). The model is
    saved in MLflow's default `skops` format, trusting only `SKOPS_TRUSTED_TYPES`.

    Returns:
        MLflow's ModelInfo; `model_uri` is `models:/<model_id>`.

    Raises:
        ValueError: the model needs a type outside `SKOPS_TRUSTED_TYPES` (naming it).
    """
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    example = frame[feature_columns(config)].head(5)
    example = example.astype({name: "float64" for name in config.features.numeric})
    try:
        return mlflow.sklearn.log_model(
            model,
            name=LOGGED_MODEL_NAME,
            signature=infer_signature(example, model.predict_proba(example)),
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            pip_requirements=model_pip_requirements(),
            skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        )
    except MlflowException as exc:
        if "untrusted types" not in str(exc):
            raise
        raise ValueError(
            "the model contains types skops does not trust and nobody has reviewed; review them and "
            f"add them to include/core/registry.py SKOPS_TRUSTED_TYPES. MLflow said: {exc.message}"
        ) from exc


def model_pip_requirements() -> list[str]:
    """The packages (pinned to the installed versions) a logged model needs to load and predict."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in ("scikit-learn", "skops", "pandas", "numpy")]


def golden_examples(config: ModelConfig, model: Any, frame: pd.DataFrame, count: int = 20) -> dict:
    """A few holdout inputs and the model's probabilities for them, for deployment checks.

    Rows with a null in a nullable feature come first (one per such column, when there is one),
    then a seeded sample, so that the examples exercise the imputation path too.

    Returns:
        JSON-able {"model", "positive_label", "columns", "inputs": [row dicts],
        "expected_probabilities": [float], "tolerance"}.
    """
    columns = feature_columns(config)
    picked: list[int] = []
    for name in columns:
        nulls = frame.index[frame[name].isna()]
        if len(nulls) and config.schema.columns[name].nullable:
            picked.append(nulls[0])
    rest = frame.index.difference(picked)
    sample = frame.loc[rest].sample(n=min(count - len(picked), len(rest)), random_state=0).index
    rows = frame.loc[[*picked, *sample], columns]
    positive = list(model.classes_).index(config.target.positive_label)
    probabilities = model.predict_proba(rows)[:, positive]
    inputs = [
        {key: _json_value(value) for key, value in record.items()} for record in rows.to_dict(orient="records")
    ]
    return {
        "model": config.name,
        "positive_label": config.target.positive_label,
        "columns": columns,
        "inputs": inputs,
        "expected_probabilities": [float(value) for value in probabilities],
        "tolerance": 1e-6,
    }


def log_golden_examples(run_id: str, examples: dict) -> str:
    """Store golden examples as a JSON artifact of the run.

    Returns:
        Their artifact URI (`runs:/<run_id>/golden_examples.json`, readable with
        `mlflow.artifacts.load_dict`).
    """
    client().log_dict(run_id, examples, GOLDEN_EXAMPLES_FILE)
    return f"runs:/{run_id}/{GOLDEN_EXAMPLES_FILE}"


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
