"""The pipeline in one Spark session: source → bronze → gate → silver → gate → gold → gate.

Tests run in file order and share the catalog: batch 1 loads the simulated shop,
batch 2 carries source changes (including rows silver must quarantine), batch 3
carries a bad row that the bronze gate rejects.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse_core import iceberg, postgres, quality_scan
from lakehouse_core.batch import BatchOrderError, DataInterval
from lakehouse_core.errors import EXIT_DETERMINISTIC, UpstreamNotPublishedError
from lakehouse_core.quality import QualityGateFailed, run_gate
from lakehouse_core.registry import Registry, identifier

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[2]

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


def extract(spark, settings, interval: DataInterval):
    """Bronze extract of every registered table (one run: one source state)."""
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state

    return extract_tables(spark, settings, Registry.load(settings).in_dependency_order(), interval,
                          source_state(settings))


def transform(spark, settings, interval: DataInterval):
    from lakehouse_silver.transform import transform_tables

    return transform_tables(spark, settings, Registry.load(settings).in_dependency_order(), interval)


#: the gold tables of the slice: the dimensions, the order facts and the two marts they feed
#: (tests/integration/test_gold.py builds and gates every gold table over three days)
GOLD_SLICE = ("dim_date", "dim_channel", "dim_geography", "dim_warehouse", "dim_carrier", "dim_shipping_method",
              "dim_payment_method", "dim_product", "dim_customer", "fct_orders", "fct_order_lines", "mart_daily_sales",
              "mart_customer_360")


def build_gold(spark, settings, interval: DataInterval):
    from lakehouse_gold.build import build_table
    from lakehouse_gold.tables import GOLD_TABLES

    return [build_table(spark, settings, GOLD_TABLES[name], interval) for name in GOLD_SLICE]


def run_batch(spark, settings, interval: DataInterval):
    """One daily run of the slice, layer by layer, each gated."""
    extract(spark, settings, interval)
    run_gate(spark, settings, "bronze", interval.batch_id)
    transform(spark, settings, interval)
    run_gate(spark, settings, "silver", interval.batch_id)
    build_gold(spark, settings, interval)
    return run_gate(spark, settings, "gold", interval.batch_id)


def test_first_batch_lands_every_layer(spark, shop):
    settings = shop
    report = run_batch(spark, settings, DAY1)
    assert report.success and sorted(report.published) == sorted(f"gold.{t}" for t in GOLD_SLICE)

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
    # what the _batch suites check: rows read from the source (a first load reads them all) and
    # the days from silver's newest event to the logical date
    assert state["lakehouse.source_rows"] == str(source_orders)
    (newest,) = source_rows(settings, "SELECT max(order_date)::date FROM orders")[0]
    lag = iceberg.summary(spark, identifier("silver", "orders"))["lakehouse.measure.freshness_lag_days"]
    assert lag == str((DAY1.last_day(settings.business_zone) - newest).days)
    # a bronze batch's rows are whole files, which the metrics of showed every table passing: no row read
    decided = {path.parts[-4]: json.loads(path.read_text())["meta"].get("lakehouse_decided_by") for path in
               (settings.home / "gx").rglob(f"validations/bronze/*/{DAY1.batch_id}/*/*.json")}
    landed = {spec.name for spec in Registry.load(settings)
              if not spark.table(identifier("bronze", spec.name)).where(F.col("_batch_id") == DAY1.batch_id).isEmpty()}
    assert decided.pop("_batch") is None and set(decided) == landed and "orders" in landed, decided
    assert set(decided.values()) == {quality_scan.FILE_METRICS}, decided


def test_a_layer_job_prepares_what_its_gate_saves_to_great_expectations(spark, shop, monkeypatch):
    """What a layer job prepares for its gate while it stages the batch (``prepare_gate``, in a
    thread: ``preload_great_expectations``) is what the gate validates with: in a new process, after
    the first batch's gates, it saves nothing for a table they validated but what was deleted since;
    the gate's checkpoint of a table, its referential-integrity query resolved against the parents
    it reads, is then the one prepared, found without reading the project again."""
    from great_expectations.core.factory import checkpoint_factory, suite_factory, validation_definition_factory

    from lakehouse_core import cli, quality

    saved: list[str] = []
    for factory in (suite_factory.SuiteFactory, validation_definition_factory.ValidationDefinitionFactory,
                    checkpoint_factory.CheckpointFactory):
        for method in ("add", "add_or_update"):
            monkeypatch.setattr(factory, method, lambda self, obj, _save=getattr(factory, method):
                                saved.append(obj.name) or _save(self, obj))
    quality.ge_runner(shop).context.checkpoints.delete("gold.fct_orders")  # (as if never saved)
    prepared: set[str] = set()
    for layer in ("bronze", "silver", "gold"):
        monkeypatch.setattr(quality, "_RUNNERS", {})  # (a new process)
        cli.preload_great_expectations(shop, layer)
        cli.await_great_expectations()
        tables = ([spec.name for spec in Registry.load(shop)] if layer != "gold" else
                  [path.stem for path in quality.suite_folder(shop, layer).glob("*.json") if path.stem != "_batch"])
        assert set(quality.ge_runner(shop)._checkpoints) == {f"{layer}.{t}" for t in [*tables, "_batch"]}
        prepared |= set(quality.ge_runner(shop)._checkpoints)
    # (other modules of this process share the state folder: they may have saved or prepared the rest)
    validated = {f"{path.parts[-5]}.{path.parts[-4]}"
                 for path in (shop.home / "gx").rglob(f"validations/*/*/{DAY1.batch_id}/*/*.json")
                 if path.parts[-5] != "quarantine"}  # (a gate validates the quarantine tables it stages unprepared)
    assert {"gold.fct_orders", "silver.order_items", "bronze.orders", "bronze._batch"} <= validated <= prepared
    # nothing saved for what the first batch's gates validated, but the checkpoint found missing
    assert [name for name in saved if name in validated] == ["gold.fct_orders"], saved

    parents = quality.ParentTables(spark, iceberg.audit_branch("none"))
    try:
        suite = quality.resolve_tables(quality.load_suite(shop, "silver", "order_items"), parents)
        assert any(e["type"] == quality.UNEXPECTED_ROWS for e in suite["expectations"])
        monkeypatch.setattr(quality, "_RUNNERS", {})
        cli.preload_great_expectations(shop, "silver")
        cli.await_great_expectations()
        runner = quality.ge_runner(shop)
        prepared = runner._checkpoints["silver.order_items"][1]
        monkeypatch.setattr(type(runner.context.checkpoints), "get", lambda *_: pytest.fail("read the project again"))
        assert runner._checkpoint("silver.order_items", {**suite, "name": "silver.order_items"},
                                  runner.DECISION) is prepared
    finally:
        parents.close()


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
    rows = spark.table("lakehouse.gold.mart_daily_sales")
    assert rows.count() == rows.select("order_day", "channel", "province").distinct().count()
    mart = {(r.order_day, r.channel): (r.order_count, r.gmv) for r in rows.groupBy("order_day", "channel").agg(
        F.sum("order_count").alias("order_count"), F.sum("gmv").alias("gmv")).collect()}
    assert set(mart) == set(expected)
    for key, (count, gmv) in expected.items():
        assert mart[key] == (count, Decimal(gmv).quantize(Decimal("0.01")))
    assert rows.where("aov > gmv").count() == 0


def test_conformed_dimensions_carry_every_silver_row_with_stable_keys(spark, shop):
    """Type-1 dimensions: one row per natural key, a surrogate key stable across rebuilds, the
    product's brand and categories flattened in, no personal data."""
    from lakehouse_gold.build import BuildContext, SilverSnapshots
    from lakehouse_gold.tables import GOLD_TABLES

    for dim, silver_table in [("dim_channel", "order_channel"), ("dim_geography", "geo_location"),
                              ("dim_warehouse", "warehouse"), ("dim_carrier", "logistics_partner"),
                              ("dim_shipping_method", "shipping_method"), ("dim_product", "product")]:
        table = spark.table(f"lakehouse.gold.{dim}")
        key = table.columns[0]
        assert key.endswith("_key"), dim
        assert table.count() == table.select(key).distinct().count() == spark.table(f"lakehouse.silver.{silver_table}").count() > 0, dim
    assert "manager" not in spark.table("lakehouse.gold.dim_warehouse").columns
    (product_id, brand, sub_category, category) = source_rows(shop, """
        SELECT p.id, b.name, s.name, c.name FROM product p JOIN brand b ON b.id = p.brand_id
        JOIN sub_category s ON s.id = p.sub_category_id JOIN category c ON c.id = s.category_id
        ORDER BY p.id LIMIT 1""")[0]
    row = spark.table("lakehouse.gold.dim_product").where(f"product_id = {product_id}").first()
    assert (row.brand_name, row.sub_category_name, row.category_name) == (brand.strip(), sub_category.strip(), category.strip())
    # the key is a function of the natural key: a rebuild gives the same keys
    ids = json.loads(iceberg.summary(spark, identifier("gold", "dim_product"))["lakehouse.upstream_snapshot"])
    rebuilt = GOLD_TABLES["dim_product"].build(BuildContext(SilverSnapshots(spark, {t: int(i) for t, i in ids.items()}),
                                                            shop, DAY1))
    published = spark.table("lakehouse.gold.dim_product")
    assert rebuilt.exceptAll(published).count() == 0 and published.exceptAll(rebuilt).count() == 0
    days = spark.table("lakehouse.gold.dim_date")
    # a calendar through the end of the year after the last day DAY1 covers (2023-01-04)
    first, last = days.agg(F.min("date"), F.max("date")).first()
    assert first.isoformat() <= "2023-01-04" and last.isoformat() == "2024-12-31"
    assert days.count() == days.select("date_key").distinct().count()


