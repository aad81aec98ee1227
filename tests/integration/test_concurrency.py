"""Runs at once: two jobs writing one layer, and one layer reading while its upstream publishes.

* Two ``lakehouse bronze extract`` processes of one batch started together: one holds the bronze
  lease (``lakehouse_core.locks``) and stages; the other stops at once with a one-line message
  and exit code 75 (Airflow retries it); the gate publishes one copy of each row, and the
  refused run's retry finds the batch published.
* Silver transforming a batch after bronze published a newer one (what a silver run overlapping a
  bronze publish sees, made deterministic): silver reads bronze as its own batch published it,
  and the newer batch's rows reach the next silver batch, once.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pyspark.sql import functions as F

from lakehouse_core import iceberg, postgres
from lakehouse_core.batch import DataInterval
from lakehouse_core.errors import EXIT_RETRYABLE
from lakehouse_core.quality import run_gate
from lakehouse_core.registry import Registry

pytestmark = pytest.mark.spark

DAY1 = DataInterval.parse("2023-01-04T00:00:00+07:00", "2023-01-05T00:00:00+07:00")
DAY2 = DataInterval.parse("2023-01-05T00:00:00+07:00", "2023-01-06T00:00:00+07:00")
SOURCE_DB, SEED, SCALE = "concurrency_cases", 5, 0.01
TABLES = ["customers", "orders"]


def _extract_process(interval: DataInterval) -> subprocess.Popen:
    env = {**os.environ, "LAKEHOUSE_SOURCE__DBNAME": SOURCE_DB}
    return subprocess.Popen([sys.executable, "-m", "lakehouse_core.cli", "bronze", "extract", "--tables", ",".join(TABLES),
                             "--interval-start", interval.start.isoformat(), "--interval-end", interval.end.isoformat()],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def own(settings, empty_lakehouse):
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    own = settings.model_copy(update={"source": settings.source.model_copy(update={"dbname": SOURCE_DB})})
    with postgres.connect(own.source, own) as conn:
        create_source_schema(conn)
        generate(conn, scale=SCALE, seed=SEED, days=4)
        conn.commit()
    return own


def _specs(own):
    registry = Registry.load(own)
    return [registry.get(name) for name in TABLES]


def _source_count(own, table: str) -> int:
    with postgres.connect(own.source, own) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT count(*) FROM public."{table}"')
        return cur.fetchone()[0]


def test_two_runs_of_one_layer_at_once_one_stages_the_other_stops_clearly(spark, own):
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state

    first, second = _extract_process(DAY1), _extract_process(DAY1)
    outcomes = sorted(((p.wait(timeout=900), p.stderr.read()) for p in (first, second)), key=lambda o: o[0])
    (won_code, won_err), (lost_code, lost_err) = outcomes
    assert won_code == 0, won_err[-2000:]
    assert lost_code == EXIT_RETRYABLE, lost_err[-2000:]
    assert "another job is writing the bronze layer" in lost_err and "nothing was written" in lost_err
    assert "Traceback" not in lost_err

    run_gate(spark, own, "bronze", DAY1.batch_id, TABLES)
    for table in TABLES:
        bronze = spark.table(f"lakehouse.bronze.{table}")
        assert bronze.count() == bronze.select("id").distinct().count() == _source_count(own, table), table
    # the refused run, retried, finds its batch published and changes nothing
    heads = {t: iceberg.snapshot_id(spark, f"lakehouse.bronze.{t}") for t in TABLES}
    results = extract_tables(spark, own, _specs(own), DAY1, source_state(own))
    assert all(r.skipped for r in results)
    assert {t: iceberg.snapshot_id(spark, f"lakehouse.bronze.{t}") for t in TABLES} == heads


def test_silver_reads_bronze_as_its_batch_published_it(spark, own):
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state
    from lakehouse_silver.transform import transform_tables
    from lakehouse_simulator.advance import advance

    day1_heads = {t: iceberg.snapshot_id(spark, f"lakehouse.bronze.{t}") for t in TABLES}
    with postgres.connect(own.source, own) as conn:
        advance(conn, days=1, seed=SEED, scale=SCALE)
        conn.commit()
    extract_tables(spark, own, _specs(own), DAY2, source_state(own))
    run_gate(spark, own, "bronze", DAY2.batch_id, TABLES)
    day2_rows = spark.table("lakehouse.bronze.orders").where(F.col("_batch_id") == DAY2.batch_id).count()
    assert day2_rows > 0

    # silver's day 1 runs only now, with bronze's day 2 published
    transform_tables(spark, own, _specs(own), DAY1)
    run_gate(spark, own, "silver", DAY1.batch_id, TABLES)
    for table in TABLES:
        state = iceberg.summary(spark, f"lakehouse.silver.{table}")
        assert int(state["lakehouse.upstream_snapshot"]) == day1_heads[table], table
    day1_bronze = spark.table("lakehouse.bronze.orders").where(F.col("_batch_id") == DAY1.batch_id)
    silver = spark.table("lakehouse.silver.orders")
    assert silver.count() == day1_bronze.count()
    assert silver.where(F.col("_source_batch_id") == DAY2.batch_id).count() == 0

    transform_tables(spark, own, _specs(own), DAY2)
    run_gate(spark, own, "silver", DAY2.batch_id, TABLES)
    silver = spark.table("lakehouse.silver.orders")
    assert silver.count() == silver.select("id").distinct().count() == _source_count(own, "orders")
    assert silver.where(F.col("_source_batch_id") == DAY2.batch_id).count() > 0
