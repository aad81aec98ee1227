"""Facts: one row per business event at a declared grain, keyed to the conformed dimensions.

Type 1 dimension keys are hashes of natural keys (computed here without a lookup); the
customer key is the customer version valid at the event's time (``dim_customer`` as built in
the same batch). Every fact is partitioned by the business day of its event.
"""

from __future__ import annotations

from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse_gold.build import BuildContext, GoldTable
from lakehouse_gold.dimensions import customer_key_at, date_key, payment_method_key, surrogate_key
from lakehouse_gold.metrics import is_sale


def is_refund() -> Column:
    """A return gives money back: a refund-type return that is not rejected."""
    return (F.col("return_type") == "refund") & (F.col("status") != "rejected")


def _key(column: str) -> Column:
    return F.when(F.col(column).isNotNull(), surrogate_key(F.col(column)))


def _channel_ids_by_name(ctx: BuildContext) -> DataFrame:
    """Channel names as carts, activity and reviews spell them (canonical lower case) → channel id."""
    return ctx.silver.read("order_channel").select(F.lower(F.col("name")).alias("_channel_name"),
                                                   F.col("id").alias("_channel_id"))


def order_refunds(returns: DataFrame) -> DataFrame:
    """Per order: whether it has a return, and the money refunded (refund returns not rejected)."""
    return returns.groupBy("order_id").agg(
        F.lit(True).alias("has_return"),
        F.coalesce(F.sum(F.when(is_refund(), F.col("refund_amount"))),
                   F.lit(0)).cast("decimal(18,2)").alias("refund_amount"))


def new_customers(ctx: BuildContext) -> DataFrame:
    """Customers whose first version this batch opened (events that came before them get a key now)."""
    previous = ctx.previous("dim_customer")
    current = ctx.gold("dim_customer").select("customer_id").distinct()
    return current if previous is None else current.join(previous.select("customer_id"), "customer_id", "left_anti")


def _days(df: DataFrame, column: str) -> list[date | None]:
    return sorted({r[0] for r in df.select(column).distinct().collect()}, key=lambda d: (d is None, d))


def orders_touched_days(ctx: BuildContext) -> list[date | None]:
    """The order days whose facts a batch changes: days (now and before) of orders that changed,
    gained lines, returns or a payment change, or whose customer appeared; days of deleted orders
    (when the registry reconciles deletes of ``orders``)."""
    read, newer = ctx.silver.read, ctx.newer()
    orders = read("orders").select(F.col("id").alias("order_id"), "payment_id", "customer_id",
                                   ctx.day(F.col("order_date")).alias("order_day"), "_source_batch_id")
    changed = (orders.where(newer).select("order_id")
               .union(read("order_items").where(newer).select("order_id"))
               .union(read("order_return").where(newer).select("order_id"))
               .union(orders.join(read("payment").where(newer).select(F.col("id").alias("payment_id")), "payment_id")
                      .select("order_id"))
               .union(orders.join(new_customers(ctx), "customer_id").select("order_id")))
    previous = ctx.previous("fct_orders").select("order_id", "order_day")
    days = (orders.join(changed, "order_id", "left_semi").select("order_day")
            .union(previous.join(changed, "order_id", "left_semi").select("order_day")))
    if ctx.deletes_reach_silver("orders"):
        days = days.union(previous.join(orders.select("order_id"), "order_id", "left_anti").select("order_day"))
    return _days(days, "order_day")


