"""Business metrics, each defined once with its written definition.

Marts compute metrics only through these functions, at the grain the mart declares. Every
metric is registered with ``@metric`` (its grain and the order statuses it counts); its
docstring is its definition. ``docs/metrics.md`` lists the same metrics with the same
definitions, and ``tests/unit/test_metrics_doc.py`` fails when the two disagree.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from pyspark.sql import Column, Window
from pyspark.sql import functions as F

# Order statuses (silver canonical vocabulary) that do not count as sales.
NON_SALE_STATUSES = ("cancelled",)
SALE_STATUSES = "every status but cancelled"
ALL_STATUSES = "all"
MONEY = "decimal(18,2)"
#: The canonical order statuses silver produces (``orders_by_status`` has one column per status).
ORDER_STATUSES = ("pending", "confirmed", "processing", "packed", "shipped", "delivering", "delivered",
                  "delivery_failed", "completed", "cancelled", "returned", "refunded")


@dataclass(frozen=True)
class Metric:
    """A registered metric: its function, grain, the statuses it counts and its definition."""

    name: str
    grain: str
    statuses: str
    function: Callable[..., Column]

    @property
    def definition(self) -> str:
        """The function's docstring on one line."""
        return " ".join(inspect.getdoc(self.function).split())


METRICS: dict[str, Metric] = {}


def metric(grain: str, statuses: str) -> Callable[[Callable[..., Column]], Callable[..., Column]]:
    """Register a metric function (its docstring is its written definition)."""
    def register(function: Callable[..., Column]) -> Callable[..., Column]:
        if not inspect.getdoc(function):
            raise TypeError(f"metric {function.__name__} needs a docstring: its written definition")
        METRICS[function.__name__] = Metric(function.__name__, grain, statuses, function)
        return function
    return register


def is_sale(status: Column) -> Column:
    """An order counts as a sale unless it was cancelled."""
    return ~status.isin(*NON_SALE_STATUSES)


@metric(grain="order", statuses=ALL_STATUSES)
def order_count() -> Column:
    """Order count: number of distinct orders placed (one row per order at order grain), all statuses."""
    return F.count(F.lit(1))


@metric(grain="order", statuses="cancelled")
def cancelled_order_count(status: Column) -> Column:
    """Cancelled orders: orders whose current status is ``cancelled``."""
    return F.count(F.when(~is_sale(status), 1))


@metric(grain="order", statuses="the status asked")
def orders_by_status(status: Column, value: str) -> Column:
    """Orders by status: orders whose current status is the given canonical status (one column per status)."""
    return F.count(F.when(status == value, 1))


@metric(grain="order", statuses="cancelled, over all")
def cancellation_rate(status: Column) -> Column:
    """Cancellation rate: cancelled orders ÷ all orders (4 decimals); 0 without orders."""
    return _ratio(cancelled_order_count(status), order_count(), 4)


@metric(grain="order", statuses=SALE_STATUSES)
def sale_order_count(status: Column) -> Column:
    """Sale orders: orders that are sales (every status but cancelled)."""
    return F.count(F.when(is_sale(status), 1))


@metric(grain="order", statuses=SALE_STATUSES)
def gmv(total_price: Column, status: Column) -> Column:
    """GMV (gross merchandise value): Σ order total_price over orders that are sales (not cancelled)."""
    return _money(F.sum(F.when(is_sale(status), total_price)))


@metric(grain="order", statuses=SALE_STATUSES)
def discount_amount(discount: Column, status: Column) -> Column:
    """Discounts: Σ line discount_amount of sale orders (already deducted from total_price, so GMV is net of them)."""
    return _money(F.sum(F.when(is_sale(status), discount)))


@metric(grain="order", statuses=SALE_STATUSES)
def refund_amount(refund: Column, status: Column) -> Column:
    """Refunds: Σ refund_amount of the refund-type returns (not rejected) of sale orders, on the order's row (a cancelled order's refund is not counted: it was never GMV)."""
    return _money(F.sum(F.when(is_sale(status), refund)))


