"""The gate's own guarantees, on small frames: bounded failing-row collection, declared columns exist."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from lakehouse_core.quality import MAX_REPORTED_KEYS, GreatExpectationsRunner
from lakehouse_core.registry import RegistryError, TableSpec

pytestmark = pytest.mark.spark


def test_failing_rows_are_counted_exactly_but_collected_up_to_a_cap(spark, settings):
    rows = 5_000
    df = spark.range(rows).withColumn("amount", F.when(F.col("id") % 5 == 0, F.lit(-1)).otherwise(F.col("id")))
    suite = {"name": "t", "meta": {"primary_key": ["id"]}, "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0},
         "meta": {"severity": "fail"}}]}
    (outcome,) = GreatExpectationsRunner(settings).validate("test.capped", df, suite, ["id"], run_name="capped")
    assert not outcome.success and outcome.unexpected_count == rows // 5
    assert len(outcome.failing_keys) == MAX_REPORTED_KEYS
    assert all(k["id"] % 5 == 0 and set(k) == {"id"} for k in outcome.failing_keys)


def test_registry_column_missing_from_the_table_is_an_error(spark, settings):
    """A pii column the table does not have would be skipped, leaving personal data unmasked."""
    from lakehouse_silver.transform import conform

    spec = TableSpec(name="people", kind="mutable", primary_key=("id",), load_mode="full",
                     pii={"emial": "email"})
    df = spark.createDataFrame([(1, "a@example.com")], "id int, email string")
    with pytest.raises(RegistryError, match=r"registry table people: pii column 'emial' not in bronze.people "
                                            r"\(columns: email, id\)"):
        conform(df, spec, settings)


def test_gold_batch_reconciliations_of_a_gated_subset(spark, settings):
    """Gating a subset of gold (``--tables``): the reconciliations of tables outside it are NULL and
    skipped, those of the tables in it still decide (a GMV that differs from silver's fails)."""
    from lakehouse_core.quality import TableReport, _batch_frame, load_suite

    suite = load_suite(settings, "gold", "_batch")

    def outcomes(gmv_gold: str):
        state = {"lakehouse.reconcile.gmv.gold": gmv_gold, "lakehouse.reconcile.gmv.silver": "840.00",
                 "lakehouse.reconcile.orders.gold": "7", "lakehouse.reconcile.orders.silver": "7"}
        frame = _batch_frame([TableReport("gold.mart_daily_sales", 3, True, [], state),
                              TableReport("gold.dim_date", 3, True, [], {})], suite)
        assert {"stock_on_hand_gold", "shipments_silver"} <= set(frame.columns)
        return {o.column: o.success for o in GreatExpectationsRunner(settings).validate(
            "gold._batch", frame, suite, ["table"], run_name="subset")}

    assert all(outcomes("840.00").values())
    failed = [column for column, success in outcomes("839.99").items() if not success]
    assert failed == ["gmv_gold, gmv_silver"]


def _batch_outcomes(spark, settings, layer: str, *reports) -> dict[str, tuple[bool, str]]:
    """The ``_batch`` suite of ``layer`` (as shipped) over batch states: column → (success, severity)."""
    from lakehouse_core.quality import _batch_frame, load_suite

    suite = load_suite(settings, layer, "_batch")
    outcomes = GreatExpectationsRunner(settings).validate(f"{layer}._batch", _batch_frame(list(reports), suite),
                                                          suite, ["table"], run_name="crafted")
    return {o.column: (o.success, o.severity) for o in outcomes}


def test_bronze_batch_volume_is_checked_against_the_previous_batch(spark, settings):
    """Rows read from the source: the previous batch's volume passes, a tenth of it or six times
    it is flagged (warn); a table's first batch has nothing to compare with."""
    from lakehouse_core.quality import TableReport

    def volume(rows: int, previous: int | None) -> tuple[bool, str]:
        state = {"lakehouse.source_rows": str(rows), "lakehouse.deferred_rows": "0", "lakehouse.future_rows": "0"}
        before = {} if previous is None else {"lakehouse.source_rows": str(previous)}
        report = TableReport("bronze.orders", rows, True, [], state, before)
        return _batch_outcomes(spark, settings, "bronze", report)["source_rows_vs_previous"]

    assert volume(1_000, 1_000) == (True, "warn")
    assert volume(100, 1_000) == (False, "warn")
    assert volume(6_000, 1_000) == (False, "warn")
    assert volume(100, None) == (True, "warn")


def test_bronze_rows_landed_are_reconciled_with_the_rows_in_the_table(spark, settings):
    """What the extract says it appended (``landed_rows``) must be what the gate counts in the
    table for the batch (``batch_rows``): a row lost, or written twice, between the extract's
    count and the commit fails the gate."""
    from lakehouse_core.quality import TableReport

    def reconciled(landed: int, counted: int) -> tuple[bool, str]:
        state = {"lakehouse.source_rows": "120", "lakehouse.landed_rows": str(landed),
                 "lakehouse.deferred_rows": "0", "lakehouse.future_rows": "0"}
        report = TableReport("bronze.orders", counted, True, [], state, batch_rows=counted)
        return _batch_outcomes(spark, settings, "bronze", report)["landed_rows, batch_rows"]

    assert reconciled(100, 100) == (True, "fail")
    assert reconciled(100, 99) == (False, "fail")
    assert reconciled(100, 101) == (False, "fail")


def test_silver_freshness_is_checked_against_the_logical_date(spark, settings):
    """Newest event on the logical date or the day before passes; three days before is flagged
    (warn); a table without event time is not checked."""
    from lakehouse_core.quality import TableReport

    def freshness(lag: int | None) -> tuple[bool, str]:
        state = {"lakehouse.quarantined_rows": "0"}
        if lag is not None:
            state["lakehouse.measure.freshness_lag_days"] = str(lag)
        return _batch_outcomes(spark, settings, "silver", TableReport("silver.orders", 1, True, [], state))[
            "freshness_lag_days"]

    assert [freshness(lag) for lag in (0, 1, 3, None)] == [(True, "warn"), (True, "warn"), (False, "warn"),
                                                           (True, "warn")]


def test_row_level_suites_pass_on_no_rows_which_the_gate_skips(spark, settings):
    """The gate skips Great Expectations for a batch that added no rows to an append-only table
    when every expectation judges rows one by one: GE itself passes such a suite on no rows, and
    a suite with a table-level expectation (a row count) is still run."""
    from lakehouse_core.quality import load_suite, only_row_checks

    shipped = [load_suite(settings, layer, table) for layer, table in (
        ("bronze", "orders"), ("bronze", "order_items"), ("bronze", "customer_activity_log"),
        ("silver", "orders"), ("silver", "customer_activity_log"))]
    assert all(only_row_checks(suite) for suite in shipped)
    # a query expectation (silver lines' referential integrity) is not a row check: it always runs
    assert not only_row_checks(load_suite(settings, "silver", "order_items"))
    types = sorted({e["type"] for suite in shipped for e in suite["expectations"]})
    assert {"expect_column_values_to_be_in_set", "expect_column_values_to_be_between",
            "expect_column_values_to_be_unique", "expect_column_values_to_be_in_type_list"} <= set(types)
    ddl = {"IntegerType": "int", "LongType": "bigint", "StringType": "string", "DecimalType": "decimal(12,2)",
           "TimestampType": "timestamp", "TimestampNTZType": "timestamp_ntz", "DateType": "date"}
    runner = GreatExpectationsRunner(settings)
    for number, suite in enumerate(shipped):
        declared = {e["kwargs"]["column"]: ddl[e["kwargs"]["type_list"][-1]] for e in suite["expectations"]
                    if e["type"] == "expect_column_values_to_be_in_type_list"}
        empty = spark.createDataFrame([], ", ".join(f"`{c}` {t}" for c, t in sorted(declared.items())))
        outcomes = runner.validate(f"test.empty_{number}", empty, suite, [], run_name="empty")
        assert outcomes and all(o.success for o in outcomes), suite["name"]
    counted = {"name": "t", "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]}
    assert not only_row_checks(counted)
    assert not runner.validate("test.counted", spark.range(0), counted, [], run_name="empty")[0].success


@pytest.mark.parametrize("rule", [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "code"}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "code", "value_set": ["a", "b"]}},
    {"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "code", "value_set": ["b"]}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "min_value": 0, "max_value": 10}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "min_value": 0, "strict_min": True}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "code", "regex": "^[a-c]$"}},
    {"type": "expect_column_values_to_not_match_regex", "kwargs": {"column": "code", "regex": "z"}},
    {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "code", "min_value": 1, "max_value": 2}},
])
def test_silver_sets_aside_exactly_the_rows_great_expectations_finds(spark, settings, rule):
    """A suite rule of severity ``quarantine`` becomes a row condition in silver; the rows it sets
    aside are the rows Great Expectations counts as unexpected for the same rule (NULLs included)."""
    from lakehouse_core.quality import QUARANTINE_TYPES
    from lakehouse_core.quality_scan import unexpected_rows

    assert rule["type"] in QUARANTINE_TYPES
    df = spark.createDataFrame([(1, "a", 5.0), (2, "b", 0.0), (3, "c", -1.0), (4, None, 11.0), (5, "zzz", None),
                                (6, "", 10.0)], "id int, code string, price double")
    suite = {"name": "t", "meta": {"primary_key": ["id"]}, "expectations": [{**rule, "meta": {"severity": "fail"}}]}
    (outcome,) = GreatExpectationsRunner(settings).validate("test.quarantine_rule", df, suite, ["id"], run_name="rule")
    set_aside = sorted(r.id for r in df.where(unexpected_rows(df, rule)).collect())
    assert sorted(k["id"] for k in outcome.failing_keys) == set_aside and outcome.unexpected_count == len(set_aside)


