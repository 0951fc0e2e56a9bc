"""Through Airflow: `dag.test()` of the history import over a short range, chunk by chunk."""

import datetime as dt

import pytest

from include.core import settings, storage

DAG_ID = "credit_default__history_import"
CURATED_ASSET = "credit_default__curated_batch"
# The demo world's bad days in this range: nulls in credit_score (03-05) and a renamed column (03-12).
FIRST, LAST = dt.date(2026, 3, 3), dt.date(2026, 3, 12)
BAD_DAYS = [dt.date(2026, 3, 5), dt.date(2026, 3, 12)]


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags" / "history_import.py")).dags[DAG_ID]


def curated_events() -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == CURATED_ASSET).order_by(AssetEvent.id)
        ).all()
        session.expunge_all()
    return events


@pytest.mark.slow
def test_a_range_imports_in_mapped_chunks_and_ends_with_one_event_naming_the_range(airflow_db, state_dir):
    from mlops_dags.model_dags import event_days

    before = len(curated_events())

    dag_run = load_dag().test(logical_date=None, run_conf={"start": FIRST.isoformat(), "end": LAST.isoformat(),
                                                           "chunk_days": 4})

    instances = dag_run.get_task_instances()
    states = {(ti.task_id, ti.map_index): ti.state for ti in instances}
    assert [index for (task_id, index) in states if task_id == "import_chunk"] == [0, 1, 2]
    assert all(state == "success" for (task_id, _), state in states.items() if task_id == "import_chunk")
    assert states[("announce_curated_range", -1)] == "success"
    assert states[("report_quarantined_days", -1)] == "failed"  # the run says which days were quarantined
    good = [FIRST + dt.timedelta(days=offset) for offset in range(10) if FIRST + dt.timedelta(days=offset)
            not in BAD_DAYS]
    assert storage.curated_days("credit_default") == good
    assert all(storage.quarantined_batches("credit_default", day) for day in BAD_DAYS)

    events = curated_events()[before:]
    assert len(events) == 1
    extra = events[0].extra
    assert {key: extra[key] for key in ("first_day", "last_day", "days", "quarantined", "missing")} == {
        "first_day": "2026-03-03", "last_day": "2026-03-12", "days": 8,
        "quarantined": ["2026-03-05", "2026-03-12"], "missing": []}
    assert extra["rows"] == sum(len(storage.read_curated("credit_default", day, day)) for day in good)
    assert event_days({"triggering_asset_events": {"curated": events}}) == good
