"""Business days: the calendar day of a UTC instant in the business zone, and a column's first or
last one read cheaply."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def business_day(ts: Column, zone: str) -> Column:
    """The calendar day in ``zone`` of the UTC instant ``ts``."""
    return F.to_date(F.from_utc_timestamp(ts, zone))


def edge_business_day(df: DataFrame, column: str, zone: str, last: bool, near: datetime | None = None) -> date | None:
    """The last (``last``) or first business day in ``zone`` of the instants ``column`` of ``df``
    (None when it holds none).

    The edge instant is read first: a plain max or min of one column, which converts no row and
    which Iceberg answers from file metrics where no deletes apply. Then only the instants within a
    day of it are converted: a zone's clock never turns back a whole day, so the edge day is among
    theirs, and the files and partitions of the other days are skipped.

    ``near`` (an aware instant the edge likely lies beyond: at or after it for the last day, at or
    before it for the first) bounds the first read too: the edge of the instants beyond ``near``
    is the edge of them all, and a table partitioned or sorted by ``column`` skips the files on the
    other side (a merge-on-read table's deletes keep Iceberg from answering from file metrics).
    The whole column is read only when no instant lies beyond ``near``.
    """
    ts, edge_of = F.col(column), F.max if last else F.min
    edge = None
    if near is not None:
        bound = F.lit(near).cast("timestamp")
        edge = df.where(ts >= bound if last else ts <= bound).select(edge_of(ts)).first()[0]
    if edge is None:
        edge = df.select(edge_of(ts)).first()[0]
    if edge is None:
        return None
    near_edge = ts > F.lit(edge - timedelta(days=1)) if last else ts < F.lit(edge + timedelta(days=1))
    return df.where(near_edge).select(edge_of(business_day(ts, zone))).first()[0]
