"""A source table per test case in its own database (``bronze_cases``), extracted batch by batch.

Shared by the modules that put bronze against a live PostgreSQL (``test_bronze_incremental``,
``test_bad_input``); not a test module.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import psycopg2

from lakehouse_bronze.extract import extract_table, latest_versions
from lakehouse_bronze.source import source_state
from lakehouse_core import iceberg, postgres
from lakehouse_core.batch import DataInterval
from lakehouse_core.registry import TableSpec, identifier

START = datetime(2023, 1, 1)
_names = itertools.count()


class Case:
    """A source table, its registry entry and a batch counter (one day per batch)."""

    def __init__(self, spark, settings, cursor: str, load_mode: str = "incremental", reconcile: bool = False,
                 reader: str = "jdbc", kind: str = "mutable"):
        self.spark = spark
        # reader "copy": the first load lands as files (lakehouse_bronze.landing), later ones compare
        self.settings = settings.model_copy(update={"extract": settings.extract.model_copy(update={"reader": reader})})
        self.name = f"case_{next(_names)}_{cursor}"
        self.spec = TableSpec(name=self.name, kind=kind, primary_key=("id",), load_mode=load_mode,
                              cursor=None if load_mode == "full" else cursor, reconcile_deletes=reconcile)
        self.ident = identifier("bronze", self.name)
        self.day = 0
        self.sql(f"CREATE TABLE {self.name} (id serial PRIMARY KEY, v text, n int, updated_at timestamp)")
        self.set_clock(START + timedelta(hours=12))

    def sql(self, statement: str, params=()):
        with postgres.connect(self.settings.source, self.settings) as conn, conn.cursor() as cur:
            cur.execute(statement, params)
            rows = cur.fetchall() if cur.description else None
            conn.commit()
        return rows

    def set_clock(self, at: datetime) -> None:
        self.sql("INSERT INTO lakehouse_sim.clock VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET sim_now = %s", (at, at))

    @property
    def now(self) -> datetime:
        return self.sql("SELECT sim_now FROM lakehouse_sim.clock")[0][0]

    def interval(self, day: int | None = None) -> DataInterval:
        day = self.day if day is None else day
        start = (START + timedelta(days=day)).isoformat() + "+07:00"
        end = (START + timedelta(days=day + 1)).isoformat() + "+07:00"
        return DataInterval.parse(start, end)

    def extract(self, publish: bool = True, same_batch: bool = False, confirm_deletes: bool = False):
        if not same_batch:
            self.day += 1
        interval = self.interval()
        result = extract_table(self.spark, self.settings, self.spec, interval, source_state(self.settings),
                               confirm_deletes=confirm_deletes)
        if publish and not result.skipped:
            iceberg.publish(self.spark, self.ident, iceberg.audit_branch(interval.batch_id))
        return result

    def bronze_rows(self) -> list[tuple]:
        rows = self.spark.read.table(self.ident).select("id", "v", "n", "_op").collect()
        return ordered((r.id, r.v, r.n, r._op) for r in rows)

    def current_from_bronze(self) -> dict[int, tuple]:
        latest = latest_versions(self.spark.read.table(self.ident), ("id",)).where("_op = 'upsert'")
        return {r.id: (r.v, r.n) for r in latest.select("id", "v", "n").collect()}

    def current_in_source(self) -> dict[int, tuple]:
        return {r[0]: (r[1], r[2]) for r in self.sql(f"SELECT id, v, n FROM {self.name}")}


def ordered(rows) -> list[tuple]:
    return sorted(rows, key=lambda row: tuple((x is None, str(x)) for x in row))


def open_transaction(settings, statement: str, params=()) -> psycopg2.extensions.connection:
    """Run ``statement`` in a transaction that stays open until the caller commits."""
    db = postgres.resolve(settings.source, settings)
    conn = psycopg2.connect(host=db.host, port=db.port, user=db.user, dbname=db.dbname)
    conn.cursor().execute(statement, params)
    return conn


