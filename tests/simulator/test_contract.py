"""The created schema matches the source contract (source-system.md §1.2).

The expected contract below is transcribed from the specification by hand, independently of
``ddl.sql``: a column is ``"name type [NOT NULL] [= default]"``; ``serial`` means an integer
column whose default is a sequence.
"""

from __future__ import annotations

import re

import psycopg2
import psycopg2.errors
import pytest

from lakehouse_simulator.schema import SOURCE_TABLES, create_source_schema

TS = "timestamp"
STAMPS = (f"created_at {TS}", f"updated_at {TS}")
STAMPS_NOW = (f"created_at {TS} = now()", f"updated_at {TS} = now()")
ACTIVE = "is_active boolean = true"

CONTRACT: dict[str, tuple[str, ...]] = {
    "orders": (
        "id serial", "customer_id bigint", "payment_id bigint", "shipping_id bigint", "discount_id bigint",
        "location_id bigint", "logistics_partner_id bigint", "order_channel_id bigint",
        "order_code varchar(50) NOT NULL", f"order_date {TS}", "status varchar(50)", ACTIVE, *STAMPS,
        "total_price numeric(11,2)", "profit numeric(12,2)", "notes text", f"confirmed_at {TS}",
        f"delivered_at {TS}", f"cancelled_at {TS}", "cancel_reason varchar(200)",
    ),
    "order_items": (
        "id serial", "order_id bigint", "product_id bigint", "unit_price numeric(12,2)",
        "discount_amount numeric(12,2)", "quantity int", "amount numeric(12,2)", "is_active boolean",
        f"created_at {TS}",
    ),
    "order_status_history": (
        "id serial", "order_id bigint", "status varchar(50)", f"changed_at {TS}", "changed_by varchar(100)", ACTIVE,
    ),
    "order_channel": ("id serial", "name varchar(50)", "description text", *STAMPS, ACTIVE),
    "product": (
        "id serial", "product_sku varchar(50)", "brand_id bigint", "name varchar(100)", "description text",
        "price numeric(12,2)", "sub_category_id bigint", *STAMPS, ACTIVE,
    ),
    "product_review": (
        "id serial", "product_id bigint", "customer_id bigint", "rating int", "review_text text",
        "source_system varchar(50)", *STAMPS, ACTIVE,
    ),
    "category": ("id serial", "name varchar(50)", "description text", *STAMPS, ACTIVE),
    "sub_category": ("id serial", "name varchar(50)", "description text", "category_id bigint", *STAMPS, ACTIVE),
    "brand": ("id serial", "name varchar(100)", "country varchar(50)", "description text", ACTIVE, *STAMPS),
    "discount": (
        "id serial", "name varchar(100)", "discount_type varchar(50)", "value numeric(12,2)", f"start_date {TS}",
        f"end_date {TS}", "applies_to varchar(50)", "source_system varchar(50)", "is_active boolean", *STAMPS,
    ),
    "payment": (
        "id serial", "payment_method varchar(50)", "payment_status varchar(50)", "transaction_id varchar(100)",
        "amount numeric(12,2)", *STAMPS, ACTIVE,
    ),
    "shipment": (
        "id serial", "logistics_partner_id bigint", "warehouse_id bigint", "is_expedited boolean",
        "shipping_method_id bigint", "tracking_number varchar(100)", "shipping_cost numeric(12,2)",
        "shipping_status varchar(50)", *STAMPS, ACTIVE, f"estimated_delivery {TS}", f"actual_delivery {TS}",
        "delivery_attempts int = 0",
    ),
    "logistics_partner": ("id serial", "name varchar(100)", f"created_at {TS}", "rating numeric(3,2)",
                          f"updated_at {TS}", ACTIVE),
    "shipping_method": ("id serial", "name varchar(50)", "description text", "estimated_delivery_time int",
                        ACTIVE, *STAMPS),
    "customers": (
        "id serial", "customer_code varchar(50)", "geo_location_id bigint", "order_channel_id bigint",
        f"created_at {TS}", ACTIVE, "name varchar(100)", "email varchar(100)", "phone varchar(20)",
        "tier varchar(20) = 'Bronze'", "total_spent numeric(15,2) = 0", "loyalty_points int = 0",
        f"last_order_date {TS}", f"updated_at {TS}",
    ),
    "geo_location": (
        "ward_code bigint", "ward_name varchar(50)", "ward_type varchar(50)", "district_name varchar(50)",
        "province_name varchar(50)", *STAMPS_NOW, ACTIVE, "is_before boolean = false",
    ),
    "warehouse": (
        "id serial", "name varchar(100)", "address text", "geo_location_id bigint", "capacity_sqm numeric(12,2)",
        "manager varchar(100)", "contact_phone varchar(20)", ACTIVE, *STAMPS_NOW,
    ),
    "inventory": (
        "id serial", "product_id bigint", "warehouse_id bigint", "quantity int", "safety_stock int = 0",
        "reorder_level int = 0", f"last_counted_at {TS}", "unit_cost numeric(12,2)", ACTIVE, *STAMPS_NOW,
    ),
    "order_return": (
        "id serial", "order_id bigint NOT NULL", "customer_id bigint NOT NULL", "reason varchar(200) NOT NULL",
        "return_type varchar(50) NOT NULL", "status varchar(50) NOT NULL = 'pending'",
        "refund_amount numeric(12,2) = 0", ACTIVE, *STAMPS_NOW, f"resolved_at {TS}",
    ),
    "inventory_log": (
        "id serial", "inventory_id bigint NOT NULL", "change_type varchar(50) NOT NULL",
        "quantity_change int NOT NULL", "quantity_before int NOT NULL", "quantity_after int NOT NULL",
        "reference_id bigint", "reference_type varchar(50)", "note text", "changed_by varchar(100) = 'System'",
        f"created_at {TS} = now()",
    ),
    "customer_activity_log": (
        "id serial", "customer_id bigint NOT NULL", "activity_type varchar(50) NOT NULL", "product_id bigint",
        "channel varchar(50)", "metadata jsonb", f"created_at {TS} = now()",
    ),
    "wishlist": ("id serial", "customer_id bigint NOT NULL", "product_id bigint NOT NULL",
                 f"added_at {TS} = now()", ACTIVE),
    "cart": (
        "id serial", "customer_id bigint NOT NULL", "channel varchar(50)", "status varchar(20) NOT NULL = 'active'",
        "total_amount numeric(12,2) = 0", "item_count int = 0", f"expires_at {TS}", f"checked_out_at {TS}",
        "order_id bigint", ACTIVE, *STAMPS_NOW,
    ),
    "cart_items": (
        "id serial", "cart_id bigint NOT NULL", "product_id bigint NOT NULL", "quantity int NOT NULL",
        "unit_price numeric(12,2) NOT NULL", "discount_amount numeric(12,2) = 0", "amount numeric(12,2) NOT NULL",
        f"added_at {TS} = now()", f"updated_at {TS} = now()", ACTIVE,
    ),
}

