"""Gold marts: business metrics at a declared grain, from the facts and dimensions of the same batch.

Metrics are computed only through ``lakehouse_gold.metrics``. A mart covers business days up
to the run's logical date (``BuildContext.as_of``), never the wall clock. Names (channel,
province, carrier, product) come from the type 1 dimensions; an event without one reports
``unknown``.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from functools import wraps

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse_gold import metrics as m
from lakehouse_gold.build import BuildContext, GoldTable, in_days

UNKNOWN = "unknown"


def _name(ctx: BuildContext, facts: DataFrame, dimension: str, key: str, name: str, alias: str) -> DataFrame:
    """``facts`` with the dimension attribute ``name`` (as ``alias``) looked up by ``key``."""
    names = ctx.gold(dimension).select(key, F.col(name).alias(alias))
    return facts.join(names, key, "left").withColumn(alias, F.coalesce(F.col(alias), F.lit(UNKNOWN)))


def _until_as_of(df: DataFrame, day: str, ctx: BuildContext) -> DataFrame:
    return df.where(F.col(day) <= F.lit(ctx.as_of))


def _mart_days(*dimensions: str):
    """Decorates the function giving the days a batch changes in a mart: with them, the days the
    run's logical date brings into view (``BuildContext.newly_covered``); every day (None) when
    one of the ``dimensions`` the mart names its rows by changed."""
    def decorate(touched):
        @wraps(touched)
        def days(ctx: BuildContext) -> list[date | None] | None:
            if any(ctx.changed(d) for d in dimensions):
                return None
            return _union(touched(ctx), ctx.newly_covered())
        return days
    return decorate


def _union(*days: list[date | None] | None) -> list[date | None] | None:
    """Every day in ``days`` (None, every day, when one of them is)."""
    if any(d is None for d in days):
        return None
    return sorted({d for group in days for d in group}, key=lambda d: (d is None, d))


def _days_of(df: DataFrame | None, column: str) -> list[date | None] | None:
    return None if df is None else [r[0] for r in df.select(column).distinct().collect()]


def build_daily_sales(ctx: BuildContext) -> DataFrame:
    """Sales at order grain per (business day, channel, province of the delivery address)."""
    orders = _until_as_of(ctx.in_scope(ctx.gold("fct_orders"), "order_day"), "order_day", ctx)
    orders = _name(ctx, orders, "dim_channel", "channel_key", "channel_name", "channel")
    orders = _name(ctx, orders, "dim_geography", "geography_key", "province_name", "province")
    status, total, refund = F.col("status"), F.col("total_price"), F.col("refund_amount")
    return orders.groupBy("order_day", "channel", "province").agg(
        m.order_count().alias("order_count"), m.sale_order_count(status).alias("sale_order_count"),
        m.gmv(total, status).alias("gmv"), m.discount_amount(F.col("discount_amount"), status).alias("discount_amount"),
        m.refund_amount(refund, status).alias("refund_amount"), m.net_revenue(total, refund, status).alias("net_revenue"),
        m.aov(total, status).alias("aov"), m.units_sold(F.col("units"), status).alias("units_sold"),
        m.cancelled_order_count(status).alias("cancelled_order_count"),
        m.cancellation_rate(status).alias("cancellation_rate"),
        *[m.orders_by_status(status, s).alias(f"orders_{s}") for s in m.ORDER_STATUSES])


def build_customer_360(ctx: BuildContext) -> DataFrame:
    """One row per customer (current version): lifetime value, order history, RFM, churn risk."""
    orders = _until_as_of(ctx.gold("fct_orders"), "order_day", ctx)
    status, total, refund = F.col("status"), F.col("total_price"), F.col("refund_amount")
    sale_day = F.when(m.is_sale(status), F.col("order_day"))
    history = orders.groupBy("customer_id").agg(
        m.order_count().alias("order_count"), m.sale_order_count(status).alias("sale_order_count"),
        m.lifetime_value(total, refund, status).alias("lifetime_value"), m.aov(total, status).alias("aov"),
        F.min(sale_day).alias("first_order_day"), F.max(sale_day).alias("last_order_day"))
    customers = ctx.gold("dim_customer").where("is_current").select(
        "customer_id", "customer_key", "customer_code", "tier", "province_name", "created_at")
    as_of = F.lit(ctx.as_of)
    base = customers.join(history, "customer_id", "left").select(
        "customer_id", "customer_key", "customer_code", "tier", "province_name",
        *[F.coalesce(F.col(c), F.lit(0)).cast("bigint").alias(c) for c in ("order_count", "sale_order_count")],
        F.coalesce("lifetime_value", F.lit(0)).cast(m.MONEY).alias("lifetime_value"),
        F.coalesce("aov", F.lit(0)).cast("decimal(16,2)").alias("aov"), "first_order_day", "last_order_day",
        m.days_since_last_order(F.col("last_order_day"), as_of).alias("days_since_last_order"))
    buyer = F.col("sale_order_count") > 0
    scored = base.select(
        "*",
        m.rfm_score(F.when(buyer, F.col("days_since_last_order")), ascending=True).alias("recency_score"),
        m.rfm_score(F.when(buyer, F.col("sale_order_count")), ascending=False).alias("frequency_score"),
        m.rfm_score(F.when(buyer, F.col("lifetime_value")), ascending=False).alias("monetary_score"))
    return scored.select(
        "*", m.rfm_segment(F.col("recency_score"), F.col("frequency_score"), F.col("monetary_score")).alias("rfm_segment"),
        m.is_repeat_customer(F.col("sale_order_count")).alias("is_repeat_customer"),
        m.retention_cohort(F.col("first_order_day")).alias("retention_cohort"),
        m.churn_risk_band(F.col("days_since_last_order")).alias("churn_risk_band"), as_of.alias("as_of_date"))


def _batch_last_day(batch_id: Column, ctx: BuildContext) -> Column:
    """The last business day of the batch a silver row landed with (its ``_source_batch_id``)."""
    end = F.to_timestamp(F.substring(batch_id, 15, 13), "yyyyMMdd'T'HHmm")
    return ctx.day(end - F.expr("INTERVAL 1 SECOND"))


WINDOW_DAYS = 28  # the trailing window of units sold, average stock, days on hand and turnover


def _sale_movements(ctx: BuildContext) -> DataFrame:
    """Silver's ``sale`` stock movements with their product and warehouse, the business day of
    their timestamp (``own_day``) and the last business day of the batch that landed them
    (``landed_day``)."""
    inventory = ctx.silver.read("inventory").select(F.col("id").alias("inventory_id"), "product_id", "warehouse_id")
    return (ctx.silver.read("inventory_log").where(F.col("change_type") == "sale").join(inventory, "inventory_id")
            .withColumn("own_day", ctx.day(F.col("created_at")))
            .withColumn("landed_day", _batch_last_day(F.col("_source_batch_id"), ctx)))


def daily_units_sold(ctx: BuildContext, only_newer: bool = False) -> DataFrame:
    """Units sold per product × warehouse × business day, from ``sale`` stock movements (with
    ``only_newer``: those landed after the mart was last built). A movement counts on its own
    day; one stamped after the run's logical date counts on the last day of the batch that landed
    it (trigger-written rows carry the database wall clock, source-system.md §1.5 T10) until a
    later run's logical date reaches its day (a first load reads ahead of its interval)."""
    moves = _sale_movements(ctx)
    if only_newer:
        moves = moves.where(ctx.newer())
    day = F.when(F.col("own_day") <= F.lit(ctx.as_of), F.col("own_day")).otherwise(F.col("landed_day"))
    return (moves.groupBy("product_id", "warehouse_id", day.alias("day"))
            .agg(F.sum(-F.col("quantity_change")).cast("bigint").alias("units")))


