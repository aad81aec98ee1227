"""Column lineage read from a DataFrame's plan (``lakehouse_core.plan_lineage``): what a gold build
reports for each column, though it writes checkpointed rows."""

from __future__ import annotations

import json

import pytest
from openlineage.client.serde import Serde
from pyspark.sql import Window
from pyspark.sql import functions as F

from lakehouse_core import iceberg
from lakehouse_core.plan_lineage import column_lineage

pytestmark = pytest.mark.spark

ORDERS, CUSTOMERS = "lakehouse.silver.lineage_orders", "lakehouse.silver.lineage_customers"


@pytest.fixture(scope="module")
def tables(spark):
    for ident, columns in ((ORDERS, "id BIGINT, customer_id BIGINT, amount DECIMAL(12,2), day DATE, tags ARRAY<STRING>"),
                           (CUSTOMERS, "id BIGINT, city STRING, email_hash STRING")):
        spark.sql(f"DROP TABLE IF EXISTS {ident} PURGE")
        spark.sql(f"CREATE TABLE {ident} ({columns}) USING iceberg")
    yield {ident.rsplit(".", 1)[-1]: iceberg.java_table(spark, ident).location() for ident in (ORDERS, CUSTOMERS)}
    for ident in (ORDERS, CUSTOMERS):
        spark.sql(f"DROP TABLE IF EXISTS {ident} PURGE")


def _named(sources, locations) -> set[tuple[str, str, str]]:
    names = {location: name for name, location in locations.items()}
    return {(names[s.source], s.column, s.subtype) for s in sources}


def test_each_column_is_traced_to_the_columns_its_value_comes_from(spark, tables):
    orders, customers = spark.table(ORDERS), spark.table(CUSTOMERS)
    daily = (orders.where(F.col("amount") > 0).join(customers, orders.customer_id == customers.id)
             .groupBy("day", F.col("city").alias("town")).agg(F.sum("amount").alias("revenue"),
                                                              F.count("*").alias("orders")))
    df = (daily.unionByName(daily.withColumn("town", F.upper("town")))
          .withColumn("rank", F.row_number().over(Window.partitionBy("day").orderBy("revenue")))
          .withColumn("source_system", F.lit("shop")))

    lineage = column_lineage(df)
    fields = {column: _named(sources, tables) for column, sources in lineage.fields.items()}
    assert fields == {
        "day": {("lineage_orders", "day", "IDENTITY")},
        # a rename in one branch of the union, upper-cased in the other: the stronger derivation
        "town": {("lineage_customers", "city", "TRANSFORMATION")},
        "revenue": {("lineage_orders", "amount", "AGGREGATION")},
        "orders": set(),  # count(*) reads no column
        "rank": {("lineage_orders", "day", "TRANSFORMATION"), ("lineage_orders", "amount", "AGGREGATION")},
        "source_system": set(),
    }
    assert _named(lineage.dataset, tables) == {
        ("lineage_orders", "amount", "FILTER"), ("lineage_orders", "customer_id", "JOIN"),
        ("lineage_customers", "id", "JOIN"), ("lineage_orders", "day", "GROUP_BY"),
        ("lineage_customers", "city", "GROUP_BY"), ("lineage_orders", "day", "WINDOW"),
        ("lineage_orders", "amount", "WINDOW")}
    # a valid OpenLineage facet: INDIRECT for the whole dataset, DIRECT per column
    facet = json.loads(Serde.to_json(lineage.facet()))
    assert {t["type"] for f in facet["dataset"] for t in f["transformations"]} == {"INDIRECT"}
    assert facet["fields"]["revenue"]["inputFields"][0]["transformations"][0] == {
        "type": "DIRECT", "subtype": "AGGREGATION", "description": "computed from it", "masking": False}
    assert "orders" not in facet["fields"]


def test_generated_columns_and_checkpointed_rows(spark, tables):
    """An exploded column comes from the array it explodes; rows checkpointed before are opaque
    (no source, and ``empty`` when nothing is traced)."""
    tags = spark.table(ORDERS).select("id", F.explode("tags").alias("tag"))
    assert {c: _named(s, tables) for c, s in column_lineage(tags).fields.items()} == {
        "id": {("lineage_orders", "id", "IDENTITY")}, "tag": {("lineage_orders", "tags", "TRANSFORMATION")}}
    checkpointed = column_lineage(spark.table(ORDERS).localCheckpoint().select("id"))
    assert checkpointed.fields == {"id": []} and checkpointed.empty
