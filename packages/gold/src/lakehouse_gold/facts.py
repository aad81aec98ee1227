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

from lakehouse_core.batch import DataInterval
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
    return ctx.gold("dim_channel").select(F.lower(F.col("channel_name")).alias("_channel_name"),
                                          F.col("channel_id").alias("_channel_id"))


def order_refunds(returns: DataFrame) -> DataFrame:
    """Per order: whether it has a return, and the money refunded (refund returns not rejected)."""
    return returns.groupBy("order_id").agg(
        F.lit(True).alias("has_return"),
        F.coalesce(F.sum(F.when(is_refund(), F.col("refund_amount"))),
                   F.lit(0)).cast("decimal(18,2)").alias("refund_amount"))


# --- what a daily batch changes: the days of each fact to rebuild ---------------------------------

def customers_rekeyed(ctx: BuildContext) -> DataFrame:
    """``(customer_id, since)``: customers whose events may take another ``customer_key`` after this
    batch, and from when. A version closed by the batch: events from its end; a version opened:
    events from its start, or every event for a first version (``since`` NULL: events before
    version 1 take it)."""
    return ctx.derived("customers_rekeyed", ("dim_customer",), lambda: _customers_rekeyed(ctx))


def _customers_rekeyed(ctx: BuildContext) -> DataFrame:
    current = ctx.gold("dim_customer").select("customer_id", "customer_key", "version", "valid_from", "valid_to")
    if ctx.unchanged_in_batch("dim_customer"):  # no version opened or closed: no event is rekeyed
        return current.select("customer_id", F.col("valid_from").alias("since")).limit(0)
    previous = ctx.previous("dim_customer")
    if previous is None:
        return current.select("customer_id", F.lit(None).cast("timestamp").alias("since")).distinct()
    before = previous.select(F.col("customer_key").alias("_key"), F.col("valid_to").alias("_to"))
    changed = current.join(before, (F.col("customer_key") == F.col("_key")) & F.col("valid_to").eqNullSafe(F.col("_to")),
                           "left_anti")
    closed = changed.join(before.select(F.col("_key").alias("customer_key")).distinct(), "customer_key", "left_semi")
    since = (closed.select("customer_id", F.col("valid_to").alias("since"))
             .unionByName(changed.join(closed, "customer_key", "left_anti")
                          .select("customer_id", F.when(F.col("version") > 1, F.col("valid_from")).alias("since"))))
    first_version = F.max(F.col("since").isNull().cast("int")) == 1
    return since.groupBy("customer_id").agg(F.when(~first_version, F.min("since")).alias("since"))


def rekeyed(ctx: BuildContext, events: DataFrame, event_time: str) -> DataFrame:
    """The ``events`` (with ``customer_id``) whose customer version may have changed in this batch."""
    changes = customers_rekeyed(ctx).withColumnRenamed("customer_id", "_rekeyed")
    return (events.join(changes, F.col("customer_id") == F.col("_rekeyed"))
            .where(F.col("since").isNull() | (F.col(event_time) >= F.col("since"))).drop("_rekeyed", "since"))


def _days(df: DataFrame, column: str) -> list[date | None]:
    return sorted({r[0] for r in df.select(column).distinct().collect()}, key=lambda d: (d is None, d))


def touched_days(ctx: BuildContext, fact: str, now: DataFrame, changed: DataFrame,
                 keys_now: DataFrame | None = None) -> list[date | None]:
    """The days of ``gold.<fact>`` a batch changes: where the rows of the ``changed`` keys are now
    (``now``: key and day, from silver) and where they were (the fact as published); with
    ``keys_now`` (every key silver still holds, for a table whose rows can be deleted), also where
    the rows of deleted keys were."""
    key, day = now.columns
    previous = ctx.previous(fact).select(key, day)
    days = (now.join(changed, key, "left_semi").select(day)
            .union(previous.join(changed, key, "left_semi").select(day)))
    if keys_now is not None:
        days = days.union(previous.join(keys_now, key, "left_anti").select(day))
    return _days(days, day)


def _keys_if_deletable(ctx: BuildContext, table: str, keys: DataFrame) -> DataFrame | None:
    return keys if ctx.deletes_reach_silver(table) else None