PRIMARY_KEYS = {t: ("ward_code",) if t == "geo_location" else ("id",) for t in CONTRACT}

UNIQUE = {
    ("orders", ("order_code",)), ("customers", ("customer_code",)), ("shipment", ("tracking_number",)),
    ("inventory", ("product_id", "warehouse_id")), ("wishlist", ("customer_id", "product_id")),
    ("cart_items", ("cart_id", "product_id")),
}

FOREIGN_KEYS = {  # (table, column) -> (referenced table, column); anything else has no FK
    ("orders", "customer_id"): ("customers", "id"), ("orders", "payment_id"): ("payment", "id"),
    ("orders", "shipping_id"): ("shipment", "id"), ("orders", "discount_id"): ("discount", "id"),
    ("orders", "location_id"): ("geo_location", "ward_code"),
    ("orders", "logistics_partner_id"): ("logistics_partner", "id"),
    ("orders", "order_channel_id"): ("order_channel", "id"),
    ("order_items", "order_id"): ("orders", "id"), ("order_items", "product_id"): ("product", "id"),
    ("order_status_history", "order_id"): ("orders", "id"),
    ("product", "brand_id"): ("brand", "id"), ("product", "sub_category_id"): ("sub_category", "id"),
    ("product_review", "product_id"): ("product", "id"), ("product_review", "customer_id"): ("customers", "id"),
    ("sub_category", "category_id"): ("category", "id"),
    ("shipment", "logistics_partner_id"): ("logistics_partner", "id"),
    ("customers", "geo_location_id"): ("geo_location", "ward_code"),
    ("warehouse", "geo_location_id"): ("geo_location", "ward_code"),
    ("inventory", "product_id"): ("product", "id"), ("inventory", "warehouse_id"): ("warehouse", "id"),
    ("order_return", "order_id"): ("orders", "id"), ("order_return", "customer_id"): ("customers", "id"),
    ("inventory_log", "inventory_id"): ("inventory", "id"),
    ("customer_activity_log", "customer_id"): ("customers", "id"),
    ("customer_activity_log", "product_id"): ("product", "id"),
    ("wishlist", "customer_id"): ("customers", "id"), ("wishlist", "product_id"): ("product", "id"),
    ("cart", "customer_id"): ("customers", "id"), ("cart", "order_id"): ("orders", "id"),
    ("cart_items", "cart_id"): ("cart", "id"), ("cart_items", "product_id"): ("product", "id"),
}


