"""Business metrics, each defined once with its written definition.

Marts compute metrics only through these functions, at the grain the mart declares.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# Order statuses (silver canonical vocabulary) that do not count as sales.
NON_SALE_STATUSES = ("cancelled",)


def is_sale(status: Column) -> Column:
    """An order counts as a sale unless it was cancelled."""
    return ~status.isin(*NON_SALE_STATUSES)


def order_count() -> Column:
    """Order count: number of distinct orders placed (one row per order at order grain), all statuses."""
    return F.count(F.lit(1))


def cancelled_order_count(status: Column) -> Column:
    """Cancelled orders: orders whose current status is ``cancelled``."""
    return F.count(F.when(~is_sale(status), 1))


def gmv(total_price: Column, status: Column) -> Column:
    """GMV (gross merchandise value): Σ order total_price over orders that are sales (not cancelled)."""
    return F.coalesce(F.sum(F.when(is_sale(status), total_price)), F.lit(0)).cast("decimal(18,2)")


def aov(total_price: Column, status: Column) -> Column:
    """AOV (average order value): GMV ÷ number of sale orders; 0 when there are none."""
    sales = F.count(F.when(is_sale(status), 1))
    return F.when(sales > 0, (gmv(total_price, status) / sales)).otherwise(F.lit(0)).cast("decimal(18,2)")


def units_sold(quantity: Column, status: Column) -> Column:
    """Units sold: Σ line quantities of sale orders (lines pre-aggregated per order: no fan-out)."""
    return F.coalesce(F.sum(F.when(is_sale(status), quantity)), F.lit(0)).cast("bigint")