def build_fct_orders(ctx: BuildContext) -> DataFrame:
    """Order grain: one row per order with its lines and returns pre-aggregated (no fan-out)."""
    read = ctx.silver.read
    scoped = ctx.in_scope_at(read("orders"), "order_date").withColumn("order_day", ctx.day(F.col("order_date")))
    ids = scoped.select(F.col("id").alias("order_id"))

    def of_scoped_orders(df: DataFrame) -> DataFrame:
        return df if ctx.scope is None else df.join(ids, "order_id", "left_semi")

    lines = of_scoped_orders(read("order_items")).groupBy("order_id").agg(
        F.count(F.lit(1)).alias("line_count"), F.sum("quantity").cast("bigint").alias("units"),
        F.coalesce(F.sum("discount_amount"), F.lit(0)).cast("decimal(18,2)").alias("discount_amount"))
    payments = read("payment").select(F.col("id").alias("payment_id"), "payment_method")
    orders = (scoped.withColumnRenamed("id", "order_id")
              .join(lines, "order_id", "left").join(order_refunds(of_scoped_orders(read("order_return"))), "order_id", "left")
              .join(payments, "payment_id", "left"))
    orders = customer_key_at(orders, ctx.gold("dim_customer"), "order_date")
    return orders.select(
        "order_id", "order_code", F.col("order_date").alias("order_ts"), "order_day",
        date_key(F.col("order_day")).alias("date_key"), "customer_id", "customer_key",
        _key("order_channel_id").alias("channel_key"), _key("location_id").alias("geography_key"),
        payment_method_key(F.col("payment_method")).alias("payment_method_key"),
        _key("logistics_partner_id").alias("carrier_key"), "payment_id", F.col("shipping_id").alias("shipment_id"),
        "status", is_sale(F.col("status")).alias("is_sale"), F.col("total_price").cast("decimal(18,2)").alias("total_price"),
        "discount_amount", F.coalesce("units", F.lit(0)).cast("bigint").alias("units"),
        F.coalesce("line_count", F.lit(0)).cast("bigint").alias("line_count"),
        F.coalesce("refund_amount", F.lit(0)).cast("decimal(18,2)").alias("refund_amount"),
        F.coalesce("has_return", F.lit(False)).alias("has_return"), "confirmed_at", "delivered_at", "cancelled_at")


def build_fct_order_lines(ctx: BuildContext) -> DataFrame:
    """Order-line grain: one row per line, with its order's day, status and customer version."""
    orders = ctx.in_scope(ctx.gold("fct_orders"), "order_day").select(
        "order_id", "order_ts", "order_day", "date_key", "customer_key", "channel_key", "status", "is_sale")
    return ctx.silver.read("order_items").join(orders, "order_id", "inner").select(
        F.col("id").alias("order_line_id"), "order_id", "order_ts", "order_day", "date_key", "customer_key",
        "channel_key", "product_id", _key("product_id").alias("product_key"), "status", "is_sale", "quantity",
        "unit_price", F.coalesce("discount_amount", F.lit(0)).cast("decimal(12,2)").alias("discount_amount"), "amount")


def build_fct_payments(ctx: BuildContext) -> DataFrame:
    """Payment grain: one row per payment, with the order that points to it."""
    orders = ctx.silver.read("orders").select(F.col("payment_id").alias("id"), F.col("id").alias("order_id"),
                                              "customer_id", F.col("status").alias("order_status"))
    payments = (ctx.silver.read("payment").join(orders, "id", "left")
                .withColumn("payment_day", ctx.day(F.col("created_at"))))
    payments = customer_key_at(payments, ctx.gold("dim_customer"), "created_at")
    return payments.select(
        F.col("id").alias("payment_id"), "order_id", F.col("created_at").alias("payment_ts"), "payment_day",
        date_key(F.col("payment_day")).alias("date_key"), "customer_key",
        payment_method_key(F.col("payment_method")).alias("payment_method_key"), "payment_method",
        "payment_status", "amount", "order_status")


def build_fct_shipments(ctx: BuildContext) -> DataFrame:
    """Shipment grain: one row per shipment, with its order, the promised and actual delivery."""
    orders = ctx.gold("fct_orders").select(
        F.col("shipment_id").alias("id"), "order_id", "customer_key", "geography_key",
        F.col("total_price").alias("order_total_price"), F.col("is_sale").alias("order_is_sale"),
        F.col("has_return").alias("order_has_return"))
    methods = ctx.silver.read("shipping_method").select(F.col("id").alias("shipping_method_id"),
                                                        F.col("estimated_delivery_time").alias("promised_hours"))
    shipments = (ctx.silver.read("shipment").join(orders, "id", "left").join(methods, "shipping_method_id", "left")
                 .withColumn("ship_day", ctx.day(F.col("created_at"))))
    delivered = F.col("actual_delivery").isNotNull()
    hours = (F.unix_timestamp("actual_delivery") - F.unix_timestamp("created_at")) / 3600
    return shipments.select(
        F.col("id").alias("shipment_id"), "order_id", F.col("created_at").alias("shipped_ts"), "ship_day",
        date_key(F.col("ship_day")).alias("date_key"), "customer_key", "geography_key",
        _key("logistics_partner_id").alias("carrier_key"), _key("shipping_method_id").alias("shipping_method_key"),
        _key("warehouse_id").alias("warehouse_key"), "shipping_status", "is_expedited", "estimated_delivery",
        "actual_delivery", "promised_hours", F.when(delivered, hours).cast("decimal(12,2)").alias("delivery_hours"),
        delivered.alias("is_delivered"),
        F.when(delivered & F.col("estimated_delivery").isNotNull(),
               F.col("actual_delivery") <= F.col("estimated_delivery")).alias("is_on_time"),
        F.coalesce("delivery_attempts", F.lit(0)).alias("delivery_attempts"),
        F.col("shipping_cost").cast("decimal(18,2)").alias("shipping_cost"), "order_total_price", "order_is_sale",
        F.coalesce("order_has_return", F.lit(False)).alias("order_has_return"))


