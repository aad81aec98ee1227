"""Gold marts. Each mart is a function of silver and the run's data interval.

Results depend on the logical date of the run, never on the wall clock: a mart
only covers business days that ended by the end of the run's data interval. Silver
is read at pinned snapshots (``SilverSnapshots``: ``main`` of each upstream table when
the build starts), and the ids read are the ones committed as
``lakehouse.upstream_snapshot``, so a build can be repeated exactly from its commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse_core import iceberg
from lakehouse_core.batch import DataInterval
from lakehouse_core.registry import identifier
from lakehouse_core.settings import LakehouseSettings
from lakehouse_gold import metrics

PACKAGE = "lakehouse-gold"


@dataclass(frozen=True)
class SilverSnapshots:
    """Silver tables pinned at snapshot ids: what a mart reads, and all it may read."""

    spark: SparkSession
    ids: dict[str, int]

    @classmethod
    def current(cls, spark: SparkSession, tables: tuple[str, ...]) -> "SilverSnapshots":
        """``main`` of each table now (published silver)."""
        return cls(spark, {t: iceberg.snapshot_id(spark, identifier("silver", t)) for t in tables})

    def read(self, table: str) -> DataFrame:
        """``silver.<table>`` as of its pinned snapshot. Raises KeyError for a table not pinned
        (a mart reading a table it does not declare upstream)."""
        if table not in self.ids:
            raise KeyError(f"silver.{table} is not an upstream table of this build (pinned: {sorted(self.ids)})")
        return self.spark.read.option("snapshot-id", str(self.ids[table])).table(identifier("silver", table))


@dataclass(frozen=True)
class Mart:
    name: str
    partition_by: list[str]
    build: Callable[[SilverSnapshots, LakehouseSettings, DataInterval], DataFrame]
    upstream: tuple[str, ...]


def business_day(ts: F.Column, settings: LakehouseSettings) -> F.Column:
    """The calendar day of a UTC instant in the business zone."""
    return F.to_date(F.from_utc_timestamp(ts, settings.business_zone))


def build_daily_sales(silver: SilverSnapshots, settings: LakehouseSettings, interval: DataInterval) -> DataFrame:
    """Daily sales at order grain: one row per (business day, channel).

    Order lines are aggregated per order *before* joining, so orders never fan out.
    """
    read = silver.read
    lines = read("order_items").groupBy("order_id").agg(F.sum("quantity").alias("quantity"))
    channels = read("order_channel").select(F.col("id").alias("order_channel_id"), F.col("name").alias("channel"))
    last_day = F.lit(interval.end_in_zone(settings.business_zone).date())
    orders = (read("orders")
              .join(lines, F.col("id") == F.col("order_id"), "left")
              .join(channels, "order_channel_id", "left")
              .withColumn("order_day", business_day(F.col("order_date"), settings))
              .where(F.col("order_day") < last_day))
    status, total = F.col("status"), F.col("total_price")
    return (orders.groupBy("order_day", F.coalesce("channel", F.lit("unknown")).alias("channel"))
            .agg(metrics.order_count().alias("order_count"),
                 metrics.cancelled_order_count(status).alias("cancelled_order_count"),
                 metrics.gmv(total, status).alias("gmv"),
                 metrics.aov(total, status).alias("aov"),
                 metrics.units_sold(F.col("quantity"), status).alias("units_sold")))


MARTS: dict[str, Mart] = {
    m.name: m for m in [
        Mart("mart_daily_sales", ["order_day"], build_daily_sales, ("orders", "order_items", "order_channel")),
    ]
}


@dataclass(frozen=True)
class GoldResult:
    table: str
    rows: int
    skipped: bool = False


def build_mart(spark: SparkSession, settings: LakehouseSettings, mart: Mart, interval: DataInterval) -> GoldResult:
    """Rebuild ``gold.<mart>`` on the batch's audit branch, recording the silver snapshots read.

    Raises BatchOrderError when a newer batch is already published and
    UpstreamNotPublishedError when the silver batch of an upstream table is not published.
    """
    ident = identifier("gold", mart.name)
    batch_id = interval.batch_id
    start = iceberg.start_batch(spark, ident, batch_id)
    if start.already_published:
        return GoldResult(mart.name, 0, skipped=True)
    for table in mart.upstream:
        iceberg.require_published(spark, identifier("silver", table), batch_id, f"gold.{mart.name}")
    silver = SilverSnapshots.current(spark, mart.upstream)
    df = mart.build(silver, settings, interval).localCheckpoint()
    if not start.exists:
        iceberg.create_table(spark, ident, df.schema, partition_by=mart.partition_by)
    iceberg.stage(spark, ident, batch_id, lambda target: df.writeTo(target).overwrite(F.lit(True)), PACKAGE,
                  {"lakehouse.upstream_snapshot": iceberg.encode(silver.ids)})
    return GoldResult(mart.name, df.count())