def orders_touched_days(ctx: BuildContext) -> list[date | None]:
    """Days of orders that changed, gained lines, returns or a payment change, or whose customer
    version changed; days of deleted orders."""
    read, newer = ctx.silver.read, ctx.newer()
    orders = read("orders").select(F.col("id").alias("order_id"), "payment_id", "customer_id", "order_date",
                                   ctx.day(F.col("order_date")).alias("order_day"), "_source_batch_id")
    if not ctx.within_share(_days(orders.where(newer), "order_day")):  # changed orders alone: look no further
        return None
    changed = (orders.where(newer).select("order_id")
               .union(read("order_items").where(newer).select("order_id"))
               .union(read("order_return").where(newer).select("order_id"))
               .union(orders.join(read("payment").where(newer).select(F.col("id").alias("payment_id")), "payment_id")
                      .select("order_id"))
               .union(rekeyed(ctx, orders, "order_date").select("order_id")))
    now = orders.select("order_id", "order_day")
    return touched_days(ctx, "fct_orders", now, changed, _keys_if_deletable(ctx, "orders", now.select("order_id")))


def payments_touched_days(ctx: BuildContext) -> list[date | None]:
    """Days of payments that changed, whose order changed (or now points elsewhere), or whose
    customer version changed; days of deleted payments."""
    read, newer = ctx.silver.read, ctx.newer()
    payments = read("payment").select(F.col("id").alias("payment_id"), "created_at", "_source_batch_id",
                                      ctx.day(F.col("created_at")).alias("payment_day"))
    orders = read("orders").select("payment_id", F.col("id").alias("order_id"), "customer_id", "_source_batch_id")
    newer_orders = orders.where(newer)
    # changed payments and the payments of changed orders alone (orders change status for weeks):
    # when their days are beyond the share, so are all, and the search stops here
    if not ctx.within_share(_days(payments.join(newer_orders.select("payment_id"), "payment_id", "left_semi")
                                  .unionByName(payments.where(newer)), "payment_day")):
        return None
    changed = (payments.where(newer).select("payment_id")
               .union(newer_orders.select("payment_id"))
               .union(ctx.previous("fct_payments").join(newer_orders, "order_id", "left_semi").select("payment_id"))
               .union(rekeyed(ctx, orders.join(payments.select("payment_id", "created_at"), "payment_id"), "created_at")
                      .select("payment_id")))
    now = payments.select("payment_id", "payment_day")
    return touched_days(ctx, "fct_payments", now, changed, _keys_if_deletable(ctx, "payment", now.select("payment_id")))


def shipments_touched_days(ctx: BuildContext) -> list[date | None] | None:
    """Days of shipments that changed or whose order's fact row changed; days of deleted
    shipments; every day when a shipping method changed (its promised time)."""
    orders = ctx.rows_changed("fct_orders", "order_day")
    if orders is None or ctx.changed("dim_shipping_method"):
        return None
    shipments = ctx.silver.read("shipment").select(F.col("id").alias("shipment_id"), "_source_batch_id",
                                                   ctx.day(F.col("created_at")).alias("ship_day"))
    changed = shipments.where(ctx.newer()).select("shipment_id").union(orders.select("shipment_id"))
    now = shipments.select("shipment_id", "ship_day")
    return touched_days(ctx, "fct_shipments", now, changed,
                        _keys_if_deletable(ctx, "shipment", now.select("shipment_id")))


def returns_touched_days(ctx: BuildContext) -> list[date | None] | None:
    """Days of returns that changed, whose order's fact row changed, or whose customer version
    changed; days of deleted returns."""
    orders = ctx.rows_changed("fct_orders", "order_day")
    if orders is None:
        return None
    returns = ctx.silver.read("order_return").select(
        F.col("id").alias("return_id"), "order_id", "customer_id", "created_at", "_source_batch_id",
        ctx.day(F.col("created_at")).alias("return_day"))
    changed = (returns.where(ctx.newer()).select("return_id")
               .union(returns.join(orders, "order_id", "left_semi").select("return_id"))
               .union(rekeyed(ctx, returns, "created_at").select("return_id")))
    now = returns.select("return_id", "return_day")
    return touched_days(ctx, "fct_returns", now, changed,
                        _keys_if_deletable(ctx, "order_return", now.select("return_id")))


