"""Healing quarantine: an order line that lands a batch before its order reaches silver exactly
once, released by the batch that brings the order, and its quarantine row is closed; a newer
version of a quarantined line decides instead of the quarantined one; a suite's own rule of
severity ``quarantine`` sets rows aside too. Three gated batches (orders and order lines only)
from a hand-written source.
"""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from typing import NamedTuple

import pytest

from lakehouse_core import iceberg, postgres
from lakehouse_core.batch import DataInterval
from lakehouse_core.quality import QualityGateFailed, run_gate, suite_folder
from lakehouse_core.registry import Registry

pytestmark = pytest.mark.spark

DAYS = [DataInterval.parse(f"2023-01-0{d}T00:00:00+07:00", f"2023-01-0{d + 1}T00:00:00+07:00") for d in (4, 5, 6)]
TABLES = ["orders", "order_items"]
#: the source's foreign keys go: to the extract, a line committed before its order is what a
#: transaction committing between the reads of the two tables looks like
NO_FOREIGN_KEYS = """
DO $$ DECLARE c record; BEGIN
  FOR c IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
           WHERE contype = 'f' AND connamespace = 'public'::regnamespace LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.tbl, c.conname);
  END LOOP;
END $$;
"""
ORDER = """INSERT INTO orders (id, customer_id, payment_id, location_id, order_channel_id, order_code, order_date, status,
                    is_active, created_at, updated_at, total_price, profit) VALUES
  ({id}, 1, {id}, 101, 1, 'ORD{id}', '{day} 10:00', '{status}', true, '{day} 10:00', '{day} 10:00', 100, 30);
"""
LINE = """INSERT INTO order_items (id, order_id, product_id, unit_price, discount_amount, quantity, amount, is_active,
                         created_at) VALUES ({id}, {order}, 1, 100, 0, 1, 100, true, '{day} 10:00');
"""
SOURCE = [
    # lines 2, 3 and 5 name orders that are not there; order 4's status is unknown to silver;
    # line 6's unit price is above what the module's silver suite accepts (it quarantines such lines)
    ORDER.format(id=1, day="2023-01-04", status="Pending") + ORDER.format(id=4, day="2023-01-04", status="Awaiting Payment")
    + "".join(LINE.format(id=i, order=o, day="2023-01-04")
                                                   for i, o in ((1, 1), (2, 2), (3, 3), (5, 55), (6, 1)))
    + "UPDATE order_items SET unit_price = 5000 WHERE id = 6;",
    # order 2 comes (placed on day 1, committed late); line 3 now names another missing order;
    # lines 5 and 6 are corrected (re-read by the id lookback, newer versions)
    ORDER.format(id=2, day="2023-01-04", status="Pending")
    + "UPDATE order_items SET order_id = 33 WHERE id = 3; UPDATE order_items SET order_id = 1 WHERE id = 5;"
    + "UPDATE order_items SET unit_price = 100 WHERE id = 6;",
    "SELECT 1",  # nothing new
]


def _quarantine_rows(spark, table: str = "order_items") -> dict[tuple[int, str], tuple[str, str | None]]:
    """(row id, batch that quarantined it) → (status, batch that closed it)."""
    return {(json.loads(r.primary_key)["id"], r.batch_id): (r.status, r.closed_batch_id)
            for r in spark.table(f"lakehouse.quarantine.silver_{table}").collect()}


