"""Cursor planning: which source rows a batch reads, and the watermark it commits.

Three kinds (chosen per table in the registry):

* ``xmin`` — commit visibility. Rows whose ``xmin`` is not visible in the snapshot
  recorded by the previous batch: every insert and update committed since, late
  commits included, whatever the application timestamps say. Watermark: the snapshot
  taken at the start of this run (before any read, so nothing can fall between).
* serial id — ``id >= watermark − lookback_ids``: ids committed late within the
  lookback are re-read. Watermark: the highest id read.
* timestamp — ``[watermark − lookback, upper)`` with
  ``upper = min(end of the data interval, source now − safety lag)`` in source-local
  time. Rows sharing the watermark timestamp are re-read (inclusive lower bound);
  rows committed late within the lookback are caught. Watermark: ``upper``.
  **NULL cursor rule:** rows whose cursor is NULL are read by every batch and land in
  bronze once per distinct content (re-reads equal to the latest version are dropped).

**Rows beyond the upper bound** (a timestamp cursor at or after ``upper``) belong to a later
batch: they are not read now and are counted instead (``deferred``), with those dated after
the source's clock (``future``), which no batch can take until the clock passes them.

Re-read rows never inflate bronze: extraction drops rows equal to the latest bronze
version of their key. A watermark that would move backwards raises WatermarkError. A registry
cursor changed to another kind since the last batch (say ``updated_at`` to ``xmin``) migrates:
that batch reads the whole table once and commits a watermark of the new kind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lakehouse_core.batch import DataInterval
from lakehouse_core.errors import DataError
from lakehouse_core.registry import LoadMode, TableSpec
from lakehouse_core.settings import LakehouseSettings
from lakehouse_bronze.source import XMIN_AS_XID8, SourceState, literal, quote, snapshot_literal

_LOG = logging.getLogger(__name__)

SERIAL_TYPES = ("smallint", "integer", "bigint")
TIMESTAMP_TYPES = ("timestamp without time zone", "timestamp with time zone", "date")


class WatermarkError(DataError):
    """A watermark would move backwards (the source clock went back) or the cursor is unusable."""


@dataclass(frozen=True)
class ReadPlan:
    """What to read for a batch and the watermark to commit with it."""

    predicate: str | None
    extra_columns: str = ""
    watermark: dict | None = None
    watermark_is_max_of: str | None = None  # serial cursors: the read's max(column)
    # timestamp cursors: rows left for a later batch (cursor at or after the upper bound), and
    # those of them dated after the source's own clock
    deferred: str | None = None
    future: str | None = None
    #: the bounds ``predicate`` renders (``window_predicate``), committed with the batch: the next
    #: batch checks whether the rows within them are still those this batch read (``extract``)
    window: dict = field(default_factory=lambda: {"kind": "all"})


def plan_read(spec: TableSpec, cursor_type: str | None, previous: dict | None, state: SourceState,
              interval: DataInterval, settings: LakehouseSettings) -> ReadPlan:
    """The read plan for ``spec`` (see module docstring).

    Raises WatermarkError when the cursor column has an unusable type or the
    watermark would move backwards.
    """
    if spec.load_mode is LoadMode.full:
        return ReadPlan(None)
    previous = _of_this_cursor(spec, cursor_type, previous)
    if spec.uses_commit_cursor:
        window = {"kind": "xmin", "snapshot": previous and previous["snapshot"]}
        return ReadPlan(window_predicate(window), extra_columns=f", {XMIN_AS_XID8} AS _source_xid",
                        watermark={"kind": "xmin", "snapshot": state.snapshot}, window=window)

    if cursor_type in SERIAL_TYPES:
        window = {"kind": "serial", "column": spec.cursor,
                  "from": None if previous is None else int(previous["value"]) - settings.extract.lookback_ids}
        return ReadPlan(window_predicate(window), watermark=previous, watermark_is_max_of=spec.cursor, window=window)
    if cursor_type not in TIMESTAMP_TYPES:
        raise WatermarkError(f"{spec.name}.{spec.cursor}: cursor of type {cursor_type!r} is neither a serial "
                             "nor a timestamp column; use cursor = \"xmin\" or load_mode = \"full\"")

    upper = min(interval.end_in_zone(settings.source_zone),
                state.now - timedelta(seconds=settings.extract.safety_lag_seconds))
    lower = None
    if previous is not None:
        last = datetime.fromisoformat(previous["value"])
        if upper < last:
            raise WatermarkError(
                f"{spec.name}.{spec.cursor}: watermark would move backwards from {last} to {upper} "
                f"(source now {state.now}); the source clock went back or the interval precedes the watermark")
        lower = (last - timedelta(seconds=settings.extract.lookback_seconds)).isoformat()
    window = {"kind": "timestamp", "column": spec.cursor, "from": lower, "until": upper.isoformat()}
    column = f"src_t.{quote(spec.cursor)}"
    return ReadPlan(window_predicate(window), watermark={"kind": "timestamp", "value": upper.isoformat()},
                    deferred=f"{column} >= {literal(upper)}", future=f"{column} > {literal(state.now)}", window=window)


def window_predicate(window: dict) -> str | None:
    """The SQL predicate (on ``src_t``) of a read window of ``ReadPlan.window`` (None: every row).
    Values are rendered as typed literals (``literal``, ``snapshot_literal``); raises ValueError
    for a window of no known kind."""
    kind = window.get("kind")
    if kind == "all":
        return None
    if kind == "xmin":
        snapshot = window["snapshot"]
        return None if snapshot is None else \
            f"NOT pg_visible_in_snapshot({XMIN_AS_XID8}::text::xid8, {snapshot_literal(snapshot)})"
    column = f"src_t.{quote(window['column'])}"
    if kind == "serial":
        return None if window["from"] is None else f"{column} >= {literal(int(window['from']))}"
    if kind == "timestamp":
        bounds = [f"{column} < {literal(datetime.fromisoformat(window['until']))}"]
        if window["from"] is not None:
            bounds.append(f"{column} >= {literal(datetime.fromisoformat(window['from']))}")
        return f"(({' AND '.join(bounds)}) OR {column} IS NULL)"
    raise ValueError(f"not a read window: {window!r}")


def _of_this_cursor(spec: TableSpec, cursor_type: str | None, previous: dict | None) -> dict | None:
    """``previous`` when it is a watermark of the kind the registry's cursor commits; None when the
    cursor changed kind since (``xmin``, serial id, timestamp): the batch then reads the whole
    table once, as a first read (rows equal to their latest bronze version are dropped, so nothing
    is duplicated), and commits a watermark of the new kind. Logged as a warning."""
    kind = ("xmin" if spec.uses_commit_cursor else "serial" if cursor_type in SERIAL_TYPES
            else "timestamp" if cursor_type in TIMESTAMP_TYPES else None)
    if previous is None or kind is None or previous.get("kind") == kind:
        return previous
    _LOG.warning("%s: the registry's cursor %r commits a %s watermark, but bronze.%s's last batch committed "
                 "a %s one (the cursor changed): this batch reads the whole table once", spec.name, spec.cursor,
                 kind, spec.name, previous.get("kind"))
    return None
