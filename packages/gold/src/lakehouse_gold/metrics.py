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

from pyspark.sql import Column
from pyspark.sql import functions as F

# Order statuses (silver canonical vocabulary) that do not count as sales.
NON_SALE_STATUSES = ("cancelled",)
SALE_STATUSES = "every status but cancelled"
ALL_STATUSES = "all"


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


@metric(grain="order", statuses=SALE_STATUSES)
def gmv(total_price: Column, status: Column) -> Column:
    """GMV (gross merchandise value): Σ order total_price over orders that are sales (not cancelled)."""
    return F.coalesce(F.sum(F.when(is_sale(status), total_price)), F.lit(0)).cast("decimal(18,2)")


@metric(grain="order", statuses=SALE_STATUSES)
def aov(total_price: Column, status: Column) -> Column:
    """AOV (average order value): GMV ÷ number of sale orders; 0 when there are none."""
    sales = F.count(F.when(is_sale(status), 1))
    return F.when(sales > 0, (gmv(total_price, status) / sales)).otherwise(F.lit(0)).cast("decimal(18,2)")


@metric(grain="order (lines summed per order first)", statuses=SALE_STATUSES)
def units_sold(quantity: Column, status: Column) -> Column:
    """Units sold: Σ line quantities of sale orders (lines pre-aggregated per order: no fan-out)."""
    return F.coalesce(F.sum(F.when(is_sale(status), quantity)), F.lit(0)).cast("bigint")