def test_rerun_of_published_batch_changes_nothing(spark, shop):
    tables = [identifier(layer, t.name) for layer in ("bronze", "silver") for t in Registry.load(shop)]
    before = {t: iceberg.snapshot_id(spark, t) for t in tables}
    run_batch(spark, shop, DAY1)
    assert {t: iceberg.snapshot_id(spark, t) for t in tables} == before


FUTURE_PAYMENT_OFFSET = 10  # the payment row batch 2 dates months ahead of the source clock


def test_second_batch_merges_source_changes(spark, shop, tmp_path):
    settings = shop
    (order_id,) = source_rows(settings, "SELECT min(id) FROM orders WHERE status <> 'Cancelled'")[0]
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        cur.execute("UPDATE orders SET status = 'Cancelled', updated_at = '2023-01-05 10:00' WHERE id = %s", (order_id,))
        # a malformed email and phone: flagged in silver before they are masked (letters beyond
        # hex keep the phone from turning up by chance in a UUID of a report the PII scan reads)
        cur.execute("UPDATE customers SET email = ' not-an-email ', phone = '12-34 ext. XYZ' "
                    "WHERE id = (SELECT min(id) FROM customers)")
        conn.commit()
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        # a misbehaving source: a status outside the vocabulary, a line whose order does not exist
        cur.execute("SET session_replication_role = replica")
        cur.execute("UPDATE payment SET payment_status = 'Bogus', updated_at = '2023-01-05 10:00' "
                    "WHERE id = (SELECT max(id) FROM payment)")
        for offset, spelling in enumerate([" Momo ", "Cash on Delivery", "MoMo", "COD"]):
            cur.execute("UPDATE payment SET payment_method = %s, updated_at = '2023-01-05 10:00' "
                        "WHERE id = (SELECT id FROM payment ORDER BY id LIMIT 1 OFFSET %s)", (spelling, offset))
        cur.execute("INSERT INTO order_items (order_id, product_id, unit_price, quantity, amount, created_at) "
                    "VALUES (99999999, 1, 10, 1, 10, '2023-01-05 09:00')")
        # a tier outside the vocabulary: the customer (name, email, phone) goes to quarantine
        cur.execute("ALTER TABLE customers DROP CONSTRAINT customers_tier_check")
        cur.execute("UPDATE customers SET tier = 'Diamond' WHERE id = (SELECT max(id) FROM customers)")
        # a payment change dated months ahead of the source clock: left for a later batch, and counted
        cur.execute("UPDATE payment SET amount = amount + 1, updated_at = '2023-06-01 00:00' "
                    "WHERE id = (SELECT id FROM payment ORDER BY id LIMIT 1 OFFSET %s)", (FUTURE_PAYMENT_OFFSET,))
        conn.commit()
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        # schema evolution at the source: a new column and a widened one
        cur.execute("ALTER TABLE customers ADD COLUMN referral_code varchar(20)")
        cur.execute("UPDATE customers SET referral_code = 'REF-1' WHERE id = (SELECT min(id) FROM customers)")
        cur.execute("ALTER TABLE order_items ALTER COLUMN quantity TYPE bigint")
        # a hard delete (cart_items reconciles keys)
        cur.execute("DELETE FROM cart_items WHERE id = (SELECT min(id) FROM cart_items) RETURNING id")
        deleted_line = cur.fetchone()[0]
        conn.commit()
    advance_clock(settings, "2023-01-06 00:00")
    extracted = {r.table: r for r in extract(spark, settings, DAY2)}
    bronze_report = run_gate(spark, settings, "bronze", DAY2.batch_id)
    transform(spark, settings, DAY2)

    # quarantine rows are staged on the audit branch with silver, not written to main
    quarantined = identifier("quarantine", "silver_customers")
    branch = iceberg.audit_branch(DAY2.batch_id)
    assert spark.table(quarantined).count() == 0
    assert iceberg.read_ref(spark, quarantined, branch).count() == 1
    # a failing silver gate publishes neither silver nor quarantine (orders: a mutable table, all of
    # its rows validated)
    strict = tmp_path / "expectations"
    shutil.copytree(REPO / "expectations", strict)
    suite = json.loads((strict / "silver" / "orders.json").read_text())
    suite["expectations"].append({"type": "expect_column_values_to_be_between", "kwargs": {"column": "total_price",
                                  "max_value": 0}, "meta": {"severity": "fail"}})
    (strict / "silver" / "orders.json").write_text(json.dumps(suite))
    brand = json.loads((strict / "silver" / "brand.json").read_text())  # a changed suite validates again
    brand["expectations"].append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"},
                                  "meta": {"severity": "warn"}})
    (strict / "silver" / "brand.json").write_text(json.dumps(brand))
    with pytest.raises(QualityGateFailed) as strict_gate:
        run_gate(spark, settings.model_copy(update={"expectations_dir": strict}), "silver", DAY2.batch_id)
    assert spark.table(quarantined).count() == 0
    assert iceberg.branch_exists(spark, quarantined, branch)
    silver_report = run_gate(spark, settings, "silver", DAY2.batch_id)
    assert "quarantine.silver_customers" in silver_report.published
    assert spark.table(quarantined).count() == 1
    # a mutable table holding the rows its last published gate passed, under the same suite, keeps
    # that validation (the batch changed no brand); a changed table or suite is validated again
    kept = {t.table: t for t in silver_report.tables if t.validated_in}
    strict_brand = next(t for t in strict_gate.value.report.tables if t.table == "silver.brand")
    assert kept["silver.brand"].validated_in == DAY1.batch_id and strict_brand.validated_in is None
    assert len(strict_brand.outcomes) == len(kept["silver.brand"].outcomes) + 1
    assert "silver.orders" not in kept and "silver.payment" not in kept
    day1 = json.loads((settings.quality_dir / f"silver-{DAY1.batch_id}.json").read_text())
    assert [dataclasses.asdict(o) for o in kept["silver.brand"].outcomes] == next(
        t["outcomes"] for t in day1["tables"] if t["table"] == "silver.brand")
    build_gold(spark, settings, DAY2)
    run_gate(spark, settings, "gold", DAY2.batch_id)

    # the future-dated payment version is not in bronze, but counted and reported with a warning
    (future_id,) = source_rows(settings, "SELECT id FROM payment ORDER BY id LIMIT 1 OFFSET %s",
                               (FUTURE_PAYMENT_OFFSET,))[0]
    assert extracted["payment"].deferred.rows >= 1 and extracted["payment"].deferred.future == 1
    assert extracted["orders"].deferred.rows == 0  # xmin cursors have no upper bound
    assert spark.table("lakehouse.bronze.payment").where(f"id = {future_id} AND _batch_id = '{DAY2.batch_id}'").count() == 0
    assert iceberg.summary(spark, identifier("bronze", "payment"))["lakehouse.future_rows"] == "1"
    batch_checks = next(t for t in bronze_report.tables if t.table == "bronze._batch")
    future = next(o for o in batch_checks.outcomes if o.column == "future_rows")
    assert (future.success, future.severity, future.failing_keys) == (False, "warn", [{"table": "bronze.payment"}])
    written = json.loads((settings.quality_dir / f"bronze-{DAY2.batch_id}.json").read_text())
    payment_state = next(t["state"] for t in written["tables"] if t["table"] == "bronze.payment")
    assert payment_state["lakehouse.future_rows"] == "1"

    customers = spark.table("lakehouse.silver.customers")
    assert customers.where("referral_code = 'REF-1'").count() == 1  # the new column reached silver
    assert dict(spark.table("lakehouse.silver.order_items").dtypes)["quantity"] == "bigint"
    assert spark.table("lakehouse.silver.cart_items").where(f"id = {deleted_line}").count() == 0
    assert spark.table("lakehouse.bronze.cart_items").where(f"id = {deleted_line} AND _op = 'delete'").count() == 1

    silver = spark.table("lakehouse.silver.orders")
    assert silver.where(f"id = {order_id}").first().status == "cancelled"
    assert silver.count() == silver.select("id").distinct().count()
    bronze_versions = spark.table("lakehouse.bronze.orders").where(f"id = {order_id}").count()
    assert bronze_versions == 2  # the original and the update; the lookback overlap added no copies


