"""The first and last business day of a column of instants, read without converting every row."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from pyspark.sql import functions as F

from lakehouse_core.business_days import business_day, edge_business_day

UTC = timezone.utc
#: Antarctica/Casey turned its clock back from +11 to +8 at 2010-03-04T15:00Z: local time went from
#: 2010-03-05 01:30 to 2010-03-04 23:00, so a later instant can fall on an earlier business day
BEFORE_TURN_BACK = datetime(2010, 3, 4, 14, 30, tzinfo=UTC)
AFTER_TURN_BACK = datetime(2010, 3, 4, 15, 0, tzinfo=UTC)


def _instants(spark, *instants: datetime):
    return spark.createDataFrame([(t,) for t in instants], "ts timestamp")


def _direct(df, zone: str, last: bool) -> date | None:
    """Every row converted: what ``edge_business_day`` must equal."""
    return df.select((F.max if last else F.min)(business_day(F.col("ts"), zone))).first()[0]


@pytest.mark.parametrize("last", [True, False], ids=["last", "first"])
def test_the_edge_day_is_every_rows_edge_even_where_a_clock_turns_back(spark, last):
    turned_back = _instants(spark, BEFORE_TURN_BACK, AFTER_TURN_BACK)
    # the day of the edge instant alone would be wrong here: 2010-03-04 for the last, 2010-03-05 for the first
    assert edge_business_day(turned_back, "ts", "Antarctica/Casey", last) == date(2010, 3, 5 if last else 4)

    start = datetime(2023, 1, 29, 16, 0, tzinfo=UTC)
    hours = _instants(spark, *(start + timedelta(hours=h) for h in range(0, 72, 5)))
    for zone in ("UTC", "Asia/Ho_Chi_Minh", "America/Los_Angeles", "Pacific/Kiritimati"):
        assert edge_business_day(hours, "ts", zone, last) == _direct(hours, zone, last), zone
    assert edge_business_day(hours, "ts", "Asia/Ho_Chi_Minh", last) == (date(2023, 2, 1) if last else date(2023, 1, 29))


def test_no_instant_has_no_edge_day(spark):
    assert edge_business_day(_instants(spark).where(F.lit(False)), "ts", "UTC", last=True) is None
    assert edge_business_day(_instants(spark, None), "ts", "UTC", last=False) is None
