"""Batches: a batch is (layer, table, data interval); its id derives from the interval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from lakehouse_core.errors import BatchError


class BatchOrderError(BatchError):
    """A batch older than one already published was asked to run again."""


def _parse(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError(f"interval bound {value!r} needs a time zone offset")
    return dt.astimezone(timezone.utc)


@dataclass(frozen=True)
class DataInterval:
    """The data interval of a run (as Airflow gives it), in UTC."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, start: str, end: str) -> "DataInterval":
        """Build from ISO-8601 strings with offsets; raises ValueError when naive or empty."""
        interval = cls(_parse(start), _parse(end))
        if interval.end <= interval.start:
            raise ValueError(f"empty data interval {start} .. {end}")
        return interval

    @classmethod
    def from_batch_id(cls, batch_id: str) -> "DataInterval":
        """The interval a batch id was made from; raises ValueError for a malformed id."""
        try:
            start, end = (datetime.strptime(part, "%Y%m%dT%H%M").replace(tzinfo=timezone.utc)
                          for part in batch_id.split("_"))
        except ValueError:
            raise ValueError(f"malformed batch id {batch_id!r} (expected <start>_<end>, e.g. "
                             "20230106T1700_20230107T1700)") from None
        return cls(start, end)

    @property
    def batch_id(self) -> str:
        """Sortable id, e.g. ``20230106T1700_20230107T1700`` (UTC)."""
        return f"{self.start:%Y%m%dT%H%M}_{self.end:%Y%m%dT%H%M}"

    def end_in_zone(self, zone: str) -> datetime:
        """The interval end as naive local time in ``zone`` (how the source stores time)."""
        return self.end.astimezone(ZoneInfo(zone)).replace(tzinfo=None)

    def last_day(self, zone: str) -> date:
        """The last calendar day in ``zone`` the interval covers (its logical date for a daily run)."""
        return (self.end.astimezone(ZoneInfo(zone)) - timedelta(microseconds=1)).date()


def check_not_older(batch_id: str, published: set[str], table: str) -> None:
    """Refuse to run a batch older than the newest published one (corrections are new batches).

    Raises BatchOrderError naming the table and both batch ids.
    """
    newer = sorted(b for b in published if b > batch_id)
    if newer:
        raise BatchOrderError(
            f"{table}: batch {batch_id} is older than the published batch {newer[-1]}; "
            "rerunning an older batch after newer ones is refused (run a new batch instead)")
