"""Conformed dimensions.

Type 1 dimensions (channel, geography, warehouse, carrier, shipping method, payment method,
product, date) hold current attributes and are rebuilt from silver every batch. The customer
dimension is type 2: a new version whenever the customer's tier or location changes
(``valid_from`` / ``valid_to`` / ``is_current``), maintained from the silver changes of each
batch; closed versions are never rewritten.

Each row has a surrogate key ``<dimension>_key``: a 64-bit hash of the natural key (plus
``valid_from`` for customer versions), so it is stable across rebuilds and computable by facts
without a lookup. Personal data stays out (the customer's name, email and phone, the
warehouse's manager and phone are not dimension attributes).
"""

from __future__ import annotations

import operator
from datetime import date, datetime, time, timedelta
from functools import reduce
from zoneinfo import ZoneInfo

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse_core.batch import DataInterval
from lakehouse_core.business_days import edge_business_day
from lakehouse_gold.build import BuildContext, GoldTable


def surrogate_key(*natural_key: Column) -> Column:
    """A stable 64-bit key for a natural key: xxhash64 of its columns' text, so an id hashes the
    same whatever its integer width in a table (``int`` id, ``bigint`` foreign key)."""
    return F.xxhash64(*[column.cast("string") for column in natural_key])


def build_dim_channel(ctx: BuildContext) -> DataFrame:
    """One row per sales channel (``order_channel``)."""
    return ctx.silver.read("order_channel").select(
        surrogate_key(F.col("id")).alias("channel_key"), F.col("id").alias("channel_id"),
        F.col("name").alias("channel_name"), "is_active")


def build_dim_geography(ctx: BuildContext) -> DataFrame:
    """One row per ward, with its district and province."""
    return ctx.silver.read("geo_location").select(
        surrogate_key(F.col("ward_code")).alias("geography_key"), "ward_code", "ward_name", "ward_type",
        "district_name", "province_name")


def build_dim_warehouse(ctx: BuildContext) -> DataFrame:
    """One row per warehouse, with the province it is in."""
    wards = ctx.silver.read("geo_location").select(F.col("ward_code").alias("geo_location_id"), "province_name")
    return ctx.silver.read("warehouse").join(wards, "geo_location_id", "left").select(
        surrogate_key(F.col("id")).alias("warehouse_key"), F.col("id").alias("warehouse_id"),
        F.col("name").alias("warehouse_name"), "capacity_sqm", "province_name", "is_active")


def build_dim_carrier(ctx: BuildContext) -> DataFrame:
    """One row per carrier (``logistics_partner``)."""
    return ctx.silver.read("logistics_partner").select(
        surrogate_key(F.col("id")).alias("carrier_key"), F.col("id").alias("carrier_id"),
        F.col("name").alias("carrier_name"), "rating", "is_active")


def build_dim_shipping_method(ctx: BuildContext) -> DataFrame:
    """One row per shipping method, with its promised delivery time in hours."""
    return ctx.silver.read("shipping_method").select(
        surrogate_key(F.col("id")).alias("shipping_method_key"), F.col("id").alias("shipping_method_id"),
        F.col("name").alias("shipping_method_name"), F.col("estimated_delivery_time").alias("promised_hours"),
        "is_active")


def build_dim_payment_method(ctx: BuildContext) -> DataFrame:
    """One row per payment method (silver's canonical spelling: ``momo``, ``cod``, ...) used by a
    payment, plus ``unknown`` for payments without one."""
    methods = ctx.silver.read("payment").select(F.coalesce("payment_method", F.lit("unknown")).alias("method"))
    return methods.union(ctx.spark.createDataFrame([("unknown",)], "method string")).distinct().select(
        surrogate_key(F.col("method")).alias("payment_method_key"), F.col("method").alias("payment_method"),
        F.col("method").isin("cod").alias("is_cash_on_delivery"))


def payment_method_key(method: Column) -> Column:
    """The payment method key of a silver ``payment_method`` value (NULL → ``unknown``)."""
    return surrogate_key(F.coalesce(method, F.lit("unknown")))


def build_dim_product(ctx: BuildContext) -> DataFrame:
    """One row per product with its brand, sub-category and category flattened in."""
    read = ctx.silver.read
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


