"""Deterministic bulk generation of the whole source database.

``build_tables`` computes every table as NumPy columns (no database involved); ``generate``
loads them with one ``COPY`` per table, advances the serial sequences past the loaded ids and
sets the simulator clock to the end of the period.

Determinism: the same (scale, seed, start, days) gives byte-identical tables. Every random
draw comes from a NumPy Generator derived from the seed, one independent stream per table
group, consumed in a fixed order; nothing depends on the wall clock, hash order or the
database (no ``random()``/``now()`` in SQL: every column with a ``now()`` default is written
explicitly). Reference data (geography, catalogue, warehouses, bootstrap stock) comes from a
fixed stream so it is the same for every seed, like the real bootstrap files.

Volumes: ``scale`` is the shop's size, defined per 30 simulated days. ``scale=1`` gives about
10,000 customers and 100,000 orders per 30 days (≈300,000 order lines, ≈1,000,000 activity
rows); ``days`` sets how long the history is, so volumes grow with it.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import numpy as np
import psycopg2.extensions
from lakehouse_core.progress import Progress

from lakehouse_simulator.copyio import Frame, copy_frame
from lakehouse_simulator.customers import Customers, customer_frame, draw_customers
from lakehouse_simulator.discounts import discount_frame, draw_discounts
from lakehouse_simulator.engagement import activity_frame, draw_carts, return_frame, review_frame, wishlist_frame
from lakehouse_simulator.inventory import Movements, draw_stock, inventory_tables, manual_movements
from lakehouse_simulator.orders import COMPLETED, Orders, draw_orders, order_frames, order_movements
from lakehouse_simulator.reference import build_reference
from lakehouse_simulator.sampling import SimClock
from lakehouse_simulator.schema import CLOCK_TABLE, SERIAL_TABLES, SOURCE_TABLES

DEFAULT_START = dt.date(2023, 1, 1)
DEFAULT_DAYS = 30
REFERENCE_SEED = 20230101
#: Independent random streams, one per table group, spawned from the seed in this order.
STREAMS = ("customers", "discounts", "orders", "order_frames", "carts", "wishlist", "reviews", "returns",
           "inventory", "activity")


@dataclass(frozen=True)
class Volumes:
    """Row-count targets for a scale (per 30 simulated days) and period length."""

    customers: int
    orders: int
    wishlist_adds: int
    activity: int

    @classmethod
    def for_scale(cls, scale: float, days: int) -> "Volumes":
        if scale <= 0 or days <= 0:
            raise ValueError("scale and days must be positive")
        factor = scale * days / 30
        orders = max(1, round(100_000 * factor))
        return cls(customers=max(1, round(10_000 * factor)), orders=orders,
                   wishlist_adds=round(0.25 * orders), activity=10 * orders)


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def _customer_rollup(o: Orders, customers: Customers) -> dict[str, np.ndarray]:
    """total_spent (Completed orders), last order time and last order-driven change per customer."""
    n = len(customers)
    completed_at = o.reached(COMPLETED)
    done = ~np.ma.getmaskarray(completed_at)
    total_spent = np.rint(np.bincount(o.customer, weights=np.where(done, o.total, 0), minlength=n)).astype(np.int64)
    last_order = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_order, o.customer, o.t)
    last_change = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_change, o.customer[done], np.ma.getdata(completed_at)[done])
    return {"total_spent": total_spent, "last_order": last_order, "last_change": last_change}


def build_tables(*, scale: float, seed: int, start: dt.date = DEFAULT_START,
                 days: int = DEFAULT_DAYS) -> dict[str, Frame]:
    """All 24 source tables as column frames, keyed by table name in load order."""
    clock = SimClock(start, days)
    volumes = Volumes.for_scale(scale, days)
    rng = _streams(seed)
    ref_rng = np.random.default_rng(REFERENCE_SEED)
    ref = build_reference(ref_rng, clock)
    stock = draw_stock(ref_rng, ref)

    customers = draw_customers(rng["customers"], volumes.customers, clock, ref)
    discounts = draw_discounts(rng["discounts"], clock, ref)
    orders = draw_orders(rng["orders"], volumes.orders, clock, ref, customers, discounts, stock)
    frames: dict[str, Frame] = dict(ref.frames)
    frames["discount"] = discount_frame(rng["discounts"], discounts, clock, ref)
    frames.update(order_frames(rng["order_frames"], orders, clock, ref, customers, discounts))
    frames["customers"] = customer_frame(customers, clock, **_customer_rollup(orders, customers))

    cart_frames, cart_adds = draw_carts(rng["carts"], orders, clock, ref, customers)
    frames.update(cart_frames)
    frames["wishlist"], wishlist_adds = wishlist_frame(rng["wishlist"], volumes.wishlist_adds, clock, ref, customers)
    frames["product_review"], reviews = review_frame(rng["reviews"], orders, clock, ref, customers)
    frames["order_return"], return_moves = return_frame(rng["returns"], orders, clock, customers, stock)

    moves = Movements.concat([order_movements(orders, stock), return_moves,
                              manual_movements(rng["inventory"], len(orders), stock, clock)])
    frames["inventory"], frames["inventory_log"] = inventory_tables(rng["inventory"], stock, moves, clock)
    frames["customer_activity_log"] = activity_frame(rng["activity"], volumes.activity, clock, ref, customers,
                                                     orders, [cart_adds, wishlist_adds, reviews])
    return {table: frames[table] for table in SOURCE_TABLES}


def _filled_table(cur: psycopg2.extensions.cursor) -> str | None:
    """The first source table holding a row (None: all empty)."""
    for table in SOURCE_TABLES:
        cur.execute(f'SELECT EXISTS (SELECT 1 FROM public."{table}")')
        if cur.fetchone()[0]:
            return table
    return None


def source_is_empty(conn: psycopg2.extensions.connection) -> bool:
    """Whether every source table is empty (the schema must exist: ``create_source_schema``)."""
    with conn.cursor() as cur:
        return _filled_table(cur) is None


def _require_empty(cur: psycopg2.extensions.cursor) -> None:
    table = _filled_table(cur)
    if table is not None:
        raise RuntimeError(f"source table {table} is not empty: recreate the schema first "
                           "(create_source_schema(conn, reset=True) / lakehouse simulate --reset)")


def _advance_sequences(cur: psycopg2.extensions.cursor) -> None:
    """Move every serial sequence past max(id), so inserts without an id work (fixes §8 #28)."""
    for table in SERIAL_TABLES:
        cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (f"public.{table}",))
        sequence = cur.fetchone()[0]
        cur.execute(f'SELECT setval(%s, COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM public."{table}"',
                    (sequence,))


