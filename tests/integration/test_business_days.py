"""The first and last business day of a column of instants, read without converting every row."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

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


@pytest.mark.parametrize("last", [True, False], ids=["last", "first"])
def test_an_edge_beyond_a_near_instant_reads_only_the_partitions_beyond_it(spark, last):
    """With ``near``, the instants beyond it are read first: on a table partitioned by day, the
    partitions on the other side are never opened (their files are removed here, so a read of them
    fails: it does without ``near``, a merge-on-read delete keeping Iceberg from answering from file
    metrics), and the day is still every instant's edge."""
    from urllib.parse import urlparse

    ident = "lakehouse.gold.edge_day_probe"
    spark.sql(f"DROP TABLE IF EXISTS {ident} PURGE")
    spark.sql(f"CREATE TABLE {ident} (ts timestamp) USING iceberg PARTITIONED BY (days(ts)) "
              "TBLPROPERTIES ('format-version' = '2', 'write.delete.mode' = 'merge-on-read')")
    try:
        instants = [datetime(2023, 1, day, hour, tzinfo=UTC) for day in range(1, 11) for hour in (8, 20)]
        _instants(spark, *instants).writeTo(ident).append()
        spark.sql(f"DELETE FROM {ident} WHERE ts = TIMESTAMP'2023-01-05 08:00:00'")  # (a position delete)
        table = spark.table(ident)
        expected = _direct(table, "Asia/Ho_Chi_Minh", last)
        middle = spark.sql(f"SELECT file_path FROM {ident}.files "
                           "WHERE partition.ts_day BETWEEN DATE'2023-01-03' AND DATE'2023-01-08'").collect()
        assert len(middle) == 7  # six data files and the delete file
        for row in middle:
            Path(urlparse(row.file_path).path).unlink()
        with pytest.raises(Exception, match="(?i)not.?found|does not exist|No such file"):
            edge_business_day(table, "ts", "Asia/Ho_Chi_Minh", last)  # (every partition read)

        near = datetime(2023, 1, 9, tzinfo=UTC) if last else datetime(2023, 1, 2, 23, tzinfo=UTC)
        assert edge_business_day(table, "ts", "Asia/Ho_Chi_Minh", last, near=near) == expected
        # nothing beyond ``near``: every instant is read (here: of the partitions left whole)
        intact = table.where(F.col("ts") < F.lit(datetime(2023, 1, 3, tzinfo=UTC)).cast("timestamp"))
        beyond_all = datetime(2023, 1, 5, tzinfo=UTC) if last else datetime(2022, 12, 1, tzinfo=UTC)
        assert edge_business_day(intact, "ts", "UTC", last, near=beyond_all) == date(2023, 1, 2 if last else 1)
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {ident} PURGE")
