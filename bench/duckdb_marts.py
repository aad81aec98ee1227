"""The benchmark's single-node peer: the seven gold marts computed by DuckDB from the source tables.

``compute_marts(tables, as_of)`` takes a snapshot of the PostgreSQL source (one Arrow table per
source table), registers the tables in one in-memory DuckDB connection and runs one SQL per mart
(``MART_SQL``). It computes what ``lakehouse_gold.marts`` computes, at the same grain, with the
same column names and measure definitions (``lakehouse_gold.metrics``), straight from the source,
with the silver cleaning that changes numbers (``SETUP``): shop days are the source's local days
(the shop zone, UTC+07:00, is the source's), enumerations standardised to silver's vocabulary (a
row with a value outside it is dropped, as silver quarantines it), order-line amounts never below
0, names trimmed. Events dated after ``as_of`` are left out, as gold leaves them out. Rounding
follows Spark's: half up, a double on its shortest decimal form, a decimal exactly, an average of
decimals to 4 more places first. No personal data is read (customer names, emails, phones;
warehouse managers and phones).

What it leaves out, against gold:

* surrogate keys (``customer_key``, ``product_key``, ``warehouse_key``): hashes of gold's
  dimensions, not measures;
* history. Gold replays its batches: ``mart_inventory_daily`` holds one stock snapshot per run
  (per published silver inventory batch) and averages stock and counts out-of-stock incidents
  over those snapshots; one source snapshot has the stock of ``as_of`` only, so the peer gives
  that one snapshot day, as gold's first load does (a sale movement stamped after ``as_of``
  counts on ``as_of``, the first load's last day). ``dim_customer`` is type 2; the peer reads the
  customers' current state, which is what ``mart_customer_360`` takes (the current version).
* deletes and late changes gold has not seen yet: the peer sees the source as it is.
"""

from __future__ import annotations

import datetime

import duckdb
import pyarrow

#: the source tables the marts read (the others of the snapshot are registered, not read)
SOURCE_TABLES = ("orders", "order_items", "order_return", "customers", "geo_location", "order_channel", "shipment",
                 "logistics_partner", "shipping_method", "product", "brand", "sub_category", "category",
                 "product_review", "inventory", "inventory_log", "cart")

#: silver's vocabularies (``lakehouse_silver.vocabulary``) of the enumerations the marts read
VOCABULARIES = {
    "order_statuses": ("pending", "confirmed", "processing", "packed", "shipped", "delivering", "delivered",
                       "delivery_failed", "completed", "cancelled", "returned", "refunded"),
    "return_statuses": ("pending", "approved", "rejected", "processing", "completed"),
    "return_types": ("refund", "exchange", "repair"),
    "cart_statuses": ("active", "checked_out", "abandoned", "expired"),
    "shipment_statuses": ("created", "in_transit", "failed", "delivered", "return_to_sender"),
    "channels": ("shopee", "lazada", "tiki", "website", "tiktok"),
    "tiers": ("bronze", "silver", "gold", "platinum"),
    "inventory_changes": ("sale", "restock", "return", "adjustment", "damage"),
}
ORDER_STATUSES = VOCABULARIES["order_statuses"]

