"""Business invariants of generated data (scale 0.05, seed 42): what the old generator got wrong
(source-system.md §8 #20–#28) must hold here."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse_simulator.schema import SERIAL_TABLES, SOURCE_TABLES

from .conftest import DAYS, START
from .invariants import ORDERS_STATUS_VS_TIMESTAMPS

PERIOD_START = dt.datetime.combine(START, dt.time())
PERIOD_END = PERIOD_START + dt.timedelta(days=DAYS)
ORDER_STATUSES = {"Pending", "Confirmed", "Processing", "Packed", "Shipped", "Delivering", "Delivered",
                  "DeliveryFailed", "Completed", "Cancelled", "Returned"}
#: Timestamps that are business dates, not events, and may lie outside the simulated period.
NOT_EVENTS = {("discount", "start_date"), ("discount", "end_date"), ("shipment", "estimated_delivery"),
              ("cart", "expires_at")}


@pytest.fixture(scope="module")
def q(generated):
    """Run a query on the generated database and return all rows."""
    def query(sql: str, params=()) -> list[tuple]:
        with generated.conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        generated.conn.rollback()
        return rows
    return query


def one(q, sql: str, params=()):
    return q(sql, params)[0][0]


# ----------------------------------------------------------------------------- volumes and clock
def test_counts_returned_match_the_tables(generated, q):
    assert list(generated.counts) == list(SOURCE_TABLES)
    for table, n in generated.counts.items():
        assert one(q, f'SELECT count(*) FROM public."{table}"') == n, table


def test_volumes_at_scale(generated):
    c = generated.counts
    assert c["orders"] == 5_000 and c["customers"] == 500          # scale 0.05 of 100k / 10k
    assert 2.5 <= c["order_items"] / c["orders"] <= 3.5               # ≈ 300k lines at scale 1
    assert c["customer_activity_log"] == 50_000                       # ≈ 1M at scale 1
    assert c["payment"] == c["shipment"] == c["orders"]
    assert c["order_status_history"] >= 3 * c["orders"]
    for table in ("cart", "cart_items", "wishlist", "product_review", "order_return", "inventory_log"):
        assert c[table] > 0, table


def test_reference_tables_have_natural_size(generated):
    c = generated.counts
    assert (c["category"], c["sub_category"], c["brand"], c["order_channel"], c["shipping_method"],
            c["logistics_partner"], c["warehouse"], c["product"], c["inventory"]) == (4, 8, 29, 5, 4, 10, 6, 497, 2982)
    assert c["geo_location"] == 10_035


def test_reference_content(q):
    assert one(q, "SELECT count(DISTINCT province_name) FROM geo_location") == 63
    assert one(q, "SELECT count(DISTINCT (province_name, district_name)) FROM geo_location") == 691
    channels = [r[0] for r in q("SELECT name FROM order_channel ORDER BY id")]
    assert channels == ["Shopee", "Lazada", "Tiki", "Website", "TikTok"]
    assert q("SELECT name, estimated_delivery_time FROM shipping_method ORDER BY id") == [
        ("Standard", 120), ("Express", 48), ("Same-day", 8), ("COD", 72)]
    assert q("SELECT min(id), max(id), count(*), min(price) > 0 FROM product") == [(1, 502, 497, True)]
    assert one(q, "SELECT count(*) FROM (SELECT lower(name) FROM brand GROUP BY 1 HAVING count(*) > 1) d") == 0


def test_simulator_clock_is_the_end_of_the_period(q):
    assert q("SELECT id, sim_now FROM lakehouse_sim.clock") == [(1, PERIOD_END)]


def test_foreign_keys_are_restored_after_the_bulk_load(q):
    assert one(q, "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                  "WHERE c.contype = 'f' AND n.nspname = 'public' AND c.convalidated") == 31


# ----------------------------------------------------------------------------- sequences
def test_sequences_are_past_the_loaded_ids(q):
    for table in SERIAL_TABLES:
        seq = one(q, "SELECT pg_get_serial_sequence(%s, 'id')", (f"public.{table}",))
        last, called = q(f"SELECT last_value, is_called FROM {seq}")[0]
        next_id = last + 1 if called else last
        assert next_id > one(q, f'SELECT coalesce(max(id), 0) FROM public."{table}"'), table


def test_inserts_without_an_id_work(generated):
    conn = generated.conn
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO category (name) VALUES ('new') RETURNING id")
            assert cur.fetchone()[0] == 5
            cur.execute("INSERT INTO payment (payment_method, amount) VALUES ('MoMo', 1) RETURNING id")
            new_payment = cur.fetchone()[0]
            cur.execute("SELECT max(id) FROM payment WHERE id <> %s", (new_payment,))
            assert new_payment > cur.fetchone()[0]
            cur.execute("INSERT INTO orders (order_code, payment_id) VALUES ('ORD_TEST', %s) RETURNING id",
                        (new_payment,))
            assert cur.fetchone()[0] is not None
    finally:
        conn.rollback()


# ----------------------------------------------------------------------------- time
def _timestamp_columns(q) -> list[tuple[str, str]]:
    return [(t, c) for t, c in q("""
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = 'public' AND data_type = 'timestamp without time zone'
        ORDER BY table_name, ordinal_position""") if (t, c) not in NOT_EVENTS]


def test_every_event_timestamp_lies_in_the_simulated_period(q):
    columns = _timestamp_columns(q)
    assert len(columns) > 50
    for table, column in columns:
        lo, hi = q(f'SELECT min("{column}"), max("{column}") FROM public."{table}"')[0]
        if lo is None:
            continue
        assert PERIOD_START <= lo and hi < PERIOD_END, f"{table}.{column}: {lo} .. {hi}"


def test_created_at_never_after_updated_at(q):
    tables = [t for (t,) in q("""
        SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'
        AND column_name IN ('created_at', 'updated_at') GROUP BY 1 HAVING count(*) = 2""")]
    assert len(tables) == 18
    for table in tables:
        assert one(q, f'SELECT count(*) FROM public."{table}" WHERE created_at > updated_at') == 0, table
        assert one(q, f'SELECT count(*) FROM public."{table}" WHERE created_at IS NULL OR updated_at IS NULL') == 0
    assert one(q, "SELECT count(*) FROM cart_items WHERE added_at > updated_at") == 0


def test_ids_of_logs_follow_time(q):
    for table, ts in (("order_status_history", "changed_at"), ("inventory_log", "created_at"),
                      ("customer_activity_log", "created_at"), ("orders", "created_at"),
                      ("customers", "created_at"), ("order_items", "created_at")):
        assert one(q, f"""SELECT count(*) FROM (SELECT {ts} < lag({ts}) OVER (ORDER BY id) AS back
                          FROM public.{table}) x WHERE back""") == 0, table


# ----------------------------------------------------------------------------- orders
def test_order_total_is_the_sum_of_its_lines(q):
    assert one(q, """
        SELECT count(*) FROM orders o
        LEFT JOIN (SELECT order_id, sum(amount) s, count(*) n FROM order_items GROUP BY 1) i ON i.order_id = o.id
        WHERE i.n IS NULL OR o.total_price <> i.s""") == 0
    assert one(q, "SELECT count(*) FROM order_items "
                  "WHERE amount <> unit_price * quantity - discount_amount OR amount < 0 OR quantity < 1") == 0
    assert one(q, "SELECT count(*) FROM order_items WHERE discount_amount > 0") > 0


def test_line_prices_are_catalogue_prices_and_created_with_the_order(q):
    assert one(q, "SELECT count(*) FROM order_items i JOIN product p ON p.id = i.product_id "
                  "WHERE i.unit_price <> p.price") == 0
    assert one(q, "SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id "
                  "WHERE i.created_at <> o.order_date") == 0


def test_profit_is_derived_from_cost_not_a_flat_margin(q):
    # profit = total - Σ unit_cost × qty (shipping warehouse) - shipping cost
    assert one(q, """
        SELECT count(*) FROM orders o JOIN shipment s ON s.id = o.shipping_id
        JOIN (SELECT i.order_id, sum(inv.unit_cost * i.quantity) cogs FROM order_items i
              JOIN orders o2 ON o2.id = i.order_id JOIN shipment s2 ON s2.id = o2.shipping_id
              JOIN inventory inv ON inv.product_id = i.product_id AND inv.warehouse_id = s2.warehouse_id
              GROUP BY 1) c ON c.order_id = o.id
        WHERE o.profit <> o.total_price - c.cogs - s.shipping_cost""") == 0
    assert one(q, "SELECT count(DISTINCT round(profit / total_price, 2)) FROM orders") > 10


def test_order_codes_are_unique_sim_dated_and_not_truncated(q):
    assert one(q, r"""SELECT count(*) FROM orders WHERE order_code !~ '^ORD_[0-9]{8}_[0-9]{6,}$'
                      OR substr(order_code, 5, 8) <> to_char(order_date, 'YYYYMMDD')
                      OR substr(order_code, 14)::bigint <> id""") == 0


def test_order_date_is_created_at_and_one_payment_and_shipment_per_order(q):
    assert one(q, "SELECT count(*) FROM orders WHERE order_date <> created_at") == 0
    assert one(q, "SELECT count(DISTINCT payment_id) = count(*) AND count(DISTINCT shipping_id) = count(*) "
                  "AND count(payment_id) = count(*) FROM orders")
    assert one(q, "SELECT count(*) FROM orders o JOIN payment p ON p.id = o.payment_id "
                  "WHERE p.amount <> o.total_price OR p.created_at <> o.created_at") == 0
    assert one(q, "SELECT count(*) FROM orders o JOIN shipment s ON s.id = o.shipping_id "
                  "WHERE s.logistics_partner_id <> o.logistics_partner_id") == 0
    assert one(q, "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
                  "WHERE o.location_id <> c.geo_location_id OR o.created_at < c.created_at") == 0


def test_ids_are_not_trivially_aligned_across_tables(q):
    # Sequences burn values on rollbacks: joins on the wrong key must not happen to work.
    assert one(q, "SELECT count(*) FROM orders WHERE id <> payment_id OR id <> shipping_id") > 0


def test_statuses_use_the_contract_vocabulary_and_all_appear(q):
    statuses = {s for (s,) in q("SELECT DISTINCT status FROM orders")}
    assert statuses <= ORDER_STATUSES
    assert {"Pending", "Completed", "Cancelled", "Delivered", "Returned"} <= statuses


def test_status_agrees_with_timestamps(q):
    assert q(ORDERS_STATUS_VS_TIMESTAMPS) == []


def test_history_replays_each_order_path(q):
    # first row Pending at creation, last row = current status at updated_at, no row after the clock
    assert one(q, """
        WITH h AS (SELECT order_id, status, changed_at,
                          row_number() OVER (PARTITION BY order_id ORDER BY changed_at, id) AS first,
                          row_number() OVER (PARTITION BY order_id ORDER BY changed_at DESC, id DESC) AS last
                   FROM order_status_history)
        SELECT count(*) FROM orders o
        LEFT JOIN h f ON f.order_id = o.id AND f.first = 1
        LEFT JOIN h l ON l.order_id = o.id AND l.last = 1
        WHERE f.status IS DISTINCT FROM 'Pending' OR f.changed_at <> o.created_at
           OR l.status <> o.status OR l.changed_at <> o.updated_at""") == 0
    # older orders are further along the path
    last_day, before_last_10 = PERIOD_END - dt.timedelta(days=1), PERIOD_END - dt.timedelta(days=10)
    young, old = q("""SELECT avg(n) FILTER (WHERE created_at >= %s), avg(n) FILTER (WHERE created_at < %s)
                      FROM orders o JOIN (SELECT order_id, count(*) n FROM order_status_history GROUP BY 1) h
                      ON h.order_id = o.id""", (last_day, before_last_10))[0]
    assert old > young + 2


def test_shipments_and_payments_follow_the_order(q):
    assert one(q, """SELECT count(*) FROM orders o JOIN shipment s ON s.id = o.shipping_id WHERE
        (o.status IN ('Delivered', 'Completed')) <> (s.shipping_status = 'Delivered')
        OR (o.status = 'Returned') <> (s.shipping_status = 'ReturnToSender')
        OR (o.status IN ('Shipped', 'Delivering')) <> (s.shipping_status = 'InTransit')
        OR s.actual_delivery IS DISTINCT FROM o.delivered_at
        OR (s.shipping_status IN ('Delivered', 'Failed', 'ReturnToSender') AND s.delivery_attempts < 1)""") == 0
    assert one(q, """SELECT count(*) FROM orders o JOIN payment p ON p.id = o.payment_id WHERE
        (o.status = 'Completed' AND p.payment_status <> 'Completed')
        OR (o.status = 'Cancelled' AND p.payment_status NOT IN ('Cancelled', 'Refunded'))
        OR (p.payment_status = 'Refunded' AND o.status NOT IN ('Cancelled', 'Returned'))""") == 0


def test_tracking_numbers_and_transactions_are_unique(q):
    assert one(q, "SELECT count(DISTINCT tracking_number) = count(*) AND count(*) = count(tracking_number) "
                  "FROM shipment")
    assert one(q, "SELECT count(DISTINCT transaction_id) = count(*) FROM payment")


def test_vocabularies_include_what_silver_must_standardise(q):
    methods = {m for (m,) in q("SELECT DISTINCT payment_method FROM payment")}
    assert {"MoMo", "ZaloPay", "VNPay", "Credit Card", "COD", "Bank Transfer", "Momo", "Cash on Delivery"} == methods
    assert {s for (s,) in q("SELECT DISTINCT payment_status FROM payment")} <= {
        "Pending", "Completed", "Cancelled", "Refunded", "Failed"}
    assert {s for (s,) in q("SELECT DISTINCT shipping_status FROM shipment")} <= {
        "Created", "InTransit", "Failed", "Delivered", "ReturnToSender"}
    assert {c for (c,) in q("SELECT DISTINCT channel FROM customer_activity_log")} == {
        "Shopee", "Lazada", "Tiki", "Website", "TikTok"}


# ----------------------------------------------------------------------------- customers
def test_total_spent_and_tier_follow_completed_orders(q):
    assert one(q, """
        SELECT count(*) FROM customers c
        LEFT JOIN (SELECT customer_id, sum(total_price) s FROM orders WHERE status = 'Completed' GROUP BY 1) o
          ON o.customer_id = c.id
        WHERE c.total_spent <> coalesce(o.s, 0)
           OR c.tier <> CASE WHEN c.total_spent >= 50000000 THEN 'Platinum' WHEN c.total_spent >= 20000000 THEN 'Gold'
                             WHEN c.total_spent >= 5000000 THEN 'Silver' ELSE 'Bronze' END""") == 0
    assert len(q("SELECT DISTINCT tier FROM customers")) == 4


def test_last_order_date_and_updated_at(q):
    assert one(q, """
        SELECT count(*) FROM customers c
        LEFT JOIN (SELECT customer_id, max(order_date) m FROM orders GROUP BY 1) o ON o.customer_id = c.id
        WHERE c.last_order_date IS DISTINCT FROM o.m OR c.updated_at < coalesce(o.m, c.created_at)""") == 0


def test_customers_carry_pii(q):
    assert one(q, r"""SELECT count(*) FROM customers WHERE name IS NULL OR name !~ ' '
                      OR email !~ '^[a-z]+\.[a-z]+[0-9]+@[a-z]+\.example\.com$'
                      OR phone !~ '^09[0-9]{8}$' OR customer_code !~ '^KH_[A-Za-z]+_[0-9]{3,}$'""") == 0
    assert one(q, "SELECT count(DISTINCT email) = count(*) AND count(DISTINCT customer_code) = count(*) FROM customers")
    assert one(q, "SELECT count(DISTINCT split_part(email, '@', 2)) FROM customers") >= 3


# ----------------------------------------------------------------------------- engagement
def test_returns_only_for_delivered_orders_and_refund_within_total(q):
    assert one(q, """SELECT count(*) FROM order_return r JOIN orders o ON o.id = r.order_id WHERE
        o.status NOT IN ('Delivered', 'Completed') OR r.created_at < o.delivered_at
        OR r.refund_amount > o.total_price OR r.refund_amount < 0 OR r.customer_id <> o.customer_id
        OR (r.status IN ('completed', 'rejected')) <> (r.resolved_at IS NOT NULL)""") == 0
    assert one(q, "SELECT count(DISTINCT status) FROM order_return") >= 3


def test_reviews_follow_completed_purchases(q):
    assert one(q, """SELECT count(*) FROM product_review r WHERE NOT EXISTS (
        SELECT 1 FROM orders o JOIN order_items i ON i.order_id = o.id
        JOIN order_channel ch ON ch.id = o.order_channel_id
        WHERE o.customer_id = r.customer_id AND i.product_id = r.product_id AND o.status = 'Completed'
          AND ch.name = r.source_system AND r.created_at > o.updated_at)""") == 0
    assert one(q, "SELECT count(*) FROM (SELECT 1 FROM product_review GROUP BY product_id, customer_id, "
                  "source_system HAVING count(*) > 1) d") == 0


def test_carts_are_consistent_with_their_items_and_orders(q):
    assert one(q, """SELECT count(*) FROM cart c
        LEFT JOIN (SELECT cart_id, sum(amount) s, count(*) n FROM cart_items GROUP BY 1) i ON i.cart_id = c.id
        WHERE c.total_amount <> coalesce(i.s, 0) OR c.item_count <> coalesce(i.n, 0)""") == 0
    assert one(q, """SELECT count(*) FROM cart c LEFT JOIN orders o ON o.id = c.order_id WHERE
        (c.status = 'checked_out') <> (c.order_id IS NOT NULL)
        OR (c.status = 'checked_out' AND (o.customer_id <> c.customer_id OR c.checked_out_at <> o.created_at))""") == 0
    assert one(q, "SELECT count(*) FROM cart_items i JOIN cart c ON c.id = i.cart_id "
                  "WHERE i.added_at < c.created_at OR i.added_at > c.updated_at") == 0
    assert len(q("SELECT DISTINCT status FROM cart")) == 4


def test_inventory_log_chains_to_the_current_quantity(q):
    assert one(q, "SELECT count(*) FROM inventory_log WHERE quantity_before + quantity_change <> quantity_after "
                  "OR quantity_after < 0") == 0
    assert one(q, """SELECT count(*) FROM (
        SELECT inventory_id, quantity_before, lag(quantity_after) OVER w AS prev
        FROM inventory_log WINDOW w AS (PARTITION BY inventory_id ORDER BY created_at, id)) x
        WHERE prev IS NOT NULL AND prev <> quantity_before""") == 0
    assert one(q, """SELECT count(*) FROM inventory v JOIN (
        SELECT DISTINCT ON (inventory_id) inventory_id, quantity_after FROM inventory_log
        ORDER BY inventory_id, created_at DESC, id DESC) last ON last.inventory_id = v.id
        WHERE last.quantity_after <> v.quantity""") == 0


def test_sales_are_logged_against_the_shipping_warehouse(q):
    assert one(q, """SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id
        JOIN shipment s ON s.id = o.shipping_id
        JOIN inventory v ON v.product_id = i.product_id AND v.warehouse_id = s.warehouse_id
        WHERE NOT EXISTS (SELECT 1 FROM inventory_log l WHERE l.inventory_id = v.id AND l.change_type = 'sale'
                          AND l.reference_type = 'order' AND l.reference_id = o.id)""") == 0
    # cancellations give the stock back
    assert one(q, """SELECT count(*) FROM orders o WHERE status = 'Cancelled' AND NOT EXISTS (
        SELECT 1 FROM inventory_log l WHERE l.change_type = 'return' AND l.reference_type = 'order'
        AND l.reference_id = o.id)""") == 0


def test_activity_mirrors_purchases_wishlists_and_reviews(q):
    counts = dict(q("SELECT activity_type, count(*) FROM customer_activity_log GROUP BY 1"))
    assert counts["purchase"] == one(q, "SELECT count(*) FROM orders")
    assert counts["wishlist"] == one(q, "SELECT count(*) FROM wishlist")
    assert counts["review"] == one(q, "SELECT count(*) FROM product_review")
    assert counts["add_to_cart"] == one(q, "SELECT count(*) FROM cart_items")
    assert counts["view"] > counts["search"] > 0
    assert one(q, """SELECT count(*) FROM customer_activity_log a JOIN customers c ON c.id = a.customer_id
                     WHERE a.created_at < c.created_at""") == 0
    assert one(q, "SELECT count(*) FROM customer_activity_log WHERE activity_type = 'view' AND product_id IS NULL") == 0


def test_tiny_short_runs_load_and_keep_their_invariants(connect_db):
    """Edge case: one day, a handful of orders, some tables empty; another start date."""
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    conn = connect_db("sim_tiny")
    try:
        create_source_schema(conn, reset=True)
        counts = generate(conn, scale=0.0001, seed=3, start=dt.date(2024, 2, 29), days=1)
        conn.commit()
        assert counts["orders"] == 1 and counts["customers"] == 1 and counts["order_return"] == 0
        with conn.cursor() as cur:
            cur.execute("SELECT sim_now FROM lakehouse_sim.clock")
            assert cur.fetchone()[0] == dt.datetime(2024, 3, 1)
            cur.execute("SELECT min(created_at) >= '2024-02-29', max(created_at) < '2024-03-01' FROM orders")
            assert cur.fetchone() == (True, True)
            cur.execute("INSERT INTO order_return (order_id, customer_id, reason, return_type) "
                        "SELECT id, customer_id, 'x', 'refund' FROM orders RETURNING id")
            assert cur.fetchone()[0] == 1        # empty table: the sequence starts at 1
        conn.rollback()
    finally:
        conn.close()