@metric(grain="order", statuses=SALE_STATUSES)
def net_revenue(total_price: Column, refund: Column, status: Column) -> Column:
    """Net revenue: GMV − refunds, over sale orders."""
    return (gmv(total_price, status) - refund_amount(refund, status)).cast(MONEY)


@metric(grain="order", statuses=SALE_STATUSES)
def aov(total_price: Column, status: Column) -> Column:
    """AOV (average order value): GMV ÷ number of sale orders; 0 when there are none."""
    return _ratio(gmv(total_price, status), sale_order_count(status), 2)


@metric(grain="order line (Σ to the mart's grain)", statuses=SALE_STATUSES)
def units_sold(quantity: Column, status: Column) -> Column:
    """Units sold: Σ line quantities of sale orders (lines pre-aggregated per order: no fan-out)."""
    return F.coalesce(F.sum(F.when(is_sale(status), quantity)), F.lit(0)).cast("bigint")


@metric(grain="order line (Σ to the mart's grain)", statuses=SALE_STATUSES)
def line_revenue(amount: Column, status: Column) -> Column:
    """Line revenue: Σ line amount (unit_price × quantity − discount) of sale orders."""
    return _money(F.sum(F.when(is_sale(status), amount)))


@metric(grain="order line (Σ to the mart's grain)", statuses=SALE_STATUSES)
def orders_with_product(order_id: Column, status: Column) -> Column:
    """Orders with the product: distinct sale orders holding at least one line of it."""
    return F.countDistinct(F.when(is_sale(status), order_id))


@metric(grain="order line (Σ to the mart's grain)", statuses=SALE_STATUSES)
def product_return_rate(order_id: Column, has_return: Column, status: Column) -> Column:
    """Product return rate: distinct sale orders with the product that have a return ÷ distinct sale orders with the product (4 decimals)."""
    return _ratio(F.countDistinct(F.when(is_sale(status) & has_return, order_id)),
                  orders_with_product(order_id, status), 4)


# --- customers ------------------------------------------------------------------------------

@metric(grain="customer", statuses=SALE_STATUSES)
def lifetime_value(total_price: Column, refund: Column, status: Column) -> Column:
    """LTV (lifetime value): the customer's net revenue to date: Σ total_price − Σ refunds over their sale orders (from orders, never customers.total_spent)."""
    return net_revenue(total_price, refund, status)


@metric(grain="customer", statuses=SALE_STATUSES)
def is_repeat_customer(sale_orders: Column) -> Column:
    """Repeat customer: more than one sale order to date."""
    return sale_orders > 1


@metric(grain="customer", statuses=SALE_STATUSES)
def retention_cohort(first_order_day: Column) -> Column:
    """Retention cohort: the month (yyyy-MM) of the customer's first sale order; NULL without one."""
    return F.date_format(first_order_day, "yyyy-MM")


@metric(grain="customer", statuses=SALE_STATUSES)
def days_since_last_order(last_order_day: Column, as_of: Column) -> Column:
    """Days since last order: the run's logical date − the day of the customer's last sale order (never the wall clock); NULL without one."""
    return F.datediff(as_of, last_order_day)


@metric(grain="customer", statuses=SALE_STATUSES)
def churn_risk_band(days_since: Column) -> Column:
    """Churn-risk band: never_purchased without a sale order; active ≤ 30 days since the last order, at_risk ≤ 90, dormant ≤ 180, churned beyond."""
    return (F.when(days_since.isNull(), "never_purchased").when(days_since <= 30, "active")
            .when(days_since <= 90, "at_risk").when(days_since <= 180, "dormant").otherwise("churned"))


@metric(grain="customer", statuses=SALE_STATUSES)
def rfm_score(value: Column, ascending: bool) -> Column:
    """RFM score: quintile 1–5 of the customers with a sale order, by recency (fewer days since the last order scores higher), frequency (sale orders) or monetary (LTV), ties broken by customer_id; NULL without a sale order."""
    order = value.asc() if ascending else value.desc()
    window = Window.partitionBy(value.isNull()).orderBy(order, F.col("customer_id"))
    return F.when(value.isNotNull(), 6 - F.ntile(5).over(window))