def test_tables_a_batch_left_unchanged_commit_their_state_alone(spark, shop):
    """A table whose source did not change in batch 2 gets no data files in bronze nor in silver,
    only the batch's state: silver read up to bronze's batch-2 snapshot and carried its freshness
    lag one day forward (its newest event is the same, the logical date moved on). That silver
    still equals a rebuild from bronze is checked below."""
    def commits(ident: str, batch: str) -> list:
        return [r for r in spark.sql(f"SELECT snapshot_id, parent_id, summary FROM {ident}.snapshots").collect()
                if r.summary.get("lakehouse.batch_id") == batch]

    unchanged = [t for t in Registry.load(shop) if spark.table(identifier("bronze", t.name))
                 .where(F.col("_batch_id") == DAY2.batch_id).isEmpty()]
    assert len(unchanged) >= 5 and "brand" in {t.name for t in unchanged}
    lags = 0
    for spec in unchanged:
        bronze, silver = identifier("bronze", spec.name), identifier("silver", spec.name)
        for ident in (bronze, silver):  # one commit on top of batch 1's: the state (no empty write, no MERGE)
            (state_commit,) = commits(ident, DAY2.batch_id)
            assert state_commit.parent_id == dict(iceberg.published_snapshots(
                spark, ident, state_commit.snapshot_id))[DAY1.batch_id], ident
            assert int(state_commit.summary.get("added-data-files", 0)) == 0, ident
        state = iceberg.summary(spark, silver)
        assert state["lakehouse.merged_rows"] == "0"
        assert json.loads(state["lakehouse.upstream_snapshot"]) == iceberg.published_head(spark, bronze, DAY2.batch_id)
        lag = state.get("lakehouse.measure.freshness_lag_days")
        if spec.event_time and lag is not None:
            (day1,) = [c.summary for c in commits(silver, DAY1.batch_id)
                       if "lakehouse.measure.freshness_lag_days" in c.summary]
            assert int(lag) == int(day1["lakehouse.measure.freshness_lag_days"]) + 1, spec.name
            lags += 1
    assert lags, "no unchanged table with an event time: the carried freshness lag went unchecked"


