"""How a gold table is built: a function of silver, read at pinned snapshots, and the run's data interval.

Results depend on the logical date of the run, never on the wall clock. Silver is read at
pinned snapshots (``SilverSnapshots``: ``main`` of each upstream table when the build starts),
and the ids read are the ones committed as ``lakehouse.upstream_snapshot``, so a build can
be repeated exactly from its commit. Every table is built on the batch's audit branch and
published by the gold gate; facts and marts read the gold tables they build on from the same
audit branch (what the gate will publish together).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from functools import partial
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Callable, TypeVar
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse_core import business_days, iceberg, plan_lineage
from lakehouse_core.batch import DataInterval
from lakehouse_core.lineage import ColumnLineage
from lakehouse_core.quality import TOUCHED_DAYS
from lakehouse_core.registry import Registry, identifier
from lakehouse_core.settings import LakehouseSettings

PACKAGE = "lakehouse-gold"
T = TypeVar("T")


@dataclass(frozen=True)
class SilverSnapshots:
    """Silver tables pinned at snapshot ids: what a gold table reads, and all it may read."""

    spark: SparkSession
    ids: dict[str, int]

    @classmethod
    def current(cls, spark: SparkSession, tables: tuple[str, ...]) -> "SilverSnapshots":
        """``main`` of each table now (published silver)."""
        return cls(spark, {t: iceberg.snapshot_id(spark, identifier("silver", t)) for t in tables})

    def read(self, table: str) -> DataFrame:
        """``silver.<table>`` as of its pinned snapshot. Raises KeyError for a table not pinned
        (a build reading a table it does not declare upstream)."""
        if table not in self.ids:
            raise KeyError(f"silver.{table} is not an upstream table of this build (pinned: {sorted(self.ids)})")
        return self.spark.read.option("snapshot-id", str(self.ids[table])).table(identifier("silver", table))

    def history(self, table: str, after: str | None = None) -> list[tuple[DataInterval, DataFrame]]:
        """``silver.<table>`` as each published batch up to the pinned snapshot (and after batch
        ``after``) left it, oldest first, with that batch's data interval (for tables that
        accumulate history, and to catch up with batches a gold table did not see)."""
        ident = identifier("silver", table)
        self.read(table)  # raises KeyError when not pinned
        return [(DataInterval.from_batch_id(batch), self.spark.read.option("snapshot-id", str(snap)).table(ident))
                for batch, snap in iceberg.published_snapshots(self.spark, ident, self.ids[table], after)]


@dataclass(frozen=True)
class BuildContext:
    """What a build may read: pinned silver, the gold tables built before it in this batch,
    the settings and the run's data interval."""

    silver: SilverSnapshots
    settings: LakehouseSettings
    interval: DataInterval
    gold_ref: str = "main"  # where the gold tables it depends on are read (the batch's audit branch)
    gold_tables: tuple[str, ...] = ()
    full_refresh: bool = False  # rebuild from silver alone, ignoring what gold published before
    previous_batch: str | None = None  # the batch the table was last published by (None: never)
    scope: list[date | None] | None = None  # the days this build rebuilds (None: every day)
    table: str | None = None  # the gold table being built
    #: the silver snapshots the table's last published build read (``lakehouse.upstream_snapshot``)
    last_read: dict[str, int] = field(default_factory=dict)

    @property
    def spark(self) -> SparkSession:
        return self.silver.spark

    @property
    def as_of(self) -> date:
        """The run's logical date: the last business day its data interval covers."""
        return self.interval.last_day(self.settings.business_zone)

    def gold(self, table: str) -> DataFrame:
        """``gold.<table>`` as built in this batch. Raises KeyError for a table not declared."""
        if table not in self.gold_tables:
            raise KeyError(f"gold.{table} is not declared as a dependency of this build ({sorted(self.gold_tables)})")
        ident = identifier("gold", table)
        return iceberg.read_ref(self.spark, ident, self._batch_ref(ident))

    def _batch_ref(self, ident: str) -> str:
        """Where this batch's build of gold table ``ident`` is read: its audit branch once staged, else ``main``."""
        staged = self.gold_ref != "main" and iceberg.branch_exists(self.spark, ident, self.gold_ref)
        return self.gold_ref if staged else "main"

    def previous(self, table: str) -> DataFrame | None:
        """``gold.<table>`` as last published (None before its first publish and on a full refresh)."""
        ident = identifier("gold", table)
        if self.full_refresh or not iceberg.table_exists(self.spark, ident):
            return None
        return self.spark.read.table(ident)

    def in_scope(self, df: DataFrame, day_column: str) -> DataFrame:
        """``df`` cut to the days this build rebuilds (all of it without a scope)."""
        return df if self.scope is None else df.where(in_days(F.col(day_column), self.scope))

    def in_scope_at(self, df: DataFrame, ts_column: str) -> DataFrame:
        """``df`` cut to the rows whose instant ``ts_column`` falls on a day this build rebuilds; the
        instant bounds of those days come first, so partitions and files outside them are skipped."""
        if self.scope is None:
            return df
        ts, known = F.col(ts_column), [d for d in self.scope if d is not None]
        zone = ZoneInfo(self.settings.business_zone)
        bounded = F.lit(False)
        if known:
            low = datetime.combine(min(known), time(), zone)
            high = datetime.combine(max(known) + timedelta(days=1), time(), zone)
            bounded = (ts >= F.lit(low).cast("timestamp")) & (ts < F.lit(high).cast("timestamp"))
        if None in self.scope:
            bounded = bounded | ts.isNull()
        return df.where(bounded).where(in_days(self.day(ts), self.scope))

    def newly_covered(self) -> list[date]:
        """The business days this run's logical date brings into view: after the logical date of
        the batch the table was last built for, through this run's (rows dated ahead of an earlier
        run's logical date enter the marts now)."""
        if self.previous_batch is None:
            return []
        last = DataInterval.from_batch_id(self.previous_batch).last_day(self.settings.business_zone)
        return [last + timedelta(days=k) for k in range(1, (self.as_of - last).days + 1)]

    def deletes_reach_silver(self, table: str) -> bool:
        """Whether rows of ``silver.<table>`` can have disappeared since the table's last build: the
        registry reconciles its deletes and silver committed rows since (``silver_unchanged``)."""
        return Registry.load(self.settings).get(table).reconcile_deletes and not self.silver_unchanged(table)

    def silver_unchanged(self, table: str) -> bool:
        """Whether ``silver.<table>`` holds the rows the table's last published build read (every
        commit since is a state commit or a compaction), decided from the snapshots alone."""
        before = self.last_read.get(table)
        return before is not None and iceberg.same_rows_between(
            self.spark, identifier("silver", table), before, self.silver.ids[table])

    def unchanged_in_batch(self, table: str) -> bool:
        """Whether ``gold.<table>`` holds, as this batch built it, the rows it last published
        (decided from the snapshots alone; False before its first publish and on a full refresh)."""
        ident = identifier("gold", table)
        if self.full_refresh or not iceberg.table_exists(self.spark, ident):
            return False
        ref = self._batch_ref(ident)
        return ref == "main" or iceberg.same_rows_as_published(self.spark, ident, ref)

    def newer(self) -> F.Column:
        """A silver row landed by a batch after the one this table was last built for."""
        return F.col("_source_batch_id") > F.lit(self.previous_batch)

    def touched_days_of(self, table: str) -> list[date | None] | None:
        """The days ``gold.<table>`` rebuilt in this batch (None: all of them)."""
        self.gold(table)  # raises KeyError when not declared
        ident = identifier("gold", table)
        ref = self.gold_ref if iceberg.branch_exists(self.spark, ident, self.gold_ref) else iceberg.PUBLISH_TAG
        days = json.loads(iceberg.summary(self.spark, ident, ref).get(TOUCHED_DAYS, "null"))
        return None if days is None else [None if d is None else date.fromisoformat(d) for d in days]

    def rows_changed(self, table: str, day_column: str) -> DataFrame | None:
        """The rows of ``gold.<table>`` this batch changed, both versions (rows it wrote that were
        not there before, and rows it replaced that are gone); None when it rebuilt every day."""
        def compute() -> DataFrame | None:
            days = self.touched_days_of(table)
            previous = self.previous(table)
            if days is None or previous is None:
                return None
            now, before = (df.where(in_days(F.col(day_column), days)) for df in (self.gold(table), previous))
            return now.exceptAll(before).unionByName(before.exceptAll(now))

        return self.derived(f"rows_changed({table}, {day_column})", (table,), compute)

    def changed(self, table: str) -> bool:
        """Whether ``gold.<table>`` (a small dimension) differs from what was last published."""
        def compute() -> bool:
            if self.unchanged_in_batch(table):
                return False
            previous = self.previous(table)
            return previous is None or _fingerprint(self.gold(table)) != _fingerprint(previous)

        return self.derived(f"changed({table})", (table,), compute)

    def derived(self, name: str, tables: tuple[str, ...], compute: Callable[[], T]) -> T:
        """``compute()``: what this batch changed in gold ``tables`` (as built on the audit branch
        against their published ``main``), computed once per process for the snapshots it compares
        (several tables of a batch ask for the same change set); a DataFrame is checkpointed."""
        key = (name, self.full_refresh, *(iceberg.snapshot_id(self.spark, identifier("gold", t), ref)
                                          for t in tables for ref in (self.gold_ref, "main")))
        with _DERIVED_LOCK:
            if key in _DERIVED:
                return _DERIVED[key]
        value = compute()  # (two tables built at once may both compute it: the same value)
        value = value.localCheckpoint() if isinstance(value, DataFrame) else value
        with _DERIVED_LOCK:
            _DERIVED[key] = value
            while len(_DERIVED) > _DERIVED_KEPT:
                _DERIVED.pop(next(iter(_DERIVED)))
        return value

    def within_share(self, days: list[date | None]) -> bool:
        """Whether rebuilding ``days`` alone stays within ``gold.incremental_max_share`` of the days
        the table will hold (those it holds and the new ones); beyond, a daily build rebuilds the
        table whole (a touched-days function may stop looking as soon as a part of its days is
        beyond)."""
        if not days:
            return True
        held = iceberg.partition_values(self.spark, identifier("gold", self.table)) | set(days)
        return len(days) <= self.settings.gold.incremental_max_share * len(held)

    def day(self, ts: F.Column) -> F.Column:
        """The business day of a UTC instant."""
        return business_day(ts, self.settings)