#: macros; silver as far as the marts' numbers go, and gold's order fact (temporary tables: every mart reads them)
SETUP = r"""
-- text as silver keeps it: trimmed, empty -> NULL
CREATE MACRO txt(value) AS nullif(trim(value), '');
-- an enumeration value in silver's vocabulary: case, spaces and separators ignored; NULL outside it
CREATE MACRO canonical(value, vocabulary) AS vocabulary[list_position(
    list_transform(vocabulary, lambda c: replace(c, '_', '')),
    lower(regexp_replace(trim(value), '[^\pL\pN%]', '', 'g')))];
-- silver quarantines a row whose enumeration value is outside the vocabulary
CREATE MACRO known(value, vocabulary) AS value IS NULL OR canonical(value, vocabulary) IS NOT NULL;
CREATE MACRO money(amount) AS CAST(coalesce(amount, 0) AS DECIMAL(18,2));
-- Spark rounds half up (HALF_UP: a tie away from zero). a / b of integers (or integral decimals), so rounded:
CREATE MACRO div_half_up(a, b) AS
    sign(a) * sign(b) * ((2 * abs(CAST(a AS HUGEINT)) + abs(CAST(b AS HUGEINT))) // (2 * abs(CAST(b AS HUGEINT))));
-- round(num / den, 2 or 4 places) of integers, exact. Spark divides them as doubles and rounds the double's
-- shortest decimal form: the same digits (a tie, k + 1/2 units, is a short decimal the double keeps)
CREATE MACRO round2(num, den) AS CAST(div_half_up(num * 100, den) AS DECIMAL(18,0)) * 0.01;
CREATE MACRO round4(num, den) AS CAST(div_half_up(num * 10000, den) AS DECIMAL(18,0)) * 0.0001;
-- any other double rounded as Spark rounds (or casts to a decimal) one: half up on its shortest decimal form
CREATE MACRO round_double(x, places) AS round(CAST(CAST(x AS VARCHAR) AS DECIMAL(38,18)), places);
-- metrics._ratio (0 without a denominator): of two counts; of an amount over a count; of two amounts
CREATE MACRO count_ratio(num, den) AS CASE WHEN den > 0 THEN round4(num, den) ELSE 0 END;
CREATE MACRO money_per(amount, n) AS CASE WHEN n > 0 THEN round2(amount * 100, n * 100) ELSE 0 END;
CREATE MACRO money_share(num, den) AS CASE WHEN den > 0 THEN round4(num * 100, den * 100) ELSE 0 END;
-- round(avg(x), 2) of decimals with 2 places: Spark's avg keeps 6 places (half up) before the round
CREATE MACRO avg_2dp(total, n) AS CASE WHEN n > 0
    THEN CAST(div_half_up(div_half_up(total * 1000000, n), 10000) AS DECIMAL(18,0)) * 0.01 END;

-- silver
CREATE TEMP TABLE s_orders AS
SELECT id, customer_id, shipping_id, location_id, order_channel_id, CAST(order_date AS DATE) AS order_day,
       canonical(status, order_statuses()) AS status, CAST(total_price AS DECIMAL(18,2)) AS total_price
FROM orders WHERE known(status, order_statuses());

CREATE TEMP TABLE s_order_items AS  -- a line amount is never negative (the source does not clamp it)
SELECT id, order_id, product_id, quantity, discount_amount, greatest(amount, 0) AS amount FROM order_items;

CREATE TEMP TABLE s_order_return AS
SELECT id, order_id, CAST(created_at AS DATE) AS return_day, created_at, resolved_at, txt(reason) AS reason,
       money(refund_amount) AS refund_amount,
       canonical(return_type, return_types()) = 'refund'
           AND canonical(status, return_statuses()) <> 'rejected' AS is_refund  -- money given back
FROM order_return WHERE known(return_type, return_types()) AND known(status, return_statuses());

CREATE TEMP TABLE s_customers AS
SELECT id, txt(customer_code) AS customer_code, canonical(tier, tiers()) AS tier, geo_location_id
FROM customers WHERE known(tier, tiers());

CREATE TEMP TABLE s_shipment AS
SELECT id, logistics_partner_id, shipping_method_id, created_at, estimated_delivery, actual_delivery,
       delivery_attempts, shipping_cost
FROM shipment WHERE known(shipping_status, shipment_statuses());

CREATE TEMP TABLE s_cart AS
SELECT id, created_at, expires_at, updated_at, checked_out_at, canonical(status, cart_statuses()) AS status,
       canonical(channel, channels()) AS channel
FROM cart WHERE known(status, cart_statuses()) AND known(channel, channels());

CREATE TEMP TABLE s_product_review AS
SELECT product_id, rating, CAST(created_at AS DATE) AS day FROM product_review WHERE known(source_system, channels());

CREATE TEMP TABLE s_inventory_log AS
SELECT inventory_id, quantity_change, created_at, canonical(change_type, inventory_changes()) AS change_type
FROM inventory_log WHERE known(change_type, inventory_changes());

-- the names marts report (gold's type 1 dimensions)
CREATE TEMP VIEW channels AS SELECT id, txt(name) AS name FROM order_channel;
CREATE TEMP VIEW provinces AS SELECT ward_code, txt(province_name) AS province_name FROM geo_location;
CREATE TEMP VIEW products AS
SELECT p.id AS product_id, txt(p.name) AS product_name, txt(b.name) AS brand_name, txt(c.name) AS category_name,
       txt(s.name) AS sub_category_name
FROM product p LEFT JOIN brand b ON b.id = p.brand_id LEFT JOIN sub_category s ON s.id = p.sub_category_id
     LEFT JOIN category c ON c.id = s.category_id;

-- gold.fct_orders: one row per order, its lines and returns pre-aggregated (no fan-out)
CREATE TEMP TABLE order_facts AS
WITH lines AS (
    SELECT order_id, sum(quantity) AS units, sum(discount_amount) AS discount_amount
    FROM s_order_items GROUP BY order_id),
refunds AS (
    SELECT order_id, sum(refund_amount) FILTER (WHERE is_refund) AS refund_amount FROM s_order_return GROUP BY order_id)
SELECT o.id AS order_id, o.order_day, o.customer_id, o.order_channel_id, o.location_id, o.shipping_id, o.status,
       o.status <> 'cancelled' AS is_sale,  -- a sale unless cancelled (no status: neither)
       o.total_price, money(l.discount_amount) AS discount_amount, coalesce(l.units, 0) AS units,
       money(r.refund_amount) AS refund_amount, r.order_id IS NOT NULL AS has_return
FROM s_orders o LEFT JOIN lines l ON l.order_id = o.id LEFT JOIN refunds r ON r.order_id = o.id;
"""

