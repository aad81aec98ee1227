"""A bronze batch's gate decided from Iceberg's file metrics (``quality_scan.decide_from_file_metrics``).

The metrics may only prove a pass: on a table partitioned by batch, every case below is decided
from the metrics exactly when they show that it passes and that the rows are whole files, and
then the scan (held to Great Expectations' own verdict in ``test_quality_scan``) passes it on the
same rows, counting the same rows. Everything else (a failing check, a check the bounds cannot
show: doubles, truncated strings, a row condition, uniqueness) is left to the scan.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from lakehouse_core import quality_scan

pytestmark = pytest.mark.spark

LONG = "a name longer than Iceberg's 16-character bounds"
SCHEMA = "id long, batch string, op string, amount decimal(10,2), qty int, score double, name string"
GOOD = [[(1, "good", "upsert", Decimal("0.00"), 1, 0.5, LONG), (2, "good", "upsert", Decimal("3.10"), 5, 1.5, LONG)],
        [(3, "good", "upsert", Decimal("7.25"), 2, None, None), (4, "good", "upsert", None, 3, 2.0, LONG)]]
BAD = [[(None, "bad", "upsert", Decimal("-1.00"), 0, 0.5, LONG), (5, "bad", "delete", None, None, None, None)],
       [(6, "bad", "delete", None, None, None, None)]]


def _e(kind: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": "fail"}}


NOT_NULL, IN_SET, BETWEEN = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set",
                             "expect_column_values_to_be_between")
TYPES = "expect_column_values_to_be_in_type_list"
#: (batch, expectations, decided from the metrics)
CASES = [
    ("good", [_e(NOT_NULL, column="id"), _e(TYPES, column="id", type_list=["LongType"])], True),
    ("good", [_e(IN_SET, column="op", value_set=["upsert", "delete"])], True),
    ("good", [_e(BETWEEN, column="amount", min_value=0), _e(BETWEEN, column="qty", min_value=1, max_value=5)], True),
    ("good", [_e(BETWEEN, column="amount", min_value=0, max_value=7.25), _e(IN_SET, column="qty", value_set=[1, 2, 3, 5])],
     False),  # (the qty files hold 1..5 and 2..3: their bounds do not show a set)
    ("good", [_e(BETWEEN, column="qty", min_value=1, strict_min=True)], False),  # fails
    ("good", [_e(BETWEEN, column="qty", min_value=1, max_value=5, strict_max=True)], False),  # fails
    ("good", [_e(BETWEEN, column="score", min_value=0)], False),  # a double: NaN is within no bounds
    ("good", [_e(IN_SET, column="name", value_set=[LONG])], False),  # truncated bounds
    ("good", [_e(NOT_NULL, column="id", row_condition="qty > 1", condition_parser="spark")], False),
    ("good", [_e(NOT_NULL, column="amount", mostly=0.5)], False),
    ("good", [_e(NOT_NULL, column="id"), _e("expect_column_values_to_be_unique", column="id")], False),
    ("good", [_e(IN_SET, column="op", value_set=["delete"])], False),  # fails
    ("good", [_e(NOT_NULL, column="missing")], False),
    ("good", [_e(NOT_NULL, column="id"), _e(TYPES, column="id", type_list=["StringType"])], False),  # fails
    ("good", [_e(BETWEEN, column="amount")], False),  # no bound: GE's to judge
    ("bad", [_e(NOT_NULL, column="id")], False),  # fails
    ("bad", [_e(IN_SET, column="op", value_set=["upsert", "delete"])], False),  # passes: two values in a file
    ("bad", [_e(BETWEEN, column="amount", min_value=0)], False),  # fails
    ("bad", [_e(NOT_NULL, column="batch")], True),
    ("none", [_e(NOT_NULL, column="id")], True),  # no file: nothing to check
]


@pytest.fixture(scope="module")
def table(spark):
    ident = f"lakehouse.metrics_test.t{uuid.uuid4().hex[:8]}"
    spark.sql("CREATE NAMESPACE IF NOT EXISTS lakehouse.metrics_test")
    spark.sql(f"CREATE TABLE {ident} ({SCHEMA}) USING iceberg PARTITIONED BY (batch)")
    for rows in GOOD + BAD:  # (two appends a batch: files of each)
        spark.createDataFrame(rows, SCHEMA).writeTo(ident).append()
    yield ident
    spark.sql(f"DROP TABLE {ident} PURGE")
    spark.sql("DROP NAMESPACE lakehouse.metrics_test")  # (tests of this process list the namespaces)


@pytest.mark.parametrize("batch, expectations, decided", CASES,
                         ids=[f"{i}-{c[0]}-{c[1][0]['type'].split('_to_')[-1]}" for i, c in enumerate(CASES)])
def test_the_metrics_decide_a_pass_exactly_where_they_show_it(spark, table, batch, expectations, decided):
    df = spark.table(table)
    suite = {"name": "t", "expectations": expectations}
    by_metrics = quality_scan.decide_from_file_metrics(df, suite, table, "main", "batch", batch)
    scanned = quality_scan.decide(df.where(F.col("batch") == batch), suite)
    assert (by_metrics is not None) == decided, (by_metrics, scanned)
    if by_metrics is not None:
        assert scanned is not None and scanned.success, scanned
        assert by_metrics == quality_scan.ScanDecision(scanned.rows, scanned.passed, quality_scan.FILE_METRICS)


def test_rows_that_are_not_whole_files_are_left_to_the_scan(spark, table):
    suite = {"name": "t", "expectations": [_e(NOT_NULL, column="batch")]}
    df = spark.table(table)
    assert quality_scan.decide_from_file_metrics(df, suite, table, "main", "op", "upsert") is None
    assert quality_scan.decide_from_file_metrics(df, suite, table, "main", "batch", "good").rows == 4