Writer = Callable[[DataFrame, str], None]
_DERIVED: dict[tuple, object] = {}  # BuildContext.derived: change sets by the snapshots they compare
_DERIVED_KEPT = 32
_DERIVED_LOCK = threading.Lock()  # tables are built in threads (lakehouse_core.parallel)


def in_days(day: F.Column, days: list[date | None]) -> F.Column:
    """``day`` is one of ``days`` (``None`` in the list matches a NULL day)."""
    known = [d for d in days if d is not None]
    condition = day.isin(*known) if known else F.lit(False)
    return condition | day.isNull() if None in days else condition


def _fingerprint(df: DataFrame) -> tuple[int, int]:
    """Row count and an order-independent hash of the rows."""
    row = df.select(F.count(F.lit(1)), F.sum(F.xxhash64(*df.columns).cast("decimal(38,0)"))).first()
    return int(row[0]), int(row[1] or 0)


def replace_all(df: DataFrame, target: str) -> None:
    """Replace the table's rows with ``df``."""
    df.writeTo(target).overwrite(F.lit(True))


def _keep(df: DataFrame, target: str) -> None:
    """Write nothing: the table already holds ``df``'s rows."""


def replace_days(df: DataFrame, target: str, column: str, days: list[date | None]) -> None:
    """Replace the rows of ``days`` (partitions of ``column``) with ``df``, in one commit."""
    if days:
        df.writeTo(target).overwrite(in_days(F.col(column), days))