DAILY_SALES = f"""
-- sales at order grain per (business day, channel, province of the delivery address)
WITH sales AS (
    SELECT o.order_day, coalesce(c.name, 'unknown') AS channel, coalesce(g.province_name, 'unknown') AS province,
           count(*) AS order_count,
           count(*) FILTER (WHERE is_sale) AS sale_order_count,
           money(sum(total_price) FILTER (WHERE is_sale)) AS gmv,
           money(sum(discount_amount) FILTER (WHERE is_sale)) AS discount_amount,
           money(sum(refund_amount) FILTER (WHERE is_sale)) AS refund_amount,
           CAST(coalesce(sum(units) FILTER (WHERE is_sale), 0) AS BIGINT) AS units_sold,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled_order_count,
           {", ".join(f"count(*) FILTER (WHERE status = '{s}') AS orders_{s}" for s in ORDER_STATUSES)}
    FROM order_facts o LEFT JOIN channels c ON c.id = o.order_channel_id
         LEFT JOIN provinces g ON g.ward_code = o.location_id
    WHERE o.order_day <= as_of()
    GROUP BY 1, 2, 3)
SELECT order_day, channel, province, order_count, sale_order_count, gmv, discount_amount, refund_amount,
       CAST(gmv - refund_amount AS DECIMAL(18,2)) AS net_revenue,
       CAST(money_per(gmv, sale_order_count) AS DECIMAL(16,2)) AS aov,
       units_sold, cancelled_order_count,
       CAST(count_ratio(cancelled_order_count, order_count) AS DECIMAL(18,4)) AS cancellation_rate,
       COLUMNS('^orders_')
FROM sales
ORDER BY order_day, province, channel
"""

