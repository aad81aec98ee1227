"""Orders and what hangs off them: order_items, order_status_history, payment, shipment.

Each order follows one status path (normal delivery, cancellation, failed delivery then
redelivery or return to sender). Step durations are drawn up front and accumulated from the
order time; the order's state is whatever the path reached before the simulator clock, so older
orders are further along. Every timestamp column is derived from the same step times, which keeps
status, confirmed/delivered/cancelled_at, history rows, payment and shipment consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse_simulator import vocab
from lakehouse_simulator.copyio import Frame
from lakehouse_simulator.customers import Customers
from lakehouse_simulator.discounts import Discounts
from lakehouse_simulator.inventory import Movements, Stock
from lakehouse_simulator.reference import Reference
from lakehouse_simulator.sampling import (HOUR, SimClock, event_offsets, ids_with_gaps, pick_existing,
                                          redraw_duplicates, round_to, weighted)

S = np.dtypes.StringDType()

(PENDING, CONFIRMED, PROCESSING, PACKED, SHIPPED, DELIVERING, DELIVERED, DELIVERY_FAILED, COMPLETED,
 CANCELLED, RETURNED) = range(len(vocab.ORDER_STATUSES))
STATUS_NAMES = np.array(vocab.ORDER_STATUSES, dtype=S)

#: A step's duration: mean hours of an exponential, or METHOD for "a share of the shipping method's hours".
METHOD = -1.0
_DELIVERY = [(CONFIRMED, 1.5), (PROCESSING, 3.0), (PACKED, 5.0), (SHIPPED, 8.0), (DELIVERING, 10.0)]
#: Status paths with their probabilities. Durations of the pre-delivery steps shrink for fast methods.
PATHS: tuple[tuple[float, list[tuple[int, float]]], ...] = (
    (0.78, [(PENDING, 0), *_DELIVERY, (DELIVERED, METHOD), (COMPLETED, 72.0)]),
    (0.07, [(PENDING, 0), (CANCELLED, 6.0)]),
    (0.03, [(PENDING, 0), (CONFIRMED, 1.5), (CANCELLED, 10.0)]),
    (0.09, [(PENDING, 0), *_DELIVERY, (DELIVERY_FAILED, METHOD), (SHIPPED, 24.0), (DELIVERING, 10.0),
            (DELIVERED, METHOD), (COMPLETED, 72.0)]),
    (0.03, [(PENDING, 0), *_DELIVERY, (DELIVERY_FAILED, METHOD), (RETURNED, 36.0)]),
)
MAX_STEPS = max(len(p) for _, p in PATHS)
_SPED_UP = np.isin(np.arange(len(vocab.ORDER_STATUSES)), [CONFIRMED, PROCESSING, PACKED, SHIPPED, DELIVERING])

SHIP_CREATED, SHIP_IN_TRANSIT, SHIP_FAILED, SHIP_DELIVERED, SHIP_RETURN = range(5)
SHIPMENT_STATUS_NAMES = np.array(["Created", "InTransit", "Failed", "Delivered", "ReturnToSender"], dtype=S)
#: Shipment status implied by each order status (Cancelled leaves the shipment as it was: Created).
_SHIPMENT_BY_ORDER = np.array([SHIP_CREATED, SHIP_CREATED, SHIP_CREATED, SHIP_CREATED, SHIP_IN_TRANSIT,
                               SHIP_IN_TRANSIT, SHIP_DELIVERED, SHIP_FAILED, SHIP_DELIVERED, SHIP_CREATED,
                               SHIP_RETURN])
PAY_PENDING, PAY_COMPLETED, PAY_CANCELLED, PAY_REFUNDED = range(4)
PAYMENT_STATUS_NAMES = np.array(["Pending", "Completed", "Cancelled", "Refunded"], dtype=S)
#: Payment status per order status: prepaid methods are captured at confirmation, COD on delivery.
_PREPAID = np.array([PAY_PENDING] + [PAY_COMPLETED] * 8 + [PAY_CANCELLED, PAY_REFUNDED])
_COD = np.array([PAY_PENDING] * 6 + [PAY_COMPLETED, PAY_PENDING, PAY_COMPLETED, PAY_CANCELLED, PAY_CANCELLED])


@dataclass(frozen=True)
class Orders:
    """Orders in id order (= time order) and their lines; times are second offsets."""

    ids: np.ndarray
    t: np.ndarray
    customer: np.ndarray          # customer index
    channel: np.ndarray           # channel index
    warehouse: np.ndarray         # warehouse index (ships the order, stock taken from it)
    method: np.ndarray            # shipping method index
    partner_id: np.ndarray
    pay_method: np.ndarray
    from_cart: np.ndarray
    discount: np.ndarray          # discount index, -1 = none
    shipping_cost: np.ndarray
    # lines (line order = id order)
    line_order: np.ndarray
    line_product: np.ndarray      # product index
    line_qty: np.ndarray
    line_price: np.ndarray
    line_discount: np.ndarray
    total: np.ndarray
    profit: np.ndarray
    # life cycle (n × MAX_STEPS)
    steps: np.ndarray             # status codes, -1 = beyond the path
    step_t: np.ndarray
    happened: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def line_amount(self) -> np.ndarray:
        return self.line_price * self.line_qty - self.line_discount

    @property
    def status(self) -> np.ndarray:
        """Status code now (the last step reached before the clock)."""
        last = self.happened.sum(axis=1) - 1
        return self.steps[np.arange(len(self)), last]

    @property
    def updated(self) -> np.ndarray:
        last = self.happened.sum(axis=1) - 1
        return self.step_t[np.arange(len(self)), last]

    def reached(self, status: int) -> np.ma.MaskedArray:
        """Time each order first reached ``status`` (masked where it has not)."""
        hit = self.happened & (self.steps == status)
        first = np.where(hit, self.step_t, np.iinfo(np.int64).max).min(axis=1)
        return np.ma.masked_array(first, mask=~hit.any(axis=1))


def draw_orders(rng: np.random.Generator, n: int, clock: SimClock, ref: Reference, customers: Customers,
                discounts: Discounts, stock: Stock) -> Orders:
    """Headers, lines, discounts, totals and life cycles of ``n`` orders."""
    head = _draw_headers(rng, n, clock, ref, customers, discounts)
    lines = _draw_lines(rng, head, ref, discounts, stock)
    life = _draw_lifecycle(rng, head["t"], head["method"], ref, clock)
    return Orders(**head, **lines, **life)


def _draw_headers(rng: np.random.Generator, n: int, clock: SimClock, ref: Reference, customers: Customers,
                  discounts: Discounts) -> dict[str, np.ndarray]:
    """Who orders when, on which channel, paid and shipped how, from which warehouse."""
    return headers_at(rng, event_offsets(rng, n, clock), ref, customers, discounts)


def headers_at(rng: np.random.Generator, t: np.ndarray, ref: Reference, customers: Customers,
               discounts: Discounts, discount_share: float = 0.3) -> dict[str, np.ndarray]:
    """Order headers for sorted order times ``t`` (second offsets); ``ids`` are 1.. with gaps."""
    n = len(t)
    customer = pick_existing(rng, t, customers.created, customers.propensity_cum)
    own_channel = rng.random(n) < 0.7
    channel = np.where(own_channel, customers.channel[customer], weighted(rng, n, ref.channel_weights))
    pay_method = np.array([m for m, _ in vocab.PAYMENT_METHODS], dtype=S)[
        weighted(rng, n, np.array([w for _, w in vocab.PAYMENT_METHODS]))]
    cod = np.isin(pay_method, vocab.CASH_ON_DELIVERY)
    method_names = ref.method_names.tolist()
    prepaid_methods = np.array([method_names.index(m) for m in ("Standard", "Express", "Same-day")])
    method = np.where(cod, method_names.index("COD"), prepaid_methods[weighted(rng, n, np.array([0.6, 0.3, 0.1]))])
    expedited = np.isin(method, [method_names.index("Express"), method_names.index("Same-day")])
    shipping_cost = round_to(np.where(expedited, rng.uniform(30_000, 80_000, n), rng.uniform(10_000, 40_000, n)), 1000)
    return {
        "ids": ids_with_gaps(rng, n, 0.01), "t": t, "customer": customer, "channel": channel,
        "warehouse": rng.integers(0, len(ref.warehouse_ids), n), "method": method,
        "partner_id": ref.partner_ids[rng.integers(0, len(ref.partner_ids), n)], "pay_method": pay_method,
        "from_cart": rng.random(n) < 0.3, "discount": pick_discounts(rng, t, channel, discounts, discount_share),
        "shipping_cost": shipping_cost,
    }


def pick_discounts(rng: np.random.Generator, t: np.ndarray, channel: np.ndarray, d: Discounts,
                   share: float = 0.3) -> np.ndarray:
    """``share`` of orders (30 %) use a discount running on their channel at order time (if any)."""
    wants = rng.random(len(t)) < share
    u = rng.random(len(t))
    out = np.full(len(t), -1, dtype=np.int64)
    idx = np.flatnonzero(wants)
    for lo in range(0, len(idx), 100_000):      # bounded memory for the event × discount matrix
        part = idx[lo:lo + 100_000]
        active = d.active_at(t[part], channel[part])
        count = active.sum(axis=1)
        pick = np.floor(u[part] * count).astype(np.int64)
        chosen = np.argmax(np.cumsum(active, axis=1) > pick[:, None], axis=1)
        out[part] = np.where(count > 0, chosen, -1)
    return out


def _draw_lines(rng: np.random.Generator, head: dict[str, np.ndarray], ref: Reference, d: Discounts,
                stock: Stock, k: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """1–4 lines per order (distinct products for cart checkouts), line discounts, totals and profit.

    Expensive items (> 20 M VND) are bought one at a time, which also keeps every order total
    within orders.total_price numeric(11,2). ``k`` fixes the number of lines per order.
    """
    n = len(head["t"])
    if k is None:
        k = rng.choice(np.arange(1, 5), size=n, p=[0.1, 0.2, 0.3, 0.4])
    line_order = np.repeat(np.arange(n), k)
    product = weighted(rng, len(line_order), ref.product_weight)
    in_cart = head["from_cart"][line_order]
    product[in_cart] = redraw_duplicates(rng, line_order[in_cart], product[in_cart], ref.product_weight)
    price = ref.product_price[product]
    qty = np.where(price > 20_000_000, 1, rng.choice([1, 2, 3], size=len(product), p=[0.7, 0.2, 0.1]))
    return price_lines(head, line_order, product, qty, ref, d, stock)


def price_lines(head: dict[str, np.ndarray], line_order: np.ndarray, product: np.ndarray, qty: np.ndarray,
                ref: Reference, d: Discounts, stock: Stock) -> dict[str, np.ndarray]:
    """Catalogue prices, the order discount spread over the lines, totals and profit (no draws)."""
    n = len(head["t"])
    k = np.bincount(line_order, minlength=n)
    price = ref.product_price[product]
    gross = price * qty
    # order discount spread over the lines: a percentage of each line, or the fixed value split
    # evenly; never more than half a line
    disc_idx = head["discount"][line_order]
    has = disc_idx >= 0
    value = np.where(has, d.value[np.maximum(disc_idx, 0)], 0)
    pct = has & d.is_percent[np.maximum(disc_idx, 0)]
    line_disc = np.where(pct, np.rint(gross * value / 100), np.rint(value / k[line_order])).astype(np.int64)
    line_disc = np.where(has, np.minimum(line_disc, gross // 2), 0)
    total = np.rint(np.bincount(line_order, weights=gross - line_disc, minlength=n)).astype(np.int64)
    unit_cost = stock.unit_cost[stock.index(product, head["warehouse"][line_order])]
    cogs = np.rint(np.bincount(line_order, weights=unit_cost * qty, minlength=n)).astype(np.int64)
    return {
        "line_order": line_order, "line_product": product, "line_qty": qty, "line_price": price,
        "line_discount": line_disc, "total": total, "profit": total - cogs - head["shipping_cost"],
    }


def _draw_lifecycle(rng: np.random.Generator, t: np.ndarray, method: np.ndarray, ref: Reference,
                    clock: SimClock) -> dict[str, np.ndarray]:
    """Choose each order's path and step times; mark the steps reached before the clock."""
    n = len(t)
    path = rng.choice(len(PATHS), size=n, p=[p for p, _ in PATHS])
    steps = np.full((len(PATHS), MAX_STEPS), -1, dtype=np.int64)
    means = np.zeros((len(PATHS), MAX_STEPS))
    for i, (_, spec) in enumerate(PATHS):
        steps[i, :len(spec)] = [s for s, _ in spec]
        means[i, :len(spec)] = [m for _, m in spec]
    st, mean = steps[path], means[path]
    hours = ref.method_hours[method].astype(np.float64)
    speed = np.minimum(1.0, hours / 120.0)     # fast methods also move through the warehouse faster
    expo = rng.exponential(1.0, (n, MAX_STEPS))
    share = rng.uniform(0.25, 0.9, (n, MAX_STEPS))
    dur_h = np.where(mean == METHOD, share * hours[:, None],
                     expo * mean * np.where(_SPED_UP[np.maximum(st, 0)], speed[:, None], 1.0))
    dur = np.maximum(np.rint(dur_h * HOUR), 60).astype(np.int64)
    dur[:, 0] = 0
    step_t = t[:, None] + np.cumsum(dur, axis=1)
    return {"steps": st, "step_t": step_t, "happened": (st >= 0) & (step_t < clock.seconds)}