def _redated_days(ctx: BuildContext) -> set[date]:
    """The days movements leave and enter as this run's logical date reaches their own day: a
    movement stamped after an earlier run's logical date counted then on its landing batch's day."""
    newly = ctx.newly_covered()
    if not newly:
        return set()
    moves = (_sale_movements(ctx).where(in_days(F.col("own_day"), newly))
             .where(F.col("landed_day") < F.col("own_day")).select("own_day", "landed_day").distinct().collect())
    return {day for row in moves for day in row}


@_mart_days()
def inventory_touched_days(ctx: BuildContext) -> list[date | None] | None:
    """The snapshot days ``fct_inventory_daily`` rebuilt, and the days whose trailing window holds
    a sale landed since the mart was last built (late movements) or one that changes day now."""
    snapshots = ctx.touched_days_of("fct_inventory_daily")
    if snapshots is None:
        return None
    late = {r.day for r in daily_units_sold(ctx, only_newer=True).select("day").distinct().collect() if r.day}
    windows = {day + timedelta(days=k) for day in late | _redated_days(ctx) for k in range(WINDOW_DAYS)}
    return sorted({*snapshots, *(d for d in windows if d <= ctx.as_of)})


def build_inventory_daily(ctx: BuildContext) -> DataFrame:
    """Stock per product × warehouse × snapshot day, with safety stock, out-of-stock incidents,
    days on hand and turnover over the trailing 28 days."""
    stock = _until_as_of(ctx.gold("fct_inventory_daily"), "snapshot_day", ctx)
    sold = daily_units_sold(ctx)
    pair = ["product_id", "warehouse_id"]
    in_window = ((F.col("s.product_id") == F.col("u.product_id")) & (F.col("s.warehouse_id") == F.col("u.warehouse_id"))
                 & F.col("u.day").between(F.date_sub(F.col("s.snapshot_day"), WINDOW_DAYS - 1), F.col("s.snapshot_day")))
    units = (ctx.in_scope(stock, "snapshot_day").alias("s").join(sold.alias("u"), in_window, "left")
             .groupBy(*[F.col(f"s.{c}") for c in (*pair, "snapshot_day")])
             .agg(F.coalesce(F.sum(F.when(F.col("u.day") == F.col("s.snapshot_day"), F.col("u.units"))), F.lit(0))
                  .cast("bigint").alias("units_sold"),
                  F.coalesce(F.sum("u.units"), F.lit(0)).cast("bigint").alias("units_sold_28d")))
    by_day = Window.partitionBy(*pair).orderBy("snapshot_day")
    trailing = (Window.partitionBy(*pair).orderBy(F.datediff("snapshot_day", F.lit("1970-01-01")))
                .rangeBetween(-(WINDOW_DAYS - 1), 0))
    rows = stock.select("*", F.lag("stock_on_hand").over(by_day).alias("_previous"),
                        F.avg("stock_on_hand").over(trailing).alias("_avg_stock")).join(units, [*pair, "snapshot_day"])
    return rows.select(
        "snapshot_day", "product_id", "warehouse_id", "product_key", "warehouse_key", "stock_on_hand", "safety_stock",
        "reorder_level", "stock_value",
        m.is_below_safety_stock(F.col("stock_on_hand"), F.col("safety_stock")).alias("is_below_safety_stock"),
        m.out_of_stock_incidents(F.col("stock_on_hand"), F.col("_previous")).alias("out_of_stock_incidents"),
        "units_sold", "units_sold_28d", F.round("_avg_stock", 2).cast("decimal(14,2)").alias("avg_stock_28d"),
        m.days_on_hand(F.col("stock_on_hand"), F.col("units_sold_28d")).alias("days_on_hand"),
        m.inventory_turnover(F.col("units_sold_28d"), F.col("_avg_stock")).alias("inventory_turnover"))