def _parse(spec: str) -> tuple[str, str, bool, str | None]:
    """``"name type [NOT NULL] [= default]"`` -> (name, type, not_null, default)."""
    spec, _, default = spec.partition(" = ")
    name, _, rest = spec.partition(" ")
    not_null = rest.endswith(" NOT NULL")
    return name, rest.removesuffix(" NOT NULL"), not_null, default or None


def _actual_type(data_type: str, length: int | None, precision: int | None, scale: int | None,
                 default: str | None) -> str:
    if data_type == "integer":
        return "serial" if default and default.startswith("nextval(") else "int"
    return {
        "character varying": f"varchar({length})",
        "numeric": f"numeric({precision},{scale})",
        "timestamp without time zone": "timestamp",
    }.get(data_type, data_type)


def _actual_default(default: str | None) -> str | None:
    """Normalise information_schema defaults: drop casts, hide sequence defaults (covered by 'serial')."""
    if default is None or default.startswith("nextval("):
        return None
    return re.sub(r"::[a-z ]+$", "", default)


@pytest.fixture(scope="module")
def conn(connect_db):
    c = connect_db("sim_contract")
    create_source_schema(c, reset=True)
    c.commit()
    yield c
    c.rollback()
    c.close()


def _query(conn, sql: str, params=()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    conn.rollback()
    return rows


def test_source_tables_constant_lists_the_24_contract_tables():
    assert len(SOURCE_TABLES) == 24 == len(set(SOURCE_TABLES))
    assert set(SOURCE_TABLES) == set(CONTRACT)


def test_public_holds_exactly_the_24_tables(conn):
    rows = _query(conn, "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public'")
    assert sorted(rows) == sorted((t, "BASE TABLE") for t in CONTRACT)


@pytest.mark.parametrize("table", sorted(CONTRACT))
def test_columns_types_nullability_and_defaults(conn, table):
    rows = _query(conn, """
        SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale,
               is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s""", (table,))
    actual = {
        name: (_actual_type(dtype, length, prec, scale, default),
               nullable == "NO" and name not in PRIMARY_KEYS[table], _actual_default(default))
        for name, dtype, length, prec, scale, nullable, default in rows
    }
    expected = {name: (typ, not_null, default) for name, typ, not_null, default in map(_parse, CONTRACT[table])}
    assert actual == expected


def test_primary_keys(conn):
    rows = _query(conn, """
        SELECT tc.table_name, array_agg(kcu.column_name::text ORDER BY kcu.ordinal_position)
        FROM information_schema.table_constraints tc
        JOIN information_schema.key_column_usage kcu
          ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
        WHERE tc.table_schema = 'public' AND tc.constraint_type = 'PRIMARY KEY'
        GROUP BY tc.table_name""")
    assert {t: tuple(cols) for t, cols in rows} == PRIMARY_KEYS


def test_unique_constraints_are_exactly_the_contracted_ones(conn):
    # In particular: no UNIQUE on order_items (order_id, product_id), product_sku or transaction_id.
    rows = _query(conn, """
        SELECT t.relname, array_agg(a.attname::text ORDER BY k.ord)
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
        WHERE c.contype = 'u' AND n.nspname = 'public'
        GROUP BY c.oid, t.relname""")
    assert {(t, tuple(cols)) for t, cols in rows} == UNIQUE


def test_foreign_keys_are_exactly_the_contracted_ones(conn):
    rows = _query(conn, """
        SELECT t.relname, a.attname, rt.relname, ra.attname
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_class rt ON rt.oid = c.confrelid
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]
        WHERE c.contype = 'f' AND n.nspname = 'public'""")
    assert {(t, col): (rt, rcol) for t, col, rt, rcol in rows} == FOREIGN_KEYS
    assert len(rows) == len(FOREIGN_KEYS)


def test_source_tables_are_in_foreign_key_safe_order():
    position = {t: i for i, t in enumerate(SOURCE_TABLES)}
    for (child, _), (parent, _) in FOREIGN_KEYS.items():
        assert position[parent] < position[child], f"{parent} must load before {child}"


# (table, column, accepted values, rejected values, other NOT NULL columns)
CHECKS = [
    ("product_review", "rating", [1, 5], [0, 6], {}),
    ("customers", "tier", ["Bronze", "Silver", "Gold", "Platinum"], ["Diamond", "bronze"], {}),
    ("inventory", "quantity", [0, 7], [-1], {}),
    ("order_return", "return_type", ["refund", "exchange", "repair"], ["swap"],
     {"order_id": 1, "customer_id": 1, "reason": "x"}),
    ("order_return", "status", ["pending", "approved", "rejected", "processing", "completed"], ["done"],
     {"order_id": 1, "customer_id": 1, "reason": "x", "return_type": "refund"}),
    ("inventory_log", "change_type", ["sale", "restock", "return", "adjustment", "damage"], ["theft"],
     {"inventory_id": 1, "quantity_change": 0, "quantity_before": 0, "quantity_after": 0}),
    ("inventory_log", "reference_type", ["order", "purchase_order", "return", "manual", None], ["invoice"],
     {"inventory_id": 1, "change_type": "sale", "quantity_change": 0, "quantity_before": 0, "quantity_after": 0}),
    ("customer_activity_log", "activity_type",
     ["view", "search", "add_to_cart", "remove_from_cart", "purchase", "review", "wishlist"], ["click"],
     {"customer_id": 1}),
    ("cart", "status", ["active", "checked_out", "abandoned", "expired"], ["deleted"], {"customer_id": 1}),
    ("orders", "status", ["Pending", "whatever the client writes"], [], {"order_code": "ORD_X"}),  # no CHECK
]


@pytest.mark.parametrize("table,column,good,bad,others", CHECKS, ids=[f"{c[0]}.{c[1]}" for c in CHECKS])
def test_check_constraints(conn, table, column, good, bad, others):
    """Accepted values insert, rejected ones raise CheckViolation (FK triggers off for the probe)."""
    with conn.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")

        def insert(value, i):
            cols = {**others, column: value}
            if table == "orders":
                cols["order_code"] = f"ORD_X{i}"
            names = ", ".join(cols)
            cur.execute(f"INSERT INTO public.{table} ({names}) VALUES ({', '.join(['%s'] * len(cols))})",
                        list(cols.values()))

        for i, value in enumerate(good):
            insert(value, i)
        for value in bad:
            cur.execute("SAVEPOINT probe")
            with pytest.raises(psycopg2.errors.CheckViolation):
                insert(value, 99)
            cur.execute("ROLLBACK TO SAVEPOINT probe")
    conn.rollback()


def test_cart_items_quantity_must_be_positive_and_lines_unique(conn):
    with conn.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        row = ("INSERT INTO public.cart_items (cart_id, product_id, quantity, unit_price, amount) "
               "VALUES (1, %s, %s, 1, 1)")
        cur.execute(row, (1, 1))
        cur.execute("SAVEPOINT probe")
        with pytest.raises(psycopg2.errors.CheckViolation):
            cur.execute(row, (2, 0))
        cur.execute("ROLLBACK TO SAVEPOINT probe")
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute(row, (1, 3))
    conn.rollback()


def test_simulator_clock_lives_in_its_own_schema(conn):
    rows = _query(conn, """
        SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
        WHERE table_schema = 'lakehouse_sim' AND table_name = 'clock' ORDER BY ordinal_position""")
    assert rows == [("id", "integer", "NO", "1"), ("sim_now", "timestamp without time zone", "NO", None)]
    with conn.cursor() as cur:
        cur.execute("INSERT INTO lakehouse_sim.clock (sim_now) VALUES ('2023-01-31')")
        with pytest.raises(psycopg2.errors.CheckViolation):
            cur.execute("INSERT INTO lakehouse_sim.clock (id, sim_now) VALUES (2, '2023-01-31')")
    conn.rollback()


def test_no_triggers_in_v0(conn):
    assert _query(conn, """
        SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal""") == []


def test_create_source_schema_is_idempotent_and_reset_false_keeps_data(connect_db):
    c = connect_db("sim_contract_reset")
    try:
        create_source_schema(c, reset=True)
        create_source_schema(c, reset=True)
        with c.cursor() as cur:
            cur.execute("INSERT INTO public.category (name) VALUES ('kept')")
        create_source_schema(c, reset=False)           # complete schema: left as it is
        with c.cursor() as cur:
            cur.execute("SELECT name FROM public.category")
            assert cur.fetchall() == [("kept",)]
            cur.execute("DROP TABLE public.customer_activity_log")
        with pytest.raises(RuntimeError, match="customer_activity_log"):
            create_source_schema(c, reset=False)       # partial schema: refused, not silently repaired
        c.rollback()
        create_source_schema(c, reset=True)
        with c.cursor() as cur:
            cur.execute("SELECT count(*) FROM public.category")
            assert cur.fetchone()[0] == 0
        c.commit()
    finally:
        c.close()
