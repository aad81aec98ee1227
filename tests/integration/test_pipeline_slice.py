"""The vertical slice in one Spark session: source → bronze → gate → silver → gate → gold → gate.

Tests run in file order and share the catalog: batch 1 loads the simulated shop,
batch 2 carries source changes, batch 3 carries a bad row that the bronze gate rejects.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from lakehouse_core import iceberg, postgres
from lakehouse_core.batch import BatchOrderError, DataInterval
from lakehouse_core.quality import QualityGateFailed, run_gate
from lakehouse_core.registry import Registry, identifier

pytestmark = pytest.mark.spark

SLICE = ("orders", "order_items", "order_channel")
DAY1 = DataInterval.parse("2023-01-04T00:00:00+07:00", "2023-01-05T00:00:00+07:00")
DAY2 = DataInterval.parse("2023-01-05T00:00:00+07:00", "2023-01-06T00:00:00+07:00")
DAY3 = DataInterval.parse("2023-01-06T00:00:00+07:00", "2023-01-07T00:00:00+07:00")


@pytest.fixture(scope="module")
def shop(settings):
    """A small simulated shop: 4 days from 2023-01-01, clock at 2023-01-05 00:00."""
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    with postgres.connect(settings.source, settings) as conn:
        create_source_schema(conn)
        generate(conn, scale=0.01, seed=7, days=4)
        conn.commit()
    return settings


def source_rows(settings, sql: str, params=()):
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def advance_clock(settings, to: str) -> None:
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        cur.execute("UPDATE lakehouse_sim.clock SET sim_now = %s", (to,))
        conn.commit()


def run_batch(spark, settings, interval: DataInterval):
    """One daily run of the slice, layer by layer, each gated."""
    from lakehouse_bronze.extract import extract_table
    from lakehouse_bronze.source import source_state
    from lakehouse_gold.marts import MARTS, build_mart
    from lakehouse_silver.transform import transform_table

    registry = Registry.load(settings)
    state = source_state(settings)
    for name in SLICE:
        extract_table(spark, settings, registry.get(name), interval, state)
    run_gate(spark, settings, "bronze", interval.batch_id)
    for name in SLICE:
        transform_table(spark, settings, registry.get(name), interval)
    run_gate(spark, settings, "silver", interval.batch_id)
    for mart in MARTS.values():
        build_mart(spark, settings, mart, interval)
    return run_gate(spark, settings, "gold", interval.batch_id)


def test_first_batch_lands_every_layer(spark, shop):
    settings = shop
    report = run_batch(spark, settings, DAY1)
    assert report.success and report.published == ["mart_daily_sales"]

    (source_orders,) = source_rows(settings, "SELECT count(*) FROM orders")[0]
    assert source_orders > 50
    assert spark.table("lakehouse.silver.orders").count() == source_orders
    # silver: one row per key, canonical status vocabulary, UTC instants
    statuses = {r.status for r in spark.table("lakehouse.silver.orders").select("status").distinct().collect()}
    assert statuses and all(s == s.lower() and " " not in s for s in statuses)

    # watermark and batch id committed with the data, readable from the last_publish tag
    state = iceberg.summary(spark, identifier("bronze", "orders"))
    assert state["lakehouse.batch_id"] == DAY1.batch_id
    assert json.loads(state["lakehouse.watermark"])["kind"] == "xmin"
    items = iceberg.summary(spark, identifier("bronze", "order_items"))
    assert json.loads(items["lakehouse.watermark"]) == {"kind": "serial", "value": spark.table(
        "lakehouse.bronze.order_items").agg({"id": "max"}).first()[0]}
    assert state["lakehouse.package_version"] == "0.1.0"


def test_daily_sales_mart_is_at_order_grain(spark, shop):
    """GMV / order count / AOV per (business day, channel) equal the source computed in SQL."""
    expected = {
        (r[0], r[1]): (r[2], r[3]) for r in source_rows(shop, """
            SELECT o.order_date::date, c.name, count(*),
                   coalesce(sum(o.total_price) FILTER (WHERE o.status <> 'Cancelled'), 0)
            FROM orders o JOIN order_channel c ON c.id = o.order_channel_id
            WHERE o.order_date < '2023-01-05'
            GROUP BY 1, 2""")
    }
    mart = {(r.order_day, r.channel): (r.order_count, r.gmv, r.aov)
            for r in spark.table("lakehouse.gold.mart_daily_sales").collect()}
    assert set(mart) == set(expected)
    for key, (count, gmv) in expected.items():
        assert mart[key][0] == count
        assert mart[key][1] == Decimal(gmv).quantize(Decimal("0.01"))
        assert mart[key][2] <= mart[key][1]


def test_rerun_of_published_batch_changes_nothing(spark, shop):
    tables = [identifier(layer, t) for layer in ("bronze", "silver") for t in SLICE]
    before = {t: iceberg.snapshot_id(spark, t) for t in tables}
    run_batch(spark, shop, DAY1)
    assert {t: iceberg.snapshot_id(spark, t) for t in tables} == before


def test_second_batch_merges_source_changes(spark, shop):
    settings = shop
    (order_id,) = source_rows(settings, "SELECT min(id) FROM orders WHERE status <> 'Cancelled'")[0]
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        cur.execute("UPDATE orders SET status = 'Cancelled', updated_at = '2023-01-05 10:00' WHERE id = %s", (order_id,))
        conn.commit()
    advance_clock(settings, "2023-01-06 00:00")
    run_batch(spark, settings, DAY2)

    silver = spark.table("lakehouse.silver.orders")
    assert silver.where(f"id = {order_id}").first().status == "cancelled"
    assert silver.count() == silver.select("id").distinct().count()
    bronze_versions = spark.table("lakehouse.bronze.orders").where(f"id = {order_id}").count()
    assert bronze_versions == 2  # the original and the update; the lookback overlap added no copies


def test_older_batch_after_newer_is_refused(spark, shop):
    from lakehouse_bronze.extract import extract_table
    from lakehouse_bronze.source import source_state

    older = DataInterval.parse("2023-01-03T00:00:00+07:00", "2023-01-04T00:00:00+07:00")
    with pytest.raises(BatchOrderError, match="bronze.orders: batch .* is older"):
        extract_table(spark, shop, Registry.load(shop).get("orders"), older, source_state(shop))


def test_failing_expectation_keeps_main_and_names_rows(spark, shop):
    """A bad source row fails the bronze gate: main unchanged, branch kept, report names expectation and key."""
    from lakehouse_bronze.extract import extract_table
    from lakehouse_bronze.source import source_state

    settings = shop
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM orders ORDER BY id DESC LIMIT 1")
        bad_id = cur.fetchone()[0]
        cur.execute("UPDATE orders SET total_price = -5, updated_at = '2023-01-06 09:00' WHERE id = %s", (bad_id,))
        conn.commit()
    advance_clock(settings, "2023-01-07 00:00")
    orders = identifier("bronze", "orders")
    main_before = iceberg.snapshot_id(spark, orders)

    registry = Registry.load(settings)
    for name in SLICE:
        extract_table(spark, settings, registry.get(name), DAY3, source_state(settings))
    with pytest.raises(QualityGateFailed) as failure:
        run_gate(spark, settings, "bronze", DAY3.batch_id)

    assert iceberg.snapshot_id(spark, orders) == main_before
    branch = iceberg.audit_branch(DAY3.batch_id)
    assert iceberg.branch_exists(spark, orders, branch)
    refs = {r.name: r for r in spark.sql(f"SELECT * FROM {orders}.refs").collect()}
    assert refs[branch].max_reference_age_in_ms == iceberg.FAILED_BRANCH_RETENTION_MS
    message = str(failure.value)
    assert "expect_column_values_to_be_between(total_price)" in message
    failing = [o for t in failure.value.report.tables for o in t.blocking_failures]
    assert [o.expectation for o in failing] == ["expect_column_values_to_be_between"]
    assert failing[0].failing_keys[0]["id"] == bad_id
    written = json.loads((settings.quality_dir / f"bronze-{DAY3.batch_id}.json").read_text())
    assert written["success"] is False
    # tables of the run that passed are not published either (all-or-nothing)
    assert iceberg.branch_exists(spark, identifier("bronze", "order_items"), branch)
