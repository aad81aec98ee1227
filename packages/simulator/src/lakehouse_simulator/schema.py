"""The source database schema: the 24 contracted tables (source-system.md §1.2) and the simulator clock."""

from __future__ import annotations

from importlib.resources import files

import psycopg2.extensions

#: The 24 source tables in foreign-key-safe load order (parents before children).
SOURCE_TABLES: tuple[str, ...] = (
    "category",
    "sub_category",
    "brand",
    "order_channel",
    "shipping_method",
    "logistics_partner",
    "geo_location",
    "warehouse",
    "product",
    "inventory",
    "discount",
    "payment",
    "customers",
    "shipment",
    "orders",
    "order_items",
    "order_status_history",
    "order_return",
    "product_review",
    "cart",
    "cart_items",
    "wishlist",
    "inventory_log",
    "customer_activity_log",
)

#: Tables keyed by a natural key instead of a serial ``id`` (no sequence to advance).
NATURAL_KEYS: dict[str, str] = {"geo_location": "ward_code"}
#: Tables whose primary key is a serial ``id``.
SERIAL_TABLES: tuple[str, ...] = tuple(t for t in SOURCE_TABLES if t not in NATURAL_KEYS)

#: Schema of the simulator's own state (kept apart from the 24 source tables in ``public``).
SIM_SCHEMA = "lakehouse_sim"
CLOCK_TABLE = f"{SIM_SCHEMA}.clock"


def ddl() -> str:
    """The DDL script shipped with the package (``ddl.sql``)."""
    return files("lakehouse_simulator").joinpath("ddl.sql").read_text(encoding="utf-8")


def existing_source_tables(conn: psycopg2.extensions.connection) -> list[str]:
    """Which of the 24 source tables exist in schema ``public``."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_name = ANY(%s)",
            (list(SOURCE_TABLES),),
        )
        found = {row[0] for row in cur.fetchall()}
    return [t for t in SOURCE_TABLES if t in found]


def drop_source_schema(conn: psycopg2.extensions.connection) -> None:
    """Drop the 24 source tables and the simulator schema (nothing else in ``public``)."""
    with conn.cursor() as cur:
        for table in reversed(SOURCE_TABLES):
            cur.execute(f'DROP TABLE IF EXISTS public."{table}" CASCADE')
        cur.execute(f"DROP SCHEMA IF EXISTS {SIM_SCHEMA} CASCADE")


def create_source_schema(conn: psycopg2.extensions.connection, *, reset: bool = True) -> None:
    """Create the source tables and the simulator clock in the current transaction.

    ``reset=True`` (default) drops and recreates everything, so calling it twice is safe.
    ``reset=False`` keeps a complete existing schema untouched and creates a missing one; a
    partial schema (some of the 24 tables missing) is an error rather than a silent repair.
    The caller commits.
    """
    if not reset:
        present = existing_source_tables(conn)
        if len(present) == len(SOURCE_TABLES) and _has_clock(conn):
            return
        if present:
            missing = sorted(set(SOURCE_TABLES) - set(present))
            raise RuntimeError(f"source schema is incomplete (missing: {', '.join(missing) or 'clock'}); "
                               "recreate it with reset=True")
    drop_source_schema(conn)
    with conn.cursor() as cur:
        cur.execute(ddl())


def _has_clock(conn: psycopg2.extensions.connection) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (CLOCK_TABLE,))
        return bool(cur.fetchone()[0])