@dataclass(frozen=True)
class GoldTable:
    """A gold table (``dim_*``, ``fct_*``, ``mart_*``): how it is built, from which silver tables
    and gold tables, and how it is laid out (partitions, sort order).

    ``build`` returns the whole table, unless the build is incremental (the table exists and no
    full refresh is asked): then a table with ``touched_days`` returns the rows of the days that
    function names (``BuildContext.scope``; they replace those days' rows, partition by
    partition), and a table with an ``incremental_write`` returns only the rows the batch
    changes, which it applies.
    """

    name: str
    build: Callable[[BuildContext], DataFrame]
    upstream: tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    partition_by: list[str] = field(default_factory=list)
    sort_by: list[str] = field(default_factory=list)
    incremental_write: Writer | None = None
    #: the days (of the first ``partition_by`` column) a batch changes; None from it: every day
    touched_days: Callable[[BuildContext], list[date | None] | None] | None = None
    #: totals computed from the built rows and, independently, from silver: name → (gold, silver);
    #: committed as ``lakehouse.reconcile.<name>.gold|silver`` for the gold ``_batch`` suite
    reconcile: Callable[[BuildContext, DataFrame], dict[str, tuple[Decimal, Decimal]]] | None = None
    #: False: the rows are a function of the upstream tables alone, not of the run's data interval
    #: (no logical-date cut-off, no batch history): a batch whose upstream tables hold the rows they
    #: held for the table's last published build leaves it as published (``inputs_unchanged``)
    reads_logical_date: bool = True


