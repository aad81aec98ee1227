"""Customer engagement around orders: carts, cart_items, wishlist, product_review, order_return
and the customer_activity_log clickstream that mirrors them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lakehouse_simulator import vocab
from lakehouse_simulator.copyio import Frame
from lakehouse_simulator.customers import Customers
from lakehouse_simulator.inventory import Movements, Stock
from lakehouse_simulator.orders import COMPLETED, DELIVERED, Orders
from lakehouse_simulator.reference import Reference
from lakehouse_simulator.sampling import (DAY, HOUR, SimClock, event_offsets, exp_seconds, first_occurrence,
                                          ids_with_gaps, pick_existing, redraw_duplicates, weighted)

S = np.dtypes.StringDType()
CART_LIFETIME = 7 * DAY
ABANDON_AFTER = DAY


def _visitors(rng: np.random.Generator, n: int, clock: SimClock, ref: Reference,
              customers: Customers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times, customer indexes and channel indexes of ``n`` customer-initiated events."""
    t = event_offsets(rng, n, clock)
    who = pick_existing(rng, t, customers.created, customers.propensity_cum)
    channel = np.where(rng.random(n) < 0.7, customers.channel[who], weighted(rng, n, ref.channel_weights))
    return t, who, channel


def _quantities(rng: np.random.Generator, price: np.ndarray) -> np.ndarray:
    return np.where(price > 20_000_000, 1, rng.choice([1, 2, 3], size=len(price), p=[0.7, 0.2, 0.1]))


def _json(*pairs: tuple[str, np.ndarray]) -> np.ndarray:
    """Build JSON objects column-wise from (key, values) pairs; string values are quoted."""
    out = np.array("{", dtype=S)
    for i, (key, values) in enumerate(pairs):
        values = np.asarray(values)
        if values.dtype.kind in "UT":
            values = np.strings.add(np.strings.add('"', values.astype(S)), '"')
        else:
            values = values.astype(S)
        out = np.strings.add(np.strings.add(out, f'{", " if i else ""}"{key}": '), values)
    return np.strings.add(out, "}")


@dataclass(frozen=True)
class Activity:
    """customer_activity_log rows of one kind; ``rank`` orders kinds within the same second."""

    kind: np.ndarray          # activity_type per row
    rank: int
    t: np.ndarray
    customer: np.ndarray      # customer index
    product: np.ndarray       # product index, -1 = none
    channel: np.ndarray       # channel index
    metadata: np.ndarray      # JSON text

    @classmethod
    def of(cls, kind: str, rank: int, t: np.ndarray, customer: np.ndarray, product: np.ndarray,
           channel: np.ndarray, metadata: np.ndarray) -> "Activity":
        return cls(np.full(len(t), kind, dtype=S), rank, t, customer, product, channel, metadata)


# ----------------------------------------------------------------------------- carts
@dataclass(frozen=True)
class _CartDraft:
    """Carts (per-cart arrays) and their items (per-item arrays; ``item_cart`` indexes the carts)."""

    created: np.ndarray
    customer: np.ndarray
    channel: np.ndarray
    checkout: np.ndarray      # checkout time, -1 = not checked out
    order_id: np.ndarray      # -1 = none
    item_cart: np.ndarray
    item_product: np.ndarray
    item_qty: np.ndarray
    item_added: np.ndarray

    def __add__(self, other: "_CartDraft") -> "_CartDraft":
        shifted = {"item_cart": other.item_cart + len(self.created)}
        return _CartDraft(**{f: np.concatenate([getattr(self, f), shifted.get(f, getattr(other, f))])
                             for f in self.__dataclass_fields__})


def _checkout_carts(rng: np.random.Generator, o: Orders, customers: Customers) -> _CartDraft:
    """One cart per cart-originated order, created shortly before it, holding exactly its lines."""
    orders = np.flatnonzero(o.from_cart)
    created = np.maximum(o.t[orders] - exp_seconds(rng, 3.0, len(orders), minimum=300),
                         customers.created[o.customer[orders]])
    lines = np.flatnonzero(o.from_cart[o.line_order])
    cart_of_order = np.full(len(o), -1)
    cart_of_order[orders] = np.arange(len(orders))
    item_cart = cart_of_order[o.line_order[lines]]
    span = o.t[orders][item_cart] - created[item_cart]
    added = created[item_cart] + np.floor(rng.random(len(lines)) * span).astype(np.int64)
    return _CartDraft(created, o.customer[orders], o.channel[orders], o.t[orders], o.ids[orders],
                      item_cart, o.line_product[lines], o.line_qty[lines], added)