def build_logistics_daily(ctx: BuildContext) -> DataFrame:
    """Shipments per (ship day, carrier, shipping method, province of the delivery address)."""
    shipments = _until_as_of(ctx.in_scope(ctx.gold("fct_shipments"), "ship_day"), "ship_day", ctx)
    shipments = _name(ctx, shipments, "dim_carrier", "carrier_key", "carrier_name", "carrier")
    shipments = _name(ctx, shipments, "dim_shipping_method", "shipping_method_key", "shipping_method_name",
                      "shipping_method")
    shipments = _name(ctx, shipments, "dim_geography", "geography_key", "province_name", "province")
    cost = F.col("shipping_cost")
    return shipments.groupBy("ship_day", "carrier", "shipping_method", "province").agg(
        m.shipment_count().alias("shipment_count"), m.avg_delivery_hours(F.col("delivery_hours")).alias("avg_delivery_hours"),
        m.avg_promised_hours(F.col("promised_hours"), F.col("is_delivered")).alias("avg_promised_hours"),
        m.on_time_rate(F.col("is_on_time")).alias("on_time_rate"),
        m.failed_delivery_attempts(F.col("delivery_attempts")).alias("failed_delivery_attempts"),
        m.shipment_return_rate(F.col("order_has_return")).alias("return_rate"),
        m.shipping_cost_per_order(cost, F.col("order_id")).alias("shipping_cost_per_order"),
        m.shipping_cost_share_of_gmv(cost, F.col("order_total_price"), F.col("order_is_sale"))
        .alias("shipping_cost_share_of_gmv"))


