"""Every model DAG's trigger form opens without an error and triggers with its defaults.

The rule is the Airflow UI's own (3.3, `airflow/ui/dist/assets/index-*.js`, the FlexibleForm
components; `test_the_rule_is_still_the_one_in_airflows_ui_bundle` checks the installed bundle):

- a Param is **required** when its schema has a `type` and that type is not a list holding
  "null": `type: "string"` is required, `type: ["null", "string"]` is not;
- a required Param whose value is **empty** (null, undefined or "") puts its section of the form
  ("Run Parameters") in error and disables the Trigger button. `false`, `0` and `{}` are values.

The form's values are what the REST API gives it: the serialized DAG's `params[name].dump()`
(`DAGDetailsResponse.params`), so the test reads them from a serialized round trip of each DAG.
A default that may stay empty (`version`, `day`, the deployment's `reason`) is therefore
nullable with None; when the form triggers, it sends every field, and the DAG's Params validate
that conf. A person who forces a deployment without a reason is refused by the run itself
(tests/dags/test_deployment_dag.py). A browser test opens each form on the live stack.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from include.core import settings
from tests.dags.test_dags import SECOND_MODEL, load_dagbag

STAGES = {"data_ingestion", "continuous_training", "level0_manual_training", "model_deployment",
          "model_rollback", "batch_prediction", "drift_sensor", "history_import"}


def ui_requires(schema: dict) -> bool:
    """The UI's `isRequired`: a type is set, and it is not a list that allows null."""
    kind = schema.get("type")
    return kind is not None and kind != "" and not (isinstance(kind, list) and "null" in kind)


def ui_counts_as_empty(value) -> bool:
    """What the UI treats as a missing value of a required field."""
    return value is None or value == ""


def form_errors(params: dict[str, dict]) -> list[str]:
    """The fields a form with these Params (as the API dumps them) opens in error."""
    return [name for name, spec in params.items() if ui_requires(spec["schema"]) and ui_counts_as_empty(spec["value"])]


def served(dag):
    """`dag` as the api-server holds it: the serialized DAG the DAG processor stores."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def form_params(dag) -> dict[str, dict]:
    """The Params the UI's form gets for `dag`, dumped as the REST API does."""
    return {name: param.dump() for name, param in served(dag).params.items()}


@pytest.fixture(scope="module")
def model_dags(tmp_path_factory):
    """Every DAG of two models (the demo and the files-based fixture), parsed from dags/."""
    with pytest.MonkeyPatch.context() as patch:
        models = tmp_path_factory.mktemp("models")
        shutil.copy(settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml", models)
        shutil.copy(SECOND_MODEL, models)
        patch.setenv("MLOPS_MODELS_DIR", str(models))
        patch.setenv("MLOPS_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        dagbag = load_dagbag()
    assert dagbag.import_errors == {}
    return dagbag.dags


def test_both_models_get_a_dag_for_every_stage(model_dags):
    stages = {model: {dag_id.split("__")[1] for dag_id in model_dags if dag_id.startswith(f"{model}__")}
              for model in ("credit_default", "card_fraud")}
    # Only the demo keeps its features in Feast (`feature_store: feast`).
    assert stages == {"credit_default": STAGES | {"feature_materialization"}, "card_fraud": STAGES}


def test_every_trigger_form_opens_without_a_field_in_error(model_dags):
    in_error = {dag_id: form_errors(form_params(dag)) for dag_id, dag in model_dags.items()}

    assert {dag_id: fields for dag_id, fields in in_error.items() if fields} == {}


def test_every_dag_triggers_with_the_values_its_form_opens_with(model_dags):
    from airflow.sdk.exceptions import ParamValidationError

    for dag in model_dags.values():
        server_side = served(dag)
        as_sent = {name: spec["value"] for name, spec in form_params(dag).items()}

        server_side.params.deep_merge(as_sent).validate()  # what creating the run checks; raises naming the Param

    deployment = served(model_dags["credit_default__model_deployment"])
    with pytest.raises(ParamValidationError, match="load_test_rate"):
        deployment.params.deep_merge({"load_test_rate": 0}).validate()


def test_the_deployment_form_deploys_the_challenger_as_it_opens(model_dags):
    params = form_params(model_dags["credit_default__model_deployment"])

    assert {name: params[name]["value"] for name in ("version", "force", "reason")} == {
        "version": None, "force": False, "reason": None}
    assert not ui_requires(params["reason"]["schema"])


def test_the_rule_flags_the_empty_required_reason_that_kept_the_deployment_form_disabled():
    from airflow.sdk import Param

    before = {"reason": Param("", type="string").dump(), "version": Param(None, type=["null", "string"]).dump(),
              "force": Param(False, type="boolean").dump(), "overrides": Param({}, type="object").dump(),
              "untyped": Param(None).dump()}

    assert form_errors(before) == ["reason"]


def test_the_rule_is_still_the_one_in_airflows_ui_bundle():
    """Fails when an Airflow upgrade changes how the form decides what is required or empty."""
    import airflow

    assets = Path(airflow.__file__).parent / "ui" / "dist" / "assets"
    bundle = "\n".join(path.read_text(errors="replace") for path in assets.glob("index-*.js"))
    required = re.search(r"(\w+)=(\w+)=>!!\2\.schema\.type&&\(!Array\.isArray\(\2\.schema\.type\)"
                         r"\|\|!\2\.schema\.type\.includes\(`null`\)\)", bundle)
    assert required, f"the UI's isRequired rule changed in {assets}: update ui_requires"
    is_required = re.escape(required.group(1))
    empty = re.search(is_required + r"\((\w+)\)&&\(\1\.value===null\|\|\1\.value===void 0\|\|\1\.value===``\)", bundle)
    assert empty, f"the UI's empty-value rule changed in {assets}: update ui_counts_as_empty"