def _open_carts(rng: np.random.Generator, n: int, clock: SimClock, ref: Reference,
                customers: Customers) -> _CartDraft:
    """Carts that never converted: 1–4 distinct products added within two hours of creation."""
    created, customer, channel = _visitors(rng, n, clock, ref, customers)
    item_cart = np.repeat(np.arange(n), rng.integers(1, 5, n))
    product = weighted(rng, len(item_cart), ref.product_weight)
    product = redraw_duplicates(rng, item_cart, product, ref.product_weight)
    room = np.minimum(2 * HOUR, clock.seconds - 1 - created[item_cart])
    added = created[item_cart] + np.floor(rng.random(len(item_cart)) * room).astype(np.int64)
    none = np.full(n, -1, dtype=np.int64)
    return _CartDraft(created, customer, channel, none, none, item_cart, product,
                      _quantities(rng, ref.product_price[product]), added)


def draw_carts(rng: np.random.Generator, o: Orders, clock: SimClock, ref: Reference,
               customers: Customers) -> tuple[dict[str, Frame], Activity]:
    """cart and cart_items frames, and the add_to_cart activity they imply.

    Checked-out carts hold exactly their order's lines (distinct products). Other carts are
    ``expired`` 7 days after creation, ``abandoned`` after a day without activity, else ``active``.
    """
    c = _checkout_carts(rng, o, customers) + _open_carts(rng, max(1, round(0.15 * len(o))), clock, ref, customers)
    n, end = len(c.created), clock.seconds
    last_added = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_added, c.item_cart, c.item_added)
    expires = c.created + CART_LIFETIME
    checked_out = c.checkout >= 0
    expired = ~checked_out & (expires < end)
    abandoned = ~checked_out & ~expired & (last_added + ABANDON_AFTER < end)
    status = np.select([checked_out, expired, abandoned], ["checked_out", "expired", "abandoned"], "active")
    updated = np.select([checked_out, expired, abandoned], [c.checkout, expires, last_added + ABANDON_AFTER],
                        last_added)

    by_created = np.lexsort((np.arange(n), c.created))      # ids follow created_at
    cart_id = np.empty(n, dtype=np.int64)
    cart_id[by_created] = ids_with_gaps(rng, n, 0.01)
    price = ref.product_price[c.item_product]
    amount = price * c.item_qty
    cart = {
        "id": cart_id[by_created],
        "customer_id": customers.ids[c.customer][by_created],
        "channel": ref.channel_names[c.channel][by_created],
        "status": status.astype(S)[by_created],
        "total_amount": np.rint(np.bincount(c.item_cart, weights=amount, minlength=n)).astype(np.int64)[by_created],
        "item_count": np.bincount(c.item_cart, minlength=n).astype(np.int64)[by_created],
        "expires_at": clock.ts(expires[by_created]),
        "checked_out_at": clock.ts(np.ma.masked_less(c.checkout[by_created], 0)),
        "order_id": np.ma.masked_less(c.order_id[by_created], 0),
        "is_active": np.ones(n, dtype=bool),
        "created_at": clock.ts(c.created[by_created]),
        "updated_at": clock.ts(updated[by_created]),
    }
    by_added = np.lexsort((np.arange(len(c.item_cart)), c.item_added))
    m = len(by_added)
    items = {
        "id": np.arange(1, m + 1, dtype=np.int64),
        "cart_id": cart_id[c.item_cart][by_added],
        "product_id": ref.product_ids[c.item_product][by_added],
        "quantity": c.item_qty[by_added],
        "unit_price": price[by_added],
        "discount_amount": np.zeros(m, dtype=np.int64),
        "amount": amount[by_added],
        "added_at": clock.ts(c.item_added[by_added]),
        "updated_at": clock.ts(c.item_added[by_added]),
        "is_active": np.ones(m, dtype=bool),
    }
    adds = Activity.of("add_to_cart", 3, c.item_added, c.customer[c.item_cart], c.item_product,
                       c.channel[c.item_cart], _json(("cart_id", cart_id[c.item_cart]), ("quantity", c.item_qty)))
    return {"cart": cart, "cart_items": items}, adds