def _drop_foreign_keys(cur: psycopg2.extensions.cursor) -> list[tuple[str, str, str]]:
    """Drop the foreign keys of the source tables; return (table, name, definition) to restore them."""
    cur.execute(
        "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE c.contype = 'f' AND n.nspname = 'public' AND t.relname = ANY(%s) ORDER BY t.relname, c.conname",
        (list(SOURCE_TABLES),),
    )
    fks = cur.fetchall()
    for table, name, _ in fks:
        cur.execute(f'ALTER TABLE public."{table}" DROP CONSTRAINT "{name}"')
    return fks


def _restore_foreign_keys(cur: psycopg2.extensions.cursor, fks: list[tuple[str, str, str]]) -> None:
    """Re-create the foreign keys; PostgreSQL validates each one with a single set-based check."""
    for table, name, definition in fks:
        cur.execute(f'ALTER TABLE public."{table}" ADD CONSTRAINT "{name}" {definition}')


def load_tables(conn: psycopg2.extensions.connection, frames: dict[str, Frame],
                clock_end: dt.datetime, progress: Progress | None = None) -> dict[str, int]:
    """COPY the frames into the (empty) source tables, advance sequences, set the clock. No commit.
    ``progress``: a line per table as it is loaded.

    Foreign keys are dropped for the load and re-created (and so fully validated) afterwards, in
    the same transaction: per-row FK triggers would triple the load time.
    """
    counts: dict[str, int] = {}
    with conn.cursor() as cur:
        _require_empty(cur)
        fks = _drop_foreign_keys(cur)
        for table in SOURCE_TABLES:
            began = time.perf_counter()
            counts[table] = copy_frame(cur, f'public."{table}"', frames[table])
            if progress is not None:
                progress.done(table, f"{counts[table]:,} rows", time.perf_counter() - began, rows=counts[table])
        _restore_foreign_keys(cur, fks)
        _advance_sequences(cur)
        cur.execute(f"INSERT INTO {CLOCK_TABLE} (id, sim_now) VALUES (1, %s) "
                    "ON CONFLICT (id) DO UPDATE SET sim_now = EXCLUDED.sim_now", (clock_end,))
        for table in SOURCE_TABLES:
            cur.execute(f'ANALYZE public."{table}"')
    return counts


def generate(conn: psycopg2.extensions.connection, *, scale: float, seed: int,
             start: dt.date = DEFAULT_START, days: int = DEFAULT_DAYS,
             progress: Progress | None = None) -> dict[str, int]:
    """Fill the (freshly created, empty) source schema; return row counts per table.

    The simulator clock ``lakehouse_sim.clock.sim_now`` is set to ``start + days`` 00:00; every
    generated timestamp event lies in ``[start, start + days)``. The caller commits.
    """
    frames = build_tables(scale=scale, seed=seed, start=start, days=days)
    return load_tables(conn, frames, SimClock(start, days).end, progress)
