"""A `sql` source: the day's rows of a PostgreSQL table or query, read through an Airflow Connection.

Each test creates uniquely named tables in the machine's PostgreSQL (127.0.0.1:5432, database
`test`, created when missing, trust auth; CI runs it as a service), reaches them through a
connection defined as `AIRFLOW_CONN_<ID>`, and drops them afterwards.
"""

import datetime as dt
import uuid

import pandas as pd
import pytest
import yaml

from include.core import settings, storage
from include.core.config import ConfigError, ModelConfig, SqlSource, load_model_config
from include.data import ingestion, sources
from include.demo import data_world

DAYS = [dt.date(2026, 1, 9), dt.date(2026, 1, 10), dt.date(2026, 1, 11)]
DAY = DAYS[1]
CONN_ID = "loans_test"
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def create_test_database() -> None:
    """Create the database `test` when the server lacks it (CI's PostgreSQL service starts with `postgres` only)."""
    import psycopg2

    connection = psycopg2.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres", connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = 'test'")
            if cursor.fetchone() is None:
                cursor.execute("CREATE DATABASE test")
    finally:
        connection.close()


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch):
    """A SQLAlchemy engine on the test database, and the Airflow Connection `loans_test` pointing at it."""
    import sqlalchemy

    create_test_database()
    engine = sqlalchemy.create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg2://"))
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", DATABASE_URL)
    yield engine
    engine.dispose()


@pytest.fixture
def tables(database, demo_config: ModelConfig):
    """Uniquely named tables of applications (three days) and of their labels, dropped after the test."""
    name = f"applications_{uuid.uuid4().hex[:12]}"
    applications = pd.concat([data_world.feature_batch(demo_config, day) for day in DAYS], ignore_index=True)
    labels = pd.concat(
        [data_world.labels_arriving_on(demo_config, day + dt.timedelta(days=7)) for day in DAYS], ignore_index=True
    )
    applications.to_sql(name, database, index=False)
    labels.to_sql(f"{name}_labels", database, index=False)
    yield name
    with database.begin() as connection:
        connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}", "{name}_labels"')


def sql_config(config: ModelConfig, **source) -> ModelConfig:
    fields = {"kind": "sql", "conn_id": CONN_ID, "start_date": DAYS[0], **source}
    return config.model_copy(update={"source": SqlSource(**fields)})


def rows_of_day(database, table: str, day: dt.date) -> pd.DataFrame:
    start, end = sources.day_bounds(day)
    return pd.read_sql(
        f'SELECT * FROM "{table}" WHERE event_timestamp >= %(start)s AND event_timestamp < %(end)s',
        database, params={"start": start, "end": end},
    )