def test_older_published_batch_rerun_after_a_newer_one_is_a_no_op(spark, shop):
    """Clearing an old task in Airflow: batch 1 again after batch 2 skips every table of every
    layer (the timestamp-cursor tables included, whose watermark moved on), changing nothing."""
    tables = [identifier(layer, t.name) for layer in ("bronze", "silver") for t in Registry.load(shop)]
    before = {t: iceberg.snapshot_id(spark, t) for t in tables}
    assert all(r.skipped for r in extract(spark, shop, DAY1))
    assert run_gate(spark, shop, "bronze", DAY1.batch_id).published == []
    assert all(r.skipped for r in transform(spark, shop, DAY1))
    assert all(r.skipped for r in build_gold(spark, shop, DAY1))
    gold = run_gate(spark, shop, "gold", DAY1.batch_id)
    assert gold.published == [] and "gold.mart_daily_sales" in gold.already_published
    assert {t: iceberg.snapshot_id(spark, t) for t in tables} == before


def run_cli(capsys, settings, *argv: str) -> tuple[int, list[str]]:
    """``lakehouse ARGV`` in this process (its SparkSession) on ``settings``' state folder: exit code
    and stderr lines."""
    from lakehouse_core.cli import main
    from lakehouse_core.settings import get_settings

    assert get_settings().home == settings.home, "the CLI would run against another state folder"
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err.splitlines()


def interval_args(interval: DataInterval) -> list[str]:
    return ["--interval-start", interval.start.isoformat(), "--interval-end", interval.end.isoformat()]


EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
# a phone number standing alone or delimited in text (a hex digest may contain digit runs, but
# always between other hex characters)
PHONE = r"(^|[\s,;:()])(\+84|0)[0-9]{9,10}($|[\s,;:().])"


def _pii_hits(spark, layer: str, patterns=(EMAIL, PHONE)) -> dict[str, int]:
    """Rows with a string cell that looks like an email or a phone number, per table of ``layer``."""
    hits = {}
    for row in spark.sql(f"SHOW TABLES IN lakehouse.{layer}").collect():
        if row.tableName.startswith("case_"):  # the bad-input corpus's own tables (source_cases.Case), not the
            continue  # shop's: one holds a 10 MB value, which these regular expressions take hours over
        df = spark.table(f"lakehouse.{layer}.{row.tableName}")
        strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
        if not strings:
            continue
        cells = [F.col(c).rlike(p) for c in strings for p in patterns]
        hits[row.tableName] = df.where(functools.reduce(operator.or_, cells)).count()
    return hits


def test_no_personal_data_outside_bronze(spark, shop):
    """Every namespace but bronze, and every report the runs wrote, is free of emails and phones."""
    from lakehouse_silver.pii import pii_key, reference_hmac

    # the scan finds PII where it should be: emails and phones in bronze
    assert _pii_hits(spark, "bronze", (EMAIL,))["customers"] > 0
    phones = _pii_hits(spark, "bronze", (PHONE,))
    assert phones["customers"] > 0 and phones["warehouse"] > 0
    namespaces = [r.namespace for r in spark.sql("SHOW NAMESPACES IN lakehouse").collect()]
    assert set(namespaces) == {"bronze", "silver", "gold", "quarantine"}
    for namespace in set(namespaces) - {"bronze"}:
        assert sum(_pii_hits(spark, namespace).values()) == 0, namespace
    # a customer was quarantined on purpose (batch 2): its personal data is masked as in silver
    (customer_id, name, email) = source_rows(
        shop, "SELECT id, name, email FROM customers WHERE tier = 'Diamond'")[0]
    row = spark.table("lakehouse.quarantine.silver_customers").where("rule = 'unknown_tier'").first()
    raw = json.loads(row.raw_values)
    assert raw["id"] == customer_id and raw["tier"] == "Diamond"
    assert raw["email"] == reference_hmac(email.strip().lower(), pii_key(shop))
    assert raw["name"] == reference_hmac(name.strip().lower(), pii_key(shop))
    # reports, Data Docs, validation results and lineage carry no clear value either
    clear = {v for r in source_rows(shop, "SELECT email, phone FROM customers") for v in r if v}
    for folder in ("quality", "data_docs", "gx", "lineage"):
        for path in (shop.home / folder).rglob("*"):
            if path.is_file():
                text = path.read_text(errors="replace")
                assert not any(value in text for value in clear), path


def test_masking_is_a_stable_keyed_hash(spark, shop):
    from lakehouse_silver.pii import pii_key, reference_hmac

    (customer_id, email) = source_rows(shop, "SELECT id, email FROM customers ORDER BY id LIMIT 1")[0]
    masked = spark.table("lakehouse.silver.customers").where(f"id = {customer_id}").first().email
    assert masked == reference_hmac(email.strip().lower(), pii_key(shop))


def test_a_tables_pii_passes_through_the_python_workers_once(spark, shop):
    """Silver masks a table's PII columns (of any type), and the copies its quarantine JSON keeps,
    in one pass through the Python workers, not one per column; a blank value is NULL in silver."""
    from lakehouse_core.registry import TableSpec
    from lakehouse_silver import quarantine
    from lakehouse_silver.pii import pii_key, reference_hmac
    from lakehouse_silver.transform import changes_from_bronze

    spec = TableSpec(name="people", kind="mutable", primary_key=("id",), load_mode="full",
                     pii={"name": "name", "email": "email", "phone": "phone", "mobile": "phone"})
    rows = spark.createDataFrame(
        [(1, " Ann ", "An@Example.com ", "  ", 84912345678), (None, "Bob", "b@example.io", "091 234 5678", None)],
        "id int, name string, email string, phone string, mobile bigint").select(
        "*", F.lit("upsert").alias("_op"), F.lit("b1").alias("_batch_id"),
        F.current_timestamp().alias("_ingested_at"), F.lit(None).cast("long").alias("_source_xid"))
    latest, rejected = changes_from_bronze(spark, shop, spec, rows, "main")
    for df in (latest, rejected):
        plan = df._jdf.queryExecution().executedPlan().toString()
        assert plan.count("ArrowEvalPython") == 1, plan
        assert not [c for c in df.columns if c.startswith("_masked_")]
    key = pii_key(shop)
    (row,) = latest.collect()
    assert (row.name, row.email, row.phone) == (reference_hmac("ann", key), reference_hmac("an@example.com", key), None)
    assert row.mobile == reference_hmac("84912345678", key)  # a number is masked too, to text
    (quarantined,) = rejected.select("_rule", quarantine.raw_json().alias("raw_values")).collect()
    assert quarantined._rule == "null_key"
    assert json.loads(quarantined.raw_values) == {"name": reference_hmac("bob", key), "email": reference_hmac("b@example.io", key),
                                            "phone": reference_hmac("0912345678", key)}


