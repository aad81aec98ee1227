"""Gold marts: business metrics at a declared grain (metrics only through ``lakehouse_gold.metrics``).

A mart only covers business days that ended by the end of the run's data interval.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse_core.batch import DataInterval
from lakehouse_core.settings import LakehouseSettings
from lakehouse_gold import metrics
from lakehouse_gold.build import GoldTable, SilverSnapshots, business_day


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


MARTS = [
    GoldTable("mart_daily_sales", ["order_day"], build_daily_sales, ("orders", "order_items", "order_channel")),
]