def build_product_performance(ctx: BuildContext) -> DataFrame:
    """Sales, returns and reviews per (product, business day)."""
    returned = ctx.gold("fct_orders").select("order_id", "has_return")
    lines = _until_as_of(ctx.in_scope(ctx.gold("fct_order_lines"), "order_day"), "order_day", ctx)
    lines = lines.join(returned, "order_id", "left")
    status, order_id = F.col("status"), F.col("order_id")
    sales = lines.groupBy("product_id", F.col("order_day").alias("day")).agg(
        m.units_sold(F.col("quantity"), status).alias("units_sold"),
        m.line_revenue(F.col("amount"), status).alias("revenue"),
        m.orders_with_product(order_id, status).alias("order_count"),
        m.product_return_rate(order_id, F.coalesce("has_return", F.lit(False)), status).alias("return_rate"))
    reviews = ctx.in_scope_at(ctx.silver.read("product_review"), "created_at").withColumn("day", ctx.day(F.col("created_at")))
    reviews = _until_as_of(reviews, "day", ctx)
    reviews = reviews.groupBy("product_id", "day").agg(F.count(F.lit(1)).alias("review_count"),
                                                        m.avg_rating(F.col("rating")).alias("avg_rating"))
    products = ctx.gold("dim_product").select("product_id", "product_key", "product_name", "brand_name",
                                              "category_name", "sub_category_name")
    joined = sales.join(reviews, ["product_id", "day"], "full_outer").join(products, "product_id", "left")
    return joined.select(
        "day", "product_id", "product_key", "product_name", "brand_name", "category_name", "sub_category_name",
        *[F.coalesce(F.col(c), F.lit(0)).cast(t).alias(c) for c, t in
          (("units_sold", "bigint"), ("revenue", m.MONEY), ("order_count", "bigint"), ("return_rate", "decimal(18,4)"),
           ("review_count", "bigint"))], "avg_rating")


def build_returns(ctx: BuildContext) -> DataFrame:
    """Returns per (day the returned order was placed, reason): counts, refunds, resolution time,
    and the rate of that day's sale orders returned for the reason."""
    orders = _until_as_of(ctx.in_scope(ctx.gold("fct_orders"), "order_day"), "order_day", ctx)
    sale_orders = orders.groupBy("order_day").agg(m.sale_order_count(F.col("status")).alias("sale_orders"))
    returns = _until_as_of(ctx.gold("fct_returns"), "return_day", ctx).where(F.col("order_day").isNotNull())
    returns = ctx.in_scope(returns, "order_day")
    by_reason = returns.groupBy("order_day", "reason").agg(
        m.return_count().alias("return_count"),
        F.countDistinct(F.when(F.col("order_is_sale"), F.col("order_id"))).alias("returned_orders"),
        m.refunded_amount(F.col("refund_amount"), F.col("is_refund")).alias("refunded_amount"),
        m.avg_resolution_days(F.col("resolution_days")).alias("avg_resolution_days"))
    return by_reason.join(sale_orders, "order_day", "left").select(
        "order_day", "reason", "return_count", "returned_orders", "refunded_amount", "avg_resolution_days",
        F.coalesce("sale_orders", F.lit(0)).cast("bigint").alias("sale_orders"),
        m.return_rate(F.col("returned_orders"), F.coalesce("sale_orders", F.lit(0))).alias("return_rate"))