def build_fct_returns(ctx: BuildContext) -> DataFrame:
    """Return grain: one row per return request, with its order's day and the customer version."""
    orders = ctx.gold("fct_orders").select("order_id", "order_day", "channel_key", "geography_key",
                                           F.col("is_sale").alias("order_is_sale"))
    returns = (ctx.silver.read("order_return").join(orders, "order_id", "left")
               .withColumn("return_day", ctx.day(F.col("created_at"))))
    returns = customer_key_at(returns, ctx.gold("dim_customer"), "created_at")
    resolution = (F.unix_timestamp("resolved_at") - F.unix_timestamp("created_at")) / 86400
    return returns.select(
        F.col("id").alias("return_id"), "order_id", F.col("created_at").alias("return_ts"), "return_day",
        date_key(F.col("return_day")).alias("date_key"), "order_day", "customer_id", "customer_key", "channel_key",
        "geography_key", F.coalesce("order_is_sale", F.lit(False)).alias("order_is_sale"), "reason", "return_type",
        "status",
        F.coalesce("refund_amount", F.lit(0)).cast("decimal(18,2)").alias("refund_amount"),
        is_refund().alias("is_refund"), "resolved_at",
        F.when(F.col("resolved_at").isNotNull(), resolution).cast("decimal(10,2)").alias("resolution_days"))


def inventory_snapshot(inventory: DataFrame, day: Column) -> DataFrame:
    """Stock on hand per product × warehouse at the end of ``day``."""
    return inventory.select(
        day.alias("snapshot_day"), date_key(day).alias("date_key"), "product_id", "warehouse_id",
        _key("product_id").alias("product_key"), _key("warehouse_id").alias("warehouse_key"),
        F.col("quantity").alias("stock_on_hand"), "safety_stock", "reorder_level", "unit_cost",
        (F.col("quantity") * F.col("unit_cost")).cast("decimal(18,2)").alias("stock_value"))


def build_fct_inventory_daily(ctx: BuildContext) -> DataFrame:
    """Periodic snapshot: stock per product × warehouse at the end of each run's logical date
    (silver's inventory as the run left it). Incremental: the run's day; rebuilt: every
    published silver batch replayed, each giving its own day."""
    if ctx.previous("fct_inventory_daily") is not None:
        return inventory_snapshot(ctx.silver.read("inventory"), F.lit(ctx.as_of))
    snapshots: dict[date, DataFrame] = {}
    for interval, inventory in ctx.silver.history("inventory"):
        day = interval.last_day(ctx.settings.business_zone)
        snapshots[day] = inventory_snapshot(inventory, F.lit(day))  # a day's last batch wins
    return reduce(DataFrame.unionByName, snapshots.values())


def replace_partitions(df: DataFrame, target: str) -> None:
    """Replace the partitions ``df`` has rows in (dynamic partition overwrite)."""
    df.writeTo(target).overwritePartitions()