def by_entity(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("application_id").reset_index(drop=True)


def curate(config: ModelConfig, day: dt.date) -> dict:
    landed = ingestion.land(config, day)
    validated = ingestion.validate(config, day, landed["batch_uri"], data_docs=False)
    return ingestion.publish(config, day, validated["validated_uri"])


def test_a_table_source_curates_exactly_the_tables_rows_of_the_day(state_dir, demo_config, database, tables):
    config = sql_config(demo_config, table=tables)

    published = curate(config, DAY)

    curated = storage.read_curated("credit_default", DAY, DAY)
    expected = rows_of_day(database, tables, DAY)
    assert published["rows"] == len(expected) == demo_config.source.rows_per_day
    pd.testing.assert_frame_equal(by_entity(curated[expected.columns]), by_entity(expected), check_dtype=False)
    assert storage.curated_days("credit_default") == [DAY]


def test_a_query_source_gets_the_intervals_bounds_as_parameters(state_dir, demo_config, database, tables):
    query = (
        f'SELECT * FROM "{tables}" WHERE event_timestamp >= %(start)s AND event_timestamp < %(end)s '
        "AND region <> 'west'"
    )
    config = sql_config(demo_config, query=query)

    published = curate(config, DAY)

    expected = rows_of_day(database, tables, DAY).query("region != 'west'")
    curated = storage.read_curated("credit_default", DAY, DAY)
    assert published["rows"] == len(expected)
    assert set(curated["application_id"]) == set(expected["application_id"])


def test_labels_come_from_the_labels_query_bound_to_the_day_they_arrived(state_dir, demo_config, database, tables):
    labels_query = f'SELECT * FROM "{tables}_labels" WHERE label_timestamp >= %(start)s AND label_timestamp < %(end)s'
    config = sql_config(demo_config, table=tables, labels_query=labels_query)
    arrival = DAY + dt.timedelta(days=7)

    stored = ingestion.land_labels(config, arrival, data_docs=False)

    labels = pd.read_parquet(stored["labels_uri"])
    assert stored["rows"] == demo_config.source.rows_per_day
    assert set(labels["application_id"]) == set(rows_of_day(database, tables, DAY)["application_id"])
    assert labels[data_world.LABEL_TIMESTAMP].dt.date.eq(arrival).all()
    assert sources.arrived_labels(config, arrival - dt.timedelta(days=30)) is None


def test_a_day_without_rows_has_not_arrived(state_dir, demo_config, tables):
    config = sql_config(demo_config, table=tables)

    with pytest.raises(sources.BatchNotArrived, match="no rows in \\[2026-02-01 00:00:00, 2026-02-02"):
        sources.land_batch(config, dt.date(2026, 2, 1))


def test_an_unknown_connection_id_names_model_and_connection_and_curates_nothing(state_dir, demo_config, database):
    config = sql_config(demo_config, table="applications", conn_id="no_such_db")

    with pytest.raises(sources.SqlSourceError, match="'credit_default'.*'no_such_db' names no Airflow connection"):
        ingestion.land(config, DAY)

    assert not storage.landing_dir("credit_default", DAY).exists()
    assert storage.curated_days("credit_default") == []


def test_a_failing_query_names_the_connection_and_the_databases_reason(state_dir, demo_config, database, tables):
    query = f'SELECT * FROM "{tables}" WHERE no_such_column >= %(start)s AND no_such_column < %(end)s'
    config = sql_config(demo_config, query=query)

    with pytest.raises(sources.SqlSourceError, match=f"source.query on connection '{CONN_ID}' failed.*no_such_column"):
        ingestion.land(config, DAY)

    assert storage.curated_days("credit_default") == []


def test_columns_the_schema_does_not_name_are_refused_by_name_before_landing(state_dir, demo_config, database, tables):
    query = (
        f'SELECT *, 1 AS "favourite colour" FROM "{tables}" '
        "WHERE event_timestamp >= %(start)s AND event_timestamp < %(end)s"
    )
    config = sql_config(demo_config, query=query)

    with pytest.raises(sources.SqlSourceError) as raised:
        ingestion.land(config, DAY)

    assert "'credit_default'" in str(raised.value)
    assert f"connection '{CONN_ID}'" in str(raised.value)
    assert "['favourite colour']" in str(raised.value)
    assert not storage.landing_dir("credit_default", DAY).exists()
    assert storage.curated_days("credit_default") == []


def test_a_labels_query_without_the_target_is_refused_by_name(state_dir, demo_config, database, tables):
    labels_query = (
        f'SELECT application_id, label_timestamp FROM "{tables}_labels" '
        "WHERE label_timestamp >= %(start)s AND label_timestamp < %(end)s"
    )
    config = sql_config(demo_config, table=tables, labels_query=labels_query)

    with pytest.raises(sources.SqlSourceError, match="labels_query .* returned no column \\['default'\\]"):
        ingestion.land_labels(config, DAY + dt.timedelta(days=7), data_docs=False)
    assert storage.label_days("credit_default") == []


@pytest.mark.parametrize(
    ("source", "key", "expected"),
    [
        ({"conn_id": "db", "start_date": "2026-01-01"}, "source", "exactly one of table and query"),
        ({"conn_id": "db", "table": "a; DROP TABLE b", "start_date": "2026-01-01"}, "source.table", "pattern"),
        ({"conn_id": "db", "query": "SELECT * FROM a", "start_date": "2026-01-01"}, "source.query", "start and end"),
    ],
    ids=["neither-table-nor-query", "table-not-a-name", "query-without-bounds"],
)
def test_a_bad_sql_source_config_names_the_file_and_the_key(tmp_path, source, key, expected):
    raw = yaml.safe_load((settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml").read_text())
    raw["source"] = {"kind": "sql", **source}
    path = tmp_path / "credit_default.yaml"
    path.write_text(yaml.safe_dump(raw))

    with pytest.raises(ConfigError) as raised:
        load_model_config(path)

    [line] = [line for line in str(raised.value).splitlines() if expected in line]
    assert str(path) in str(raised.value)
    assert f"key '{key}'" in line


@pytest.mark.slow
def test_the_ingestion_dag_curates_a_day_of_a_sql_source(airflow_db, state_dir, demo_config, database, tables):
    from airflow.dag_processing.dagbag import DagBag

    raw = yaml.safe_load((settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml").read_text())
    raw["source"] = {"kind": "sql", "conn_id": CONN_ID, "table": tables, "start_date": "2026-01-09",
                     "end_date": "2026-01-11"}
    (settings.models_dir() / "credit_default.yaml").write_text(yaml.safe_dump(raw))
    dag = DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags" / "data_ingestion.py")).dags[
        "credit_default__data_ingestion"
    ]

    dag_run = dag.test(logical_date=None, run_conf={"day": DAY.isoformat()})

    assert dag_run.state == "success", {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert storage.curated_days("credit_default") == [DAY]
    assert len(storage.read_curated("credit_default", DAY, DAY)) == demo_config.source.rows_per_day


def test_the_worked_example_curates_a_day_and_its_labels(state_dir, database):
    example = load_model_config(settings.PROJECT_ROOT / "docs" / "examples" / "loans_sql.yaml")
    suffix = uuid.uuid4().hex[:12]
    applications, outcomes = f"applications_{suffix}", f"outcomes_{suffix}"
    source = example.source.model_copy(update={
        "conn_id": CONN_ID,
        "query": example.source.query.replace("FROM applications", f'FROM "{applications}"'),
        "labels_query": example.source.labels_query.replace("FROM outcomes", f'FROM "{outcomes}"'),
    })
    config = example.model_copy(update={"source": source})
    submitted = pd.date_range("2024-03-01", periods=96, freq="90min")
    frame = pd.DataFrame({
        "application_id": [f"a{number}" for number in range(96)],
        "submitted_at": submitted,
        "amount": [1000.0 + number for number in range(96)],
        "purpose": ["car", "home improvement", "studies €"] * 32,
    })
    frame.to_sql(applications, database, index=False)
    frame[["application_id"]].assign(defaulted=[0, 1] * 48, decided_at=submitted + pd.Timedelta(days=7)).to_sql(
        outcomes, database, index=False
    )
    try:
        published = curate(config, dt.date(2024, 3, 2))
        labels = ingestion.land_labels(config, dt.date(2024, 3, 9), data_docs=False)
    finally:
        with database.begin() as connection:
            connection.exec_driver_sql(f'DROP TABLE "{applications}", "{outcomes}"')

    curated = storage.read_curated("loans_sql", dt.date(2024, 3, 2), dt.date(2024, 3, 2))
    assert published["rows"] == labels["rows"] == 16
    assert set(curated["purpose"]) == {"car", "home improvement", "studies €"}
    assert pd.read_parquet(labels["labels_uri"])["label_timestamp"].dt.date.eq(dt.date(2024, 3, 9)).all()