def cart_events_touched_days(ctx: BuildContext) -> list[date | None] | None:
    """Days of every event of the carts a batch changes: carts or cart lines that changed, lines
    removed, active carts that expired since the last run, carts whose customer version changed;
    days of deleted carts; every day when a channel changed (carts name it)."""
    if ctx.changed("dim_channel"):
        return None
    read, newer = ctx.silver.read, ctx.newer()
    carts = read("cart")
    last_end = F.lit(DataInterval.from_batch_id(ctx.previous_batch).end).cast("timestamp")
    expired = ((F.col("status") == "active") & (F.col("expires_at") > last_end)
               & (F.col("expires_at") <= F.lit(ctx.interval.end).cast("timestamp")))
    changed_carts = carts.where(newer | expired).select(F.col("id").alias("cart_id"))
    if not ctx.within_share(_days(cart_event_rows(ctx, of_carts=changed_carts), "event_day")):
        return None  # the events of changed carts alone: look no further
    changed = changed_carts.union(read("cart_items").where(newer).select("cart_id"))
    if ctx.deletes_reach_silver("cart_items"):
        lines_now = read("cart_items").select(F.col("id").alias("cart_item_id"))
        changed = changed.union(ctx.previous("fct_cart_events").where(F.col("cart_item_id").isNotNull())
                                .join(lines_now, "cart_item_id", "left_anti").select("cart_id"))
    # the events of the carts that may have changed (the changed ones and those of rekeyed
    # customers), computed once: a few of all the carts
    rekeyed_customers = customers_rekeyed(ctx).select("customer_id")
    events = cart_event_rows(ctx, of_carts=changed.union(
        carts.join(rekeyed_customers, "customer_id", "left_semi").select(F.col("id").alias("cart_id")))).localCheckpoint()
    changed = changed.union(rekeyed(ctx, events, "event_ts").select("cart_id"))
    now = events.select("cart_id", "event_day")
    return touched_days(ctx, "fct_cart_events", now, changed,
                        _keys_if_deletable(ctx, "cart", carts.select(F.col("id").alias("cart_id"))))


