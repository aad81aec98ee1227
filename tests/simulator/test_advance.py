"""Simulator v1: advancing a generated source by whole days.

One base database is generated at scale 0.03 and cloned (``CREATE DATABASE … TEMPLATE``) for each
group of tests, so every group starts from the same state without regenerating:

* ``advanced``: five days (normal, flash sale, promotion blast, fraud attack, normal) with the
  default (cooperative) behaviour → the business invariants and the reported counts;
* scenario signatures: one day of each scenario from the same state (rolled back in between);
* determinism: two flash-sale days with the misbehaviour switches on, advanced in one call, day
  by day, in another process (``python -m lakehouse_simulator simulate-advance``) and with another
  seed;
* the :class:`SourceBehaviour` switches (rolled back in between).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Iterator

import psycopg2
import pytest

from lakehouse_core import postgres

from .invariants import ORDERS_STATUS_VS_TIMESTAMPS
from lakehouse_simulator.advance import SourceBehaviour, advance, propensity
from lakehouse_simulator.lifecycle import EDGES
from lakehouse_simulator.schema import NATURAL_KEYS, SOURCE_TABLES

SCALE, SEED, DAYS = 0.03, 5, 30
START = dt.datetime(2023, 1, 1)
BASE_END = START + dt.timedelta(days=DAYS)
PLAN = ("normal", "flash_sale", "promotion_blast", "fraud_attack", "normal")
BASE = "sim_adv_base"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def clone(settings, connect_db) -> Callable[[str], psycopg2.extensions.connection]:
    """Generate the base database once; return a function that clones it under a new name."""
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    conn = connect_db(BASE)
    create_source_schema(conn, reset=True)
    generate(conn, scale=SCALE, seed=7, days=DAYS)
    conn.commit()
    conn.close()
    port = postgres.EmbeddedPostgres.for_settings(settings).port

    def make(name: str) -> psycopg2.extensions.connection:
        admin = psycopg2.connect(host="127.0.0.1", port=port, user=postgres.SUPERUSER, dbname="postgres")
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{BASE}"')
        finally:
            admin.close()
        return connect_db(name)
    return make


def query(conn, sql: str, params=()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def one(conn, sql: str, params=()):
    return query(conn, sql, params)[0][0]


def fingerprint(conn) -> dict[str, tuple[int, str]]:
    """Row count and content hash of every source table and of the clock."""
    out = {}
    for t in SOURCE_TABLES:
        pk = NATURAL_KEYS.get(t, "id")
        out[t] = tuple(query(conn, f'SELECT count(*), md5(string_agg(t::text, \'|\' ORDER BY t."{pk}")) '
                                   f'FROM public."{t}" t')[0])
    out["clock"] = (1, str(one(conn, "SELECT sim_now FROM lakehouse_sim.clock")))
    return out


@dataclass(frozen=True)
class Advanced:
    conn: psycopg2.extensions.connection
    counts: dict[str, dict[str, int]]
    keys_before: dict[str, set[int]]          # primary keys of every table before advancing
    tiers_before: dict[int, str]


@pytest.fixture(scope="module")
def advanced(clone) -> Iterator[Advanced]:
    conn = clone("sim_adv_days")
    keys = {t: {r[0] for r in query(conn, f'SELECT "{NATURAL_KEYS.get(t, "id")}" FROM public."{t}"')}
            for t in SOURCE_TABLES}
    tiers = dict(query(conn, "SELECT id, tier FROM customers"))
    counts: dict[str, dict[str, int]] = {}
    for scenario in PLAN:
        counts.update(advance(conn, days=1, seed=SEED, scale=SCALE, scenario=scenario))
    conn.commit()
    yield Advanced(conn, counts, keys, tiers)
    conn.close()


@pytest.fixture(scope="module")
def q(advanced):
    def run(sql: str, params=()) -> list[tuple]:
        rows = query(advanced.conn, sql, params)
        advanced.conn.rollback()
        return rows
    return run


def total(counts: dict[str, dict[str, int]], key: str) -> int:
    return sum(day.get(key, 0) for day in counts.values())


# ----------------------------------------------------------------------------- clock and counts
def test_clock_moved_one_day_per_simulated_day(advanced, q):
    assert q("SELECT sim_now FROM lakehouse_sim.clock") == [(BASE_END + dt.timedelta(days=len(PLAN)),)]
    assert list(advanced.counts) == [(BASE_END + dt.timedelta(days=i)).date().isoformat() for i in range(len(PLAN))]


def test_reported_counts_match_the_tables(advanced, q):
    for table in SOURCE_TABLES:
        pk = NATURAL_KEYS.get(table, "id")
        before = advanced.keys_before[table]
        after = {r[0] for r in q(f'SELECT "{pk}" FROM public."{table}"')}
        inserted, deleted = (total(advanced.counts, f"{table}.{op}") for op in ("inserted", "deleted"))
        # rows inserted on one day may be deleted on a later one
        assert len(after) == len(before) + inserted - deleted, table
        assert len(after - before) <= inserted and len(before - after) <= deleted, table
        assert max(before, default=0) < min(after - before, default=1 << 62), table   # new ids come after
    for key in ("orders.updated", "payment.updated", "shipment.updated", "customers.updated", "inventory.updated",
                "cart.updated", "order_return.updated", "order_status_history.inserted",
                "customer_activity_log.inserted"):
        assert total(advanced.counts, key) > 0, key


def test_hard_deletes_remove_rows(advanced, q):
    c = advanced.counts
    for table in ("wishlist", "cart_items", "cart"):
        assert total(c, f"{table}.deleted") > 0, table
        gone = advanced.keys_before[table] - {r[0] for r in q(f"SELECT id FROM {table}")}
        assert gone, f"{table}: no stored row was deleted"
    # purged carts were abandoned or expired more than 21 days before the day they were purged
    assert q("SELECT count(*) FROM cart WHERE status IN ('abandoned', 'expired') "
             "AND created_at < %s - interval '21 days'", (BASE_END + dt.timedelta(days=len(PLAN) - 1),)) == [(0,)]
    # no orphans: removed cart items leave carts whose totals match what is left
    assert one(advanced.conn, "SELECT count(*) FROM cart_items i LEFT JOIN cart c ON c.id = i.cart_id "
                              "WHERE c.id IS NULL") == 0
    advanced.conn.rollback()


# ----------------------------------------------------------------------------- orders
def test_order_totals_lines_profit_and_codes(q):
    assert q("""SELECT count(*) FROM orders o
        LEFT JOIN (SELECT order_id, sum(amount) s, count(*) n FROM order_items GROUP BY 1) i ON i.order_id = o.id
        WHERE i.n IS NULL OR o.total_price <> i.s""") == [(0,)]
    assert q("SELECT count(*) FROM order_items WHERE amount <> unit_price * quantity - discount_amount "
             "OR amount < 0 OR quantity < 1") == [(0,)]
    assert q("""SELECT count(*) FROM orders o JOIN shipment s ON s.id = o.shipping_id
        JOIN (SELECT i.order_id, sum(inv.unit_cost * i.quantity) cogs FROM order_items i
              JOIN orders o2 ON o2.id = i.order_id JOIN shipment s2 ON s2.id = o2.shipping_id
              JOIN inventory inv ON inv.product_id = i.product_id AND inv.warehouse_id = s2.warehouse_id
              GROUP BY 1) c ON c.order_id = o.id
        WHERE o.profit <> o.total_price - c.cogs - s.shipping_cost""") == [(0,)]
    assert q(r"""SELECT count(*) FROM orders WHERE order_code !~ '^ORD_[0-9]{8}_[0-9]{6,}$'
                 OR substr(order_code, 5, 8) <> to_char(order_date, 'YYYYMMDD')
                 OR substr(order_code, 14)::bigint <> id""") == [(0,)]
    assert q("""SELECT count(*) FROM orders o JOIN payment p ON p.id = o.payment_id
        JOIN shipment s ON s.id = o.shipping_id
        WHERE p.amount <> o.total_price OR p.created_at <> o.created_at OR o.order_date <> o.created_at
           OR s.logistics_partner_id <> o.logistics_partner_id""") == [(0,)]
    assert q("SELECT count(DISTINCT payment_id) = count(*) AND count(DISTINCT shipping_id) = count(*) FROM orders") \
        == [(True,)]
    assert q("SELECT count(DISTINCT tracking_number) = count(*) FROM shipment") == [(True,)]
    assert q("SELECT count(DISTINCT transaction_id) = count(*) FROM payment") == [(True,)]


def test_status_agrees_with_timestamps(q):
    assert q(ORDERS_STATUS_VS_TIMESTAMPS) == []


def test_one_history_row_per_transition_along_the_allowed_paths(q):
    rows = q("""WITH h AS (SELECT order_id, status, changed_at, id,
                                  lag(status) OVER (PARTITION BY order_id ORDER BY changed_at, id) AS prev
                           FROM order_status_history)
                SELECT prev, status, count(*) FROM h WHERE prev IS NOT NULL GROUP BY 1, 2""")
    edges = {(a, b) for a, b, _ in rows}
    assert edges <= EDGES, edges - EDGES
    assert ("Delivering", "DeliveryFailed") in edges and ("DeliveryFailed", "Shipped") in edges
    # first row Pending at creation, last row = current status at updated_at
    assert q("""WITH h AS (SELECT order_id, status, changed_at,
                      row_number() OVER (PARTITION BY order_id ORDER BY changed_at, id) AS first,
                      row_number() OVER (PARTITION BY order_id ORDER BY changed_at DESC, id DESC) AS last
                      FROM order_status_history)
        SELECT count(*) FROM orders o
        LEFT JOIN h f ON f.order_id = o.id AND f.first = 1 LEFT JOIN h l ON l.order_id = o.id AND l.last = 1
        WHERE f.status IS DISTINCT FROM 'Pending' OR f.changed_at <> o.created_at
           OR l.status <> o.status OR l.changed_at <> o.updated_at""") == [(0,)]
    # an order completes at most once
    assert q("SELECT count(*) FROM (SELECT order_id FROM order_status_history WHERE status = 'Completed' "
             "GROUP BY 1 HAVING count(*) > 1) x") == [(0,)]


def test_orders_keep_moving(advanced, q):
    """Status throughput is realistic: last week's orders are mostly completed, none stuck Pending."""
    end = BASE_END + dt.timedelta(days=len(PLAN))
    done, stuck = q("""SELECT avg((status IN ('Completed', 'Cancelled', 'Returned'))::int),
                              count(*) FILTER (WHERE status = 'Pending')
                       FROM orders WHERE created_at < %s - interval '12 days'""", (end,))[0]
    assert done > 0.9 and stuck == 0
    assert total(advanced.counts, "orders.updated") > total(advanced.counts, "orders.inserted")