def _last_change(codes: np.ndarray, happened: np.ndarray, step_t: np.ndarray,
                 t0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Final value of a per-step derived status and when it last changed (t0 if never)."""
    last = happened.sum(axis=1) - 1
    rows = np.arange(len(codes))
    changed = happened[:, 1:] & (codes[:, 1:] != codes[:, :-1])
    when = np.where(changed, step_t[:, 1:], -1).max(axis=1, initial=-1)
    return codes[rows, last], np.where(when >= 0, when, t0)


# ----------------------------------------------------------------------------- frames
def _code(prefix: str, clock: SimClock, t: np.ndarray, ids: np.ndarray, width: int) -> np.ndarray:
    """``<prefix>_<yyyymmdd>_<id zero-padded to width>`` (never truncated)."""
    return np.strings.add(np.strings.add(np.strings.add(prefix + "_", clock.yyyymmdd(t)), "_"),
                          np.strings.zfill(ids.astype(S), width))


def order_frames(rng: np.random.Generator, o: Orders, clock: SimClock, ref: Reference,
                 customers: Customers, discounts: Discounts) -> dict[str, Frame]:
    """orders, order_items, order_status_history, payment and shipment."""
    payment_ids = ids_with_gaps(rng, len(o), 0.01)
    shipment_ids = ids_with_gaps(rng, len(o), 0.01)
    return {
        "payment": _payment_frame(o, clock, payment_ids),
        "shipment": _shipment_frame(o, clock, ref, shipment_ids),
        "orders": _orders_frame(rng, o, clock, customers, discounts, payment_ids, shipment_ids),
        "order_items": _order_items_frame(o, clock, ref),
        "order_status_history": _history_frame(o, clock),
    }


def _orders_frame(rng: np.random.Generator, o: Orders, clock: SimClock, customers: Customers,
                  discounts: Discounts, payment_ids: np.ndarray, shipment_ids: np.ndarray) -> Frame:
    n = len(o)
    status = o.status
    cancelled = status == CANCELLED
    reason = np.array(vocab.CANCEL_REASONS, dtype=object)[rng.integers(0, len(vocab.CANCEL_REASONS), n)]
    note = np.array(vocab.ORDER_NOTES, dtype=object)[rng.integers(0, len(vocab.ORDER_NOTES), n)]
    return {
        "id": o.ids,
        "customer_id": customers.ids[o.customer],
        "payment_id": payment_ids,
        "shipping_id": shipment_ids,
        "discount_id": np.ma.masked_array(discounts.ids[np.maximum(o.discount, 0)], mask=o.discount < 0),
        "location_id": customers.ward[o.customer],
        "logistics_partner_id": o.partner_id,
        "order_channel_id": o.channel.astype(np.int64) + 1,
        "order_code": _code("ORD", clock, o.t, o.ids, 6),
        "order_date": clock.ts(o.t),
        "status": STATUS_NAMES[status],
        "is_active": np.ones(n, dtype=bool),
        "created_at": clock.ts(o.t),
        "updated_at": clock.ts(o.updated),
        "total_price": o.total,
        "profit": o.profit,
        "notes": np.where(rng.random(n) < 0.15, note, None),
        "confirmed_at": clock.ts(o.reached(CONFIRMED)),
        "delivered_at": clock.ts(o.reached(DELIVERED)),
        "cancelled_at": clock.ts(o.reached(CANCELLED)),
        "cancel_reason": np.where(cancelled, reason, None),
    }


def _order_items_frame(o: Orders, clock: SimClock, ref: Reference) -> Frame:
    n = len(o.line_order)
    return {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "order_id": o.ids[o.line_order],
        "product_id": ref.product_ids[o.line_product],
        "unit_price": o.line_price,
        "discount_amount": o.line_discount,
        "quantity": o.line_qty,
        "amount": o.line_amount,
        "is_active": np.ones(n, dtype=bool),
        "created_at": clock.ts(o.t[o.line_order]),
    }


def _history_frame(o: Orders, clock: SimClock) -> Frame:
    """One row per status reached, in time order (ids follow changed_at)."""
    rows, cols = np.nonzero(o.happened)
    changed = o.step_t[rows, cols]
    order = np.lexsort((cols, rows, changed))
    rows, cols, changed = rows[order], cols[order], changed[order]
    n = len(rows)
    return {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "order_id": o.ids[rows],
        "status": STATUS_NAMES[o.steps[rows, cols]],
        "changed_at": clock.ts(changed),
        "changed_by": np.full(n, "System_Simulator", dtype=S),
        "is_active": np.ones(n, dtype=bool),
    }


def _payment_frame(o: Orders, clock: SimClock, ids: np.ndarray) -> Frame:
    n = len(o)
    cod = np.isin(o.pay_method, vocab.CASH_ON_DELIVERY)
    valid = o.steps >= 0
    codes = np.where(cod[:, None], _COD[np.maximum(o.steps, 0)], _PREPAID[np.maximum(o.steps, 0)])
    # A prepaid order cancelled after payment was captured is refunded (T8: Refunded only from Completed).
    prev = np.c_[np.full(n, PAY_PENDING), codes[:, :-1]]
    codes = np.where((codes == PAY_CANCELLED) & (prev == PAY_COMPLETED), PAY_REFUNDED, codes)
    codes = np.where(valid, codes, -1)
    status, updated = _last_change(codes, o.happened, o.step_t, o.t)
    return {
        "id": ids,
        "payment_method": o.pay_method,
        "payment_status": PAYMENT_STATUS_NAMES[status],
        "transaction_id": _code("TXN", clock, o.t, ids, 8),
        "amount": o.total,
        "created_at": clock.ts(o.t),
        "updated_at": clock.ts(updated),
        "is_active": np.ones(n, dtype=bool),
    }


def _shipment_frame(o: Orders, clock: SimClock, ref: Reference, ids: np.ndarray) -> Frame:
    n = len(o)
    codes = np.where(o.steps >= 0, _SHIPMENT_BY_ORDER[np.maximum(o.steps, 0)], -1)
    status, updated = _last_change(codes, o.happened, o.step_t, o.t)
    attempts = (o.happened & np.isin(o.steps, [DELIVERED, DELIVERY_FAILED])).sum(axis=1)
    hours = ref.method_hours[o.method]
    names = ref.method_names[o.method]
    return {
        "id": ids,
        "logistics_partner_id": o.partner_id,
        "warehouse_id": ref.warehouse_ids[o.warehouse],
        "is_expedited": np.isin(names, ["Express", "Same-day"]),
        "shipping_method_id": ref.method_ids[o.method],
        "tracking_number": _code("TRK", clock, o.t, ids, 8),
        "shipping_cost": o.shipping_cost,
        "shipping_status": SHIPMENT_STATUS_NAMES[status],
        "created_at": clock.ts(o.t),
        "updated_at": clock.ts(updated),
        "is_active": np.ones(n, dtype=bool),
        "estimated_delivery": clock.ts(o.t + hours * HOUR),
        "actual_delivery": clock.ts(o.reached(DELIVERED)),
        "delivery_attempts": attempts.astype(np.int64),
    }


# ----------------------------------------------------------------------------- stock movements
def order_movements(o: Orders, stock: Stock) -> Movements:
    """Sales at order time; stock restored when an order is cancelled or returned to sender."""
    inv = stock.index(o.line_product, o.warehouse[o.line_order])
    parts = [Movements.of(inv, o.t[o.line_order], -o.line_qty, "sale", "order", o.ids[o.line_order],
                          None, "System", 1)]
    for status, note in ((CANCELLED, "Hủy đơn - hoàn kho"), (RETURNED, "Hoàn hàng từ đơn vị vận chuyển")):
        when = o.reached(status)
        lines = np.flatnonzero(~np.ma.getmaskarray(when)[o.line_order])
        parts.append(Movements.of(inv[lines], np.ma.getdata(when)[o.line_order[lines]], o.line_qty[lines],
                                  "return", "order", o.ids[o.line_order[lines]], note, "System", 2))
    return Movements.concat(parts)