@pytest.fixture(scope="module")
def healed(spark, settings, empty_lakehouse, source_sql, tmp_path_factory):
    """The three batches, with the shipped suites and in silver.order_items' one more rule,
    ``unit_price <= 1000`` of severity ``quarantine``; before the third, a fix makes 'Awaiting Payment' a synonym of
    the order status 'pending' and ``lakehouse quarantine replay --table orders`` is run. Yields
    the quarantine rows of the order lines after each batch, those of the orders, what the replay
    printed and line 6's unit prices in silver after each batch."""
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state
    from lakehouse_core.cli import main
    from lakehouse_silver import reconcile
    from lakehouse_silver.transform import transform_table
    from lakehouse_silver.vocabulary import VOCABULARIES
    from lakehouse_simulator.schema import create_source_schema

    suites = tmp_path_factory.mktemp("suites")
    shutil.copytree(suite_folder(settings, "silver").parent, suites, dirs_exist_ok=True)
    order_items = json.loads((suites / "silver" / "order_items.json").read_text())
    order_items["expectations"].append({"type": "expect_column_values_to_be_between", "meta": {"severity": "quarantine"},
                                        "kwargs": {"column": "unit_price", "max_value": 1000}})
    (suites / "silver" / "order_items.json").write_text(json.dumps(order_items))
    own = settings.model_copy(update={"source": settings.source.model_copy(update={"dbname": "quarantine_cases"}),
                                      "expectations_dir": suites,
                                      "quality": settings.quality.model_copy(update={"reconcile_every_days": 1})})
    with postgres.connect(own.source, own) as conn:
        create_source_schema(conn)
        conn.cursor().execute(NO_FOREIGN_KEYS)
        conn.commit()
    registry = Registry.load(own)
    specs = [registry.get(t) for t in TABLES]
    lines, orders, replay, prices, reconciled = [], [], io.StringIO(), [], []
    with pytest.MonkeyPatch.context() as fix:
        for interval, sql in zip(DAYS, SOURCE):
            if interval is DAYS[2]:
                fix.setitem(VOCABULARIES, "order_status", VOCABULARIES["order_status"] | {"awaitingpayment": "pending"})
                with redirect_stdout(replay):
                    assert main(["quarantine", "replay", "--table", "orders"]) == 0
            source_sql(own, sql, interval.end_in_zone(own.source_zone).isoformat(" "))
            extract_tables(spark, own, specs, interval, source_state(own))
            run_gate(spark, own, "bronze", interval.batch_id, TABLES)
            for spec in specs:
                transform_table(spark, own, spec, interval)
            run_gate(spark, own, "silver", interval.batch_id, TABLES)
            lines.append(_quarantine_rows(spark))
            orders.append(_quarantine_rows(spark, "orders"))
            prices.append([r.unit_price for r in spark.table("lakehouse.silver.order_items").where("id = 6").collect()])
            reconciled.append({t: tuple(iceberg.summary(spark, f"lakehouse.silver.{t}").get(p) for p in
                                        (reconcile.EXPECTED, reconcile.HELD)) for t in TABLES})
    return Healed(lines, orders, replay.getvalue(), prices, reconciled, own, specs)


class Healed(NamedTuple):
    lines: list  # the quarantine rows of the order lines after each batch
    orders: list  # those of the orders
    replay: str  # what the replay printed
    prices: list  # line 6's unit prices in silver after each batch
    reconciled: list  # per batch and table: silver's current rows expected from bronze, and held
    settings: object
    specs: list


def test_a_line_before_its_order_reaches_silver_once_when_the_order_arrives(healed, spark):
    healed = healed.lines
    first, second, third = (d.batch_id for d in DAYS)
    assert healed[0] == {
        (2, first): ("open", None), (3, first): ("open", None), (5, first): ("open", None), (6, first): ("open", None)}
    # the batch that brings order 2 retries line 2's quarantined version, releases it and closes
    # its row, published with silver
    assert healed[1][(2, first)] == ("released", second)
    lines = spark.table("lakehouse.silver.order_items")
    released = lines.where("id = 2").collect()
    assert [r.order_id for r in released] == [2]
    # merged as a change of the batch that released it (gold's daily runs find it there)
    assert released[0]._source_batch_id == second
    # exactly once: a later batch neither releases it again nor opens a row for it
    assert [row for key, row in healed[2].items() if key[0] == 2] == [("released", second)]
    assert lines.where("id = 2").count() == 1


def test_a_newer_version_of_a_quarantined_line_decides(healed, spark):
    """Line 5 corrected at the source: the new version is merged, the quarantined one superseded.
    Line 3 names another missing order: its new version takes over the open row, so one row per
    line is open at any time."""
    healed = healed.lines
    first, second, _ = (d.batch_id for d in DAYS)
    lines = spark.table("lakehouse.silver.order_items")
    assert [(r.order_id, r._source_batch_id) for r in lines.where("id = 5").collect()] == [(1, second)]
    assert healed[1][(5, first)] == ("superseded", second)
    assert lines.where("id = 3").count() == 0
    assert {key: row for key, row in healed[2].items() if key[0] == 3} == {
        (3, first): ("superseded", second), (3, second): ("open", None)}