def test_shipments_and_payments_follow_the_order(q):
    assert q("""SELECT count(*) FROM orders o JOIN shipment s ON s.id = o.shipping_id WHERE
        (o.status IN ('Delivered', 'Completed')) <> (s.shipping_status = 'Delivered')
        OR (o.status = 'Returned') <> (s.shipping_status = 'ReturnToSender')
        OR (o.status IN ('Shipped', 'Delivering')) <> (s.shipping_status = 'InTransit')
        OR (o.status = 'DeliveryFailed') <> (s.shipping_status = 'Failed')
        OR s.actual_delivery IS DISTINCT FROM o.delivered_at
        OR (s.shipping_status IN ('Delivered', 'Failed', 'ReturnToSender') AND s.delivery_attempts < 1)""") == [(0,)]
    assert q("""SELECT count(*) FROM orders o JOIN payment p ON p.id = o.payment_id WHERE
        (o.status = 'Completed' AND p.payment_status <> 'Completed')
        OR (o.status = 'Cancelled' AND p.payment_status NOT IN ('Cancelled', 'Refunded', 'Failed'))
        OR (p.payment_status = 'Failed' AND o.status <> 'Cancelled')""") == [(0,)]


def test_refunds_only_from_completed_payments(q):
    # Refunded ⇒ a prepaid payment that was captured (the order was confirmed) and the order ended
    assert q("""SELECT count(*) FROM orders o JOIN payment p ON p.id = o.payment_id
        WHERE p.payment_status = 'Refunded' AND (
              p.payment_method IN ('COD', 'Cash on Delivery') OR o.status NOT IN ('Cancelled', 'Returned')
           OR NOT EXISTS (SELECT 1 FROM order_status_history h WHERE h.order_id = o.id AND h.status = 'Confirmed'))
        """) == [(0,)]
    assert q("SELECT count(*) FROM payment WHERE payment_status = 'Refunded'")[0][0] > 0


