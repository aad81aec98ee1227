"""Conformed dimensions (type 1: current attributes, rebuilt from silver every batch).

Each row has a surrogate key ``<dimension>_key``: a 64-bit hash of the natural key, so it is
stable across rebuilds and computable by facts without a lookup. Personal data stays out
(the warehouse's manager and phone are not dimension attributes).
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse_core.batch import DataInterval
from lakehouse_core.settings import LakehouseSettings
from lakehouse_gold.build import GoldTable, SilverSnapshots, business_day


def surrogate_key(*natural_key: Column) -> Column:
    """A stable 64-bit key for a natural key (xxhash64 of its columns)."""
    return F.xxhash64(*natural_key)


def build_dim_channel(silver: SilverSnapshots, settings: LakehouseSettings, interval: DataInterval) -> DataFrame:
    """One row per sales channel (``order_channel``)."""
    return silver.read("order_channel").select(
        surrogate_key(F.col("id")).alias("channel_key"), F.col("id").alias("channel_id"),
        F.col("name").alias("channel_name"), "is_active")


def build_dim_geography(silver: SilverSnapshots, settings: LakehouseSettings, interval: DataInterval) -> DataFrame:
    """One row per ward, with its district and province."""
    return silver.read("geo_location").select(
        surrogate_key(F.col("ward_code")).alias("geography_key"), "ward_code", "ward_name", "ward_type",
        "district_name", "province_name")


def build_dim_warehouse(silver: SilverSnapshots, settings: LakehouseSettings, interval: DataInterval) -> DataFrame:
    """One row per warehouse, with the province it is in."""
    wards = silver.read("geo_location").select(F.col("ward_code").alias("geo_location_id"), "province_name")
    return silver.read("warehouse").join(wards, "geo_location_id", "left").select(
        surrogate_key(F.col("id")).alias("warehouse_key"), F.col("id").alias("warehouse_id"),
        F.col("name").alias("warehouse_name"), "capacity_sqm", "province_name", "is_active")


def build_dim_carrier(silver: SilverSnapshots, settings: LakehouseSettings, interval: DataInterval) -> DataFrame:
    """One row per carrier (``logistics_partner``)."""
    return silver.read("logistics_partner").select(
        surrogate_key(F.col("id")).alias("carrier_key"), F.col("id").alias("carrier_id"),
        F.col("name").alias("carrier_name"), "rating", "is_active")


def build_dim_shipping_method(silver: SilverSnapshots, settings: LakehouseSettings,
                              interval: DataInterval) -> DataFrame:
    """One row per shipping method, with its promised delivery time in hours."""
    return silver.read("shipping_method").select(
        surrogate_key(F.col("id")).alias("shipping_method_key"), F.col("id").alias("shipping_method_id"),
        F.col("name").alias("shipping_method_name"), F.col("estimated_delivery_time").alias("promised_hours"),
        "is_active")


def build_dim_product(silver: SilverSnapshots, settings: LakehouseSettings, interval: DataInterval) -> DataFrame:
    """One row per product with its brand, sub-category and category flattened in."""
    read = silver.read
    brands = read("brand").select(F.col("id").alias("brand_id"), F.col("name").alias("brand_name"),
                                  F.col("country").alias("brand_country"))
    subs = read("sub_category").select(F.col("id").alias("sub_category_id"),
                                       F.col("name").alias("sub_category_name"), "category_id")
    categories = read("category").select(F.col("id").alias("category_id"), F.col("name").alias("category_name"))
    return (read("product").join(brands, "brand_id", "left").join(subs, "sub_category_id", "left")
            .join(categories, "category_id", "left")
            .select(surrogate_key(F.col("id")).alias("product_key"), F.col("id").alias("product_id"),
                    "product_sku", F.col("name").alias("product_name"), "price", "brand_id", "brand_name",
                    "brand_country", "sub_category_id", "sub_category_name", "category_id", "category_name",
                    "is_active"))


def build_dim_date(silver: SilverSnapshots, settings: LakehouseSettings, interval: DataInterval) -> DataFrame:
    """One row per business day from the first order's day through the last day the run covers."""
    last = interval.end_in_zone(settings.business_zone).date() - timedelta(days=1)
    first = silver.read("orders").select(F.min(business_day(F.col("order_date"), settings))).first()[0] or last
    days = silver.spark.sql(f"SELECT explode(sequence(DATE'{min(first, last)}', DATE'{last}')) AS day")
    return days.select(
        F.date_format("day", "yyyyMMdd").cast("int").alias("date_key"), F.col("day").alias("date"),
        F.year("day").alias("year"), F.quarter("day").alias("quarter"), F.month("day").alias("month"),
        F.weekofyear("day").alias("iso_week"), F.dayofweek("day").alias("day_of_week"),
        F.dayofweek("day").isin(1, 7).alias("is_weekend"))


DIMENSIONS = [
    GoldTable("dim_date", [], build_dim_date, ("orders",)),
    GoldTable("dim_channel", [], build_dim_channel, ("order_channel",)),
    GoldTable("dim_geography", [], build_dim_geography, ("geo_location",)),
    GoldTable("dim_warehouse", [], build_dim_warehouse, ("warehouse", "geo_location")),
    GoldTable("dim_carrier", [], build_dim_carrier, ("logistics_partner",)),
    GoldTable("dim_shipping_method", [], build_dim_shipping_method, ("shipping_method",)),
    GoldTable("dim_product", [], build_dim_product, ("product", "brand", "sub_category", "category")),
]
