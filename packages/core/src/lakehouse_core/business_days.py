"""Business days: the calendar day of a UTC instant in the business zone, and a column's first or
last one read cheaply."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def business_day(ts: Column, zone: str) -> Column:
    """The calendar day in ``zone`` of the UTC instant ``ts``."""
    return F.to_date(F.from_utc_timestamp(ts, zone))


def edge_business_day(df: DataFrame, column: str, zone: str, last: bool) -> date | None:
    """The last (``last``) or first business day in ``zone`` of the instants ``column`` of ``df``
    (None when it holds none).

    The edge instant is read first: a plain max or min of one column, which converts no row and
    which Iceberg answers from file metrics where no deletes apply. Then only the instants within a
    day of it are converted: a zone's clock never turns back a whole day, so the edge day is among
    theirs, and the files and partitions of the other days are skipped.
    """
    ts, edge_of = F.col(column), F.max if last else F.min
    edge = df.select(edge_of(ts)).first()[0]
    if edge is None:
        return None
    near = ts > F.lit(edge - timedelta(days=1)) if last else ts < F.lit(edge + timedelta(days=1))
    return df.where(near).select(edge_of(business_day(ts, zone))).first()[0]