@metric(grain="customer", statuses=SALE_STATUSES)
def rfm_segment(recency: Column, frequency: Column, monetary: Column) -> Column:
    """RFM segment, first rule that matches: no_purchase (no scores); champions (R ≥ 4, F ≥ 4, M ≥ 4); loyal (F ≥ 4); new (R ≥ 4, F ≤ 2); at_risk (R ≤ 2, F ≥ 3); lost (R = 1); hibernating (R ≤ 2); potential otherwise."""
    return (F.when(recency.isNull(), "no_purchase")
            .when((recency >= 4) & (frequency >= 4) & (monetary >= 4), "champions")
            .when(frequency >= 4, "loyal").when((recency >= 4) & (frequency <= 2), "new")
            .when((recency <= 2) & (frequency >= 3), "at_risk").when(recency == 1, "lost")
            .when(recency <= 2, "hibernating").otherwise("potential"))


# --- inventory ------------------------------------------------------------------------------

@metric(grain="product × warehouse × day", statuses="n/a (stock)")
def is_below_safety_stock(stock: Column, safety_stock: Column) -> Column:
    """Below safety stock: stock on hand at the end of the day < safety_stock."""
    return stock < safety_stock


@metric(grain="product × warehouse × day", statuses="n/a (stock)")
def out_of_stock_incidents(stock: Column, previous_stock: Column) -> Column:
    """Out-of-stock incidents: 1 when stock on hand is 0 at the end of the day and was not 0 at the end of the previous snapshot day (or there was none), else 0."""
    return F.when((stock == 0) & (previous_stock.isNull() | (previous_stock != 0)), 1).otherwise(0)


@metric(grain="product × warehouse × day", statuses="inventory_log sale movements")
def days_on_hand(stock: Column, units_sold_28d: Column) -> Column:
    """Days on hand: stock on hand ÷ average daily units sold over the 28 days ending that day (1 decimal); NULL when nothing sold."""
    daily = units_sold_28d / 28
    return F.when(units_sold_28d > 0, F.round(stock / daily, 1)).cast("decimal(12,1)")


@metric(grain="product × warehouse × day", statuses="inventory_log sale movements")
def inventory_turnover(units_sold_28d: Column, average_stock_28d: Column) -> Column:
    """Inventory turnover: units sold over the 28 days ending that day ÷ average stock on hand over the snapshot days of that window (2 decimals); NULL when the average stock is 0."""
    return F.when(average_stock_28d > 0, F.round(units_sold_28d / average_stock_28d, 2)).cast("decimal(12,2)")


# --- logistics ------------------------------------------------------------------------------

@metric(grain="shipment", statuses="all shipments")
def shipment_count() -> Column:
    """Shipments: number of shipments created."""
    return F.count(F.lit(1))


@metric(grain="shipment", statuses="delivered shipments")
def avg_delivery_hours(delivery_hours: Column) -> Column:
    """Actual delivery time: mean hours from shipment creation to actual delivery, over delivered shipments (2 decimals)."""
    return F.round(F.avg(delivery_hours), 2).cast("decimal(12,2)")


@metric(grain="shipment", statuses="delivered shipments")
def avg_promised_hours(promised_hours: Column, is_delivered: Column) -> Column:
    """Promised delivery time: mean of the shipping method's estimated delivery time in hours, over delivered shipments (2 decimals)."""
    return F.round(F.avg(F.when(is_delivered, promised_hours)), 2).cast("decimal(12,2)")


@metric(grain="shipment", statuses="delivered shipments with an estimate")
def on_time_rate(is_on_time: Column) -> Column:
    """On-time rate: delivered shipments with actual_delivery ≤ estimated_delivery ÷ delivered shipments with an estimate (4 decimals); NULL without any."""
    return F.round(F.avg(is_on_time.cast("int")), 4).cast("decimal(9,4)")