# ----------------------------------------------------------------------------- wishlist
def wishlist_frame(rng: np.random.Generator, n: int, clock: SimClock, ref: Reference,
                   customers: Customers) -> tuple[Frame, Activity]:
    """Wishlist adds (about ``n``), unique per (customer, product)."""
    t, who, channel = _visitors(rng, n, clock, ref, customers)
    product = weighted(rng, n, ref.product_weight)
    keep = first_occurrence(who, product)          # times are sorted, so the earliest add wins
    t, who, product, channel = t[keep], who[keep], product[keep], channel[keep]
    m = len(t)
    frame = {
        "id": np.arange(1, m + 1, dtype=np.int64),
        "customer_id": customers.ids[who],
        "product_id": ref.product_ids[product],
        "added_at": clock.ts(t),
        "is_active": np.ones(m, dtype=bool),
    }
    return frame, Activity.of("wishlist", 2, t, who, product, channel, _json(("wishlist_id", frame["id"])))


# ----------------------------------------------------------------------------- reviews
def review_frame(rng: np.random.Generator, o: Orders, clock: SimClock, ref: Reference,
                 customers: Customers) -> tuple[Frame, Activity]:
    """Reviews of products from Completed orders, one per (product, customer, source_system)."""
    completed = o.reached(COMPLETED)
    lines = np.flatnonzero(~np.ma.getmaskarray(completed)[o.line_order])
    lines = lines[rng.random(len(lines)) < 0.3]
    t = np.ma.getdata(completed)[o.line_order[lines]] + exp_seconds(rng, 48.0, len(lines), minimum=HOUR)
    in_period = t < clock.seconds
    lines, t = lines[in_period], t[in_period]
    by_time = np.lexsort((lines, t))
    lines, t = lines[by_time], t[by_time]
    who, product, channel = o.customer[o.line_order[lines]], o.line_product[lines], o.channel[o.line_order[lines]]
    keep = first_occurrence(product, who, channel)
    t, who, product, channel = t[keep], who[keep], product[keep], channel[keep]
    m = len(t)
    rating = rng.choice(np.arange(1, 6), size=m, p=[0.06, 0.05, 0.12, 0.30, 0.47])
    variant = rng.integers(0, 2, m)
    texts = np.array([vocab.REVIEW_TEXTS[r][v] for r in range(1, 6) for v in range(2)], dtype=S)
    frame = {
        "id": np.arange(1, m + 1, dtype=np.int64),
        "product_id": ref.product_ids[product],
        "customer_id": customers.ids[who],
        "rating": rating.astype(np.int64),
        "review_text": texts[(rating - 1) * 2 + variant],
        "source_system": ref.channel_names[channel],
        "created_at": clock.ts(t),
        "updated_at": clock.ts(t),
        "is_active": np.ones(m, dtype=bool),
    }
    return frame, Activity.of("review", 5, t, who, product, channel,
                              _json(("review_id", frame["id"]), ("rating", frame["rating"])))


# ----------------------------------------------------------------------------- returns
#: Return progression: (status, mean hours to reach it from the previous step).
_RETURN_STEPS = (("approved", 24.0), ("processing", 24.0), ("completed", 48.0))


def return_frame(rng: np.random.Generator, o: Orders, clock: SimClock, customers: Customers,
                 stock: Stock) -> tuple[Frame, Movements]:
    """Returns of Delivered/Completed orders (requested after delivery), and the restock of refunds."""
    delivered = o.reached(DELIVERED)
    cand = np.flatnonzero(~np.ma.getmaskarray(delivered))
    cand = cand[rng.random(len(cand)) < 0.06]
    created = np.ma.getdata(delivered)[cand] + exp_seconds(rng, 36.0, len(cand), minimum=HOUR)
    keep = created < clock.seconds
    cand, created = cand[keep], created[keep]
    by_time = np.lexsort((cand, created))
    cand, created = cand[by_time], created[by_time]
    m = len(cand)
    rtype = np.array(["refund", "exchange", "repair"], dtype=S)[rng.choice(3, size=m, p=[0.5, 0.3, 0.2])]
    reason = np.array(vocab.RETURN_REASONS, dtype=S)[rng.integers(0, len(vocab.RETURN_REASONS), m)]
    refund = np.where(rtype == "refund",
                      (np.floor(o.total[cand] * rng.uniform(0.5, 1.0, m) / 1000) * 1000).astype(np.int64), 0)
    # progression: pending → approved → processing → completed, or pending → rejected
    rejected = rng.random(m) < 0.1
    step_t = created[:, None] + np.cumsum(exp_seconds(rng, np.array([h for _, h in _RETURN_STEPS]),
                                                      (m, len(_RETURN_STEPS)), minimum=HOUR), axis=1)
    reached = step_t < clock.seconds
    reached[rejected, 1:] = False
    n_reached = reached.sum(axis=1)
    names = np.array(["pending"] + [s for s, _ in _RETURN_STEPS], dtype=S)
    status = np.where(rejected & reached[:, 0], "rejected", names[n_reached]).astype(S)
    last_t = np.where(n_reached > 0, step_t[np.arange(m), np.maximum(n_reached - 1, 0)], created)
    resolved = np.ma.masked_array(last_t, mask=~np.isin(status, ["completed", "rejected"]))
    ids = np.arange(1, m + 1, dtype=np.int64)
    frame = {
        "id": ids,
        "order_id": o.ids[cand],
        "customer_id": customers.ids[o.customer[cand]],
        "reason": reason,
        "return_type": rtype,
        "status": status,
        "refund_amount": refund,
        "is_active": np.ones(m, dtype=bool),
        "created_at": clock.ts(created),
        "updated_at": clock.ts(last_t),
        "resolved_at": clock.ts(resolved),
    }
    # completed refunds put the goods back on the shelf of the shipping warehouse
    restocked = np.flatnonzero((status == "completed") & (rtype == "refund"))
    ret_of_order = np.full(len(o), -1)
    ret_of_order[cand[restocked]] = restocked
    lines = np.flatnonzero(ret_of_order[o.line_order] >= 0)
    ret = ret_of_order[o.line_order[lines]]
    moves = Movements.of(stock.index(o.line_product[lines], o.warehouse[o.line_order[lines]]), last_t[ret],
                         o.line_qty[lines], "return", "return", ids[ret], "Nhập lại hàng trả", "Warehouse_Staff", 2)
    return frame, moves