def test_malformed_emails_and_phones_are_flagged_before_masking(spark, shop):
    """Batch 2 made one customer's email and phone malformed: silver flags them (a masked value
    cannot be checked any more), and the silver gate warns, naming the flag, not the value."""
    (customer_id,) = source_rows(shop, "SELECT min(id) FROM customers")[0]
    flags = {r.id: (r.email_is_valid, r.phone_is_valid)
             for r in spark.table("lakehouse.silver.customers").select("id", "email_is_valid", "phone_is_valid").collect()}
    assert flags.pop(customer_id) == (False, False)
    assert set(flags.values()) == {(True, True)}
    assert {r[0] for r in spark.table("lakehouse.silver.warehouse").select("contact_phone_is_valid").collect()} == {True}
    report = json.loads((shop.quality_dir / f"silver-{DAY2.batch_id}.json").read_text())
    customers = next(t for t in report["tables"] if t["table"] == "silver.customers")
    failing = {(o["column"], o["severity"]) for o in customers["outcomes"] if not o["success"]}
    assert failing == {("email_is_valid", "warn"), ("phone_is_valid", "warn")}


def test_the_pii_key_is_in_no_spark_plan_and_no_pickled_task(spark, shop):
    """The masking key reaches the tasks as a broadcast variable: the plans of a masking query
    (parsed to physical) and a pickled task function hold neither the key nor its HMAC pads."""
    from pyspark import cloudpickle

    from lakehouse_core.task_secret import TaskSecret
    from lakehouse_silver.pii import mask, pii_key, reference_hmac

    key = pii_key(shop)
    padded = key.ljust(64, b"\0")
    forms = {key.decode(), key.hex(), *(bytes(b ^ pad for b in padded).hex() for pad in (0x36, 0x5C))}
    df = spark.createDataFrame([(" An@Example.com ",)], "email string").select(mask(F.col("email"), "email", key))
    plans = df._jdf.queryExecution().toString()
    assert "keyed_hash" in plans  # the plan shows the masking UDF ...
    assert not [f for f in forms if f.lower() in plans.lower()]  # ... and no form of its key
    assert df.first()[0] == reference_hmac("an@example.com", key)
    secret = TaskSecret(key)
    task = cloudpickle.dumps(lambda: secret.get())
    assert not [f for f in forms if f.encode() in task] and key not in task
    assert "***" in repr(secret) and key.decode() not in repr(secret)


def test_silver_vocabularies_are_canonical(spark, shop):
    """Mixed spellings in the source (batch 2 wrote four of them) become one value each."""
    ids = [r[0] for r in source_rows(shop, "SELECT id FROM payment ORDER BY id LIMIT 4")]
    payment = spark.table("lakehouse.silver.payment")
    assert [payment.where(f"id = {i}").first().payment_method for i in ids] == ["momo", "cod", "momo", "cod"]
    methods = {r.payment_method for r in payment.select("payment_method").distinct().collect()}
    assert methods <= {"momo", "zalopay", "vnpay", "credit_card", "cod", "bank_transfer", "paypal"}
    statuses = {r.status for r in spark.table("lakehouse.silver.orders").select("status").distinct().collect()}
    assert statuses <= {"pending", "confirmed", "processing", "packed", "shipped", "delivering", "delivered",
                        "delivery_failed", "completed", "cancelled", "returned"}


def test_silver_quarantines_rows_breaking_hard_rules(spark, shop):
    """Bad rows from batch 2: an unknown payment status and an order line of a missing order."""
    payment = spark.table("lakehouse.quarantine.silver_payment").collect()
    assert [(r.rule, r.batch_id) for r in payment] == [("unknown_payment_status", DAY2.batch_id)]
    assert json.loads(payment[0].raw_values)["payment_status"] == "Bogus"
    # the bad version stayed out: silver keeps the key's last valid version
    kept = spark.table("lakehouse.silver.payment").where(f"id = {json.loads(payment[0].primary_key)['id']}").first()
    assert kept.payment_status in {"pending", "completed", "cancelled", "refunded", "failed"}
    orphans = spark.table("lakehouse.quarantine.silver_order_items").collect()
    assert [r.rule for r in orphans] == ["orphan_order_id"]
    assert json.loads(orphans[0].raw_values)["order_id"] == 99_999_999
    assert iceberg.summary(spark, identifier("silver", "payment"))["lakehouse.quarantined_rows"] == "1"


def test_rows_that_pass_are_never_written_as_json(spark, shop):
    """A row's source values become JSON only once it is quarantined: the rows that pass (whose
    unknown-enumeration rule reads a source value) are checked against the column itself."""
    from lakehouse_silver import quarantine
    from lakehouse_silver.transform import changes_from_bronze

    spec = Registry.load(shop).get("payment")  # an enumerated column: payment_status
    latest, rejected = changes_from_bronze(spark, shop, spec, spark.table(identifier("bronze", "payment")), "main")
    plan = latest._jdf.queryExecution().optimizedPlan().toString()
    assert "to_json" not in plan and "get_json_object" not in plan, plan
    assert "payment_status" in rejected.select(quarantine.raw_json().alias("raw")).first().raw


def test_incremental_silver_equals_a_rebuild_from_all_of_bronze(spark, shop):
    from lakehouse_silver.transform import changes_from_bronze

    for spec in Registry.load(shop):
        silver = spark.table(identifier("silver", spec.name))
        latest, _ = changes_from_bronze(spark, shop, spec, spark.table(identifier("bronze", spec.name)), "main")
        rebuilt = latest.where("_op = 'upsert'")
        columns = [c for c in silver.columns if c not in ("_silver_updated_at", "_source_batch_id")]
        assert silver.select(*columns).exceptAll(rebuilt.select(*columns)).count() == 0, spec.name
        assert rebuilt.select(*columns).exceptAll(silver.select(*columns)).count() == 0, spec.name


def test_latest_version_tie_break(spark):
    from lakehouse_silver.transform import latest_per_key
    from lakehouse_core.registry import TableSpec

    spec = TableSpec(name="t", kind="mutable", primary_key=("id",), load_mode="incremental", cursor="updated_at")
    rows = [(1, "old batch", "b1", "2023-01-02 00:00:00", "2023-01-01 00:00:00"),
            (1, "later cursor", "b2", "2023-01-01 10:00:00", "2023-01-01 00:00:00"),
            (1, "earlier cursor", "b2", "2023-01-01 09:00:00", "2023-01-01 00:00:01"),
            (2, "first ingested", "b1", "2023-01-01 00:00:00", "2023-01-01 00:00:00"),
            (2, "last ingested", "b1", "2023-01-01 00:00:00", "2023-01-01 00:00:05")]
    df = spark.createDataFrame(rows, "id int, v string, _batch_id string, updated_at string, _ingested_at string")
    picked = {r.id: r.v for r in latest_per_key(df, spec).collect()}
    assert picked == {1: "later cursor", 2: "last ingested"}


