"""Simulator v1: advance a generated source database by whole simulated days, with change.

``advance(conn, days=…, seed=…, scale=…, scenario=…)`` starts at the simulator clock
(``lakehouse_sim.clock.sim_now``, set by :func:`~lakehouse_simulator.generate.generate` or a
previous advance) and simulates one day after the other. Each day:

1. **reads** a snapshot of the state it needs (open orders, carts, stock, customers, …);
2. **simulates** the day in NumPy: sign-ups, campaigns, carts and their items, orders (ordinary,
   from carts, flash-sale deals, fraud), stock restocks/sales/stock-outs, status transitions of
   every open order with their payment/shipment/customer side effects, returns and their
   progression, reviews, wishlist adds, hard deletes, the clickstream;
3. **writes** the result set-based: one ``COPY`` per table for new rows (ids taken in blocks
   from the serial sequences), one ``UPDATE … FROM`` a COPYed temporary table per mutable table,
   one ``DELETE … USING`` per hard-deleted table; then moves the clock to the end of the day.

Determinism: a day's random draws come from ``SeedSequence(seed, spawn_key=(day ordinal since
2000-01-01, crc32(scenario)))`` split into one stream per step, and everything read from the
database is read in key order, so a day depends only on (database state, seed, date, scenario):
advancing two days at once equals advancing one day twice. Nothing uses ``random()``/``now()``
in SQL (except the wall-clock switch of :class:`SourceBehaviour`, which is the point of it).

Business rules (source-system.md §1.5, without the defects of §8 #20–#28): one history row per
transition, an order completes at most once and adds its total to ``customers.total_spent``
exactly then (tier and loyalty points by the T7 thresholds), payment Refunded only from
Completed, stock taken from and given back to the shipment's warehouse with an order reference,
never negative (a line that cannot be served cancels its order as a stock-out), carts abandoned
after a day without adds and expired after 7 days, returns progressing to completed/rejected.
"""

from __future__ import annotations

import datetime as dt
import functools
import zlib
from dataclasses import dataclass, replace

import numpy as np
import psycopg2.extensions

from lakehouse_simulator import vocab
from lakehouse_simulator.copyio import Frame
from lakehouse_simulator.customers import Customers, tier_of
from lakehouse_simulator.dbio import NULL_OFFSET, delete, fetch, insert, off, reserve_ids, update
from lakehouse_simulator.discounts import Discounts
from lakehouse_simulator.engagement import (ABANDON_AFTER, CART_LIFETIME, Activity, _browsing, _CartDraft, _json,
                                            _open_carts, _quantities, _visitors, activity_rows)
from lakehouse_simulator.generate import REFERENCE_SEED
from lakehouse_simulator.inventory import REORDER_LEVEL, Movements, Stock
from lakehouse_simulator.lifecycle import (NONE, PAYMENT_STATUSES, R_COMPLETED, R_REJECTED,
                                           RETURN_STATUSES, SHIPMENT_STATUSES, TERMINAL, OrderFlow, run_orders,
                                           run_returns)
from lakehouse_simulator.orders import (CANCELLED, PAY_CANCELLED, PAY_PENDING, PENDING, SHIP_CREATED, STATUS_NAMES,
                                        _code, _draw_lines, headers_at, pick_discounts, price_lines)
from lakehouse_simulator.reference import Reference, build_reference, person_names, phone_numbers
from lakehouse_simulator.sampling import (DAY, HOUR, HOUR_WEIGHTS, WEEKDAY_WEIGHTS, SimClock, event_offsets,
                                          exp_seconds, first_occurrence, rank_within, round_to, weighted)
from lakehouse_simulator.scenarios import (CUSTOMERS_PER_DAY, ORDERS_PER_DAY, SCENARIOS, Scenario, SourceBehaviour,
                                           get_scenario)
from lakehouse_simulator.schema import CLOCK_TABLE

__all__ = ["advance", "advance_day", "SourceBehaviour", "Scenario", "SCENARIOS", "day_seed"]

S = np.dtypes.StringDType()
#: Day ordinals count from this date (the per-day seed depends on it).
DAY_ORIGIN = dt.date(2000, 1, 1)
#: Independent random streams of one day, in this order.
STREAMS = ("discounts", "customers", "carts", "orders", "stock", "lifecycle", "returns", "reviews", "wishlist",
           "activity", "late", "behaviour")
#: Hard-delete policies: wishlist rows removed per day, cart retention (abandoned/expired carts
#: created longer ago than this are purged nightly).
WISHLIST_REMOVAL = 0.005
CART_RETENTION_DAYS = 21
#: Existing active carts: daily chances of a checkout, of more items and of removing an item.
CART_CHECKOUT, CART_ADD, CART_REMOVE = 0.10, 0.15, 0.08
#: Orders per day: ordinary, deal (flash sale), checkout of an open cart, fraud.
ORDINARY, DEAL, CART_CHECKOUT_KIND, FRAUD = range(4)
#: Wards per province are needed for fraud orders shipped far from the customer's home.
KEY = 1024                      # product ids are < 1024: (customer, product) → one int64 key
_WHOLE = np.iinfo(np.int64).max


def day_seed(seed: int, day: dt.date, scenario: str) -> np.random.SeedSequence:
    """The seed sequence of one simulated day."""
    return np.random.SeedSequence(seed, spawn_key=((day - DAY_ORIGIN).days, zlib.crc32(scenario.encode())))