def build_cart_analytics(ctx: BuildContext) -> DataFrame:
    """Carts per (day created, channel): conversion and abandonment."""
    events = ctx.gold("fct_cart_events")
    created = ctx.in_scope(events.where(F.col("event_type") == "created"), "event_day")
    carts = events.join(created.select("cart_id"), "cart_id", "left_semi").groupBy("cart_id").agg(
        F.min(F.when(F.col("event_type") == "created", F.col("event_day"))).alias("created_day"),
        F.first("channel_key", ignorenulls=True).alias("channel_key"),
        F.max((F.col("event_type") == "checked_out").cast("int")).cast("boolean").alias("converted"),
        F.max((F.col("event_type") == "abandoned").cast("int")).cast("boolean").alias("abandoned"))
    carts = _name(ctx, _until_as_of(carts.where(F.col("created_day").isNotNull()), "created_day", ctx),
                  "dim_channel", "channel_key", "channel_name", "channel")
    return carts.groupBy("created_day", "channel").agg(
        m.cart_count().alias("cart_count"), F.count(F.when(F.col("converted"), 1)).alias("converted_carts"),
        F.count(F.when(F.col("abandoned"), 1)).alias("abandoned_carts"),
        m.cart_conversion_rate(F.col("converted")).alias("conversion_rate"),
        m.cart_abandonment_rate(F.col("abandoned")).alias("abandonment_rate"))


# --- reconciliations: totals of a mart against the same totals computed straight from silver ---

def _total(df: DataFrame, column: str) -> Decimal:
    return _totals(df, total=F.col(column))["total"]


def _totals(df: DataFrame, **sums: Column) -> dict[str, Decimal]:
    """The sum of each of ``sums`` over ``df``, in one aggregation (one scan)."""
    row = df.agg(*[F.sum(column).alias(name) for name, column in sums.items()]).first()
    return {name: Decimal(row[name] or 0) for name in sums}


def reconcile_daily_sales(ctx: BuildContext, mart: DataFrame) -> dict[str, tuple[Decimal, Decimal]]:
    """Orders, GMV and units of the mart = silver's orders up to the logical date (sales: not
    cancelled), each side summed in one aggregation."""
    orders = ctx.silver.read("orders").where(ctx.day(F.col("order_date")) <= F.lit(ctx.as_of))
    units = ctx.silver.read("order_items").groupBy(F.col("order_id").alias("id")).agg(F.sum("quantity").alias("units"))
    sale = F.col("status") != "cancelled"
    silver = _totals(orders.join(units, "id", "left"), orders=F.lit(1),
                     gmv=F.when(sale, F.col("total_price")), units_sold=F.when(sale, F.col("units")))
    gold = _totals(mart, orders=F.col("order_count"), gmv=F.col("gmv"), units_sold=F.col("units_sold"))
    return {name: (gold[name], silver[name]) for name in silver}


def reconcile_customer_360(ctx: BuildContext, mart: DataFrame) -> dict[str, tuple[Decimal, Decimal]]:
    """One row per silver customer."""
    return {"customers": (Decimal(mart.count()), Decimal(ctx.silver.read("customers").count()))}


def reconcile_inventory(ctx: BuildContext, mart: DataFrame) -> dict[str, tuple[Decimal, Decimal]]:
    """Stock on hand of the logical date = silver's stock."""
    today = mart.where(F.col("snapshot_day") == F.lit(ctx.as_of))
    return {"stock_on_hand": (_total(today, "stock_on_hand"), _total(ctx.silver.read("inventory"), "quantity"))}


def reconcile_logistics(ctx: BuildContext, mart: DataFrame) -> dict[str, tuple[Decimal, Decimal]]:
    """Shipments of the mart = silver's shipments created up to the logical date."""
    shipments = ctx.silver.read("shipment").where(ctx.day(F.col("created_at")) <= F.lit(ctx.as_of))
    return {"shipments": (_total(mart, "shipment_count"), Decimal(shipments.count()))}


# --- what a daily batch changes: the days of each mart to rebuild ---------------------------------