def test_a_merge_bounded_by_the_changes_keys_matches_as_without_bounds(spark, shop):
    """``merge_into`` bounds the target's keys by the changes' lowest and highest (``key_bounds``),
    so its scan skips the files outside them; a change at either bound and a new key beyond the
    target's merge as without the bounds, and the rows outside are kept."""
    from lakehouse_core.registry import TableSpec
    from lakehouse_silver.transform import key_bounds, merge_into

    spec = TableSpec(name="merge_bounds", kind="mutable", primary_key=("id",), load_mode="full")
    target = "lakehouse.silver.test_merge_bounds"
    spark.sql(f"CREATE TABLE {target} (id bigint, v string, _source_batch_id string, _silver_updated_at timestamp) "
              "USING iceberg")
    try:
        for values in ("(1, 'a', 'b1', NULL), (2, 'b', 'b1', NULL)", "(1001, 'c', 'b1', NULL), (1002, 'd', 'b1', NULL)"):
            spark.sql(f"INSERT INTO {target} VALUES {values}")  # two data files, one per key range
        changes = spark.createDataFrame(
            [(2, "B", "b2", None, "upsert"), (1001, None, "b2", None, "delete"), (1003, "e", "b2", None, "upsert")],
            "id bigint, v string, _source_batch_id string, _silver_updated_at timestamp, _op string")
        assert key_bounds(changes, spec) == {"id": (2, 1003)}
        assert key_bounds(changes.limit(0), spec) == {}
        assert key_bounds(changes.withColumn("id", F.col("id").cast("string")), spec) == {}
        merge_into(spark, target, changes, spec)
        merged = sorted((r.id, r.v, r._source_batch_id) for r in spark.table(target).collect())
        assert merged == [(1, "a", "b1"), (2, "B", "b2"), (1002, "d", "b1"), (1003, "e", "b2")]
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {target} PURGE")


def test_a_first_load_appended_holds_what_a_merge_into_the_empty_table_would(spark):
    """A silver table's first load appends its upserts (``append_upserts``) instead of merging:
    the same rows as ``merge_into`` an empty table, a key whose latest version is a delete left out."""
    from lakehouse_core.registry import TableSpec
    from lakehouse_silver.transform import append_upserts, merge_into

    spec = TableSpec(name="first_load", kind="mutable", primary_key=("id",), load_mode="full")
    changes = spark.createDataFrame(
        [(1, "a", "b1", None, "upsert"), (2, None, "b1", None, "delete"), (3, "c", "b1", None, "upsert")],
        "id bigint, v string, _source_batch_id string, _silver_updated_at timestamp, _op string")
    rows = {}
    for name, write in (("merged", lambda t: merge_into(spark, t, changes, spec)),
                        ("appended", lambda t: append_upserts(t, changes))):
        target = f"lakehouse.silver.test_first_load_{name}"
        spark.sql(f"CREATE TABLE {target} (id bigint, v string, _source_batch_id string, "
                  "_silver_updated_at timestamp) USING iceberg")
        try:
            write(target)
            rows[name] = sorted(tuple(r) for r in spark.table(target).collect())
        finally:
            spark.sql(f"DROP TABLE IF EXISTS {target} PURGE")
    assert rows["appended"] == rows["merged"] == [(1, "a", "b1", None), (3, "c", "b1", None)]


def test_older_batch_after_newer_is_refused(spark, shop):
    from lakehouse_bronze.extract import extract_table
    from lakehouse_bronze.source import source_state

    older = DataInterval.parse("2023-01-03T00:00:00+07:00", "2023-01-04T00:00:00+07:00")
    with pytest.raises(BatchOrderError, match="bronze.orders: batch .* is older"):
        extract_table(spark, shop, Registry.load(shop).get("orders"), older, source_state(shop))


def test_cli_refuses_an_older_unpublished_batch_in_one_line(spark, shop, capsys):
    older = DataInterval.parse("2023-01-03T00:00:00+07:00", "2023-01-04T00:00:00+07:00")
    code, err = run_cli(capsys, shop, "bronze", "extract", *interval_args(older), "--tables", "payment")
    assert code == EXIT_DETERMINISTIC
    assert len(err) == 1 and err[0].startswith("lakehouse: error: bronze.payment: batch 20230102T1700_20230103T1700 is older")


def test_failing_expectation_keeps_main_and_names_rows(spark, shop, openlineage_validate):
    """A bad source row fails the bronze gate: main unchanged, branch kept, report names expectation
    and key; the gate's OpenLineage run fails with the assertion ``success: false``."""
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

    state = source_state(settings)
    for spec in Registry.load(settings).in_dependency_order():
        extract_table(spark, settings, spec, DAY3, state)
    with_lineage = settings.model_copy(update={"lineage": settings.lineage.model_copy(update={"enabled": True})})
    with pytest.raises(QualityGateFailed) as failure:
        run_gate(spark, with_lineage, "bronze", DAY3.batch_id)

    assert iceberg.snapshot_id(spark, orders) == main_before
    branch = iceberg.audit_branch(DAY3.batch_id)
    staged_rows = spark.read.option("branch", branch).table(orders).where(f"_batch_id = '{DAY3.batch_id}'").count()
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
    events = [json.loads(line) for line in (settings.lineage_dir / "python-events.jsonl").read_text().splitlines()]
    gate = [e for e in events if e["job"]["name"] == "lakehouse_bronze_gate"][-2:]
    assert [e["eventType"] for e in gate] == ["START", "FAIL"] and not gate[1]["outputs"]
    inputs = {d["name"].rsplit("/", 1)[-1]: d["inputFacets"] for d in gate[1]["inputs"]}
    assert len(inputs) == 24
    # metrics for every table, assertions for each table the batch added rows to (the others have
    # none to judge), each facet valid
    judged = [name for name, facets in inputs.items() if "dataQualityAssertions" in facets]
    assert "orders" in judged and all(inputs[n]["dataQualityMetrics"]["rowCount"] == 0 for n in inputs.keys() - judged)
    assert openlineage_validate(gate[0]) >= 0 and openlineage_validate(gate[1]) >= 24 + len(judged)
    failed = [a for a in inputs["orders"]["dataQualityAssertions"]["assertions"] if not a["success"]]
    assert [(a["assertion"], a["column"], a["severity"]) for a in failed] == [
        ("expect_column_values_to_be_between", "total_price", "error")]
    assert inputs["orders"]["dataQualityMetrics"]["rowCount"] == staged_rows
    # tables of the run that passed are not published either (all-or-nothing)
    assert iceberg.branch_exists(spark, identifier("bronze", "order_items"), branch)