def business_day(ts: F.Column, settings: LakehouseSettings) -> F.Column:
    """The calendar day of a UTC instant in the business zone."""
    return business_days.business_day(ts, settings.business_zone)


@dataclass(frozen=True)
class GoldResult:
    table: str
    rows: int
    skipped: bool = False
    column_lineage: ColumnLineage | None = None  # when lineage is on
    unchanged: bool = False  # its upstream tables unchanged: its state staged alone (``inputs_unchanged``)


def inputs_unchanged(table: GoldTable, context: BuildContext) -> bool:
    """Whether ``table`` (one that does not read the logical date) would be built as last published:
    every silver table it reads holds the rows its last published build read
    (``BuildContext.silver_unchanged``), and every gold table it reads holds in this batch the rows
    it last published (``BuildContext.unchanged_in_batch``)."""
    if table.reads_logical_date or table.reconcile is not None:
        return False
    return (all(context.silver_unchanged(t) for t in table.upstream)
            and all(context.unchanged_in_batch(t) for t in table.depends_on))


def daily_scope(context: BuildContext, table: GoldTable) -> list[date | None] | None:
    """The days a daily build of ``table`` rebuilds: its touched days, or None (every day) when they
    are beyond ``gold.incremental_max_share`` (``BuildContext.within_share``)."""
    days = table.touched_days(context)
    return days if days is not None and context.within_share(days) else None


