"""Inventory (one row per product × warehouse) and its movement log.

Stock starts at a bootstrap level and then moves with every order line (sale, from the
warehouse that ships the order), cancellation and return-to-sender (stock restored), completed
refund returns (restock), audits and damage. Purchasing restocks a row at the start of any day
whose outflow would take it below the reorder level, so quantity never goes negative and every
log row's ``quantity_before + quantity_change = quantity_after`` chains exactly per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse_simulator.copyio import Frame
from lakehouse_simulator.reference import Reference
from lakehouse_simulator.sampling import DAY, SimClock, event_offsets, round_to

S = np.dtypes.StringDType()
SAFETY_STOCK = 10
REORDER_LEVEL = 20


@dataclass(frozen=True)
class Stock:
    """Bootstrap inventory: row index = product index × warehouses + warehouse index."""

    product_ids: np.ndarray    # per row
    warehouse_ids: np.ndarray  # per row
    unit_cost: np.ndarray      # whole VND per row
    initial: np.ndarray        # quantity at the start of the period
    n_warehouses: int

    def index(self, product_idx: np.ndarray, warehouse_idx: np.ndarray) -> np.ndarray:
        return product_idx * self.n_warehouses + warehouse_idx


def draw_stock(rng: np.random.Generator, ref: Reference) -> Stock:
    """Unit cost 60–80 % of the list price and 20–100 units per product × warehouse."""
    n_p, n_w = len(ref.product_ids), len(ref.warehouse_ids)
    price = np.repeat(ref.product_price, n_w)
    unit_cost = round_to(price * rng.uniform(0.6, 0.8, n_p * n_w), 1000)
    return Stock(np.repeat(ref.product_ids, n_w), np.tile(ref.warehouse_ids, n_p), unit_cost,
                 rng.integers(20, 101, n_p * n_w), n_w)


@dataclass(frozen=True)
class Movements:
    """Stock movements (one future inventory_log row each); ``rank`` orders same-second events."""

    inv: np.ndarray
    t: np.ndarray
    delta: np.ndarray
    change_type: np.ndarray
    ref_type: np.ndarray
    ref_id: np.ndarray         # -1 = none
    note: np.ndarray
    actor: np.ndarray
    rank: np.ndarray

    @classmethod
    def of(cls, inv: np.ndarray, t: np.ndarray, delta: np.ndarray, change_type: str, ref_type: str | None,
           ref_id: np.ndarray | None, note: str | None, actor: str, rank: int) -> "Movements":
        n = len(inv)
        return cls(np.asarray(inv, dtype=np.int64), np.asarray(t, dtype=np.int64),
                   np.asarray(delta, dtype=np.int64),
                   np.full(n, change_type, dtype=S), np.full(n, ref_type, dtype=object),
                   np.full(n, -1, dtype=np.int64) if ref_id is None else np.asarray(ref_id, dtype=np.int64),
                   np.full(n, note, dtype=object), np.full(n, actor, dtype=S), np.full(n, rank, dtype=np.int64))

    @classmethod
    def concat(cls, parts: list["Movements"]) -> "Movements":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    def take(self, idx: np.ndarray) -> "Movements":
        return Movements(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def manual_movements(rng: np.random.Generator, n_orders: int, stock: Stock, clock: SimClock) -> Movements:
    """Audit adjustments (±1–5) and damage write-offs (−1–3), proportional to order volume."""
    n_inv = len(stock.initial)
    n_adj, n_dmg = max(1, round(0.03 * n_orders)), max(1, round(0.01 * n_orders))
    adj = rng.integers(1, 6, n_adj) * np.where(rng.random(n_adj) < 0.5, -1, 1)
    return Movements.concat([
        Movements.of(rng.integers(0, n_inv, n_adj), event_offsets(rng, n_adj, clock), adj,
                     "adjustment", "manual", None, "Kiểm kê định kỳ", "Inventory_Audit", 3),
        Movements.of(rng.integers(0, n_inv, n_dmg), event_offsets(rng, n_dmg, clock), -rng.integers(1, 4, n_dmg),
                     "damage", "manual", None, "Hàng hư hỏng", "Warehouse_Staff", 4),
    ])


def _restocks(rng: np.random.Generator, stock: Stock, moves: Movements, clock: SimClock) -> Movements:
    """Purchase-order restocks at 00:00 of each day whose outflow would breach the reorder level."""
    n_inv, days = len(stock.initial), clock.days
    cell = moves.inv * days + moves.t // DAY
    out = np.bincount(cell, weights=np.maximum(-moves.delta, 0), minlength=n_inv * days)
    inflow = np.bincount(cell, weights=np.maximum(moves.delta, 0), minlength=n_inv * days)
    out = np.rint(out).astype(np.int64).reshape(n_inv, days)
    inflow = np.rint(inflow).astype(np.int64).reshape(n_inv, days)
    balance = stock.initial.astype(np.int64).copy()
    inv_parts, day_parts, qty_parts = [], [], []
    for d in range(days):
        lot = rng.integers(1, 6, n_inv) * 10
        short = balance - out[:, d] < REORDER_LEVEL
        amount = np.where(short, -(-(out[:, d] + 2 * REORDER_LEVEL - balance) // 10) * 10 + lot, 0)
        balance += amount - out[:, d] + inflow[:, d]
        rows = np.flatnonzero(amount)
        inv_parts.append(rows)
        day_parts.append(np.full(len(rows), d * DAY, dtype=np.int64))
        qty_parts.append(amount[rows])
    inv = np.concatenate(inv_parts)
    po_number = np.arange(1, len(inv) + 1, dtype=np.int64)
    return Movements.of(inv, np.concatenate(day_parts), np.concatenate(qty_parts), "restock", "purchase_order",
                        po_number, "Nhập hàng từ nhà cung cấp", "Purchasing", 0)


def inventory_tables(rng: np.random.Generator, stock: Stock, moves: Movements,
                     clock: SimClock) -> tuple[Frame, Frame]:
    """The inventory and inventory_log frames, after adding the restocks the movements need."""
    moves = Movements.concat([_restocks(rng, stock, moves, clock), moves])
    n = len(moves.inv)
    seq = np.arange(n)
    # Per inventory row in time order: running balance.
    by_row = np.lexsort((seq, moves.rank, moves.t, moves.inv))
    delta = moves.delta[by_row]
    inv = moves.inv[by_row]
    before_global = np.cumsum(delta) - delta
    first = np.r_[True, inv[1:] != inv[:-1]]
    base = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    before = np.empty(n, dtype=np.int64)
    before[by_row] = stock.initial[inv] + before_global - before_global[base]
    after = before + moves.delta
    if np.any(after < 0):
        raise AssertionError("inventory would go negative: restocking is wrong")
    final = stock.initial + np.bincount(moves.inv, weights=moves.delta, minlength=len(stock.initial)).astype(np.int64)
    last_move = np.full(len(stock.initial), 0, dtype=np.int64)
    np.maximum.at(last_move, moves.inv, moves.t)
    last_count = np.zeros(len(stock.initial), dtype=np.int64)
    adj = moves.change_type == "adjustment"
    np.maximum.at(last_count, moves.inv[adj], moves.t[adj])

    n_inv = len(stock.initial)
    inventory = {
        "id": np.arange(1, n_inv + 1, dtype=np.int64),
        "product_id": stock.product_ids,
        "warehouse_id": stock.warehouse_ids,
        "quantity": final,
        "safety_stock": np.full(n_inv, SAFETY_STOCK, dtype=np.int64),
        "reorder_level": np.full(n_inv, REORDER_LEVEL, dtype=np.int64),
        "last_counted_at": clock.ts(last_count),
        "unit_cost": stock.unit_cost,
        "is_active": np.ones(n_inv, dtype=bool),
        "created_at": clock.start_of_period(n_inv),
        "updated_at": clock.ts(last_move),
    }
    # Log ids follow time, like an append-only audit table.
    order = np.lexsort((seq, moves.inv, moves.rank, moves.t))
    log = {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "inventory_id": moves.inv[order] + 1,
        "change_type": moves.change_type[order],
        "quantity_change": moves.delta[order],
        "quantity_before": before[order],
        "quantity_after": after[order],
        "reference_id": np.ma.masked_less(moves.ref_id[order], 0),
        "reference_type": moves.ref_type[order],
        "note": moves.note[order],
        "changed_by": moves.actor[order],
        "created_at": clock.ts(moves.t[order]),
    }
    return inventory, log