def build_dim_date(ctx: BuildContext) -> DataFrame:
    """A calendar: one row per business day from the first order's day through the end of the year
    after the run's logical date. Facts hold rows dated after the logical date (committed after
    the interval ended, read by the same batch; a backfill's first run reads the source as it is
    now): their days are rows of the calendar too. A day beyond it fails the facts' gate. The
    orders up to the end of the calendar's first day as last published are read first."""
    last = date(ctx.as_of.year + 1, 12, 31)
    zone = ctx.settings.business_zone
    previous, near = ctx.previous("dim_date"), None
    if previous is not None:
        first_before = previous.select(F.min("date")).first()[0]
        near = None if first_before is None else datetime.combine(first_before + timedelta(days=1), time(), ZoneInfo(zone))
    first = edge_business_day(ctx.silver.read("orders"), "order_date", zone, last=False, near=near) or ctx.as_of
    days = ctx.spark.sql(f"SELECT explode(sequence(DATE'{min(first, ctx.as_of)}', DATE'{last}')) AS day")
    return days.select(
        date_key(F.col("day")).alias("date_key"), F.col("day").alias("date"),
        F.year("day").alias("year"), F.quarter("day").alias("quarter"), F.month("day").alias("month"),
        F.weekofyear("day").alias("iso_week"), F.dayofweek("day").alias("day_of_week"),
        F.dayofweek("day").isin(1, 7).alias("is_weekend"))


def date_key(day: Column) -> Column:
    """The ``dim_date`` key of a day: ``yyyyMMdd`` as an int."""
    return F.date_format(day, "yyyyMMdd").cast("int")


# --- customers: type 2 -------------------------------------------------------------------------

#: Attributes whose change opens a new version (type 2); the others are overwritten on the
#: current version (type 1).
CUSTOMER_TRACKED = ("tier", "geo_location_id")
CUSTOMER_TYPE1 = ("customer_code", "registration_channel_id", "is_active", "created_at")
VERSION_COLUMNS = ("customer_key", "customer_id", "version", "valid_from", "valid_to", "is_current")
ATTRIBUTES = ("customer_code", "tier", "geo_location_id", "province_name", "registration_channel_id",
              "is_active", "created_at")


def _customer_state(ctx: BuildContext, customers: DataFrame) -> DataFrame:
    """Silver customers → the dimension's attributes (no personal data)."""
    wards = ctx.silver.read("geo_location").select(F.col("ward_code").alias("geo_location_id"), "province_name")
    return customers.join(wards, "geo_location_id", "left").select(
        F.col("id").alias("customer_id"), "customer_code", "tier", "geo_location_id", "province_name",
        F.col("order_channel_id").alias("registration_channel_id"), "is_active", "created_at")


def _any_differs(columns: tuple[str, ...]) -> Column:
    return reduce(operator.or_, [~F.col(c).eqNullSafe(F.col(f"old_{c}")) for c in columns])


def customer_versions_step(dim: DataFrame, state: DataFrame, interval: DataInterval) -> DataFrame:
    """The dimension rows one batch changes: versions to insert and current versions to update.

    ``dim`` is the dimension before the batch, ``state`` the customers as silver holds them
    after it. A customer seen for the first time opens version 1, valid from its ``created_at``;
    a change of a tracked attribute (tier, location) closes the current version at the end of
    the batch's data interval (when the change was observed) and opens the next one; a customer
    gone from silver closes its current version (and one coming back opens a new one); a change
    of another attribute updates the current version in place. Closed versions are never
    returned, so never rewritten.
    """
    observed = F.lit(interval.end).cast("timestamp")
    latest = (dim.withColumn("_rn", F.row_number().over(Window.partitionBy("customer_id").orderBy(F.desc("version"))))
              .where("_rn = 1").drop("_rn"))
    old = latest.select([F.col(c).alias(f"old_{c}") for c in (*VERSION_COLUMNS, *ATTRIBUTES)])
    pair = state.join(old, state.customer_id == old.old_customer_id, "full_outer")
    is_open = F.coalesce(F.col("old_is_current"), F.lit(False))
    present, known = F.col("customer_id").isNotNull(), F.col("old_customer_id").isNotNull()
    tracked_changed = _any_differs(CUSTOMER_TRACKED)
    no_end = F.lit(None).cast("timestamp")

    valid_from = F.when(known, observed).otherwise(F.coalesce(F.col("created_at"), observed))
    opened = pair.where(present & (~is_open | tracked_changed)).select(
        surrogate_key(F.col("customer_id"), valid_from).alias("customer_key"), "customer_id",
        F.coalesce(F.col("old_version") + 1, F.lit(1)).alias("version"), valid_from.alias("valid_from"),
        no_end.alias("valid_to"), F.lit(True).alias("is_current"), *ATTRIBUTES)
    closed = pair.where(is_open & (~present | tracked_changed)).select(
        *[F.col(f"old_{c}").alias(c) for c in VERSION_COLUMNS[:4]], observed.alias("valid_to"),
        F.lit(False).alias("is_current"), *[F.col(f"old_{c}").alias(c) for c in ATTRIBUTES])
    updated = pair.where(is_open & present & ~tracked_changed & _any_differs(CUSTOMER_TYPE1)).select(
        *[F.col(f"old_{c}").alias(c) for c in VERSION_COLUMNS],
        *[F.col(c if c in CUSTOMER_TYPE1 else f"old_{c}").alias(c) for c in ATTRIBUTES])
    return opened.unionByName(closed).unionByName(updated)