CUSTOMER_360 = """
-- one row per customer (current state): lifetime value, order history, RFM, churn risk
WITH history AS (
    SELECT customer_id, count(*) AS order_count, count(*) FILTER (WHERE is_sale) AS sale_order_count,
           money(sum(total_price) FILTER (WHERE is_sale)) - money(sum(refund_amount) FILTER (WHERE is_sale))
               AS lifetime_value,
           money_per(money(sum(total_price) FILTER (WHERE is_sale)), count(*) FILTER (WHERE is_sale)) AS aov,
           min(order_day) FILTER (WHERE is_sale) AS first_order_day,
           max(order_day) FILTER (WHERE is_sale) AS last_order_day
    FROM order_facts WHERE order_day <= as_of() GROUP BY customer_id),
base AS (
    SELECT c.id AS customer_id, c.customer_code, c.tier, g.province_name,
           coalesce(h.order_count, 0) AS order_count, coalesce(h.sale_order_count, 0) AS sale_order_count,
           CAST(coalesce(h.lifetime_value, 0) AS DECIMAL(18,2)) AS lifetime_value,
           CAST(coalesce(h.aov, 0) AS DECIMAL(16,2)) AS aov, h.first_order_day, h.last_order_day,
           CAST(as_of() - h.last_order_day AS INTEGER) AS days_since_last_order
    FROM s_customers c LEFT JOIN provinces g ON g.ward_code = c.geo_location_id
         LEFT JOIN history h ON h.customer_id = c.id),
scored AS (  -- quintiles 1-5 among the customers with a sale order, ties broken by customer_id
    SELECT *,
           CASE WHEN sale_order_count > 0 THEN 6 - ntile(5) OVER (PARTITION BY sale_order_count > 0
                ORDER BY days_since_last_order, customer_id) END AS recency_score,
           CASE WHEN sale_order_count > 0 THEN 6 - ntile(5) OVER (PARTITION BY sale_order_count > 0
                ORDER BY sale_order_count DESC, customer_id) END AS frequency_score,
           CASE WHEN sale_order_count > 0 THEN 6 - ntile(5) OVER (PARTITION BY sale_order_count > 0
                ORDER BY lifetime_value DESC, customer_id) END AS monetary_score
    FROM base)
SELECT customer_id, customer_code, tier, province_name, order_count, sale_order_count, lifetime_value, aov,
       first_order_day, last_order_day, days_since_last_order,
       CAST(recency_score AS INTEGER) AS recency_score, CAST(frequency_score AS INTEGER) AS frequency_score,
       CAST(monetary_score AS INTEGER) AS monetary_score,
       CASE WHEN recency_score IS NULL THEN 'no_purchase'
            WHEN recency_score >= 4 AND frequency_score >= 4 AND monetary_score >= 4 THEN 'champions'
            WHEN frequency_score >= 4 THEN 'loyal'
            WHEN recency_score >= 4 AND frequency_score <= 2 THEN 'new'
            WHEN recency_score <= 2 AND frequency_score >= 3 THEN 'at_risk'
            WHEN recency_score = 1 THEN 'lost'
            WHEN recency_score <= 2 THEN 'hibernating'
            ELSE 'potential' END AS rfm_segment,
       sale_order_count > 1 AS is_repeat_customer,
       strftime(first_order_day, '%Y-%m') AS retention_cohort,
       CASE WHEN days_since_last_order IS NULL THEN 'never_purchased' WHEN days_since_last_order <= 30 THEN 'active'
            WHEN days_since_last_order <= 90 THEN 'at_risk' WHEN days_since_last_order <= 180 THEN 'dormant'
            ELSE 'churned' END AS churn_risk_band,
       as_of() AS as_of_date
FROM scored
ORDER BY customer_id
"""