# ----------------------------------------------------------------------------- customers
def test_total_spent_tier_and_points_follow_completed_orders(q):
    assert q("""SELECT count(*) FROM customers c
        LEFT JOIN (SELECT customer_id, sum(total_price) s FROM orders WHERE status = 'Completed' GROUP BY 1) o
          ON o.customer_id = c.id
        WHERE c.total_spent <> coalesce(o.s, 0)
           OR c.tier <> CASE WHEN c.total_spent >= 50000000 THEN 'Platinum' WHEN c.total_spent >= 20000000 THEN 'Gold'
                             WHEN c.total_spent >= 5000000 THEN 'Silver' ELSE 'Bronze' END
           OR c.loyalty_points <> floor((floor(c.total_spent / 10000) * CASE c.tier WHEN 'Platinum' THEN 6
                WHEN 'Gold' THEN 4 WHEN 'Silver' THEN 3 ELSE 2 END + 1) / 2)""") == [(0,)]


def test_tiers_change_when_orders_complete(advanced, q):
    base = advanced.tiers_before
    now = dict(q("SELECT id, tier FROM customers"))
    assert sum(base[i] != now[i] for i in base) > 0


def test_last_order_date_and_customer_codes(q):
    assert q("""SELECT count(*) FROM customers c
        LEFT JOIN (SELECT customer_id, max(order_date) m FROM orders GROUP BY 1) o ON o.customer_id = c.id
        WHERE c.last_order_date IS DISTINCT FROM o.m OR c.updated_at < coalesce(o.m, c.created_at)""") == [(0,)]
    assert q("SELECT count(DISTINCT customer_code) = count(*) AND count(DISTINCT email) = count(*) FROM customers") \
        == [(True,)]
    assert q(r"SELECT count(*) FROM customers WHERE customer_code !~ '^KH_[A-Za-z]+_[0-9]{3,}$'") == [(0,)]