# ----------------------------------------------------------------------------- activity log
def _purchases(o: Orders) -> Activity:
    """One purchase event per order, on the product of its first line."""
    first_line = np.r_[0, np.cumsum(np.bincount(o.line_order, minlength=len(o)))[:-1]]
    return Activity.of("purchase", 4, o.t, o.customer, o.line_product[first_line], o.channel,
                       _json(("order_id", o.ids)))


def _browsing(rng: np.random.Generator, n: int, clock: SimClock, ref: Reference, customers: Customers) -> Activity:
    """Product views (78 %) and searches (no product) by existing customers."""
    t, who, channel = _visitors(rng, n, clock, ref, customers)
    is_view = rng.random(n) < 0.78
    product = np.where(is_view, weighted(rng, n, ref.product_weight), -1)
    keyword = np.array(vocab.SEARCH_KEYWORDS, dtype=S)[rng.integers(0, len(vocab.SEARCH_KEYWORDS), n)]
    source = np.array(vocab.VIEW_SOURCES, dtype=S)[rng.integers(0, len(vocab.VIEW_SOURCES), n)]
    view_meta = _json(("source", source), ("duration_seconds", rng.integers(5, 305, n)))
    search_meta = _json(("keyword", keyword), ("results_count", rng.integers(1, 51, n)))
    return Activity(np.where(is_view, "view", "search").astype(S), 1, t, who, product, channel,
                    np.where(is_view, view_meta, search_meta).astype(S))


def activity_rows(parts: list[Activity], ref: Reference, customer_ids: np.ndarray,
                  timestamps: Callable[[np.ndarray], np.ndarray]) -> Frame:
    """Clickstream rows (without ids) from ``parts``, in time order; ties by part rank, then draw order."""
    def cat(field: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(p, field)) for p in parts])

    t = cat("t")
    rank = np.concatenate([np.full(len(p.t), p.rank) for p in parts])
    order = np.lexsort((np.arange(len(t)), rank, t))
    product = cat("product")[order]
    product_id = np.where(product >= 0, ref.product_ids[np.maximum(product, 0)], -1)
    return {
        "customer_id": customer_ids[cat("customer")[order]],
        "activity_type": cat("kind")[order],
        "product_id": np.ma.masked_less(product_id, 0),
        "channel": ref.channel_names[cat("channel")[order]],
        "metadata": cat("metadata")[order],
        "created_at": timestamps(t[order]),
    }


def activity_frame(rng: np.random.Generator, n_target: int, clock: SimClock, ref: Reference,
                   customers: Customers, o: Orders, linked: list[Activity]) -> Frame:
    """The clickstream: purchases plus the ``linked`` events (cart adds, wishlist adds, reviews) as
    they happened, topped up with views and searches to about ``n_target`` rows. Ids follow created_at."""
    parts = [_purchases(o), *linked]
    parts.append(_browsing(rng, max(0, n_target - sum(len(p.t) for p in parts)), clock, ref, customers))

    rows = activity_rows(parts, ref, customers.ids, clock.ts)
    return {"id": np.arange(1, len(rows["created_at"]) + 1, dtype=np.int64), **rows}