def _apply(dim: DataFrame, changes: DataFrame) -> DataFrame:
    return dim.join(changes.select("customer_key"), "customer_key", "left_anti").unionByName(changes)


def build_dim_customer(ctx: BuildContext) -> DataFrame:
    """The customer versions changed by silver's batches since the last build (incremental: the
    run's batch, or each batch gold did not see, in order) or, when rebuilt, every version from
    silver's history replayed batch by batch (the same step, so both give the same rows)."""
    previous = ctx.previous("dim_customer")
    if previous is None:
        dim = ctx.spark.createDataFrame([], _customer_state(ctx, ctx.silver.read("customers")).limit(0).select(
            surrogate_key(F.col("customer_id")).alias("customer_key"), "customer_id", F.lit(1).alias("version"),
            F.col("created_at").alias("valid_from"), F.col("created_at").alias("valid_to"),
            F.lit(True).alias("is_current"), *ATTRIBUTES).schema)
    else:
        dim = previous
    steps = []
    for interval, customers in ctx.silver.history("customers", after=None if previous is None else ctx.previous_batch):
        if previous is None and steps:  # a rebuild: many steps, the plan cut before each (not after
            dim = dim.localCheckpoint()  # the last: the build reads its column lineage from the plan)
        steps.append(customer_versions_step(dim, _customer_state(ctx, customers), interval))
        dim = _apply(dim, steps[-1])
    if previous is None:
        return dim
    return reduce(_apply, steps)  # the rows the batches changed, a later batch's version of a row winning


def merge_versions(df: DataFrame, target: str) -> None:
    """Insert new versions, update current ones (by ``customer_key``); other rows untouched."""
    view = "gold_dim_customer_changes"
    df.createOrReplaceTempView(view)
    df.sparkSession.sql(f"""
        MERGE INTO {target} t USING {view} s ON t.customer_key = s.customer_key
        WHEN MATCHED THEN UPDATE SET *
        WHEN NOT MATCHED THEN INSERT *""")


def customer_key_at(events: DataFrame, customers: DataFrame, event_time: str,
                    customer_id: str = "customer_id") -> DataFrame:
    """``events`` with ``customer_key``: the customer version valid at the event's time (the
    first version for an event before it; NULL without a customer)."""
    versions = customers.select(F.col("customer_id").alias("_cid"), F.col("customer_key"),
                                F.col("valid_from").alias("_from"), F.col("valid_to").alias("_to"),
                                F.col("version").alias("_version"))
    at = F.col(event_time)
    matches = ((F.col(customer_id) == F.col("_cid")) & ((at >= F.col("_from")) | (F.col("_version") == 1))
               & (F.col("_to").isNull() | (at < F.col("_to"))))
    return events.join(versions, matches, "left").drop("_cid", "_from", "_to", "_version")


DIMENSIONS = [
    GoldTable("dim_date", build_dim_date, ("orders",)),
    GoldTable("dim_channel", build_dim_channel, ("order_channel",), reads_logical_date=False),
    GoldTable("dim_geography", build_dim_geography, ("geo_location",), reads_logical_date=False),
    GoldTable("dim_warehouse", build_dim_warehouse, ("warehouse", "geo_location"), reads_logical_date=False),
    GoldTable("dim_carrier", build_dim_carrier, ("logistics_partner",), reads_logical_date=False),
    GoldTable("dim_shipping_method", build_dim_shipping_method, ("shipping_method",), reads_logical_date=False),
    GoldTable("dim_payment_method", build_dim_payment_method, ("payment",), reads_logical_date=False),
    GoldTable("dim_product", build_dim_product, ("product", "brand", "sub_category", "category"),
              reads_logical_date=False),
    # its versions replay silver's published batches (their intervals, not the run's): a batch whose
    # silver tables hold the rows they held for its last build adds none
    GoldTable("dim_customer", build_dim_customer, ("customers", "geo_location"), sort_by=["customer_id"],
              incremental_write=merge_versions, reads_logical_date=False),
]