# ----------------------------------------------------------------------------- engagement
def test_returns_progress_and_respect_t9(q):
    assert q("""SELECT count(*) FROM order_return r JOIN orders o ON o.id = r.order_id WHERE
        o.status NOT IN ('Delivered', 'Completed') OR r.created_at < o.delivered_at
        OR r.refund_amount > o.total_price OR r.refund_amount < 0 OR r.customer_id <> o.customer_id
        OR (r.status IN ('completed', 'rejected')) <> (r.resolved_at IS NOT NULL)
        OR r.updated_at < r.created_at""") == [(0,)]
    assert q("SELECT count(*) FROM (SELECT order_id FROM order_return GROUP BY 1 HAVING count(*) > 1) x") == [(0,)]
    assert {s for (s,) in q("SELECT DISTINCT status FROM order_return")} == {
        "pending", "approved", "processing", "completed", "rejected"}


def test_reviews_follow_completed_purchases(q):
    assert q("""SELECT count(*) FROM product_review r WHERE NOT EXISTS (
        SELECT 1 FROM orders o JOIN order_items i ON i.order_id = o.id
        JOIN order_channel ch ON ch.id = o.order_channel_id
        WHERE o.customer_id = r.customer_id AND i.product_id = r.product_id AND o.status = 'Completed'
          AND ch.name = r.source_system AND r.created_at > o.updated_at)""") == [(0,)]
    assert q("SELECT count(*) FROM (SELECT 1 FROM product_review GROUP BY product_id, customer_id, source_system "
             "HAVING count(*) > 1) d") == [(0,)]


def test_carts_are_consistent_with_items_orders_and_time(q):
    assert q("""SELECT count(*) FROM cart c
        LEFT JOIN (SELECT cart_id, sum(amount) s, count(*) n FROM cart_items GROUP BY 1) i ON i.cart_id = c.id
        WHERE c.total_amount <> coalesce(i.s, 0) OR c.item_count <> coalesce(i.n, 0)""") == [(0,)]
    assert q("""SELECT count(*) FROM cart c LEFT JOIN orders o ON o.id = c.order_id WHERE
        (c.status = 'checked_out') <> (c.order_id IS NOT NULL)
        OR (c.status = 'checked_out' AND (o.customer_id <> c.customer_id OR c.checked_out_at <> o.created_at))""") \
        == [(0,)]
    assert q("""SELECT count(*) FROM cart_items i JOIN cart c ON c.id = i.cart_id
                WHERE i.added_at < c.created_at OR i.added_at > c.updated_at""") == [(0,)]
    end = BASE_END + dt.timedelta(days=len(PLAN))
    # statuses follow the rules: expired after 7 days, abandoned after a day without adds
    assert q("""SELECT count(*) FROM cart c LEFT JOIN (SELECT cart_id, max(added_at) m FROM cart_items GROUP BY 1) i
                ON i.cart_id = c.id WHERE
                (c.status = 'active' AND (c.expires_at < %(end)s
                                          OR coalesce(i.m, c.created_at) < %(end)s - interval '1 day'))
             OR (c.status = 'expired' AND c.expires_at >= %(end)s)""", {"end": end}) == [(0,)]
    assert len(q("SELECT DISTINCT status FROM cart")) == 4