@functools.lru_cache(maxsize=1)
def _reference() -> Reference:
    """The static reference data (the same for every seed, like the bootstrap files)."""
    return build_reference(np.random.default_rng(REFERENCE_SEED), SimClock(DAY_ORIGIN, 1))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fixed pseudo-random 64-bit hash of each value."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def propensity(customer_ids: np.ndarray) -> np.ndarray:
    """Purchase propensity of each customer: lognormal(0, 1.1), a fixed function of the id.

    The bulk generator keeps propensities in memory only; day by day they must be recomputable
    from the database, so they are derived from the id.
    """
    ids = np.asarray(customer_ids, dtype=np.int64)
    a = ((_mix(ids * 2) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0 ** 53
    b = (_mix(ids * 2 + 1) >> np.uint64(11)).astype(np.float64) / 2.0 ** 53
    return np.exp(1.1 * np.sqrt(-2.0 * np.log(a)) * np.cos(2.0 * np.pi * b))


def _f_exp(x: np.ndarray, mean_hours: float) -> np.ndarray:
    """CDF of an exponential wait (hours mean) at ``x`` seconds (0 for x <= 0)."""
    return 1.0 - np.exp(-np.maximum(x, 0) / (mean_hours * HOUR))


def _cat(parts: list[np.ndarray], dtype=np.int64) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _index(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Positions of ``values`` in ``sorted_keys`` (all must be present)."""
    pos = np.searchsorted(sorted_keys, values)
    if len(values) and (np.any(pos >= len(sorted_keys)) or np.any(sorted_keys[np.minimum(pos, len(sorted_keys) - 1)]
                                                                   != values)):
        raise RuntimeError("advance: a referenced key is missing from the snapshot")
    return pos


def _masked(values: np.ndarray, keep: np.ndarray) -> np.ma.MaskedArray:
    """``values`` where ``keep``, NULL elsewhere."""
    return np.ma.masked_array(values, mask=~np.asarray(keep, dtype=bool))


@dataclass
class _NewOrders:
    """Orders placed today (in id order once :meth:`sort` ran) and their lines."""

    head: dict[str, np.ndarray]
    lines: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.head["t"])

    @classmethod
    def concat(cls, parts: list["_NewOrders"]) -> "_NewOrders":
        head = {k: np.concatenate([p.head[k] for p in parts]) for k in parts[0].head}
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
        lines = {k: np.concatenate([p.lines[k] + (o if k == "line_order" else 0) for p, o in zip(parts, offsets)])
                 for k in parts[0].lines}
        return cls(head, lines)

    def sort(self) -> None:
        """Put orders in time order (ids follow created_at) and lines in order, then line order."""
        n = len(self)
        order = np.lexsort((np.arange(n), self.head["kind"], self.head["t"]))
        self.head = {k: v[order] for k, v in self.head.items()}
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        lo = rank[self.lines["line_order"]]
        by = np.lexsort((np.arange(len(lo)), lo))
        self.lines = {k: v[by] for k, v in self.lines.items()}
        self.lines["line_order"] = lo[by]


class _Day:
    """One simulated day: read the snapshot, simulate, write."""

    def __init__(self, cur: psycopg2.extensions.cursor, t0: dt.datetime, *, seed: int, scale: float,
                 scenario: Scenario, behaviour: SourceBehaviour, wall: dt.datetime) -> None:
        self.cur, self.t0 = cur, t0
        self.p = {"t0": t0}
        self.clock = SimClock(t0.date(), 1)
        children = day_seed(seed, t0.date(), scenario.name).spawn(len(STREAMS))
        self.rng = {name: np.random.default_rng(c) for name, c in zip(STREAMS, children)}
        self.sc, self.bh, self.scale = scenario, behaviour, scale
        self.wall = np.datetime64(wall, "us")
        self.ref = _reference()
        self.weekday_factor = WEEKDAY_WEIGHTS[t0.weekday()] / WEEKDAY_WEIGHTS.mean()
        self.base = ORDERS_PER_DAY * scale * self.weekday_factor      # normal orders today
        self.inserts: dict[str, Frame] = {}
        self.updates: dict[str, tuple[Frame, tuple[str, ...]]] = {}
        self.deletes: dict[str, np.ndarray] = {}
        self.moves: list[Movements] = []
        self.activity: list[Activity] = []

    # ------------------------------------------------------------------ helpers
    def ts(self, offsets: np.ndarray) -> np.ndarray:
        return self.clock.ts(offsets)

    def walls(self, n: int) -> np.ndarray:
        return np.full(n, self.wall)

    def bumped_at(self, offsets: np.ndarray, *, wall: bool = False) -> np.ndarray:
        """updated_at values of updated rows: sim time (or wall time), NULL (= left as it was)
        for the unbumped share of :class:`SourceBehaviour`."""
        n = len(offsets)
        values = self.walls(n) if wall and self.bh.wall_clock_columns else self.ts(offsets)
        if self.bh.unbumped_update_share > 0:
            keep = self.rng["behaviour"].random(n) >= self.bh.unbumped_update_share
            return _masked(values, keep)
        return values

    def late(self, t: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        """Which of these rows arrive late (always drawn, so other rows are unaffected by the share)."""
        u = self.rng["late"].random(len(t))
        return eligible & (u < self.bh.late_rows_share)

    # ------------------------------------------------------------------ read
    def read(self) -> None:
        cur, p, ref = self.cur, self.p, self.ref
        products = fetch(cur, "SELECT id FROM product ORDER BY id")
        inv = fetch(cur, "SELECT id, product_id, warehouse_id, quantity, coalesce(unit_cost, 0)::bigint AS unit_cost "
                         "FROM inventory ORDER BY product_id, warehouse_id")
        n_p, n_w = len(ref.product_ids), len(ref.warehouse_ids)
        if (not np.array_equal(products["id"], ref.product_ids) or len(inv["id"]) != n_p * n_w
                or not np.array_equal(inv["product_id"], np.repeat(ref.product_ids, n_w))
                or not np.array_equal(inv["warehouse_id"], np.tile(ref.warehouse_ids, n_p))):
            raise RuntimeError("advance needs a source database filled by lakehouse_simulator.generate "
                               "(catalogue or inventory grid differs)")
        self.inv_ids = inv["id"]
        self.stock = Stock(inv["product_id"], inv["warehouse_id"], inv["unit_cost"], inv["quantity"], n_w)

        self.cust = fetch(cur, f"""
            SELECT id, coalesce(geo_location_id, 0) AS ward, least(greatest(coalesce(order_channel_id, 1), 1), 5) - 1
                   AS channel, {off('created_at')} AS created, coalesce(total_spent, 0)::bigint AS spent
            FROM customers ORDER BY id""", p)
        if len(self.cust["id"]) == 0:
            raise RuntimeError("advance needs existing customers: run generate first")
        codes = fetch(cur, """SELECT least(greatest(coalesce(order_channel_id, 1), 1), 5) - 1 AS channel,
                                     coalesce(max(substring(customer_code from '([0-9]+)$')::bigint), 0) AS n
                              FROM customers GROUP BY 1 ORDER BY 1""")
        self.code_base = np.zeros(len(ref.channel_names), dtype=np.int64)
        self.code_base[codes["channel"]] = codes["n"]

        self.disc = fetch(cur, f"""
            SELECT id, discount_type = '%%' AS pct, coalesce(value, 0)::bigint AS value, {off('start_date')} AS start,
                   {off('end_date')} AS end_, {off('created_at')} AS created, coalesce(source_system, '') AS src,
                   coalesce(is_active, false) AS active
            FROM discount ORDER BY id""", p)

        open_statuses = [str(s) for i, s in enumerate(STATUS_NAMES) if not TERMINAL[i]]
        self.open = fetch(cur, """
            SELECT o.id, o.status, o.customer_id, coalesce(o.total_price, 0)::bigint AS total,
                   coalesce(p.payment_method, '') AS pay_method, coalesce(p.payment_status, '') AS pay_status,
                   o.payment_id, o.shipping_id, coalesce(s.shipping_status, '') AS ship_status,
                   coalesce(s.delivery_attempts, 0) AS attempts, coalesce(m.estimated_delivery_time, 72) AS hours,
                   coalesce(s.warehouse_id, 0) AS warehouse_id,
                   least(greatest(coalesce(o.order_channel_id, 1), 1), 5) - 1 AS channel
            FROM orders o JOIN payment p ON p.id = o.payment_id JOIN shipment s ON s.id = o.shipping_id
            LEFT JOIN shipping_method m ON m.id = s.shipping_method_id
            WHERE o.status = ANY(%(open)s) ORDER BY o.id""", {**p, "open": open_statuses})

        self.carts = fetch(cur, f"""
            SELECT c.id, c.customer_id, coalesce(c.channel, '') AS channel, c.status = 'active' AS active,
                   {off('c.created_at')} AS created, {off('c.expires_at')} AS expires,
                   {off('coalesce(max(i.added_at), c.created_at)')} AS last_add
            FROM cart c LEFT JOIN cart_items i ON i.cart_id = c.id AND i.is_active
            WHERE c.status IN ('active', 'abandoned') GROUP BY c.id ORDER BY c.id""", p)
        self.cart_items = fetch(cur, """
            SELECT i.id, i.cart_id, i.product_id, i.quantity, i.amount::bigint AS amount
            FROM cart_items i JOIN cart c ON c.id = i.cart_id
            WHERE c.status = 'active' AND i.is_active ORDER BY i.cart_id, i.id""")
        self.purge = fetch(cur, """SELECT id FROM cart WHERE status IN ('abandoned', 'expired')
                                   AND created_at < %(t0)s::timestamp - make_interval(days => %(days)s)
                                   ORDER BY id""", {**p, "days": CART_RETENTION_DAYS})["id"]
        self.wishlist = fetch(cur, "SELECT id, customer_id, product_id FROM wishlist ORDER BY id")
        self.review_keys = fetch(cur, "SELECT customer_id, product_id, coalesce(source_system, '') AS src "
                                      "FROM product_review")
        self.delivered = fetch(cur, f"""
            SELECT o.id, o.customer_id, coalesce(o.total_price, 0)::bigint AS total,
                   {off('o.delivered_at')} AS delivered
            FROM orders o
            WHERE o.status IN ('Delivered', 'Completed') AND o.delivered_at >= %(t0)s::timestamp - interval '14 days'
              AND o.delivered_at < %(t0)s AND NOT EXISTS (SELECT 1 FROM order_return r WHERE r.order_id = o.id)
            ORDER BY o.id""", p)
        self.completed_lines = fetch(cur, f"""
            SELECT o.customer_id, least(greatest(coalesce(o.order_channel_id, 1), 1), 5) - 1 AS channel,
                   {off('o.updated_at')} AS done, i.product_id
            FROM orders o JOIN order_items i ON i.order_id = o.id
            WHERE o.status = 'Completed' AND o.updated_at >= %(t0)s::timestamp - interval '7 days'
              AND o.updated_at < %(t0)s ORDER BY i.id""", p)
        self.open_returns = fetch(cur, """SELECT r.id, r.order_id, r.status, r.return_type
                                          FROM order_return r WHERE r.status IN ('pending', 'approved', 'processing')
                                          ORDER BY r.id""")
        self.next_po = fetch(cur, """SELECT coalesce(max(reference_id), 0) + 1 AS n FROM inventory_log
                                     WHERE reference_type = 'purchase_order'""")["n"][0]

    def existing_lines(self, order_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Lines of already stored orders with the shipping warehouse (read before any write)."""
        return fetch(self.cur, """
            SELECT i.order_id, i.product_id, i.quantity, s.warehouse_id
            FROM unnest(%s::bigint[]) AS x(id) JOIN order_items i ON i.order_id = x.id
            JOIN orders o ON o.id = i.order_id JOIN shipment s ON s.id = o.shipping_id
            ORDER BY i.id""", ([int(x) for x in order_ids],))

    # ------------------------------------------------------------------ simulate
    def simulate(self) -> None:
        self.discounts_today()
        self.customers_today()
        self.stock_morning()
        self.existing_cart_events()
        self.orders_today()
        self.admit()
        self.lifecycle()
        self.order_frames()
        self.customer_frames()
        self.cart_frames()
        self.wishlist_today()
        self.returns_today()
        self.reviews_today()
        self.inventory_frames()
        self.activity_frame()

    # .................................................................. discounts
    def discounts_today(self) -> None:
        rng, ref, sc, d = self.rng["discounts"], self.ref, self.sc, self.disc
        names = ref.channel_names.tolist()
        channel = np.array([names.index(s) if s in names else -1 for s in d["src"].tolist()], dtype=np.int64)
        ended = d["active"] & (d["end_"] < 0)
        if ended.any():
            self.updates["discount"] = ({"id": d["id"][ended], "is_active": np.zeros(ended.sum(), dtype=bool),
                                         "updated_at": self.bumped_at(np.zeros(ended.sum(), dtype=np.int64))}, ())
        # new campaigns: the scenario's (00:00, one per channel) and the usual one every other day
        n_chan = len(names)
        n_sc = n_chan if sc.campaigns else 0
        n_new = int(rng.random() < 0.5)
        created = np.r_[np.zeros(n_sc, dtype=np.int64), rng.integers(0, DAY, n_new)]
        start = np.r_[np.zeros(n_sc, dtype=np.int64), (rng.integers(0, 4, n_new)) * DAY]
        end = np.r_[np.full(n_sc, sc.campaign_days * DAY - 1), start[n_sc:] + rng.integers(7, 33, n_new) * DAY - 1]
        end = np.maximum(end, created + DAY - 1)
        chan = np.r_[np.arange(n_sc), rng.integers(0, n_chan, n_new)]
        pct = np.r_[np.ones(n_sc, dtype=bool), rng.random(n_new) < 0.45]
        value = np.r_[rng.integers(sc.campaign_pct[0], sc.campaign_pct[1] + 1, n_sc),
                      np.where(pct[n_sc:], rng.integers(5, 31, n_new), round_to(rng.integers(20_000, 500_001, n_new),
                                                                               10_000))]
        word = np.r_[np.full(n_sc, sc.campaign_word, dtype=S),
                     np.array(vocab.DISCOUNT_CAMPAIGNS, dtype=S)[rng.integers(0, len(vocab.DISCOUNT_CAMPAIGNS), n_new)]]
        applies = np.r_[np.full(n_sc, "order", dtype=S),
                        np.array(["order", "product", "category"], dtype=S)[rng.choice(3, n_new, p=[0.6, 0.25, 0.15])]]
        ids = reserve_ids(self.cur, "discount", n_sc + n_new)
        amount = np.where(pct, np.strings.add(value.astype(S), "%"), np.strings.add((value // 1000).astype(S), "K"))
        self.inserts["discount"] = {
            "id": ids,
            "name": np.strings.add(np.strings.add(np.strings.add(word, " "), ref.channel_names[chan]),
                                   np.strings.add(" ", amount)),
            "discount_type": np.where(pct, "%", "fixed").astype(S),
            "value": value.astype(np.int64),
            "start_date": self.ts(start), "end_date": self.ts(end),
            "applies_to": applies,
            "source_system": ref.channel_names[chan],
            "is_active": np.ones(len(ids), dtype=bool),
            "created_at": self.ts(created), "updated_at": self.ts(created),
        }
        live = d["active"] & ~ended
        self.discounts = Discounts(
            ids=np.r_[d["id"], ids], created=np.r_[d["created"], created],
            start=np.r_[d["start"], start], end=np.r_[np.where(live, d["end_"], -_WHOLE), end],
            channel=np.r_[channel, chan], is_percent=np.r_[d["pct"], pct], value=np.r_[d["value"], value])
        #: index (in self.discounts) of today's scenario campaign of each channel, -1 if none
        self.campaign_of_channel = np.full(n_chan, -1, dtype=np.int64)
        if n_sc:
            self.campaign_of_channel[:] = len(d["id"]) + np.arange(n_sc)

    # .................................................................. customers
    def customers_today(self) -> None:
        rng, ref, sc = self.rng["customers"], self.ref, self.sc
        n = int(rng.poisson(CUSTOMERS_PER_DAY * self.scale * self.weekday_factor))
        n_fraud = max(2, round(sc.fraud_customers * self.scale)) if sc.fraud_customers > 0 else 0
        created = np.r_[event_offsets(rng, n, self.clock), rng.integers(HOUR, 20 * HOUR, n_fraud)]
        fraud = np.r_[np.zeros(n, dtype=bool), np.ones(n_fraud, dtype=bool)]
        order = np.lexsort((np.arange(len(created)), created))
        created, fraud = created[order], fraud[order]
        m = len(created)
        ids = reserve_ids(self.cur, "customers", m, rng, 0.01)
        ward = ref.ward_codes[weighted(rng, m, ref.ward_weights)]
        channel = weighted(rng, m, ref.channel_weights)
        names, family, given = person_names(rng, m)
        domain = np.array(vocab.EMAIL_DOMAINS, dtype=S)[weighted(rng, m, np.array(vocab.EMAIL_DOMAIN_WEIGHTS))]
        email = np.strings.add(np.strings.add(np.strings.add(given, "."), np.strings.add(family, ids.astype(S))),
                               np.strings.add("@", domain))
        seq = np.strings.zfill((self.code_base[channel] + rank_within(channel) + 1).astype(S), 3)
        code = np.strings.add(np.strings.add("KH_", ref.channel_names[channel]), np.strings.add("_", seq))
        self.new_cust = {"id": ids, "created": created, "ward": ward, "channel": channel, "fraud": fraud,
                         "name": names, "email": email, "phone": phone_numbers(rng, m), "code": code}
        c = self.cust
        k = len(c["id"])
        prop = propensity(np.r_[c["id"], ids])
        prop[k:][fraud] = 0.0                   # fraudsters only place their own burst of orders
        self.customers = Customers(
            ids=np.r_[c["id"], ids], created=np.r_[np.full(k, -1, dtype=np.int64), created],
            ward=np.r_[c["ward"], ward], channel=np.r_[c["channel"], channel],
            propensity_cum=np.cumsum(prop), pii={})
        self.created_real = np.r_[c["created"], created]
        self.spent = np.r_[c["spent"], np.zeros(m, dtype=np.int64)]
        self.n_old_customers = k

    # .................................................................. stock at 00:00
    def stock_morning(self) -> None:
        """Purchasing restocks rows whose stock covers less than two normal days (at 00:00)."""
        rng, ref, st = self.rng["stock"], self.ref, self.stock
        n_w = st.n_warehouses
        share = np.repeat(ref.product_weight / ref.product_weight.sum(), n_w) / n_w
        expected = self.base * 2.5 * 1.4 * share               # units per row per normal day
        lot = rng.integers(1, 6, len(st.initial)) * 10
        short = st.initial < REORDER_LEVEL + 2 * expected
        need = np.ceil((REORDER_LEVEL + 4 * expected - st.initial) / 10) * 10
        amount = np.where(short, np.maximum(need, 0).astype(np.int64) + lot, 0)
        rows = np.flatnonzero(amount)
        self.moves.append(Movements.of(rows, np.zeros(len(rows), dtype=np.int64), amount[rows], "restock",
                                       "purchase_order", self.next_po + np.arange(len(rows)),
                                       "Nhập hàng từ nhà cung cấp", "Purchasing", 0))
        self.morning = st.initial + amount
        # audits and damage over the day (admitted against the stock in admit())
        n_adj = int(rng.poisson(0.03 * self.base))
        n_dmg = int(rng.poisson(0.01 * self.base))
        adj = rng.integers(1, 6, n_adj) * np.where(rng.random(n_adj) < 0.5, -1, 1)
        self.manual = Movements.concat([
            Movements.of(rng.integers(0, len(st.initial), n_adj), event_offsets(rng, n_adj, self.clock), adj,
                         "adjustment", "manual", None, "Kiểm kê định kỳ", "Inventory_Audit", 3),
            Movements.of(rng.integers(0, len(st.initial), n_dmg), event_offsets(rng, n_dmg, self.clock),
                         -rng.integers(1, 4, n_dmg), "damage", "manual", None, "Hàng hư hỏng", "Warehouse_Staff", 4),
        ])

    # .................................................................. carts bought before today
    def existing_cart_events(self) -> None:
        """Each active cart gets at most one interaction today (checkout, more items, an item
        removed) before it would be abandoned or expire; then its status is recomputed."""
        rng, sc, c, it = self.rng["carts"], self.sc, self.carts, self.cart_items
        n = len(c["id"])
        expires = np.where(c["expires"] == NULL_OFFSET, _WHOLE // 2, c["expires"])
        items_per_cart = np.bincount(_index(c["id"], it["cart_id"]), minlength=n) if len(it["id"]) else np.zeros(n, int)
        u, w = rng.random(n), rng.random(n)
        lo = np.maximum(0, c["last_add"] + 1)
        deadline = np.minimum(np.minimum(expires, c["last_add"] + ABANDON_AFTER), DAY)
        can = c["active"] & (deadline > lo)
        p_co, p_add = min(0.5, CART_CHECKOUT * sc.conversion), min(0.4, CART_ADD * sc.activity_rate)
        kind = np.select([u < p_co, u < p_co + p_add, u < p_co + p_add + CART_REMOVE], [1, 2, 3], 0)
        kind = np.where(can, kind, 0)
        kind = np.where((kind == 1) & (items_per_cart < 1), 0, kind)
        kind = np.where((kind == 3) & (items_per_cart < 2), 0, kind)
        t_ev = lo + np.floor(w * (deadline - lo)).astype(np.int64)
        self.cart_kind, self.cart_t = kind, t_ev

        # more items: 1–2 new distinct products per cart
        adders = np.flatnonzero(kind == 2)
        k = rng.integers(1, 3, len(adders))
        a_cart = np.repeat(adders, k)
        a_product = weighted(rng, len(a_cart), self.ref.product_weight)
        a_qty = _quantities(rng, self.ref.product_price[a_product])
        cart_pos = _index(c["id"], it["cart_id"])
        existing_keys = cart_pos * KEY + _index(self.ref.product_ids, it["product_id"])
        keep = first_occurrence(a_cart, a_product) & ~np.isin(a_cart * KEY + a_product, existing_keys)
        self.added = {"cart": a_cart[keep], "product": a_product[keep], "qty": a_qty[keep],
                      "t": t_ev[a_cart[keep]]}
        got_items = np.zeros(n, dtype=bool)
        got_items[self.added["cart"]] = True
        kind[(kind == 2) & ~got_items] = 0

        # one item removed (hard delete) from carts with at least two
        removers = np.flatnonzero(kind == 3)
        starts = np.searchsorted(cart_pos, removers)
        pick = starts + np.floor(rng.random(len(removers)) * items_per_cart[removers]).astype(np.int64)
        self.removed = {"item": pick, "cart": removers, "t": t_ev[removers]}

        last_add = np.where(kind == 2, t_ev, c["last_add"])
        status = np.select([kind == 1, expires < DAY, last_add + ABANDON_AFTER < DAY],
                           ["checked_out", "expired", "abandoned"], "active").astype(S)
        status = np.where(~c["active"], np.where(expires < DAY, "expired", "abandoned"), status).astype(S)
        old = np.where(c["active"], "active", "abandoned").astype(S)
        status_t = np.select([status == "checked_out", status == "expired", status == "abandoned"],
                             [t_ev, expires, last_add + ABANDON_AFTER], -1)
        status_t = np.where(status != old, np.maximum(status_t, 0), -1)
        self.cart_status, self.cart_changed_t = status, np.maximum(status_t, np.where(kind > 0, t_ev, -1))

    # .................................................................. orders placed today
    def orders_today(self) -> None:
        rng, ref, sc, cust, d = self.rng["orders"], self.ref, self.sc, self.customers, self.discounts
        parts: list[_NewOrders] = []

        # ordinary orders over the day's traffic curve; some checked out from a fresh cart
        n = int(rng.poisson(self.base * sc.order_rate))
        t = event_offsets(rng, n, self.clock)
        head = headers_at(rng, t, ref, cust, d, sc.discount_share)
        head["from_cart"] = rng.random(n) < min(0.9, 0.3 * sc.conversion)
        parts.append(self._part(head, _draw_lines(rng, head, ref, d, self.stock), ORDINARY))

        # flash-sale deals: one line on a deal product, at the campaign price, in the burst hours
        if sc.burst_hours and sc.burst_rate > 1 and sc.oversubscription > 0:
            hours = np.array(sc.burst_hours)
            hw = HOUR_WEIGHTS[hours]
            share = hw.sum() / HOUR_WEIGHTS.sum()
            expected = self.base * sc.order_rate * (sc.burst_rate - 1) * share
            n = int(rng.poisson(expected))
            t = np.sort(rng.choice(hours, n, p=hw / hw.sum()) * HOUR + rng.integers(0, HOUR, n))
            deal_ref = replace(ref, product_weight=self._deal_weights(rng, expected))
            head = headers_at(rng, t, deal_ref, cust, d, 0.0)
            head["from_cart"] = np.zeros(n, dtype=bool)
            head["discount"] = self.campaign_of_channel[head["channel"]]
            parts.append(self._part(head, _draw_lines(rng, head, deal_ref, d, self.stock, k=np.ones(n, int)), DEAL))

        # open carts checked out today: the cart's items are the lines
        carts = np.flatnonzero(self.cart_kind == 1)
        carts = carts[np.lexsort((carts, self.cart_t[carts]))]
        t = self.cart_t[carts]
        head = headers_at(rng, t, ref, cust, d, sc.discount_share)
        head["customer"] = _index(cust.ids, self.carts["customer_id"][carts])
        names = ref.channel_names.tolist()
        chan = np.array([names.index(s) if s in names else -1 for s in self.carts["channel"][carts].tolist()],
                        dtype=np.int64)
        head["channel"] = np.where(chan >= 0, chan, cust.channel[head["customer"]])
        head["from_cart"] = np.ones(len(carts), dtype=bool)
        head["discount"] = pick_discounts(rng, t, head["channel"], d, sc.discount_share)
        head["cart"] = carts
        it = self.cart_items
        pos = _index(self.carts["id"], it["cart_id"])
        rank = np.full(len(self.carts["id"]), -1)
        rank[carts] = np.arange(len(carts))
        sel = np.flatnonzero(rank[pos] >= 0)
        line_order = rank[pos[sel]]
        by = np.lexsort((sel, line_order))
        lines = price_lines(head, line_order[by], _index(ref.product_ids, it["product_id"][sel[by]]),
                            it["quantity"][sel[by]], ref, d, self.stock)
        parts.append(self._part(head, lines, CART_CHECKOUT_KIND))

        # fraud: bursts of expensive orders from today's fraudulent sign-ups, shipped far away
        fraud = np.flatnonzero(self.new_cust["fraud"]) + self.n_old_customers
        if len(fraud):
            m = rng.integers(sc.fraud_orders[0], sc.fraud_orders[1] + 1, len(fraud))
            who = np.repeat(fraud, m)
            gaps = exp_seconds(rng, 0.15, len(who), minimum=60)
            first = np.r_[0, np.cumsum(m)[:-1]]
            run = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first] - gaps[first], m)
            t = np.minimum(self.created_real[who] + run, DAY - 1)
            by = np.lexsort((who, t))
            who, t = who[by], t[by]
            fraud_ref = replace(ref, product_weight=np.where(ref.product_price >= 15_000_000, 1.0, 0.0))
            head = headers_at(rng, t, fraud_ref, cust, d, 0.0)
            k = len(t)
            head["customer"] = who
            head["channel"] = np.where(rng.random(k) < 0.5, names.index("Website"), names.index("TikTok"))
            head["pay_method"] = np.full(k, "Credit Card", dtype=S)
            methods = ref.method_names.tolist()
            head["method"] = np.where(rng.random(k) < 0.6, methods.index("Express"), methods.index("Same-day"))
            head["shipping_cost"] = round_to(rng.uniform(30_000, 80_000, k), 1000)
            head["discount"] = np.full(k, -1, dtype=np.int64)
            head["from_cart"] = np.zeros(k, dtype=bool)
            part = self._part(head, _draw_lines(rng, head, fraud_ref, d, self.stock), FRAUD)
            part.head["location"] = self._far_wards(rng, cust.ward[who])
            parts.append(part)

        o = _NewOrders.concat(parts)
        # late rows: direct orders of customers who already existed yesterday arrive after midnight
        h = o.head
        eligible = (h["kind"] == ORDINARY) & ~h["from_cart"] & (h["discount"] < 0) & \
                   (self.created_real[h["customer"]] <= h["t"] - DAY)
        late = self.late(h["t"], eligible)
        sync_delay = exp_seconds(self.rng["late"], 2.0, len(h["t"]), minimum=60)
        h["late"] = late
        h["sync"] = np.where(late, np.minimum(sync_delay, DAY - 1), h["t"])
        h["t"] = np.where(late, h["t"] - DAY, h["t"])
        o.sort()
        self.o = o

    def _part(self, head: dict[str, np.ndarray], lines: dict[str, np.ndarray], kind: int) -> _NewOrders:
        n = len(head["t"])
        keep = ("t", "customer", "channel", "warehouse", "method", "partner_id", "pay_method", "from_cart",
                "discount", "shipping_cost")
        out = {k: head[k] for k in keep}
        out["kind"] = np.full(n, kind, dtype=np.int64)
        out["cart"] = head.get("cart", np.full(n, -1, dtype=np.int64))
        out["location"] = self.customers.ward[head["customer"]]
        out["total"], out["profit"] = lines["total"], lines["profit"]
        ln = {k: lines[k] for k in ("line_order", "line_product", "line_qty", "line_price", "line_discount")}
        return _NewOrders(out, ln)

    def _deal_weights(self, rng: np.random.Generator, expected_orders: float) -> np.ndarray:
        """Deal products: drawn in random order until their stock covers the expected deal units
        divided by the oversubscription; demand weight proportional to each product's stock."""
        n_w = self.stock.n_warehouses
        stock = self.morning.reshape(-1, n_w).sum(axis=1).astype(np.float64)
        target = expected_orders * 1.3 / self.sc.oversubscription
        order = rng.permutation(len(stock))
        covered = np.cumsum(stock[order])
        n = max(1, int(np.searchsorted(covered, target)) + 1)
        w = np.zeros(len(stock))
        w[order[:n]] = np.maximum(stock[order[:n]], 1.0)
        return w

    def _far_wards(self, rng: np.random.Generator, home: np.ndarray) -> np.ndarray:
        """A ward in another province than each home ward."""
        geo = self.ref.frames["geo_location"]
        province = geo["province_name"]
        home_prov = province[np.searchsorted(self.ref.ward_codes, home)]
        out = self.ref.ward_codes[rng.integers(0, len(province), len(home))]
        for _ in range(20):
            same = province[np.searchsorted(self.ref.ward_codes, out)] == home_prov
            if not same.any():
                break
            out[same] = self.ref.ward_codes[rng.integers(0, len(province), same.sum())]
        return out

    # .................................................................. stock admission
    def admit(self) -> None:
        """Book sales and manual write-offs against the morning stock in time order; an order
        with a line the shipping warehouse cannot serve is a stock-out (cancelled, nothing booked).

        Inflows during the day (cancellations, returns) are ignored here, so the real balance is
        never below the one checked: quantities stay >= 0.
        """
        o, st = self.o, self.stock
        ln = o.lines
        sale_inv = st.index(ln["line_product"], o.head["warehouse"][ln["line_order"]])
        sale_t = o.head["sync"][ln["line_order"]]
        neg = self.manual.delta < 0
        inv = np.r_[sale_inv, self.manual.inv[neg]]
        t = np.r_[sale_t, self.manual.t[neg]]
        rank = np.r_[np.ones(len(sale_inv), dtype=np.int64), self.manual.rank[neg]]
        out = np.r_[ln["line_qty"], -self.manual.delta[neg]]
        by = np.lexsort((np.arange(len(inv)), rank, t, inv))
        cum = np.cumsum(out[by])
        first = np.r_[True, inv[by][1:] != inv[by][:-1]] if len(by) else np.zeros(0, dtype=bool)
        base = np.maximum.accumulate(np.where(first, np.arange(len(by)), 0)) if len(by) else np.zeros(0, int)
        run = cum - (cum[base] - out[by][base]) if len(by) else cum
        bad = np.zeros(len(inv), dtype=bool)
        bad[by] = run > self.morning[inv[by]]
        stockout = np.zeros(len(o), dtype=bool)
        stockout[ln["line_order"][bad[:len(sale_inv)]]] = True
        o.head["stockout"] = stockout
        keep_manual = np.ones(len(self.manual.inv), dtype=bool)
        keep_manual[np.flatnonzero(neg)[bad[len(sale_inv):]]] = False
        self.manual = self.manual.take(np.flatnonzero(keep_manual))
        sold = ~stockout[ln["line_order"]]
        self.sale_inv, self.sale_t, self.sold = sale_inv, sale_t, sold

    # .................................................................. status transitions
    def lifecycle(self) -> None:
        rng, sc, o, op, ref = self.rng["lifecycle"], self.sc, self.o, self.open, self.ref
        h = o.head
        n_old = len(op["id"])
        status_code = {str(s): i for i, s in enumerate(STATUS_NAMES)}
        pay_code = {s: i for i, s in enumerate(PAYMENT_STATUSES)}
        ship_code = {s: i for i, s in enumerate(SHIPMENT_STATUSES)}
        live = np.flatnonzero(~h["stockout"])
        fraud = h["kind"][live] == FRAUD
        n_new = len(live)
        flow = OrderFlow(
            status=np.r_[np.array([status_code[s] for s in op["status"].tolist()], dtype=np.int64),
                         np.full(n_new, PENDING)],
            t=np.r_[np.zeros(n_old, dtype=np.int64), h["sync"][live]],
            attempts=np.r_[op["attempts"], np.zeros(n_new, dtype=np.int64)],
            cod=np.r_[np.isin(op["pay_method"], vocab.CASH_ON_DELIVERY), np.isin(h["pay_method"][live],
                                                                                 vocab.CASH_ON_DELIVERY)],
            hours=np.r_[op["hours"], ref.method_hours[h["method"][live]]].astype(np.float64),
            cancel_p=np.r_[np.full(n_old, SCENARIOS["normal"].cancel_rate),
                           np.where(fraud, sc.fraud_cancel, sc.cancel_rate)],
            cancel_mean=np.r_[np.full(n_old, 6.0), np.where(fraud, 0.5, 6.0)],
            failed_payment=np.r_[np.zeros(n_old, dtype=bool), fraud],
            pay=np.r_[np.array([pay_code.get(s, -1) for s in op["pay_status"].tolist()], dtype=np.int64),
                      np.full(n_new, PAY_PENDING)],
            ship=np.r_[np.array([ship_code.get(s, -1) for s in op["ship_status"].tolist()], dtype=np.int64),
                       np.full(n_new, SHIP_CREATED)],
        )
        self.hist = run_orders(rng, flow, DAY)
        self.flow, self.live = flow, live

        # stock-outs: cancelled within minutes, payment never captured
        so = np.flatnonzero(h["stockout"])
        t_so = np.minimum(h["sync"][so] + exp_seconds(rng, 0.25, len(so), minimum=60), DAY - 1)
        n = len(o)
        final = {
            "status": np.full(n, CANCELLED, dtype=np.int64), "last_t": np.full(n, NONE, dtype=np.int64),
            "pay": np.full(n, PAY_CANCELLED, dtype=np.int64), "pay_t": np.full(n, NONE, dtype=np.int64),
            "ship": np.full(n, SHIP_CREATED, dtype=np.int64), "ship_t": np.full(n, NONE, dtype=np.int64),
            "attempts": np.zeros(n, dtype=np.int64), "confirmed_t": np.full(n, NONE, dtype=np.int64),
            "delivered_t": np.full(n, NONE, dtype=np.int64), "cancelled_t": np.full(n, NONE, dtype=np.int64),
            "completed_t": np.full(n, NONE, dtype=np.int64), "restore_t": np.full(n, NONE, dtype=np.int64),
        }
        for field in final:
            source = flow.status if field == "status" else getattr(flow, field)
            final[field][live] = source[n_old:]
        for field in ("last_t", "pay_t", "cancelled_t"):
            final[field][so] = t_so
        self.new_final = final
        reasons = np.array(vocab.CANCEL_REASONS, dtype=S)[rng.integers(0, len(vocab.CANCEL_REASONS), n)]
        fraud_reason = np.array(vocab.FRAUD_REASONS, dtype=S)[rng.integers(0, len(vocab.FRAUD_REASONS), n)]
        reasons = np.where(h["kind"] == FRAUD, fraud_reason, reasons)
        self.new_reason = np.where(h["stockout"], vocab.STOCKOUT_REASON, reasons).astype(S)
        self.old_reason = np.array(vocab.CANCEL_REASONS, dtype=S)[rng.integers(0, len(vocab.CANCEL_REASONS), n_old)]
        self.t_stockout, self.stockouts = t_so, so

    # .................................................................. orders, payments, shipments, history
    def order_frames(self) -> None:
        o, h, ln, ref, f, fin = self.o, self.o.head, self.o.lines, self.ref, self.flow, self.new_final
        rng = self.rng["orders"]
        n = len(o)
        self.order_ids = reserve_ids(self.cur, "orders", n, rng, 0.01)
        pay_ids = reserve_ids(self.cur, "payment", n, rng, 0.01)
        ship_ids = reserve_ids(self.cur, "shipment", n, rng, 0.01)
        cust_ids = self.customers.ids[h["customer"]]
        status = fin["status"]
        note = np.array(vocab.ORDER_NOTES, dtype=object)[rng.integers(0, len(vocab.ORDER_NOTES), n)]
        updated = np.where(fin["last_t"] >= 0, fin["last_t"], h["t"])
        d = self.discounts
        self.inserts["payment"] = {
            "id": pay_ids, "payment_method": h["pay_method"],
            "payment_status": np.array(PAYMENT_STATUSES, dtype=S)[fin["pay"]],
            "transaction_id": _code("TXN", self.clock, h["t"], pay_ids, 8), "amount": h["total"],
            "created_at": self.ts(h["t"]), "updated_at": self.ts(np.where(fin["pay_t"] >= 0, fin["pay_t"], h["t"])),
            "is_active": np.ones(n, dtype=bool),
        }
        names = ref.method_names[h["method"]]
        self.inserts["shipment"] = {
            "id": ship_ids, "logistics_partner_id": h["partner_id"], "warehouse_id": ref.warehouse_ids[h["warehouse"]],
            "is_expedited": np.isin(names, ["Express", "Same-day"]), "shipping_method_id": ref.method_ids[h["method"]],
            "tracking_number": _code("TRK", self.clock, h["t"], ship_ids, 8), "shipping_cost": h["shipping_cost"],
            "shipping_status": np.array(SHIPMENT_STATUSES, dtype=S)[fin["ship"]],
            "created_at": self.ts(h["t"]), "updated_at": self.ts(np.where(fin["ship_t"] >= 0, fin["ship_t"], h["t"])),
            "is_active": np.ones(n, dtype=bool),
            "estimated_delivery": self.ts(h["t"] + ref.method_hours[h["method"]] * HOUR),
            "actual_delivery": self.ts(np.ma.masked_less(fin["delivered_t"], 0)),
            "delivery_attempts": fin["attempts"],
        }
        self.inserts["orders"] = {
            "id": self.order_ids, "customer_id": cust_ids, "payment_id": pay_ids, "shipping_id": ship_ids,
            "discount_id": np.ma.masked_array(d.ids[np.maximum(h["discount"], 0)], mask=h["discount"] < 0),
            "location_id": h["location"], "logistics_partner_id": h["partner_id"],
            "order_channel_id": h["channel"].astype(np.int64) + 1,
            "order_code": _code("ORD", self.clock, h["t"], self.order_ids, 6),
            "order_date": self.ts(h["t"]), "status": STATUS_NAMES[status], "is_active": np.ones(n, dtype=bool),
            "created_at": self.ts(h["t"]), "updated_at": self.ts(updated),
            "total_price": h["total"], "profit": h["profit"],
            "notes": np.where(rng.random(n) < 0.15, note, None),
            "confirmed_at": self.ts(np.ma.masked_less(fin["confirmed_t"], 0)),
            "delivered_at": self.ts(np.ma.masked_less(fin["delivered_t"], 0)),
            "cancelled_at": self.ts(np.ma.masked_less(fin["cancelled_t"], 0)),
            "cancel_reason": np.where(status == CANCELLED, self.new_reason.astype(object), None),
        }
        m = len(ln["line_order"])
        self.line_ids = reserve_ids(self.cur, "order_items", m)
        self.inserts["order_items"] = {
            "id": self.line_ids, "order_id": self.order_ids[ln["line_order"]],
            "product_id": ref.product_ids[ln["line_product"]], "unit_price": ln["line_price"],
            "discount_amount": ln["line_discount"], "quantity": ln["line_qty"],
            "amount": ln["line_price"] * ln["line_qty"] - ln["line_discount"],
            "is_active": np.ones(m, dtype=bool), "created_at": self.ts(h["t"][ln["line_order"]]),
        }

        # existing orders that moved today
        op, n_old = self.open, len(self.open["id"])
        moved = np.flatnonzero(f.last_t[:n_old] >= 0)
        st = f.status[moved]
        self.updates["orders"] = ({
            "id": op["id"][moved], "status": STATUS_NAMES[st], "updated_at": self.bumped_at(f.last_t[moved]),
            "confirmed_at": self.ts(np.ma.masked_less(f.confirmed_t[moved], 0)),
            "delivered_at": self.ts(np.ma.masked_less(f.delivered_t[moved], 0)),
            "cancelled_at": self.ts(np.ma.masked_less(f.cancelled_t[moved], 0)),
            "cancel_reason": np.where(f.cancelled_t[moved] >= 0, self.old_reason[moved].astype(object), None),
        }, ())
        paid = np.flatnonzero(f.pay_t[:n_old] >= 0)
        self.updates["payment"] = ({
            "id": op["payment_id"][paid], "payment_status": np.array(PAYMENT_STATUSES, dtype=S)[f.pay[paid]],
            "updated_at": self.bumped_at(f.pay_t[paid]),
        }, ())
        shipped = np.flatnonzero(f.ship_t[:n_old] >= 0)
        self.updates["shipment"] = ({
            "id": op["shipping_id"][shipped], "shipping_status": np.array(SHIPMENT_STATUSES, dtype=S)[f.ship[shipped]],
            "updated_at": self.bumped_at(f.ship_t[shipped]),
            "actual_delivery": self.ts(np.ma.masked_less(f.delivered_t[shipped], 0)),
            "delivery_attempts": f.attempts[shipped],
        }, ())

        # history: the Pending row of each new order (client-written), one row per transition
        idx, new_status, when = self.hist
        all_ids = np.r_[op["id"], self.order_ids[self.live]]
        so = self.stockouts
        h_order = np.r_[self.order_ids, all_ids[idx], self.order_ids[so]]
        h_status = np.r_[np.full(n, PENDING), new_status, np.full(len(so), CANCELLED)]
        h_t = np.r_[h["t"], when, self.t_stockout]
        trigger = np.r_[np.zeros(n, dtype=bool), np.ones(len(idx) + len(so), dtype=bool)]
        by = np.lexsort((np.arange(len(h_t)), h_order, h_t))
        k = len(by)
        wall = trigger[by] & self.bh.wall_clock_columns
        self.inserts["order_status_history"] = {
            "id": reserve_ids(self.cur, "order_status_history", k), "order_id": h_order[by],
            "status": STATUS_NAMES[h_status[by]],
            "changed_at": np.where(wall, self.wall, self.ts(h_t[by])),
            "changed_by": np.where(wall, "System_Trigger", "System_Simulator").astype(S),
            "is_active": np.ones(k, dtype=bool),
        }
        self.activity.append(Activity.of(
            "purchase", 4, h["t"], h["customer"], ln["line_product"][np.searchsorted(ln["line_order"], np.arange(n))],
            h["channel"], _json(("order_id", self.order_ids))))

    # .................................................................. customers
    def customer_frames(self) -> None:
        h, f, fin, cust = self.o.head, self.flow, self.new_final, self.customers
        n_all, n_old = len(cust.ids), self.n_old_customers
        op = self.open
        last_order = np.full(n_all, NONE, dtype=np.int64)
        np.maximum.at(last_order, h["customer"], h["t"] + DAY)            # + DAY: late orders stay >= 0
        touched_t = np.full(n_all, NONE, dtype=np.int64)
        np.maximum.at(touched_t, h["customer"], h["sync"])
        # completions: existing orders and today's orders
        done_old = np.flatnonzero(f.completed_t[:len(op["id"])] >= 0)
        who_old = _index(cust.ids, op["customer_id"][done_old])
        done_new = np.flatnonzero(fin["completed_t"] >= 0)
        who = np.r_[who_old, h["customer"][done_new]]
        add = np.bincount(who, weights=np.r_[op["total"][done_old], h["total"][done_new]], minlength=n_all)
        np.maximum.at(touched_t, who, np.r_[f.completed_t[done_old], fin["completed_t"][done_new]])
        spent = self.spent + np.rint(add).astype(np.int64)
        tier, points = tier_of(spent)
        has_order = last_order >= 0
        last_order = last_order - DAY

        old = np.flatnonzero(touched_t[:n_old] >= 0)
        upd_t = touched_t[old]
        self.updates["customers"] = ({
            "id": cust.ids[old], "total_spent": spent[old], "tier": tier[old], "loyalty_points": points[old],
            "last_order_date": self.ts(_masked(last_order[old], has_order[old])),
            "updated_at": self.bumped_at(upd_t, wall=True),
        }, ("last_order_date",) + (() if self.bh.wall_clock_columns else ("updated_at",)))

        nc = self.new_cust
        new = np.arange(n_old, n_all)
        touched = touched_t[new] >= 0
        updated = self.ts(np.maximum(nc["created"], touched_t[new]))
        if self.bh.wall_clock_columns:
            updated = np.where(touched, self.wall, updated)
        self.inserts["customers"] = {
            "id": nc["id"], "customer_code": nc["code"], "geo_location_id": nc["ward"],
            "order_channel_id": nc["channel"].astype(np.int64) + 1, "created_at": self.ts(nc["created"]),
            "is_active": np.ones(len(new), dtype=bool), "name": nc["name"], "email": nc["email"], "phone": nc["phone"],
            "tier": tier[new], "total_spent": spent[new], "loyalty_points": points[new],
            "last_order_date": self.ts(_masked(last_order[new], has_order[new])), "updated_at": updated,
        }

    # .................................................................. carts
    def cart_frames(self) -> None:
        rng, ref, cust, o = self.rng["carts"], self.ref, self.customers, self.o
        h, ln = o.head, o.lines
        c, it = self.carts, self.cart_items
        wall = self.bh.wall_clock_columns

        # new carts: one per order placed from a fresh cart (created shortly before), plus open carts
        orders = np.flatnonzero(h["from_cart"] & (h["kind"] == ORDINARY))
        created = np.maximum(np.maximum(h["t"][orders] - exp_seconds(rng, 3.0, len(orders), minimum=300),
                                        cust.created[h["customer"][orders]]), 0)
        lines = np.flatnonzero(np.isin(ln["line_order"], orders))
        cart_of = np.full(len(o), -1)
        cart_of[orders] = np.arange(len(orders))
        item_cart = cart_of[ln["line_order"][lines]]
        span = h["t"][orders][item_cart] - created[item_cart]
        added = created[item_cart] + np.floor(rng.random(len(lines)) * span).astype(np.int64)
        fresh = _CartDraft(created, h["customer"][orders], h["channel"][orders], h["t"][orders], orders,
                           item_cart, ln["line_product"][lines], ln["line_qty"][lines], added)
        n_open = int(rng.poisson(0.15 * self.base * self.sc.activity_rate))
        draft = fresh + _open_carts(rng, n_open, self.clock, ref, cust)

        n = len(draft.created)
        by_created = np.lexsort((np.arange(n), draft.created))
        cart_id = np.empty(n, dtype=np.int64)
        cart_id[by_created] = reserve_ids(self.cur, "cart", n, rng, 0.01)
        price = ref.product_price[draft.item_product]
        amount = price * draft.item_qty
        last_added = np.full(n, NONE, dtype=np.int64)
        np.maximum.at(last_added, draft.item_cart, draft.item_added)
        checked = draft.checkout >= 0
        updated = np.where(checked, draft.checkout, np.maximum(last_added, draft.created))
        self.inserts["cart"] = {
            "id": cart_id[by_created], "customer_id": cust.ids[draft.customer][by_created],
            "channel": ref.channel_names[draft.channel][by_created],
            "status": np.where(checked, "checked_out", "active").astype(S)[by_created],
            "total_amount": np.rint(np.bincount(draft.item_cart, weights=amount,
                                                minlength=n)).astype(np.int64)[by_created],
            "item_count": np.bincount(draft.item_cart, minlength=n).astype(np.int64)[by_created],
            "expires_at": self.ts(draft.created + CART_LIFETIME)[by_created],
            "checked_out_at": self.ts(np.ma.masked_less(draft.checkout, 0))[by_created],
            "order_id": np.ma.masked_array(self.order_ids[np.maximum(draft.order_id, 0)],
                                           mask=draft.order_id < 0)[by_created],
            "is_active": np.ones(n, dtype=bool), "created_at": self.ts(draft.created)[by_created],
            "updated_at": (self.walls(n) if wall else self.ts(updated))[by_created],
        }
        # items: of the new carts and those added to open carts
        a = self.added
        i_cart = np.r_[cart_id[draft.item_cart], c["id"][a["cart"]]]
        i_product = np.r_[draft.item_product, a["product"]]
        i_qty = np.r_[draft.item_qty, a["qty"]]
        i_t = np.r_[draft.item_added, a["t"]]
        by = np.lexsort((np.arange(len(i_t)), i_t))
        m = len(by)
        i_price = ref.product_price[i_product]
        self.inserts["cart_items"] = {
            "id": reserve_ids(self.cur, "cart_items", m), "cart_id": i_cart[by],
            "product_id": ref.product_ids[i_product][by],
            "quantity": i_qty[by], "unit_price": i_price[by], "discount_amount": np.zeros(m, dtype=np.int64),
            "amount": (i_price * i_qty)[by], "added_at": self.ts(i_t[by]), "updated_at": self.ts(i_t[by]),
            "is_active": np.ones(m, dtype=bool),
        }
        i_customer = np.r_[draft.customer[draft.item_cart], _index(cust.ids, c["customer_id"][a["cart"]])]
        names = ref.channel_names.tolist()
        old_chan = np.array([names.index(s) if s in names else 0 for s in c["channel"].tolist()], dtype=np.int64)
        i_chan = np.r_[draft.channel[draft.item_cart], old_chan[a["cart"]]]
        self.activity.append(Activity.of("add_to_cart", 3, i_t, i_customer, i_product, i_chan,
                                         _json(("cart_id", i_cart), ("quantity", i_qty))))

        # open carts: removed items (hard delete), totals, status
        r = self.removed
        gone = it["id"][r["item"]]
        self.deletes["cart_items"] = gone
        self.activity.append(Activity.of(
            "remove_from_cart", 3, r["t"], _index(cust.ids, c["customer_id"][r["cart"]]),
            _index(ref.product_ids, it["product_id"][r["item"]]), old_chan[r["cart"]],
            _json(("cart_id", c["id"][r["cart"]]))))
        k = len(c["id"])
        pos = _index(c["id"], it["cart_id"])
        alive = np.ones(len(it["id"]), dtype=bool)
        alive[r["item"]] = False
        total = np.bincount(pos[alive], weights=it["amount"][alive], minlength=k) + \
            np.bincount(a["cart"], weights=ref.product_price[a["product"]] * a["qty"], minlength=k)
        count = np.bincount(pos[alive], minlength=k) + np.bincount(a["cart"], minlength=k)
        changed = np.flatnonzero((self.cart_changed_t >= 0) & ~np.isin(c["id"], self.purge))
        co = self.cart_kind == 1
        order_of_cart = np.full(k, -1, dtype=np.int64)
        checkout_orders = np.flatnonzero(h["kind"] == CART_CHECKOUT_KIND)
        order_of_cart[h["cart"][checkout_orders]] = self.order_ids[checkout_orders]
        touched = self.cart_kind[changed] > 0
        self.updates["cart"] = ({
            "id": c["id"][changed], "status": self.cart_status[changed],
            "total_amount": _masked(np.rint(total[changed]).astype(np.int64), touched),
            "item_count": _masked(count[changed].astype(np.int64), touched),
            "checked_out_at": self.ts(_masked(self.cart_t[changed], co[changed])),
            "order_id": _masked(order_of_cart[changed], co[changed]),
            "updated_at": self.bumped_at(self.cart_changed_t[changed], wall=True),
        }, ())
        # nightly retention: old abandoned / expired carts are purged with their items (in write())
        self.purged_carts = self.purge

    # .................................................................. wishlist
    def wishlist_today(self) -> None:
        rng, ref, cust, w = self.rng["wishlist"], self.ref, self.customers, self.wishlist
        h, ln = self.o.head, self.o.lines
        keys = w["customer_id"] * KEY + w["product_id"]
        bought = self.customers.ids[h["customer"][ln["line_order"][self.sold]]] * KEY + \
            ref.product_ids[ln["line_product"][self.sold]]
        drop = (rng.random(len(keys)) < WISHLIST_REMOVAL) | np.isin(keys, bought)
        self.deletes["wishlist"] = w["id"][drop]

        n = int(rng.poisson(0.25 * self.base * self.sc.activity_rate))
        t, who, channel = _visitors(rng, n, self.clock, ref, cust)
        product = weighted(rng, n, ref.product_weight)
        new_keys = cust.ids[who] * KEY + ref.product_ids[product]
        late = self.late(t, self.created_real[who] <= t - DAY)
        t = np.where(late, t - DAY, t)
        keep = first_occurrence(who, product) & ~np.isin(new_keys, keys)
        t, who, product, channel = t[keep], who[keep], product[keep], channel[keep]
        by = np.lexsort((np.arange(len(t)), t))
        t, who, product, channel = t[by], who[by], product[by], channel[by]
        ids = reserve_ids(self.cur, "wishlist", len(t))
        self.inserts["wishlist"] = {"id": ids, "customer_id": cust.ids[who], "product_id": ref.product_ids[product],
                                    "added_at": self.ts(t), "is_active": np.ones(len(t), dtype=bool)}
        self.activity.append(Activity.of("wishlist", 2, t, who, product, channel, _json(("wishlist_id", ids))))

    # .................................................................. returns
    def returns_today(self) -> None:
        rng, f, fin, op, o = self.rng["returns"], self.flow, self.new_final, self.open, self.o
        h, dv = o.head, self.delivered
        n_old = len(op["id"])
        # candidates: delivered in the last 14 days (stored) or today (existing and new orders)
        today_old = np.flatnonzero(f.delivered_t[:n_old] >= 0)
        today_new = np.flatnonzero(fin["delivered_t"] >= 0)
        c_order = np.r_[dv["id"], op["id"][today_old], self.order_ids[today_new]]
        c_customer = np.r_[dv["customer_id"], op["customer_id"][today_old],
                           self.customers.ids[h["customer"][today_new]]]
        c_total = np.r_[dv["total"], op["total"][today_old], h["total"][today_new]]
        c_delivered = np.r_[dv["delivered"], f.delivered_t[today_old], fin["delivered_t"][today_new]]
        p = 0.06 * (_f_exp(DAY - c_delivered, 36.0) - _f_exp(-c_delivered, 36.0))
        lo = np.maximum(0, c_delivered + HOUR)
        u, w = rng.random(len(c_order)), rng.random(len(c_order))
        pick = np.flatnonzero((u < p) & (lo < DAY))
        t = lo[pick] + np.floor(w[pick] * (DAY - lo[pick])).astype(np.int64)
        by = np.lexsort((c_order[pick], t))
        pick, t = pick[by], t[by]
        m = len(pick)
        rtype = np.array(["refund", "exchange", "repair"], dtype=S)[rng.choice(3, size=m, p=[0.5, 0.3, 0.2])]
        reason = np.array(vocab.RETURN_REASONS, dtype=S)[rng.integers(0, len(vocab.RETURN_REASONS), m)]
        refund = np.where(rtype == "refund",
                          (np.floor(c_total[pick] * rng.uniform(0.5, 1.0, m) / 1000) * 1000).astype(np.int64), 0)
        new_ids = reserve_ids(self.cur, "order_return", m)

        # progression of the open ones (stored and new)
        orr = self.open_returns
        code = {s: i for i, s in enumerate(RETURN_STATUSES)}
        k = len(orr["id"])
        status0 = np.r_[np.array([code[s] for s in orr["status"].tolist()], dtype=np.int64),
                        np.zeros(m, dtype=np.int64)]
        status, last = run_returns(rng, status0, np.r_[np.zeros(k, dtype=np.int64), t], DAY)
        resolved = np.isin(status, [R_COMPLETED, R_REJECTED])
        names = np.array(RETURN_STATUSES, dtype=S)
        new_last = np.where(last[k:] >= 0, last[k:], t)
        self.inserts["order_return"] = {
            "id": new_ids, "order_id": c_order[pick], "customer_id": c_customer[pick], "reason": reason,
            "return_type": rtype, "status": names[status[k:]], "refund_amount": refund,
            "is_active": np.ones(m, dtype=bool), "created_at": self.ts(t), "updated_at": self.ts(new_last),
            "resolved_at": self.ts(_masked(new_last, resolved[k:])),
        }
        moved = np.flatnonzero(last[:k] >= 0)
        self.updates["order_return"] = ({
            "id": orr["id"][moved], "status": names[status[moved]], "updated_at": self.bumped_at(last[moved]),
            "resolved_at": self.ts(_masked(last[moved], resolved[moved])),
        }, ())
        # completed refunds: the goods go back to the shelf of the shipping warehouse
        r_type = np.r_[orr["return_type"], rtype]
        r_order = np.r_[orr["order_id"], c_order[pick]]
        r_id = np.r_[orr["id"], new_ids]
        done = np.flatnonzero((status == R_COMPLETED) & (last >= 0) & (r_type == "refund"))
        lines = self.lines_of(r_order[done])
        ret = done[_index_rows(r_order[done], lines["order_id"])]
        self.moves.append(Movements.of(lines["inv"], last[ret], lines["qty"], "return", "return", r_id[ret],
                                       "Nhập lại hàng trả", "Warehouse_Staff", 2))

    def lines_of(self, order_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Lines (inventory row, quantity) of stored or new orders, in order-id order."""
        o, ln, st = self.o, self.o.lines, self.stock
        new = np.isin(order_ids, self.order_ids)
        parts_o, parts_inv, parts_q = [], [], []
        if (~new).any():
            old = self.existing_lines(np.unique(order_ids[~new]))
            w_idx = _index(self.ref.warehouse_ids, old["warehouse_id"])
            parts_o.append(old["order_id"])
            parts_inv.append(st.index(_index(self.ref.product_ids, old["product_id"]), w_idx))
            parts_q.append(old["quantity"])
        if new.any():
            pos = _index(self.order_ids, np.unique(order_ids[new]))
            sel = np.flatnonzero(np.isin(ln["line_order"], pos))
            parts_o.append(self.order_ids[ln["line_order"][sel]])
            parts_inv.append(st.index(ln["line_product"][sel], o.head["warehouse"][ln["line_order"][sel]]))
            parts_q.append(ln["line_qty"][sel])
        return {"order_id": _cat(parts_o), "inv": _cat(parts_inv), "qty": _cat(parts_q)}

    # .................................................................. reviews
    def reviews_today(self) -> None:
        rng, ref, cust, cl = self.rng["reviews"], self.ref, self.customers, self.completed_lines
        f, fin, op, o = self.flow, self.new_final, self.open, self.o
        n_old = len(op["id"])
        # lines of orders completed today (stored orders and today's)
        done_old = np.flatnonzero(f.completed_t[:n_old] >= 0)
        lines = self.lines_of(op["id"][done_old])
        pos = _index(op["id"], lines["order_id"])
        prod_old = lines["inv"] // self.stock.n_warehouses
        done_new = np.flatnonzero(fin["completed_t"] >= 0)
        sel = np.flatnonzero(np.isin(o.lines["line_order"], done_new))
        lo_new = o.lines["line_order"][sel]
        oo_cust = _index(cust.ids, op["customer_id"])
        chan_old = op["channel"][pos]
        who = np.r_[_index(cust.ids, cl["customer_id"]), oo_cust[pos], o.head["customer"][lo_new]]
        product = np.r_[_index(ref.product_ids, cl["product_id"]), prod_old, o.lines["line_product"][sel]]
        channel = np.r_[cl["channel"], chan_old, o.head["channel"][lo_new]]
        done = np.r_[cl["done"], f.completed_t[pos], fin["completed_t"][lo_new]]
        p = 0.3 * np.where(done < 0, _f_exp(DAY - done, 48.0) - _f_exp(-done, 48.0), _f_exp(DAY - done - HOUR, 48.0))
        lo = np.maximum(0, done + HOUR)
        u, w = rng.random(len(done)), rng.random(len(done))
        pick = np.flatnonzero((u < p) & (lo < DAY))
        t = lo[pick] + np.floor(w[pick] * (DAY - lo[pick])).astype(np.int64)
        who, product, channel = who[pick], product[pick], channel[pick]
        by = np.lexsort((np.arange(len(t)), t))
        t, who, product, channel = t[by], who[by], product[by], channel[by]
        names = ref.channel_names.tolist()
        rk = self.review_keys
        old_keys = (rk["customer_id"] * KEY + rk["product_id"]) * 8 + \
            np.array([names.index(s) if s in names else 7 for s in rk["src"].tolist()], dtype=np.int64)
        keys = (cust.ids[who] * KEY + ref.product_ids[product]) * 8 + channel
        keep = first_occurrence(keys) & ~np.isin(keys, old_keys)
        t, who, product, channel = t[keep], who[keep], product[keep], channel[keep]
        m = len(t)
        rating = rng.choice(np.arange(1, 6), size=m, p=[0.06, 0.05, 0.12, 0.30, 0.47]).astype(np.int64)
        variant = rng.integers(0, 2, m)
        texts = np.array([vocab.REVIEW_TEXTS[r][v] for r in range(1, 6) for v in range(2)], dtype=S)
        ids = reserve_ids(self.cur, "product_review", m)
        self.inserts["product_review"] = {
            "id": ids, "product_id": ref.product_ids[product], "customer_id": cust.ids[who], "rating": rating,
            "review_text": texts[(rating - 1) * 2 + variant], "source_system": ref.channel_names[channel],
            "created_at": self.ts(t), "updated_at": self.ts(t), "is_active": np.ones(m, dtype=bool),
        }
        self.activity.append(Activity.of("review", 5, t, who, product, channel,
                                         _json(("review_id", ids), ("rating", rating))))

    # .................................................................. inventory
    def inventory_frames(self) -> None:
        h, ln, st = self.o.head, self.o.lines, self.stock
        f, fin, op = self.flow, self.new_final, self.open
        n_old = len(op["id"])
        sold = self.sold
        self.moves.append(Movements.of(self.sale_inv[sold], self.sale_t[sold], -ln["line_qty"][sold], "sale", "order",
                                       self.order_ids[ln["line_order"][sold]], None, "System", 1))
        # stock back on the shelf: cancelled after the sale was booked, or returned to the sender
        back_old = np.flatnonzero(f.restore_t[:n_old] >= 0)
        back_new = np.flatnonzero((fin["restore_t"] >= 0) & ~h["stockout"])
        ids = np.r_[op["id"][back_old], self.order_ids[back_new]]
        when = np.r_[f.restore_t[back_old], fin["restore_t"][back_new]]
        status = np.r_[f.status[back_old], fin["status"][back_new]]
        lines = self.lines_of(ids)
        row = _index_rows(ids, lines["order_id"])
        notes = np.where(status[row] == CANCELLED, "Hủy đơn - hoàn kho", "Hoàn hàng từ đơn vị vận chuyển")
        back = Movements.of(lines["inv"], when[row], lines["qty"], "return", "order", lines["order_id"], None,
                            "System", 2)
        self.moves.append(replace(back, note=notes.astype(object)))
        self.moves.append(self.manual)
        moves = Movements.concat(self.moves)

        n = len(moves.inv)
        seq = np.arange(n)
        by_row = np.lexsort((seq, moves.rank, moves.t, moves.inv))
        delta, inv = moves.delta[by_row], moves.inv[by_row]
        before_global = np.cumsum(delta) - delta
        first = np.r_[True, inv[1:] != inv[:-1]] if n else np.zeros(0, dtype=bool)
        base = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, dtype=np.int64)
        before = np.empty(n, dtype=np.int64)
        before[by_row] = st.initial[inv] + before_global - (before_global[base] if n else 0)
        after = before + moves.delta
        if np.any(after < 0):
            raise AssertionError("advance: inventory would go negative (admission is wrong)")
        order = np.lexsort((seq, moves.inv, moves.rank, moves.t))
        wall = self.bh.wall_clock_columns & np.isin(moves.change_type[order], ["sale", "restock"])
        self.inserts["inventory_log"] = {
            "id": reserve_ids(self.cur, "inventory_log", n), "inventory_id": self.inv_ids[moves.inv[order]],
            "change_type": moves.change_type[order], "quantity_change": moves.delta[order],
            "quantity_before": before[order], "quantity_after": after[order],
            "reference_id": np.ma.masked_less(moves.ref_id[order], 0), "reference_type": moves.ref_type[order],
            "note": moves.note[order],
            "changed_by": np.where(wall, "System_Trigger", moves.actor[order]).astype(S),
            "created_at": np.where(wall, self.wall, self.ts(moves.t[order])),
        }
        rows = np.unique(moves.inv)
        final = st.initial + np.bincount(moves.inv, weights=moves.delta, minlength=len(st.initial)).astype(np.int64)
        last_move = np.full(len(st.initial), NONE, dtype=np.int64)
        np.maximum.at(last_move, moves.inv, moves.t)
        counted = np.full(len(st.initial), NONE, dtype=np.int64)
        adj = moves.change_type == "adjustment"
        np.maximum.at(counted, moves.inv[adj], moves.t[adj])
        self.updates["inventory"] = ({
            "id": self.inv_ids[rows], "quantity": final[rows], "updated_at": self.bumped_at(last_move[rows]),
            "last_counted_at": self.ts(np.ma.masked_less(counted[rows], 0)),
        }, ())

    # .................................................................. clickstream
    def activity_frame(self) -> None:
        rng, ref, cust = self.rng["activity"], self.ref, self.customers
        linked = sum(len(a.t) for a in self.activity)
        target = int(rng.poisson(10 * self.base * self.sc.activity_rate))
        browse = _browsing(rng, max(0, target - linked), self.clock, ref, cust)
        late = self.late(browse.t, self.created_real[browse.customer] <= browse.t - DAY)
        parts = [*self.activity, replace(browse, t=np.where(late, browse.t - DAY, browse.t))]

        rows = activity_rows(parts, ref, cust.ids, self.ts)
        self.inserts["customer_activity_log"] = {
            "id": reserve_ids(self.cur, "customer_activity_log", len(rows["created_at"])), **rows}

    # ------------------------------------------------------------------ write
    def write(self) -> dict[str, int]:
        cur, counts = self.cur, {}

        def count(table: str, op: str, n: int) -> None:
            if n:
                counts[f"{table}.{op}"] = counts.get(f"{table}.{op}", 0) + n

        # hard deletes first (children before parents)
        purged_items = fetch(cur, "SELECT i.id FROM unnest(%s::bigint[]) AS x(id) "
                                  "JOIN cart_items i ON i.cart_id = x.id ORDER BY i.id",
                             ([int(x) for x in self.purged_carts],))["id"]
        count("cart_items", "deleted", delete(cur, "cart_items", np.r_[self.deletes["cart_items"], purged_items]))
        count("cart", "deleted", delete(cur, "cart", self.purged_carts))
        count("wishlist", "deleted", delete(cur, "wishlist", self.deletes["wishlist"]))
        for table in ("discount", "customers", "payment", "shipment", "orders", "order_items", "order_status_history",
                      "order_return", "product_review", "cart", "cart_items", "wishlist", "inventory_log",
                      "customer_activity_log"):
            count(table, "inserted", insert(cur, table, self.inserts[table]))
        for table in ("discount", "customers", "payment", "shipment", "orders", "order_return", "cart", "inventory"):
            if table in self.updates:
                frame, greatest = self.updates[table]
                count(table, "updated", update(cur, table, frame, greatest=greatest))
        return counts


def _index_rows(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each value, the position of its first occurrence in ``keys`` (keys need not be sorted)."""
    order = np.argsort(keys, kind="stable")
    pos = np.searchsorted(keys[order], values)
    return order[np.minimum(pos, len(order) - 1)] if len(order) else np.zeros(0, dtype=np.int64)


# ----------------------------------------------------------------------------- public API
def read_clock(conn: psycopg2.extensions.connection) -> dt.datetime:
    """The simulator clock ``lakehouse_sim.clock.sim_now``."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (CLOCK_TABLE,))
        if not cur.fetchone()[0]:
            raise RuntimeError(f"{CLOCK_TABLE} does not exist: create and generate the source first")
        cur.execute(f"SELECT sim_now FROM {CLOCK_TABLE} WHERE id = 1")
        row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"{CLOCK_TABLE} is empty: generate the source first")
    return row[0]


def advance_day(conn: psycopg2.extensions.connection, *, seed: int, scale: float, scenario: str = "normal",
                behaviour: SourceBehaviour | None = None) -> dict[str, int]:
    """Simulate the day that starts at the simulator clock; move the clock one day. No commit."""
    sc = get_scenario(scenario)
    behaviour = behaviour or SourceBehaviour()
    t0 = read_clock(conn)
    if t0.time() != dt.time():
        raise RuntimeError(f"the simulator clock {t0} is not at midnight: advance simulates whole days")
    with conn.cursor() as cur:
        cur.execute("SELECT now()::timestamp")
        wall = cur.fetchone()[0]
        day = _Day(cur, t0, seed=seed, scale=scale, scenario=sc, behaviour=behaviour, wall=wall)
        day.read()
        day.simulate()
        counts = day.write()
        cur.execute(f"UPDATE {CLOCK_TABLE} SET sim_now = %s WHERE id = 1", (t0 + dt.timedelta(days=1),))
    return counts


def advance(conn: psycopg2.extensions.connection, *, days: int = 1, seed: int, scale: float,
            scenario: str = "normal", behaviour: SourceBehaviour | None = None) -> dict[str, dict[str, int]]:
    """Advance the source database by ``days`` whole simulated days from the simulator clock.

    Returns, per simulated day (ISO date), the number of rows ``"<table>.inserted"``,
    ``"<table>.updated"`` and ``"<table>.deleted"`` (zero counts are left out). The clock ends at
    the end of the last day. Runs in the caller's transaction; the caller commits.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    if not scale > 0:
        raise ValueError("scale must be > 0")
    get_scenario(scenario)
    out: dict[str, dict[str, int]] = {}
    for _ in range(days):
        day = read_clock(conn).date().isoformat()
        out[day] = advance_day(conn, seed=seed, scale=scale, scenario=scenario, behaviour=behaviour)
    return out