INVENTORY_DAILY = """
-- stock per product x warehouse on the snapshot day (as_of), with safety stock, out-of-stock
-- incidents, days on hand and turnover over the trailing 28 days
WITH sold AS (  -- units sold per product x warehouse x day, from 'sale' stock movements
    SELECT i.product_id, i.warehouse_id, least(CAST(l.created_at AS DATE), as_of()) AS day,
           sum(-l.quantity_change) AS units
    FROM s_inventory_log l JOIN inventory i ON i.id = l.inventory_id
    WHERE l.change_type = 'sale'
    GROUP BY ALL),
window_sold AS (  -- on the snapshot day and over the 28 days ending it
    SELECT i.id, CAST(coalesce(sum(s.units) FILTER (WHERE s.day = as_of()), 0) AS BIGINT) AS units_sold,
           CAST(coalesce(sum(s.units), 0) AS BIGINT) AS units_sold_28d
    FROM inventory i
         LEFT JOIN sold s ON s.product_id = i.product_id AND s.warehouse_id = i.warehouse_id
                         AND s.day BETWEEN as_of() - 27 AND as_of()
    GROUP BY i.id)
SELECT as_of() AS snapshot_day, product_id, warehouse_id, quantity AS stock_on_hand, safety_stock, reorder_level,
       CAST(quantity * unit_cost AS DECIMAL(18,2)) AS stock_value,
       quantity < safety_stock AS is_below_safety_stock,
       CASE WHEN quantity = 0 THEN 1 ELSE 0 END AS out_of_stock_incidents,  -- no earlier snapshot
       units_sold, units_sold_28d,
       CAST(quantity AS DECIMAL(14,2)) AS avg_stock_28d,  -- of the one snapshot
       CAST(CASE WHEN units_sold_28d > 0 THEN round_double(quantity / (units_sold_28d / 28), 1) END
            AS DECIMAL(12,1)) AS days_on_hand,
       CAST(CASE WHEN quantity > 0 THEN round_double(units_sold_28d / CAST(quantity AS DOUBLE), 2) END
            AS DECIMAL(12,2)) AS inventory_turnover
FROM inventory JOIN window_sold USING (id)
ORDER BY snapshot_day, product_id, warehouse_id
"""

LOGISTICS_DAILY = """
-- shipments per (ship day, carrier, shipping method, province of the delivery address)
WITH shipments AS (
    SELECT CAST(s.created_at AS DATE) AS ship_day, s.logistics_partner_id, s.shipping_method_id, o.order_id,
           o.location_id, o.total_price AS order_total_price, o.is_sale AS order_is_sale,
           coalesce(o.has_return, false) AS order_has_return, m.estimated_delivery_time AS promised_hours,
           s.actual_delivery IS NOT NULL AS is_delivered,
           CASE WHEN s.actual_delivery IS NOT NULL
                THEN round2(date_diff('second', s.created_at, s.actual_delivery), 3600) END AS delivery_hours,
           CASE WHEN s.actual_delivery IS NOT NULL AND s.estimated_delivery IS NOT NULL
                THEN s.actual_delivery <= s.estimated_delivery END AS is_on_time,
           coalesce(s.delivery_attempts, 0) AS delivery_attempts,
           CAST(s.shipping_cost AS DECIMAL(18,2)) AS shipping_cost
    FROM s_shipment s LEFT JOIN order_facts o ON o.shipping_id = s.id
         LEFT JOIN shipping_method m ON m.id = s.shipping_method_id)
SELECT ship_day, coalesce(txt(p.name), 'unknown') AS carrier, coalesce(txt(m.name), 'unknown') AS shipping_method,
       coalesce(g.province_name, 'unknown') AS province,
       count(*) AS shipment_count,
       CAST(avg_2dp(sum(delivery_hours), count(delivery_hours)) AS DECIMAL(12,2)) AS avg_delivery_hours,
       CAST(CASE WHEN count(promised_hours) FILTER (WHERE is_delivered) > 0 THEN round2(
            sum(promised_hours) FILTER (WHERE is_delivered), count(promised_hours) FILTER (WHERE is_delivered)) END
            AS DECIMAL(12,2)) AS avg_promised_hours,
       CAST(CASE WHEN count(is_on_time) > 0 THEN round4(count(*) FILTER (WHERE is_on_time), count(is_on_time)) END
            AS DECIMAL(9,4)) AS on_time_rate,
       CAST(coalesce(sum(delivery_attempts), 0) AS BIGINT) AS failed_delivery_attempts,
       CAST(count_ratio(count(*) FILTER (WHERE order_has_return), count(*)) AS DECIMAL(18,4)) AS return_rate,
       CAST(money_per(money(sum(shipping_cost)), count(DISTINCT order_id)) AS DECIMAL(16,2)) AS shipping_cost_per_order,
       CAST(money_share(sum(shipping_cost) FILTER (WHERE order_is_sale),
                        sum(order_total_price) FILTER (WHERE order_is_sale)) AS DECIMAL(18,4))
           AS shipping_cost_share_of_gmv
FROM shipments s LEFT JOIN logistics_partner p ON p.id = s.logistics_partner_id
     LEFT JOIN shipping_method m ON m.id = s.shipping_method_id LEFT JOIN provinces g ON g.ward_code = s.location_id
WHERE ship_day <= as_of()
GROUP BY ALL
ORDER BY ship_day, carrier, province, shipping_method
"""

