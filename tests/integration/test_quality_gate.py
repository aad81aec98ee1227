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