def test_stock_moves_from_the_shipping_warehouse_and_never_goes_negative(q):
    assert q("SELECT count(*) FROM inventory WHERE quantity < 0") == [(0,)]
    assert q("SELECT count(*) FROM inventory_log WHERE quantity_before + quantity_change <> quantity_after "
             "OR quantity_after < 0") == [(0,)]
    assert q("""SELECT count(*) FROM (SELECT inventory_id, quantity_before, lag(quantity_after) OVER w AS prev
        FROM inventory_log WINDOW w AS (PARTITION BY inventory_id ORDER BY created_at, id)) x
        WHERE prev IS NOT NULL AND prev <> quantity_before""") == [(0,)]
    assert q("""SELECT count(*) FROM inventory v JOIN (SELECT DISTINCT ON (inventory_id) inventory_id, quantity_after
        FROM inventory_log ORDER BY inventory_id, created_at DESC, id DESC) last ON last.inventory_id = v.id
        WHERE last.quantity_after <> v.quantity""") == [(0,)]
    # every line is sold from the shipment's warehouse, except stock-outs (nothing booked)
    assert q("""WITH sales AS (SELECT DISTINCT inventory_id, reference_id FROM inventory_log
                               WHERE change_type = 'sale' AND reference_type = 'order')
        SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id
        JOIN shipment s ON s.id = o.shipping_id
        JOIN inventory v ON v.product_id = i.product_id AND v.warehouse_id = s.warehouse_id
        LEFT JOIN sales l ON l.inventory_id = v.id AND l.reference_id = o.id
        WHERE (o.cancel_reason IS DISTINCT FROM 'Hết hàng') <> (l.inventory_id IS NOT NULL)""") == [(0,)]
    # cancellations and returns to sender give the stock back (stock-outs had nothing to give back)
    assert q("""SELECT count(*) FROM orders o
        LEFT JOIN (SELECT DISTINCT reference_id FROM inventory_log WHERE change_type = 'return'
                   AND reference_type = 'order') l ON l.reference_id = o.id
        WHERE o.status IN ('Cancelled', 'Returned') AND o.cancel_reason IS DISTINCT FROM 'Hết hàng'
          AND l.reference_id IS NULL""") == [(0,)]


def test_timestamps_stay_before_the_clock_and_created_before_updated(q):
    end = BASE_END + dt.timedelta(days=len(PLAN))
    business_dates = {("discount", "start_date"), ("discount", "end_date"), ("shipment", "estimated_delivery"),
                      ("cart", "expires_at")}
    for table, column in q("""SELECT table_name, column_name FROM information_schema.columns
                              WHERE table_schema = 'public' AND data_type = 'timestamp without time zone'"""):
        if (table, column) in business_dates:
            continue
        lo, hi = q(f'SELECT min("{column}"), max("{column}") FROM public."{table}"')[0]
        assert lo is None or (START <= lo and hi < end), f"{table}.{column}: {lo} .. {hi}"
    for (table,) in q("""SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'
                         AND column_name IN ('created_at', 'updated_at') GROUP BY 1 HAVING count(*) = 2"""):
        assert q(f'SELECT count(*) FROM public."{table}" WHERE created_at > updated_at') == [(0,)], table


def test_ids_of_logs_still_follow_time_without_late_rows(q):
    for table, ts in (("order_status_history", "changed_at"), ("inventory_log", "created_at"),
                      ("customer_activity_log", "created_at"), ("orders", "created_at"),
                      ("customers", "created_at")):
        assert q(f"""SELECT count(*) FROM (SELECT {ts} < lag({ts}) OVER (ORDER BY id) AS back
                     FROM public.{table}) x WHERE back""") == [(0,)], table


def test_activity_mirrors_what_happened(advanced, q):
    c = advanced.counts
    kinds = dict(q("""SELECT activity_type, count(*) FROM customer_activity_log
                      WHERE created_at >= %s GROUP BY 1""", (BASE_END,)))
    assert kinds["purchase"] == total(c, "orders.inserted")
    assert kinds["wishlist"] == total(c, "wishlist.inserted")
    assert kinds["review"] == total(c, "product_review.inserted")
    assert kinds["add_to_cart"] == total(c, "cart_items.inserted")
    assert kinds["remove_from_cart"] > 0 and kinds["view"] > kinds["search"] > 0