PRODUCT_PERFORMANCE = """
-- sales, returns and reviews per (product, business day)
WITH sales AS (
    SELECT l.product_id, o.order_day AS day,
           coalesce(sum(l.quantity) FILTER (WHERE o.is_sale), 0) AS units_sold,
           money(sum(l.amount) FILTER (WHERE o.is_sale)) AS revenue,
           count(DISTINCT o.order_id) FILTER (WHERE o.is_sale) AS order_count,
           count_ratio(count(DISTINCT o.order_id) FILTER (WHERE o.is_sale AND o.has_return),
                       count(DISTINCT o.order_id) FILTER (WHERE o.is_sale)) AS return_rate
    FROM s_order_items l JOIN order_facts o ON o.order_id = l.order_id
    WHERE o.order_day <= as_of()
    GROUP BY ALL),
reviews AS (
    SELECT product_id, day, count(*) AS review_count,
           CASE WHEN count(rating) > 0 THEN round2(sum(rating), count(rating)) END AS avg_rating
    FROM s_product_review WHERE day <= as_of()
    GROUP BY ALL)
SELECT day, product_id, p.product_name, p.brand_name, p.category_name, p.sub_category_name,
       CAST(coalesce(units_sold, 0) AS BIGINT) AS units_sold, CAST(coalesce(revenue, 0) AS DECIMAL(18,2)) AS revenue,
       CAST(coalesce(order_count, 0) AS BIGINT) AS order_count,
       CAST(coalesce(return_rate, 0) AS DECIMAL(18,4)) AS return_rate,
       CAST(coalesce(review_count, 0) AS BIGINT) AS review_count, CAST(avg_rating AS DECIMAL(4,2)) AS avg_rating
FROM sales FULL JOIN reviews USING (product_id, day) LEFT JOIN products p USING (product_id)
ORDER BY day, product_id
"""