def build_table(spark: SparkSession, settings: LakehouseSettings, table: GoldTable, interval: DataInterval,
                full_refresh: bool = False) -> GoldResult:
    """Build ``gold.<table>`` on the batch's audit branch, recording the silver and gold snapshots
    read; ``full_refresh`` rebuilds it from silver alone.

    Raises BatchOrderError when a newer batch is already published and
    UpstreamNotPublishedError when the silver batch of an upstream table is not published.
    """
    ident = identifier("gold", table.name)
    batch_id = interval.batch_id
    start = iceberg.start_batch(spark, ident, batch_id)
    if start.already_published:
        return GoldResult(table.name, 0, skipped=True)
    for upstream in table.upstream:
        iceberg.require_published(spark, identifier("silver", upstream), batch_id, f"gold.{table.name}")
    silver = SilverSnapshots.current(spark, table.upstream)
    incremental = start.exists and not full_refresh
    branch = iceberg.audit_branch(batch_id)
    context = BuildContext(silver, settings, interval, branch, table.depends_on, full_refresh=full_refresh,
                           previous_batch=start.summary.get("lakehouse.batch_id"), table=table.name,
                           last_read=start.state("upstream_snapshot") or {})
    gold_read = {t: iceberg.snapshot_id(spark, identifier("gold", t), branch)
                 or iceberg.snapshot_id(spark, identifier("gold", t)) for t in table.depends_on}
    state = {"lakehouse.upstream_snapshot": iceberg.encode(silver.ids),
             "lakehouse.gold_upstream_snapshot": iceberg.encode(gold_read)}
    if incremental and inputs_unchanged(table, context):
        # the state alone, as a build that changes nothing stages it (no files); the column lineage
        # (when on) still read from the plan of the table's build, as a consumer shows the latest run's
        state[TOUCHED_DAYS] = iceberg.encode([] if table.touched_days else None)
        iceberg.stage(spark, ident, batch_id, None, PACKAGE, state)
        lineage = plan_lineage.column_lineage(table.build(context)) if settings.lineage.enabled else None
        return GoldResult(table.name, 0, column_lineage=lineage, unchanged=True)
    if incremental and table.touched_days and context.previous_batch:
        context = replace(context, scope=daily_scope(context, table))
    df = table.build(context)
    write = replace_all
    if context.scope is not None:
        df = context.in_scope(df, table.partition_by[0])
        write = partial(replace_days, column=table.partition_by[0], days=context.scope)
    elif incremental and table.incremental_write:
        write = table.incremental_write
    # the plan's column lineage, read before the checkpoint cuts it from the tables it read
    lineage = plan_lineage.column_lineage(df) if settings.lineage.enabled else None
    # a table of touched days (a fact) is written straight from its plan, its rows counted from its
    # commit: storing them in a checkpoint first cost more (scale 3, a daily build: the facts' table
    # time about 8 % more, ``fct_order_lines`` 11.5-13.2 s against 7.2-8.6 s). The others are
    # compared with their published rows before they are written: computed once, kept for both.
    checkpointed = table.touched_days is None
    if checkpointed:
        df = df.localCheckpoint()
    if checkpointed and write is replace_all and start.exists and _fingerprint(df) == _fingerprint(spark.table(ident)):
        write = _keep  # rebuilt whole as published: no new files (the gate keeps the table's validation)
    if not start.exists:
        iceberg.create_table(spark, ident, df.schema, partition_by=table.partition_by)
        if table.sort_by:  # writes sorted for the common filters: readers skip files by min/max
            spark.sql(f"ALTER TABLE {ident} WRITE ORDERED BY {', '.join(table.sort_by)}")
    state[TOUCHED_DAYS] = iceberg.encode(context.scope)

    def write_and_reconcile(target: str) -> None:
        write(df, target)
        for name, (gold, silver_total) in (table.reconcile(context, spark.table(target)) if table.reconcile else {}).items():
            state.update({f"lakehouse.reconcile.{name}.gold": str(gold), f"lakehouse.reconcile.{name}.silver": str(silver_total)})

    published = iceberg.snapshot_id(spark, ident)  # where the audit branch starts
    iceberg.stage(spark, ident, batch_id, write_and_reconcile, PACKAGE, lambda: state)
    rows = df.count() if checkpointed else iceberg.added_rows(spark, ident, branch, published)
    return GoldResult(table.name, rows, column_lineage=lineage)