def test_a_replay_after_a_fix_releases_rows_of_any_rule(healed, spark):
    """Order 4 ('Awaiting Payment', unknown) is not retried by batch 2 (its rule cannot heal by itself);
    after the fix, the replay has batch 3 retry it: released once, and the replay is served."""
    from lakehouse_core.registry import Registry
    from lakehouse_core.settings import get_settings
    from lakehouse_silver.quarantine import pending_replay

    orders, replay = healed.orders, healed.replay
    first, second, third = (d.batch_id for d in DAYS)
    assert orders[0] == orders[1] == {(4, first): ("open", None)}
    assert replay.strip() == "quarantine.silver_orders: 1 open row will be retried by the next silver batch"
    assert orders[2] == {(4, first): ("released", third)}
    released = spark.table("lakehouse.silver.orders").where("id = 4").collect()
    assert [(r.status, r._source_batch_id) for r in released] == [("pending", third)]
    assert pending_replay(spark, Registry.load(get_settings()).get("orders")) is None


def test_a_suite_rule_of_severity_quarantine_sets_rows_aside(healed, spark):
    """Line 6 landed with a unit price of 5,000: silver set it aside under the rule's name instead of
    failing its gate (which passed, the rule holding in silver), and merged its correction, which
    closed the quarantine row."""
    prices = healed.prices
    first, second, _ = (d.batch_id for d in DAYS)
    rows = spark.table("lakehouse.quarantine.silver_order_items").where("rule LIKE 'expect_%'").collect()
    assert [(json.loads(r.primary_key)["id"], r.rule, r.batch_id, r.status, r.closed_batch_id) for r in rows] == [
        (6, "expect_column_values_to_be_between(unit_price)", first, "superseded", second)]
    assert prices == [[], [100], [100]]


def test_lakehouse_quarantine_lists_the_open_rows(healed, capsys):
    from lakehouse_core.cli import main

    assert main(["quarantine"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].split()[:4] == ["quarantine.silver_order_items", "orphan_order_id", "1", "open"]
    assert lines[0].endswith("(retried by every batch)")


def test_a_replay_of_a_table_never_quarantined_is_one_clear_error(healed, capsys):
    from lakehouse_core.cli import main

    assert main(["quarantine", "replay", "--table", "customers"]) == 3
    assert capsys.readouterr().err.strip().endswith(
        "quarantine.silver_customers does not exist: no row of silver.customers was ever quarantined")


def test_silver_current_state_is_reconciled_with_bronze(healed):
    """Every batch (quarantines, a release, a supersede, a replay) published silver holding exactly
    the keys whose latest accepted bronze version is not a delete: order 1, then 1 and 2, then 1, 2
    and 4 (released by the replay); line 1, then lines 1, 2, 5 and 6 (line 3 still an orphan)."""
    assert healed.reconciled == [{"orders": ("1", "1"), "order_items": ("1", "1")},
                                 {"orders": ("2", "2"), "order_items": ("4", "4")},
                                 {"orders": ("3", "3"), "order_items": ("4", "4")}]


def test_a_merge_that_loses_a_row_fails_the_reconciliation(healed, spark, source_sql, monkeypatch):
    """A fourth batch whose MERGE into silver.order_items also drops line 1 (a bug made on purpose):
    silver's gate fails on the reconciliation naming the table, and nothing is published."""
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state
    from lakehouse_silver import transform

    own, day = healed.settings, DataInterval.parse("2023-01-07T00:00:00+07:00", "2023-01-08T00:00:00+07:00")
    source_sql(own, LINE.format(id=7, order=1, day="2023-01-07"), day.end_in_zone(own.source_zone).isoformat(" "))
    extract_tables(spark, own, healed.specs, day, source_state(own))
    run_gate(spark, own, "bronze", day.batch_id, TABLES)
    merge = transform.merge_into

    def lossy_merge(spark, target, changes, spec):
        merge(spark, target, changes, spec)
        if spec.name == "order_items":
            spark.sql(f"DELETE FROM {target} WHERE id = 1")

    monkeypatch.setattr(transform, "merge_into", lossy_merge)
    for spec in healed.specs:
        transform.transform_table(spark, own, spec, day)
    with pytest.raises(QualityGateFailed) as failed:
        run_gate(spark, own, "silver", day.batch_id, TABLES)
    (failure,) = [line for line in str(failed.value).splitlines() if "current_rows" in line]
    assert failure.strip().startswith("silver._batch: expect_column_pair_values_to_be_equal(current_rows_bronze, "
                                      "current_rows_silver) failed on 1 row(s)")
    assert '"silver.order_items"' in failure
    assert spark.table("lakehouse.silver.order_items").where("id = 1").count() == 1