def test_lakehouse_quality_prints_the_latest_result_per_table(spark, shop, capsys):
    """After batch 3's failed bronze gate: bronze.orders' latest result is that batch (one failed
    expectation, not published); silver.payment's is batch 2 (published, one row quarantined);
    each names its Data Docs page."""
    from lakehouse_core.cli import main
    from lakehouse_core.quality import load_suite

    capsys.readouterr()
    assert main(["quality"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["table", "batch", "pass", "warn", "fail", "rows", "quarantined", "published", "data",
                              "docs"]
    rows = {line.split()[0]: line.split() for line in lines}
    orders, payment = rows["bronze.orders"], rows["silver.payment"]
    expectations = len(load_suite(shop, "bronze", "orders")["expectations"])
    # the rows validated: those of the batch (bronze is append-only), not the table's history
    staged = spark.read.option("branch", iceberg.audit_branch(DAY3.batch_id)).table(identifier("bronze", "orders"))
    batch_rows = staged.where(f"_batch_id = '{DAY3.batch_id}'").count()
    assert 0 < batch_rows < staged.count()
    assert orders[1:6] == [DAY3.batch_id, str(expectations - 1), "0", "1", f"{batch_rows:,}"]
    assert orders[6:8] == ["-", "no"]
    assert payment[1] == DAY2.batch_id and payment[4:5] == ["0"] and payment[6:8] == ["1", "yes"]
    # silver validated the new rows of an append-only table (order lines), all rows of a mutable one
    lines = spark.table("lakehouse.silver.order_items")
    assert rows["silver.order_items"][5] == f"{lines.where(f'_source_batch_id = {DAY2.batch_id!r}').count():,}"
    assert rows["silver.orders"][5] == f"{spark.table('lakehouse.silver.orders').count():,}"
    for row in (orders, payment):
        page = Path(row[8])
        assert page.is_file() and page.is_relative_to(shop.data_docs_dir) and row[1] in page.parts
        assert row[0] in page.read_text()


def test_referential_integrity_is_checked_against_the_parent_the_batch_publishes(spark, shop):
    """silver.order_items' suite declares the registry's foreign key order_id -> orders.id as a query
    reading silver.orders: the published lines pass; a line naming an order silver does not hold
    fails it, counted, while every row-level check still passes."""
    from lakehouse_core.quality import GreatExpectationsRunner, ParentTables, load_suite, resolve_tables

    parents = ParentTables(spark, iceberg.audit_branch("none"))  # no branch: the parent as published
    suite = resolve_tables(load_suite(shop, "silver", "order_items"), parents)
    (query,) = [e["kwargs"]["unexpected_rows_query"] for e in suite["expectations"]
                if e["type"] == "unexpected_rows_expectation"]
    assert "lakehouse_gate_silver_orders p" in query and "{" not in query.replace("{batch}", "")
    assert spark.table("lakehouse_gate_silver_orders").count() == spark.table("lakehouse.silver.orders").count()
    lines = spark.table("lakehouse.silver.order_items")
    orphan = lines.limit(1).withColumn("id", F.lit(10**9)).withColumn("order_id", F.lit(10**9))

    def failures(df, run):
        outcomes = GreatExpectationsRunner(shop).validate("silver.order_items", df, suite, ["id"], run_name=run)
        return [(o.expectation, o.column, o.unexpected_count) for o in outcomes if not o.success]

    assert failures(lines, "ri-published") == []
    assert failures(lines.unionByName(orphan), "ri-orphan") == [("unexpected_rows_expectation", "order_id", 1)]
    parents.close()
    assert not spark.catalog.tableExists("lakehouse_gate_silver_orders")


def _open_offline(pages: list[Path], screenshots: Path) -> dict[str, dict]:
    """Open each page in headless Chromium (Debian's chromium and chromium-driver, installed by
    scripts/install-system-deps.sh) with networking disabled three ways: the browser offline, every
    host name unresolvable, every request sent to a dead proxy. Per page: what the page shows of
    its stylesheets and scripts, every URL it requested, its console errors; a screenshot of each
    goes to ``screenshots``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "chromium and chromium-driver are not installed: run scripts/install-system-deps.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
                 "--proxy-bypass-list=<-loopback>"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    seen = {}
    try:
        chrome.execute_cdp_cmd("Network.enable", {})
        chrome.execute_cdp_cmd("Network.emulateNetworkConditions",
                               {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        for page in pages:
            chrome.get(page.as_uri())
            shown = chrome.execute_script("""
                const navbar = document.querySelector('nav.navbar');
                return {navbar: getComputedStyle(navbar).display,
                        font: getComputedStyle(document.body).fontFamily,
                        icons: document.fonts.check('900 16px "Font Awesome 6 Free"'),
                        tables: typeof (window.jQuery && jQuery.fn.bootstrapTable),
                        state: document.readyState};""")
            events = [json.loads(e["message"])["message"] for e in chrome.get_log("performance")]
            shown["requests"] = sorted({e["params"]["request"]["url"] for e in events
                                        if e["method"] == "Network.requestWillBeSent"})
            shown["errors"] = [e["message"] for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
            chrome.save_screenshot(str(screenshots / f"{page.stem}.png"))
            seen[page.name] = shown
    finally:
        chrome.quit()
    return seen


def test_data_docs_render_fully_without_internet(shop):
    """The Data Docs index and batch 3's failed bronze.orders page, opened offline: Bootstrap's
    stylesheet applied (computed style), Font Awesome's font and bootstrap-table's script loaded,
    nothing requested but local files, no console error. Screenshots are kept as test artifacts
    (``$LAKEHOUSE_TEST_ARTIFACTS``, default ``test-artifacts/``)."""
    site = shop.data_docs_dir
    # the decision's page and, rendered after it, the failing rows' (SUMMARY) page
    failed = sorted(site.glob(f"validations/bronze/orders/{DAY3.batch_id}/*/*.html"))[-1]
    screenshots = Path(os.environ.get("LAKEHOUSE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "data-docs"
    screenshots.mkdir(parents=True, exist_ok=True)
    seen = _open_offline([site / "index.html", failed], screenshots)
    for page, shown in seen.items():
        assert shown["state"] == "complete", page
        assert shown["navbar"] == "flex", f"{page}: Bootstrap's stylesheet not applied"
        assert "Segoe UI" in shown["font"], f"{page}: Bootstrap's font stack not applied"
        assert shown["icons"] and shown["tables"] == "function", page
        remote = [u for u in shown["requests"] if not u.startswith(("file://", "data:"))]
        assert remote == [] and shown["errors"] == [], page
        # the styles and scripts came from the site's vendored copies
        assert sum("/static/vendor/" in u for u in shown["requests"]) >= 10, page
        assert (screenshots / f"{Path(page).stem}.png").stat().st_size > 10_000
    assert "total_price" in failed.read_text()


def test_downstream_steps_refuse_a_batch_whose_upstream_is_not_published(spark, shop, capsys):
    """Batch 3's bronze gate failed: silver, its gate, gold and the gold gate refuse the batch
    (one line, exit 3) instead of publishing it empty; nothing reaches main."""
    from lakehouse_silver.transform import transform_table

    watched = [identifier(layer, t) for layer, t in [("silver", "orders"), ("silver", "customers"),
                                                     ("gold", "mart_daily_sales")]]
    before = {t: iceberg.snapshot_id(spark, t) for t in watched}
    with pytest.raises(UpstreamNotPublishedError, match="silver.orders: batch .* upstream table bronze.orders"):
        transform_table(spark, shop, Registry.load(shop).get("orders"), DAY3)
    for argv in (["silver", "transform", "--tables", "customers"], ["gate", "silver"], ["gold", "build"],
                 ["gate", "gold"]):
        code, err = run_cli(capsys, shop, *argv, *interval_args(DAY3))
        assert code == EXIT_DETERMINISTIC, argv
        assert len(err) == 1 and err[0].startswith("lakehouse: error: "), (argv, err)
        assert DAY3.batch_id in err[0] and ("is not published" in err[0] or "nothing staged or published" in err[0])
    assert {t: iceberg.snapshot_id(spark, t) for t in watched} == before


def test_new_source_table_reaches_silver_with_one_registry_entry(spark, shop, tmp_path):
    """A table created in the source at runtime, plus one registry entry: no suite, no code."""
    from importlib import resources

    from lakehouse_bronze.extract import extract_table
    from lakehouse_bronze.source import source_state
    from lakehouse_silver.transform import transform_table

    with postgres.connect(shop.source, shop) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE loyalty_card (id serial PRIMARY KEY, customer_id bigint, points int, "
                    "issued_at timestamp)")
        cur.execute("INSERT INTO loyalty_card (customer_id, points, issued_at) "
                    "SELECT g, g * 10, TIMESTAMP '2023-01-06 08:00' FROM generate_series(1, 25) g")
        conn.commit()
    registry_file = tmp_path / "tables.toml"
    registry_file.write_text(resources.files("lakehouse_core").joinpath("tables.toml").read_text() + """
[tables.loyalty_card]
kind = "mutable"
primary_key = ["id"]
load_mode = "incremental"
cursor = "xmin"
""")
    settings = shop.model_copy(update={"registry_path": registry_file})
    spec = Registry.load(settings).get("loyalty_card")
    day4 = DataInterval.parse("2023-01-07T00:00:00+07:00", "2023-01-08T00:00:00+07:00")

    extract_table(spark, settings, spec, day4, source_state(settings))
    run_gate(spark, settings, "bronze", day4.batch_id, ["loyalty_card"])
    transform_table(spark, settings, spec, day4)
    report = run_gate(spark, settings, "silver", day4.batch_id, ["loyalty_card"])
    assert report.published == ["silver.loyalty_card"]
    assert spark.table("lakehouse.silver.loyalty_card").count() == 25


def test_incompatible_silver_change_fails_with_nothing_written(spark, shop, monkeypatch):
    """A transformer turning a decimal column into text cannot evolve silver: the batch that brings
    customers to merge fails naming the table, the column and both types, before writing silver or
    quarantine (a batch that lands no customer leaves the table as published, untransformed)."""
    from lakehouse_core.schema import SchemaDriftError
    from lakehouse_silver import transform

    monkeypatch.setitem(transform.TRANSFORMERS, "customers",
                        lambda df: df.withColumn("total_spent", F.col("total_spent").cast("string")))
    from lakehouse_bronze.extract import extract_table
    from lakehouse_bronze.source import source_state

    spec = Registry.load(shop).get("customers")
    later = DataInterval.parse("2023-01-09T00:00:00+07:00", "2023-01-10T00:00:00+07:00")
    with postgres.connect(shop.source, shop) as conn, conn.cursor() as cur:
        cur.execute("UPDATE customers SET total_spent = total_spent + 1 WHERE id = (SELECT min(id) FROM customers)")
        conn.commit()
    extract_table(spark, shop, spec, later, source_state(shop))
    run_gate(spark, shop, "bronze", later.batch_id, ["customers"])
    watched = ["lakehouse.silver.customers", "lakehouse.quarantine.silver_customers"]
    before = {t: iceberg.snapshot_id(spark, t) for t in watched if iceberg.table_exists(spark, t)}
    with pytest.raises(SchemaDriftError, match=r"silver\.customers changed incompatibly.*total_spent: decimal\(\d+,\d+\) -> string"):
        transform.transform_table(spark, shop, spec, later)
    assert {t: iceberg.snapshot_id(spark, t) for t in before} == before
    assert not iceberg.branch_exists(spark, "lakehouse.silver.customers", iceberg.audit_branch(later.batch_id))


def test_a_fact_is_rebuilt_exactly_from_the_silver_snapshots_its_commit_records(spark, shop):
    """Gold reads silver at pinned snapshots and records them: the published fact can be computed
    again from its commit alone, even after silver moved on (here: an order removed from silver)."""
    from lakehouse_gold.build import BuildContext, SilverSnapshots
    from lakehouse_gold.tables import GOLD_TABLES

    fact, gold = GOLD_TABLES["fct_orders"], identifier("gold", "fct_orders")
    recorded = {t: int(i) for t, i in json.loads(iceberg.summary(spark, gold)["lakehouse.upstream_snapshot"]).items()}
    assert set(recorded) == set(fact.upstream)
    assert set(json.loads(iceberg.summary(spark, gold)["lakehouse.gold_upstream_snapshot"])) == {"dim_customer"}
    published = spark.table(gold)
    interval = DAY2  # the last batch gold published (batch 3 stopped at the bronze gate)
    assert iceberg.summary(spark, gold)["lakehouse.batch_id"] == interval.batch_id
    spark.sql("DELETE FROM lakehouse.silver.orders WHERE id = (SELECT min(id) FROM lakehouse.silver.orders)")

    def build(silver):
        return fact.build(BuildContext(silver, shop, interval, gold_tables=fact.depends_on))

    again = build(SilverSnapshots(spark, recorded))
    assert again.exceptAll(published).count() == 0 and published.exceptAll(again).count() == 0
    moved = build(SilverSnapshots.current(spark, fact.upstream))
    assert published.exceptAll(moved).count() > 0  # the pin is what kept the result
    with pytest.raises(KeyError, match="silver.customers is not an upstream table"):
        SilverSnapshots(spark, recorded).read("customers")