@metric(grain="shipment", statuses="all shipments")
def failed_delivery_attempts(attempts: Column) -> Column:
    """Failed attempts: Σ delivery_attempts (the source adds one per failed delivery)."""
    return F.coalesce(F.sum(attempts), F.lit(0)).cast("bigint")


@metric(grain="shipment", statuses="all shipments")
def shipment_return_rate(order_has_return: Column) -> Column:
    """Return rate (logistics): shipments whose order has a return ÷ shipments (4 decimals)."""
    return _ratio(F.count(F.when(order_has_return, 1)), shipment_count(), 4)


@metric(grain="shipment", statuses="all shipments")
def shipping_cost_per_order(shipping_cost: Column, order_id: Column) -> Column:
    """Shipping cost per order: Σ shipping_cost ÷ distinct orders shipped (2 decimals)."""
    return _ratio(_money(F.sum(shipping_cost)), F.countDistinct(order_id), 2)


@metric(grain="shipment", statuses=SALE_STATUSES)
def shipping_cost_share_of_gmv(shipping_cost: Column, order_total: Column, order_is_sale: Column) -> Column:
    """Shipping cost share of GMV: Σ shipping_cost of shipments of sale orders ÷ Σ total_price of those orders (4 decimals)."""
    return _ratio(F.sum(F.when(order_is_sale, shipping_cost)), F.sum(F.when(order_is_sale, order_total)), 4)


# --- returns, reviews, carts ----------------------------------------------------------------

@metric(grain="return", statuses="all returns")
def return_count() -> Column:
    """Returns: number of return requests."""
    return F.count(F.lit(1))


@metric(grain="return", statuses="refund returns not rejected")
def refunded_amount(refund: Column, is_refund: Column) -> Column:
    """Refunded amount: Σ refund_amount of refund-type returns that are not rejected."""
    return _money(F.sum(F.when(is_refund, refund)))


@metric(grain="return", statuses="resolved returns")
def avg_resolution_days(resolution_days: Column) -> Column:
    """Resolution time: mean days from the return request to its resolution, over resolved returns (2 decimals)."""
    return F.round(F.avg(resolution_days), 2).cast("decimal(10,2)")


@metric(grain="order", statuses=SALE_STATUSES)
def return_rate(returned_orders: Column, sale_orders: Column) -> Column:
    """Return rate: distinct sale orders with a return ÷ sale orders (4 decimals); 0 without sale orders."""
    return _ratio(returned_orders, sale_orders, 4)


@metric(grain="review", statuses="all reviews")
def avg_rating(rating: Column) -> Column:
    """Average rating: mean review rating 1–5 (2 decimals)."""
    return F.round(F.avg(rating), 2).cast("decimal(4,2)")


@metric(grain="cart", statuses="all carts")
def cart_count() -> Column:
    """Carts: number of carts created."""
    return F.count(F.lit(1))


@metric(grain="cart", statuses="checked_out")
def cart_conversion_rate(converted: Column) -> Column:
    """Cart conversion rate: carts checked out ÷ carts created (4 decimals)."""
    return _ratio(F.count(F.when(converted, 1)), cart_count(), 4)


@metric(grain="cart", statuses="abandoned, expired, or active past expiry")
def cart_abandonment_rate(abandoned: Column) -> Column:
    """Cart abandonment rate: carts abandoned (status abandoned or expired, or still active when they expired by the end of the run) ÷ carts created (4 decimals)."""
    return _ratio(F.count(F.when(abandoned, 1)), cart_count(), 4)


def _money(total: Column) -> Column:
    return F.coalesce(total, F.lit(0)).cast(MONEY)


def _ratio(numerator: Column, denominator: Column, scale: int) -> Column:
    return F.when(denominator > 0, F.round(numerator / denominator, scale)).otherwise(F.lit(0)).cast(
        f"decimal({scale + 14},{scale})")