@pytest.mark.parametrize(("broken", "ddl"), [
    (None, "id int, status string, order_date timestamp, total_price decimal(12,2)"),
    (None, "id bigint, status string, order_date timestamp, total_price decimal(18,2)"),  # widened: still its family
    ("total_price", "id int, status string, order_date timestamp, total_price double"),
    ("id", "id string, status string, order_date timestamp, total_price decimal(12,2)"),
], ids=["as-declared", "widened", "amount-as-float", "key-as-text"])
def test_silver_suites_check_column_types(spark, settings, broken, ddl):
    """silver.orders' shipped suite declares each column's type family: money must stay decimal (a
    float silently rounds cents), keys integral (a widening the layers accept, int to bigint, stays
    valid); every other check passes on the same values."""
    from decimal import Decimal

    from lakehouse_core.quality import load_suite

    suite = load_suite(settings, "silver", "orders")
    df = spark.sql("SELECT 1 AS id, 'pending' AS status, TIMESTAMP '2023-01-04 03:00:00' AS order_date, "
                   "100.00 AS total_price").selectExpr(*[f"CAST({c.split()[0]} AS {c.split()[1]}) AS {c.split()[0]}"
                                                           for c in ddl.split(", ")])
    assert df.first().total_price in (Decimal("100.00"), 100.0)
    outcomes = GreatExpectationsRunner(settings).validate("silver.orders", df, suite, ["id"], run_name=f"types-{broken}")
    failed = [(o.expectation, o.column) for o in outcomes if not o.success]
    assert failed == ([] if broken is None else [("expect_column_values_to_be_in_type_list", broken)])
