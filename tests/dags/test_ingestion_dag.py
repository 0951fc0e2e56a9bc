"""End to end through Airflow: `dag.test()` of data ingestion on a good day and on each bad scenario day."""

import datetime as dt
import json

import pytest

from include.core import storage
from include.core.storage import REPORT_FILE

DAG_ID = "credit_default__data_ingestion"


def run_ingestion(day: str):
    from airflow.dag_processing.dagbag import DagBag

    from include.core.settings import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "data_ingestion.py")).dags[DAG_ID]
    return dag.test(logical_date=None, run_conf={"day": day})


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


@pytest.mark.slow
def test_good_day_lands_validates_and_curates_the_batch(airflow_db, state_dir):
    dag_run = run_ingestion("2026-01-20")

    assert dag_run.state == "success", task_states(dag_run)
    assert storage.curated_days("credit_default") == [dt.date(2026, 1, 20)]
    assert storage.label_days("credit_default") == [dt.date(2026, 1, 20)]
    docs = state_dir / "reports" / "gx" / "credit_default" / "day=2026-01-20" / "features" / "index.html"
    assert docs.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("day", "rule", "column"),
    [
        ("2026-03-12", "expect_table_columns_to_match_set", None),
        ("2026-03-05", "expect_column_values_to_not_be_null", "credit_score"),
    ],
    ids=["schema-break", "data-quality-incident"],
)
def test_bad_day_fails_moves_the_batch_to_quarantine_and_stops_downstream(airflow_db, state_dir, day, rule, column):
    dag_run = run_ingestion(day)

    states = task_states(dag_run)
    assert dag_run.state == "failed"
    assert states["validate_batch"] == "failed"
    assert states["publish_curated_batch"] == "upstream_failed"
    assert storage.curated_days("credit_default") == []
    assert list(storage.landing_dir("credit_default", dt.date.fromisoformat(day)).iterdir()) == []
    [folder] = storage.quarantined_batches("credit_default", dt.date.fromisoformat(day))
    report = json.loads((folder / REPORT_FILE).read_text())
    failed = {(failure["expectation_type"], failure["column"]) for failure in report["blocking_failures"]}
    assert (rule, column) in failed