@_mart_days("dim_channel", "dim_geography")
def daily_sales_touched_days(ctx: BuildContext) -> list[date | None] | None:
    """The order days ``fct_orders`` rebuilt."""
    return ctx.touched_days_of("fct_orders")


@_mart_days("dim_carrier", "dim_shipping_method", "dim_geography")
def logistics_touched_days(ctx: BuildContext) -> list[date | None] | None:
    """The ship days ``fct_shipments`` rebuilt."""
    return ctx.touched_days_of("fct_shipments")


@_mart_days("dim_product")
def product_touched_days(ctx: BuildContext) -> list[date | None] | None:
    """The order days ``fct_order_lines`` rebuilt, and the days of reviews landed since the last build."""
    reviews = ctx.silver.read("product_review").where(ctx.newer())
    return _union(ctx.touched_days_of("fct_order_lines"),
                  _days_of(reviews.select(ctx.day(F.col("created_at")).alias("day")), "day"))


@_mart_days()
def return_reasons_touched_days(ctx: BuildContext) -> list[date | None] | None:
    """The order days ``fct_orders`` rebuilt (sale orders), the order days of returns that changed
    and of returns dated on the days the logical date brings into view."""
    returns = ctx.rows_changed("fct_returns", "return_day")
    newly_dated = ctx.gold("fct_returns").where(in_days(F.col("return_day"), ctx.newly_covered()))
    return _union(ctx.touched_days_of("fct_orders"), _days_of(returns, "order_day"), _days_of(newly_dated, "order_day"))


@_mart_days("dim_channel")
def cart_touched_days(ctx: BuildContext) -> list[date | None] | None:
    """The days the carts whose events changed were created (before and after the batch)."""
    changed = ctx.rows_changed("fct_cart_events", "event_day")
    if changed is None:
        return None
    created = [df.where(F.col("event_type") == "created").join(changed, "cart_id", "left_semi")
               for df in (ctx.gold("fct_cart_events"), ctx.previous("fct_cart_events"))]
    return _days_of(created[0].unionByName(created[1]), "event_day")


def _mart(name: str, build, upstream: tuple[str, ...], depends_on: tuple[str, ...], day: str | None,
          sort_by: list[str], reconcile=None, touched_days=None) -> GoldTable:
    return GoldTable(name, build, upstream, depends_on, partition_by=[day] if day else [], sort_by=sort_by,
                     reconcile=reconcile, touched_days=touched_days)


#: ``mart_customer_360`` is rebuilt whole every run: every row depends on the logical date
#: (days since the last order) and the RFM scores rank each customer against all the others.
MARTS = [
    _mart("mart_daily_sales", build_daily_sales, ("orders", "order_items"),
          ("fct_orders", "dim_channel", "dim_geography"), "order_day", ["order_day", "province", "channel"],
          reconcile_daily_sales, daily_sales_touched_days),
    _mart("mart_customer_360", build_customer_360, ("customers",), ("fct_orders", "dim_customer"), None,
          ["customer_id"], reconcile_customer_360),
    _mart("mart_inventory_daily", build_inventory_daily, ("inventory", "inventory_log"), ("fct_inventory_daily",),
          "snapshot_day", ["snapshot_day", "product_id", "warehouse_id"], reconcile_inventory, inventory_touched_days),
    _mart("mart_logistics_daily", build_logistics_daily, ("shipment",),
          ("fct_shipments", "dim_carrier", "dim_shipping_method", "dim_geography"), "ship_day",
          ["ship_day", "carrier", "province"], reconcile_logistics, logistics_touched_days),
    _mart("mart_product_performance", build_product_performance, ("product_review",),
          ("fct_orders", "fct_order_lines", "dim_product"), "day", ["day", "product_id"],
          touched_days=product_touched_days),
    _mart("mart_returns", build_returns, (), ("fct_orders", "fct_returns"), "order_day", ["order_day", "reason"],
          touched_days=return_reasons_touched_days),
    _mart("mart_cart_analytics", build_cart_analytics, (), ("fct_cart_events", "dim_channel"), "created_day",
          ["created_day", "channel"], touched_days=cart_touched_days),
]