def test_soft_references_resolve(q):
    assert q("""SELECT count(*) FROM inventory_log l WHERE l.reference_type = 'order'
                AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = l.reference_id)""") == [(0,)]
    assert q("""SELECT count(*) FROM inventory_log l WHERE l.reference_type = 'return'
                AND NOT EXISTS (SELECT 1 FROM order_return r WHERE r.id = l.reference_id)""") == [(0,)]
    assert q("SELECT count(*) FROM shipment s WHERE NOT EXISTS (SELECT 1 FROM warehouse w WHERE w.id = s.warehouse_id)"
             " OR NOT EXISTS (SELECT 1 FROM shipping_method m WHERE m.id = s.shipping_method_id)") == [(0,)]
    assert q("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace "
             "AND convalidated") == [(31,)]


# ----------------------------------------------------------------------------- scenarios
@pytest.fixture(scope="module")
def signatures(clone) -> dict[str, dict[str, object]]:
    """One day of each scenario from the same state and seed (rolled back in between)."""
    conn = clone("sim_adv_scenarios")
    out = {}
    try:
        for scenario in ("normal", "flash_sale", "promotion_blast", "fraud_attack"):
            (counts,) = advance(conn, days=1, seed=SEED, scale=SCALE, scenario=scenario).values()
            new = "o.created_at >= %(t0)s"
            names = ("orders", "cancelled", "stockouts", "failed", "far", "discounted", "big")
            stats = dict(zip(names, query(conn, f"""
                SELECT count(*), count(*) FILTER (WHERE o.status = 'Cancelled'),
                       count(*) FILTER (WHERE o.cancel_reason = 'Hết hàng'),
                       count(*) FILTER (WHERE p.payment_status = 'Failed'),
                       count(*) FILTER (WHERE g1.province_name <> g2.province_name),
                       count(*) FILTER (WHERE o.discount_id IS NOT NULL),
                       count(*) FILTER (WHERE o.total_price >= 50000000)
                FROM orders o JOIN payment p ON p.id = o.payment_id JOIN customers c ON c.id = o.customer_id
                JOIN geo_location g1 ON g1.ward_code = o.location_id
                JOIN geo_location g2 ON g2.ward_code = c.geo_location_id
                WHERE {new}""", {"t0": BASE_END})[0]))
            stats["campaigns"] = one(conn, "SELECT count(*) FROM discount WHERE created_at >= %s AND start_date = %s",
                                     (BASE_END, BASE_END))
            stats["units"] = one(conn, "SELECT -sum(quantity_change) FROM inventory_log WHERE change_type = 'sale' "
                                       "AND created_at >= %s", (BASE_END,))
            stats["low_stock"] = one(conn, "SELECT count(*) FROM inventory WHERE quantity < 5")
            stats["from_cart"] = one(conn, "SELECT count(*) FROM cart c JOIN orders o ON o.id = c.order_id "
                                           "WHERE o.created_at >= %s", (BASE_END,))
            stats["fraudsters"] = one(conn, """SELECT count(*) FROM (
                SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id
                JOIN geo_location g1 ON g1.ward_code = o.location_id
                JOIN geo_location g2 ON g2.ward_code = c.geo_location_id
                WHERE c.created_at >= %s AND g1.province_name <> g2.province_name
                GROUP BY c.id HAVING count(*) >= 3) x""",
                (BASE_END,))
            out[scenario] = {**counts, **stats}
            conn.rollback()
    finally:
        conn.close()
    return out


def test_flash_sale_signature(signatures):
    normal, flash = signatures["normal"], signatures["flash_sale"]
    assert flash["orders"] >= 3 * normal["orders"]
    assert flash["stockouts"] > 0 and normal["stockouts"] == 0
    assert flash["cancelled"] / flash["orders"] > normal["cancelled"] / normal["orders"]
    assert flash["campaigns"] == 5 and flash["discounted"] / flash["orders"] > 0.5
    assert flash["units"] > 1.5 * normal["units"] and flash["low_stock"] > normal["low_stock"]   # stock drawdown


def test_promotion_blast_signature(signatures):
    normal, promo = signatures["normal"], signatures["promotion_blast"]
    assert promo["campaigns"] == 5
    assert promo["customer_activity_log.inserted"] >= 2.5 * normal["customer_activity_log.inserted"]
    assert promo["cart.inserted"] >= 1.6 * normal["cart.inserted"]
    assert promo["from_cart"] / promo["orders"] > normal["from_cart"] / normal["orders"] + 0.1   # conversion
    assert promo["orders"] > 1.15 * normal["orders"]
    assert promo["discounted"] / promo["orders"] > 2 * normal["discounted"] / normal["orders"]