def build_fct_cart_events(ctx: BuildContext) -> DataFrame:
    """Cart event grain: a cart's creation, each item added, its checkout, its abandonment
    (status ``abandoned``/``expired``, or still active when it expired by the end of the run)."""
    channels = _channel_ids_by_name(ctx)
    end = F.lit(ctx.interval.end).cast("timestamp")
    carts = (ctx.silver.read("cart").withColumnRenamed("id", "cart_id")
             .join(channels, F.col("channel") == F.col("_channel_name"), "left"))
    abandoned_at = (F.when(F.col("status").isin("abandoned", "expired"), F.col("updated_at"))
                    .when((F.col("status") == "active") & (F.col("expires_at") <= end), F.col("expires_at")))

    def events(kind: str, at: Column, frame: DataFrame = carts, product: Column = F.lit(None).cast("bigint"),
               quantity: Column = F.lit(None).cast("int"), amount: Column = F.col("total_amount")) -> DataFrame:
        return frame.where(at.isNotNull()).select(
            "cart_id", F.lit(kind).alias("event_type"),
            at.alias("event_ts"), "customer_id", F.col("_channel_id").alias("channel_id"), product.alias("product_id"),
            quantity.alias("quantity"), amount.cast("decimal(18,2)").alias("amount"), F.col("order_id"))

    items = (ctx.silver.read("cart_items").withColumnRenamed("id", "cart_item_id")
             .join(carts.select("cart_id", "customer_id", "_channel_id", "order_id"), "cart_id"))
    no_amount = F.lit(None).cast("decimal(18,2)")
    all_events = (events("created", F.col("created_at"), amount=no_amount)
                  .unionByName(events("item_added", F.col("added_at"), items, F.col("product_id"), F.col("quantity"),
                                      F.col("amount")))
                  .unionByName(events("checked_out", F.col("checked_out_at")))
                  .unionByName(events("abandoned", abandoned_at))
                  .withColumn("event_day", ctx.day(F.col("event_ts"))))
    all_events = customer_key_at(all_events, ctx.gold("dim_customer"), "event_ts")
    return all_events.select(
        "cart_id", "event_type", "event_ts", "event_day", date_key(F.col("event_day")).alias("date_key"),
        "customer_key", _key("channel_id").alias("channel_key"), "product_id", _key("product_id").alias("product_key"),
        "quantity", "amount", "order_id")


def build_fct_activity_events(ctx: BuildContext) -> DataFrame:
    """Activity grain: one row per clickstream event (view, search, add to cart, ...); its free
    ``metadata`` stays out."""
    events = (ctx.in_scope_at(ctx.silver.read("customer_activity_log"), "created_at")
              .withColumn("event_day", ctx.day(F.col("created_at"))))
    events = events.join(_channel_ids_by_name(ctx), F.col("channel") == F.col("_channel_name"), "left")
    events = customer_key_at(events, ctx.gold("dim_customer"), "created_at")
    return events.select(
        F.col("id").alias("activity_id"), F.col("created_at").alias("event_ts"), "event_day",
        date_key(F.col("event_day")).alias("date_key"), "customer_key", _key("_channel_id").alias("channel_key"),
        "product_id", _key("product_id").alias("product_key"), "activity_type")


def activity_touched_days(ctx: BuildContext) -> list[date | None] | None:
    """Days of the clickstream events a batch landed, or of events whose customer appeared (an
    append-only log: nothing else changes); every day when a channel changed (events name it)."""
    if ctx.silver.read("order_channel").where(ctx.newer()).limit(1).count():
        return None
    events = ctx.silver.read("customer_activity_log").withColumn("event_day", ctx.day(F.col("created_at")))
    days = (events.where(ctx.newer()).select("event_day")
            .union(events.join(new_customers(ctx), "customer_id", "left_semi").select("event_day")))
    return _days(days, "event_day")


def _day_partitioned(name: str, build, upstream: tuple[str, ...], day: str, **kwargs) -> GoldTable:
    return GoldTable(name, build, upstream, partition_by=[day], sort_by=[day], **kwargs)


FACTS = [
    _day_partitioned("fct_orders", build_fct_orders, ("orders", "order_items", "order_return", "payment"), "order_day",
                     depends_on=("dim_customer",), touched_days=orders_touched_days),
    _day_partitioned("fct_order_lines", build_fct_order_lines, ("order_items",), "order_day",
                     depends_on=("fct_orders",), touched_days=lambda ctx: ctx.touched_days_of("fct_orders")),
    _day_partitioned("fct_payments", build_fct_payments, ("payment", "orders"), "payment_day",
                     depends_on=("dim_customer",)),
    _day_partitioned("fct_shipments", build_fct_shipments, ("shipment", "shipping_method"), "ship_day",
                     depends_on=("fct_orders",)),
    _day_partitioned("fct_returns", build_fct_returns, ("order_return",), "return_day",
                     depends_on=("fct_orders", "dim_customer")),
    _day_partitioned("fct_inventory_daily", build_fct_inventory_daily, ("inventory",), "snapshot_day",
                     incremental_write=replace_partitions),
    _day_partitioned("fct_cart_events", build_fct_cart_events, ("cart", "cart_items", "order_channel"), "event_day",
                     depends_on=("dim_customer",)),
    _day_partitioned("fct_activity_events", build_fct_activity_events, ("customer_activity_log", "order_channel"),
                     "event_day", depends_on=("dim_customer",), touched_days=activity_touched_days),
]