# --- facts ----------------------------------------------------------------------------------------


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
    payments = (ctx.in_scope_at(ctx.silver.read("payment"), "created_at").join(orders, "id", "left")
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
    methods = ctx.gold("dim_shipping_method").select("shipping_method_id", "promised_hours")
    shipments = (ctx.in_scope_at(ctx.silver.read("shipment"), "created_at").join(orders, "id", "left")
                 .join(methods, "shipping_method_id", "left")
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
    returns = (ctx.in_scope_at(ctx.silver.read("order_return"), "created_at").join(orders, "order_id", "left")
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


def _inventory_batches_since(ctx: BuildContext) -> str | None:
    """The batch after which silver's inventory batches are replayed (None: all of them)."""
    return ctx.previous_batch if ctx.scope is not None else None


def inventory_snapshot_days(ctx: BuildContext) -> list[date | None]:
    """The logical dates of silver's inventory batches since the last build (the run's, and any
    gold did not see)."""
    return sorted({interval.last_day(ctx.settings.business_zone)
                   for interval, _ in ctx.silver.history("inventory", after=ctx.previous_batch)})


def build_fct_inventory_daily(ctx: BuildContext) -> DataFrame:
    """Periodic snapshot: stock per product × warehouse at the end of each run's logical date
    (silver's inventory as the run left it): each published silver batch since the last build
    (rebuilt: all of them) replayed, giving its own day."""
    snapshots: dict[date, DataFrame] = {}
    for interval, inventory in ctx.silver.history("inventory", after=_inventory_batches_since(ctx)):
        day = interval.last_day(ctx.settings.business_zone)
        snapshots[day] = inventory_snapshot(inventory, F.lit(day))  # a day's last batch wins
    return reduce(DataFrame.unionByName, snapshots.values())


def cart_event_rows(ctx: BuildContext, of_carts: DataFrame | None = None) -> DataFrame:
    """Cart events before the dimension keys: a cart's creation, each item added, its checkout,
    its abandonment (status ``abandoned``/``expired``, or still active when it expired by the end
    of the run); only those of the carts ``of_carts`` names (``cart_id``) when given."""
    channels = _channel_ids_by_name(ctx)
    end = F.lit(ctx.interval.end).cast("timestamp")
    carts = ctx.silver.read("cart").withColumnRenamed("id", "cart_id")
    if of_carts is not None:
        carts = carts.join(of_carts, "cart_id", "left_semi")
    carts = carts.join(channels, F.col("channel") == F.col("_channel_name"), "left")
    abandoned_at = (F.when(F.col("status").isin("abandoned", "expired"), F.col("updated_at"))
                    .when((F.col("status") == "active") & (F.col("expires_at") <= end), F.col("expires_at")))

    def events(kind: str, at: Column, frame: DataFrame = carts, product: Column = F.lit(None).cast("bigint"),
               quantity: Column = F.lit(None).cast("int"), amount: Column = F.col("total_amount"),
               line: Column = F.lit(None).cast("bigint")) -> DataFrame:
        return frame.where(at.isNotNull()).select(
            "cart_id", line.alias("cart_item_id"), F.lit(kind).alias("event_type"),
            at.alias("event_ts"), "customer_id", F.col("_channel_id").alias("channel_id"), product.alias("product_id"),
            quantity.alias("quantity"), amount.cast("decimal(18,2)").alias("amount"), F.col("order_id"))

    items = (ctx.silver.read("cart_items").withColumnRenamed("id", "cart_item_id")
             .join(carts.select("cart_id", "customer_id", "_channel_id", "order_id"), "cart_id"))
    no_amount = F.lit(None).cast("decimal(18,2)")
    return (events("created", F.col("created_at"), amount=no_amount)
            .unionByName(events("item_added", F.col("added_at"), items, F.col("product_id"), F.col("quantity"),
                                F.col("amount"), F.col("cart_item_id")))
            .unionByName(events("checked_out", F.col("checked_out_at")))
            .unionByName(events("abandoned", abandoned_at))
            .withColumn("event_day", ctx.day(F.col("event_ts"))))


def build_fct_cart_events(ctx: BuildContext) -> DataFrame:
    """Cart event grain: one row per cart event (``cart_event_rows``), keyed to the dimensions."""
    all_events = customer_key_at(ctx.in_scope(cart_event_rows(ctx), "event_day"), ctx.gold("dim_customer"), "event_ts")
    return all_events.select(
        "cart_id", "cart_item_id", "event_type", "event_ts", "event_day", date_key(F.col("event_day")).alias("date_key"),
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
    """Days of the clickstream events a batch landed, or of events whose customer version changed
    (an append-only log: nothing else changes); every day when a channel changed (events name it)."""
    if ctx.changed("dim_channel"):
        return None
    events = ctx.silver.read("customer_activity_log").withColumn("event_day", ctx.day(F.col("created_at")))
    days = events.where(ctx.newer()).select("event_day").union(rekeyed(ctx, events, "created_at").select("event_day"))
    return _days(days, "event_day")


def _day_partitioned(name: str, build, upstream: tuple[str, ...], day: str, **kwargs) -> GoldTable:
    return GoldTable(name, build, upstream, partition_by=[day], sort_by=[day], **kwargs)


FACTS = [
    _day_partitioned("fct_orders", build_fct_orders, ("orders", "order_items", "order_return", "payment"), "order_day",
                     depends_on=("dim_customer",), touched_days=orders_touched_days,
                     reads_logical_date=False),
    _day_partitioned("fct_order_lines", build_fct_order_lines, ("order_items",), "order_day",
                     depends_on=("fct_orders",), touched_days=lambda ctx: ctx.touched_days_of("fct_orders"),
                     reads_logical_date=False),
    _day_partitioned("fct_payments", build_fct_payments, ("payment", "orders"), "payment_day",
                     depends_on=("dim_customer",), touched_days=payments_touched_days,
                     reads_logical_date=False),
    _day_partitioned("fct_shipments", build_fct_shipments, ("shipment",), "ship_day",
                     depends_on=("dim_shipping_method", "fct_orders"), touched_days=shipments_touched_days,
                     reads_logical_date=False),
    _day_partitioned("fct_returns", build_fct_returns, ("order_return",), "return_day",
                     depends_on=("dim_customer", "fct_orders"), touched_days=returns_touched_days,
                     reads_logical_date=False),
    _day_partitioned("fct_inventory_daily", build_fct_inventory_daily, ("inventory",), "snapshot_day",
                     touched_days=inventory_snapshot_days),
    _day_partitioned("fct_cart_events", build_fct_cart_events, ("cart", "cart_items"), "event_day",
                     depends_on=("dim_channel", "dim_customer"), touched_days=cart_events_touched_days),
    _day_partitioned("fct_activity_events", build_fct_activity_events, ("customer_activity_log",), "event_day",
                     depends_on=("dim_channel", "dim_customer"), touched_days=activity_touched_days,
                     reads_logical_date=False),
]