def test_fraud_attack_signature(signatures):
    normal, fraud = signatures["normal"], signatures["fraud_attack"]
    assert normal["far"] == 0 and fraud["far"] >= 5
    assert fraud["failed"] > 0 and normal["failed"] == 0
    assert fraud["cancelled"] >= normal["cancelled"] + 5
    assert fraud["big"] > normal["big"]
    assert fraud["fraudsters"] >= 2 and normal["fraudsters"] == 0


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="unknown scenario"):
        advance(None, seed=1, scale=1, scenario="black_friday")


# ----------------------------------------------------------------------------- determinism
MISBEHAVING = SourceBehaviour(unbumped_update_share=0.2, late_rows_share=0.05)
CLI_MISBEHAVING = ["--unbumped-update-share", "0.2", "--late-rows-share", "0.05"]


def _advance_process(settings, db: str, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_SOURCE__")}
    env.update(LAKEHOUSE_HOME=str(settings.home), LAKEHOUSE_SOURCE__DBNAME=db)
    return subprocess.Popen([sys.executable, "-m", "lakehouse_simulator", "simulate-advance", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def two_days(settings, clone) -> dict[str, dict[str, tuple[int, str]]]:
    """Fingerprints after two flash-sale days with the misbehaviour switches on:
    ``process`` (CLI in another process, 2 days), ``at_once`` (2 days in one call), ``one_by_one``
    (1 day, commit, 1 day) and ``other_seed`` (2 days, seed + 1)."""
    names = {run: f"sim_adv_det_{run}" for run in ("process", "at_once", "one_by_one", "other_seed")}
    conns = {run: clone(db) for run, db in names.items()}
    conns.pop("process").close()
    proc = _advance_process(settings, names["process"], "--days", "2", "--scenario", "flash_sale",
                            "--seed", str(SEED), "--scale", str(SCALE), *CLI_MISBEHAVING)
    try:
        kw = dict(seed=SEED, scale=SCALE, scenario="flash_sale", behaviour=MISBEHAVING)
        advance(conns["at_once"], days=2, **kw)
        for _ in range(2):
            advance(conns["one_by_one"], days=1, **kw)
            conns["one_by_one"].commit()
        advance(conns["other_seed"], days=2, **{**kw, "seed": SEED + 1})
        prints = {run: fingerprint(conn) for run, conn in conns.items()}
    finally:
        for conn in conns.values():
            conn.rollback()
            conn.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{out}\n{err}"
    assert "orders" in out and f"advanced {names['process']} by 2 day(s) of flash_sale" in out
    conn = postgres.connect(settings.source.model_copy(update={"dbname": names["process"]}), settings)
    try:
        prints["process"] = fingerprint(conn)
    finally:
        conn.close()
    return prints


def test_two_days_at_once_equal_one_day_twice(two_days):
    assert two_days["at_once"] == two_days["one_by_one"]
    assert two_days["at_once"]["clock"][1] == str(BASE_END + dt.timedelta(days=2))


def test_same_seed_same_content_in_another_process(two_days):
    assert two_days["process"] == two_days["at_once"]


def test_another_seed_gives_other_days(two_days):
    a, c = two_days["at_once"], two_days["other_seed"]
    changed = {t for t in SOURCE_TABLES if a[t] != c[t]}
    assert {"orders", "order_items", "customers", "payment", "shipment", "order_status_history", "inventory",
            "inventory_log", "customer_activity_log", "cart", "cart_items", "wishlist", "order_return",
            "product_review"} <= changed
    assert not changed & {"category", "brand", "product", "geo_location", "warehouse"}
    assert a["clock"] == c["clock"]


# ----------------------------------------------------------------------------- source behaviour
@pytest.fixture(scope="module")
def behaviour_db(clone) -> Iterator[psycopg2.extensions.connection]:
    conn = clone("sim_adv_behaviour")
    yield conn
    conn.close()


def test_unbumped_updates_change_status_but_not_updated_at(behaviour_db):
    conn = behaviour_db
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE before_o AS SELECT id, status, updated_at FROM orders")
            cur.execute("CREATE TEMP TABLE before_i AS SELECT id, quantity, updated_at FROM inventory")
        advance(conn, seed=SEED, scale=SCALE, behaviour=SourceBehaviour(unbumped_update_share=0.3))
        unbumped, bumped = query(conn, """SELECT count(*) FILTER (WHERE o.updated_at = b.updated_at),
                                                 count(*) FILTER (WHERE o.updated_at > b.updated_at)
                                          FROM orders o JOIN before_o b USING (id) WHERE o.status <> b.status""")[0]
        assert unbumped > 0 and bumped > 0 and 0.15 < unbumped / (unbumped + bumped) < 0.45
        assert one(conn, """SELECT count(*) FROM inventory v JOIN before_i b USING (id)
                            WHERE v.quantity <> b.quantity AND v.updated_at = b.updated_at""") > 0
    finally:
        conn.rollback()


def test_late_rows_are_inserted_today_with_yesterdays_timestamps(behaviour_db):
    conn = behaviour_db
    try:
        max_ids = {t: one(conn, f"SELECT max(id) FROM {t}") for t in ("orders", "customer_activity_log", "wishlist")}
        advance(conn, seed=SEED, scale=SCALE, behaviour=SourceBehaviour(late_rows_share=0.3))
        for table, column in (("orders", "created_at"), ("customer_activity_log", "created_at"),
                              ("wishlist", "added_at")):
            late, fresh = query(conn, f"""SELECT count(*) FILTER (WHERE {column} < %(t0)s),
                                                count(*) FILTER (WHERE {column} >= %(t0)s)
                                         FROM {table} WHERE id > %(max)s""", {"t0": BASE_END, "max": max_ids[table]})[0]
            assert late > 0 and fresh > 0, table
            assert one(conn, f"SELECT min({column}) >= %s FROM {table} WHERE id > %s",
                       (BASE_END - dt.timedelta(days=1), max_ids[table]))
        # late orders are whole: lines, payment, history at their (yesterday's) creation time
        assert one(conn, """SELECT count(*) FROM orders o JOIN payment p ON p.id = o.payment_id
            JOIN order_status_history h ON h.order_id = o.id AND h.status = 'Pending'
            WHERE o.id > %s AND o.created_at < %s AND (p.created_at <> o.created_at OR h.changed_at <> o.created_at
               OR o.order_code NOT LIKE 'ORD_20230130_%%')""", (max_ids["orders"], BASE_END)) == 0
    finally:
        conn.rollback()


def test_wall_clock_columns_get_the_database_clock(behaviour_db):
    conn = behaviour_db
    try:
        advance(conn, seed=SEED, scale=SCALE, behaviour=SourceBehaviour(wall_clock_columns=True))
        wall = one(conn, "SELECT now()::timestamp")
        assert one(conn, "SELECT count(*) FROM customers WHERE updated_at = %s", (wall,)) > 0
        assert one(conn, "SELECT count(*) FROM cart WHERE updated_at = %s", (wall,)) > 0
        assert one(conn, "SELECT count(*) FROM order_status_history WHERE changed_at = %s "
                         "AND changed_by = 'System_Trigger'", (wall,)) > 0
        assert one(conn, "SELECT count(*) FROM inventory_log WHERE created_at = %s AND change_type = 'sale'",
                   (wall,)) > 0
        # the client-written rows keep sim time
        assert one(conn, "SELECT max(created_at) < %s FROM orders", (BASE_END + dt.timedelta(days=1),))
    finally:
        conn.rollback()


def test_behaviour_switches_are_validated():
    with pytest.raises(ValueError):
        SourceBehaviour(unbumped_update_share=1.5)


def test_propensity_is_a_fixed_heavy_tailed_function_of_the_id():
    import numpy as np
    ids = np.arange(1, 20_001)
    p = propensity(ids)
    assert np.array_equal(p, propensity(ids)) and np.all(p > 0)
    assert 0.9 < np.median(p) < 1.1 and p.max() > 20 * np.median(p)


def test_simulate_advance_is_registered_with_the_cli():
    import argparse
    from importlib.metadata import entry_points
    (ep,) = [e for e in entry_points(group="lakehouse.commands") if e.name == "simulator"]
    parser = argparse.ArgumentParser(prog="lakehouse")
    ep.load()(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate-advance", "--days", "3", "--scenario", "fraud_attack", "--seed", "4",
                              "--scale", "0.5", "--unbumped-update-share", "0.2", "--wall-clock"])
    assert (args.days, args.scenario, args.seed, args.scale, args.unbumped_update_share, args.wall_clock,
            args.late_rows_share) == (3, "fraud_attack", 4, 0.5, 0.2, True, 0.0)
    for bad in (["--scenario", "black_friday"], ["--unbumped-update-share", "2"], ["--days", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["simulate-advance", "--seed", "1", "--scale", "1", *bad])