RETURNS = """
-- returns per (day the returned order was placed, reason): counts, refunds, resolution time, and
-- the rate of that day's sale orders returned for the reason
WITH sale_orders AS (
    SELECT order_day, count(*) FILTER (WHERE is_sale) AS sale_orders
    FROM order_facts WHERE order_day <= as_of() GROUP BY order_day),
returns AS (
    SELECT o.order_day, r.reason, r.order_id, coalesce(o.is_sale, false) AS order_is_sale, r.refund_amount,
           r.is_refund,
           CASE WHEN r.resolved_at IS NOT NULL
                THEN round2(date_diff('second', r.created_at, r.resolved_at), 86400) END AS resolution_days
    FROM s_order_return r JOIN order_facts o ON o.order_id = r.order_id
    WHERE r.return_day <= as_of() AND o.order_day IS NOT NULL),
by_reason AS (
    SELECT order_day, reason, count(*) AS return_count,
           count(DISTINCT order_id) FILTER (WHERE order_is_sale) AS returned_orders,
           money(sum(refund_amount) FILTER (WHERE is_refund)) AS refunded_amount,
           CAST(avg_2dp(sum(resolution_days), count(resolution_days)) AS DECIMAL(10,2)) AS avg_resolution_days
    FROM returns GROUP BY ALL)
SELECT order_day, reason, return_count, returned_orders, refunded_amount, avg_resolution_days,
       coalesce(s.sale_orders, 0) AS sale_orders,
       CAST(count_ratio(returned_orders, coalesce(s.sale_orders, 0)) AS DECIMAL(18,4)) AS return_rate
FROM by_reason LEFT JOIN sale_orders s USING (order_day)
ORDER BY order_day, reason
"""

CART_ANALYTICS = """
-- carts per (day created, channel): conversion and abandonment
WITH carts AS (
    SELECT CAST(c.created_at AS DATE) AS created_day, coalesce(ch.name, 'unknown') AS channel,
           c.checked_out_at IS NOT NULL AS converted,
           -- abandoned: status abandoned/expired, or still active when it expired by the end of the run
           coalesce(CASE WHEN c.status IN ('abandoned', 'expired') THEN c.updated_at IS NOT NULL
                         WHEN c.status = 'active' THEN c.expires_at <= CAST(as_of() + 1 AS TIMESTAMP) END,
                    false) AS abandoned
    FROM s_cart c LEFT JOIN channels ch ON lower(ch.name) = c.channel
    WHERE CAST(c.created_at AS DATE) <= as_of()),
by_day AS (
    SELECT created_day, channel, count(*) AS cart_count, count(*) FILTER (WHERE converted) AS converted_carts,
           count(*) FILTER (WHERE abandoned) AS abandoned_carts
    FROM carts GROUP BY created_day, channel)
SELECT *, CAST(count_ratio(converted_carts, cart_count) AS DECIMAL(18,4)) AS conversion_rate,
       CAST(count_ratio(abandoned_carts, cart_count) AS DECIMAL(18,4)) AS abandonment_rate
FROM by_day
ORDER BY created_day, channel
"""

MART_SQL = {
    "mart_daily_sales": DAILY_SALES,
    "mart_customer_360": CUSTOMER_360,
    "mart_inventory_daily": INVENTORY_DAILY,
    "mart_logistics_daily": LOGISTICS_DAILY,
    "mart_product_performance": PRODUCT_PERFORMANCE,
    "mart_returns": RETURNS,
    "mart_cart_analytics": CART_ANALYTICS,
}


def compute_marts(tables: dict[str, pyarrow.Table], as_of: datetime.date) -> dict[str, pyarrow.Table]:
    """The seven gold marts (keys: mart_daily_sales, mart_customer_360, mart_inventory_daily, mart_logistics_daily,
    mart_product_performance, mart_returns, mart_cart_analytics) computed by DuckDB from the source tables
    (keys: the source table names). `as_of` is the logical date of the run (the last shop day)."""
    missing = [t for t in SOURCE_TABLES if t not in tables]
    if missing:
        raise ValueError(f"the DuckDB marts need the source tables {missing}")
    if isinstance(as_of, datetime.datetime):
        as_of = as_of.date()
    con = duckdb.connect(":memory:")
    try:
        for name, table in tables.items():
            con.register(name, table)
        con.execute(f"CREATE MACRO as_of() AS DATE '{as_of.isoformat()}'")
        for name, values in VOCABULARIES.items():
            con.execute(f"CREATE MACRO {name}() AS [{', '.join(repr(v) for v in values)}]")
        con.execute(SETUP)
        return {mart: con.execute(sql).to_arrow_table() for mart, sql in MART_SQL.items()}
    finally:
        con.close()
