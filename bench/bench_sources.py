"""Benchmark: reading one day out of a `table` or `sql` source, against reading it the plain way.

A history of `--days` days of `--rows` applications a day (the data world's, sorted by time) is
written as (a) one Parquet file with a row group per week, (b) a folder of one Parquet file per
day, (c) one CSV file, and (d) a PostgreSQL table with an index on the timestamp (when the machine's
PostgreSQL at 127.0.0.1:5432 answers). For each, the time to select one day in the middle:

- baseline (a)-(c): `pd.read_parquet` / `pd.read_csv` of everything, then a boolean filter;
- baseline (d): `pd.read_sql` of the same `WHERE ts >= … AND ts < …` over a plain psycopg2 connection;
- source: `include.data.sources.table_rows` / `sql_rows` (pyarrow's filter skips row groups and
  files outside the day; the SQL source goes through the Airflow Connection and its hook).

Best of 3 wall and CPU seconds each; the ratios are source / baseline in the same run (CPU is
the steadier one on a busy machine).

    .venv/bin/python bench/bench_sources.py                  # 600 days x 170 rows (about 100k rows)
    .venv/bin/python bench/bench_sources.py --days 365 --rows 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from include.core.config import SqlSource, TableSource, get_model_config  # noqa: E402
from include.data import sources  # noqa: E402
from include.demo import data_world  # noqa: E402

REPEATS = 3
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def best_of(work: Callable[[], pd.DataFrame]) -> tuple[float, float, int]:
    """Best wall and CPU seconds of `REPEATS` runs, and the rows the work returned."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), time.process_time()
        rows = len(work())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), rows


def history(config, days: int, rows: int) -> pd.DataFrame:
    world = config.source.model_copy(update={"days": days, "rows_per_day": rows, "scenarios": []})
    config = config.model_copy(update={"source": world})
    first = config.source.start_date
    frames = [data_world.feature_batch(config, first + dt.timedelta(days=offset)) for offset in range(days)]
    return pd.concat(frames, ignore_index=True).sort_values("event_timestamp", ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=600)
    parser.add_argument("--rows", type=int, default=170, help="applications a day")
    args = parser.parse_args()
    demo = get_model_config("credit_default")
    first = demo.source.start_date
    day = first + dt.timedelta(days=args.days // 2)
    start, end = sources.day_bounds(day)
    column = demo.schema.timestamp_column
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    frame = history(demo, args.days, args.rows)
    print(f"{len(frame):,} rows over {args.days} days; selecting {day}\n")

    def plain_filter(read: Callable[[], pd.DataFrame]) -> Callable[[], pd.DataFrame]:
        def work() -> pd.DataFrame:
            everything = read()
            stamps = pd.to_datetime(everything[column], format="ISO8601")
            return everything[(stamps >= start) & (stamps < end)]
        return work

    def table(path: Path) -> Callable[[], pd.DataFrame]:
        config = demo.model_copy(update={"source": TableSource(kind="table", path=str(path), start_date=first)})
        return lambda: sources.table_rows(config, start, end)

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as folder:
        folder = Path(folder)
        one = folder / "history.parquet"
        frame.to_parquet(one, index=False, row_group_size=7 * args.rows)
        daily = folder / "daily"
        daily.mkdir()
        for offset, part in frame.groupby(frame[column].dt.date):
            part.to_parquet(daily / f"{offset}.parquet", index=False)
        csv = folder / "history.csv"
        frame.to_csv(csv, index=False)
        results.append(("one Parquet file", best_of(plain_filter(lambda: pd.read_parquet(one))), best_of(table(one))))
        results.append((
            f"folder of {args.days} Parquet files",
            best_of(plain_filter(lambda: pd.read_parquet(daily))),
            best_of(table(daily)),
        ))
        results.append(("one CSV file", best_of(plain_filter(lambda: pd.read_csv(csv))), best_of(table(csv))))
        results += sql_results(demo, frame, first, start, end)

    print(f"{'source':<30} {'baseline wall s':>15} {'cpu s':>7} {'source wall s':>14} {'cpu s':>7} "
          f"{'rows':>6} {'wall ratio':>10} {'cpu ratio':>9}")
    for name, (base_wall, base_cpu, base_rows), (wall, cpu, rows) in results:
        assert rows == base_rows, (name, rows, base_rows)
        print(f"{name:<30} {base_wall:>15.3f} {base_cpu:>7.3f} {wall:>14.3f} {cpu:>7.3f} {rows:>6} "
              f"{wall / base_wall:>10.2f} {cpu / base_cpu:>9.2f}")


def sql_results(demo, frame: pd.DataFrame, first, start, end) -> list:
    """The PostgreSQL row of the table, or none when no database answers."""
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg2://"))
        engine.connect().close()
    except Exception as exc:  # noqa: BLE001 - any reason: say it and skip the row
        print(f"(no PostgreSQL row: {exc})")
        return []
    import psycopg2

    table = f"bench_applications_{uuid.uuid4().hex[:8]}"
    frame.to_sql(table, engine, index=False, chunksize=10_000)
    with engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE INDEX ON "{table}" (event_timestamp)')
    os.environ["AIRFLOW_CONN_BENCH_LOANS"] = DATABASE_URL
    config = demo.model_copy(
        update={"source": SqlSource(kind="sql", conn_id="bench_loans", table=table, start_date=first)}
    )
    query = f'SELECT * FROM "{table}" WHERE "event_timestamp" >= %s AND "event_timestamp" < %s'

    def plain() -> pd.DataFrame:
        with psycopg2.connect(DATABASE_URL) as connection:
            return pd.read_sql(query, connection, params=(start, end))

    try:
        sources.sql_rows(config, start, end)  # Airflow's import, once, outside the timing
        return [("PostgreSQL table (indexed)", best_of(plain), best_of(lambda: sources.sql_rows(config, start, end)))]
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP TABLE "{table}"')
        engine.dispose()


if __name__ == "__main__":
    main()
