"""Status transitions within one simulated day, for many orders (or returns) at once.

The bulk generator draws each order's whole path up front. Advancing day by day cannot know
the future, so here an order is a small Markov chain: from its current status it moves to the
next one after an exponential wait (memoryless, so an order waiting since yesterday simply
draws again from the start of the day). All orders step together, round by round, until none
has a transition left before the end of the day; every round draws the same number of values,
so the outcome depends only on the inputs and the generator.

Branch probabilities and mean durations match the paths of :mod:`lakehouse_simulator.orders`:
cancellation while Pending (scenario-dependent) or Confirmed, a first delivery attempt failing
with p ≈ 13 % (the retry always succeeds), a failed delivery shipped again (75 %) or returned to
the sender (25 %). Side effects follow each transition: payment captured at confirmation
(prepaid) or on delivery (COD), cancelled / Failed / Refunded (only from Completed), shipment
InTransit / Delivered / Failed / ReturnToSender with its attempt counter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse_simulator.orders import (CANCELLED, COMPLETED, CONFIRMED, DELIVERED, DELIVERING, DELIVERY_FAILED,
                                        PACKED, PAY_CANCELLED, PAY_COMPLETED, PAY_PENDING, PAY_REFUNDED, PENDING,
                                        PROCESSING, RETURNED, SHIP_DELIVERED, SHIP_FAILED, SHIP_IN_TRANSIT,
                                        SHIP_RETURN, SHIPPED, STATUS_NAMES)
from lakehouse_simulator.sampling import HOUR

PAY_FAILED = 4
PAYMENT_STATUSES = ("Pending", "Completed", "Cancelled", "Refunded", "Failed")
SHIPMENT_STATUSES = ("Created", "InTransit", "Failed", "Delivered", "ReturnToSender")
N_STATUS = len(STATUS_NAMES)
TERMINAL = np.isin(np.arange(N_STATUS), [COMPLETED, CANCELLED, RETURNED])

#: Normal successor of each status (-1 for terminal ones) and the alternative branch.
DEFAULT_NEXT = np.full(N_STATUS, -1)
ALT_NEXT = np.full(N_STATUS, -1)
for _a, _b in ((PENDING, CONFIRMED), (CONFIRMED, PROCESSING), (PROCESSING, PACKED), (PACKED, SHIPPED),
               (SHIPPED, DELIVERING), (DELIVERING, DELIVERED), (DELIVERY_FAILED, SHIPPED), (DELIVERED, COMPLETED)):
    DEFAULT_NEXT[_a] = _b
for _a, _b in ((PENDING, CANCELLED), (CONFIRMED, CANCELLED), (DELIVERING, DELIVERY_FAILED),
               (DELIVERY_FAILED, RETURNED)):
    ALT_NEXT[_a] = _b
#: Every (from, to) edge the engine can produce (for tests of history rows).
EDGES: frozenset[tuple[str, str]] = frozenset(
    (str(STATUS_NAMES[a]), str(STATUS_NAMES[b])) for table in (DEFAULT_NEXT, ALT_NEXT)
    for a, b in enumerate(table) if b >= 0)

P_CANCEL_CONFIRMED = 0.03 / 0.93      # paths of orders.PATHS: 3 % of all orders, 93 % get confirmed
P_FIRST_DELIVERY_FAILS = 0.12 / 0.90
P_RETURN_AFTER_FAILURE = 0.25

METHOD = -1.0                          # a share of the shipping method's hours (mean 0.575 × hours)
MEAN_HOURS = np.zeros((N_STATUS, N_STATUS))
for (_a, _b), _h in {(PENDING, CONFIRMED): 1.5, (CONFIRMED, PROCESSING): 3.0, (PROCESSING, PACKED): 5.0,
                     (PACKED, SHIPPED): 8.0, (SHIPPED, DELIVERING): 10.0, (DELIVERING, DELIVERED): METHOD,
                     (DELIVERING, DELIVERY_FAILED): METHOD, (DELIVERY_FAILED, SHIPPED): 24.0,
                     (DELIVERED, COMPLETED): 72.0, (PENDING, CANCELLED): 6.0, (CONFIRMED, CANCELLED): 10.0,
                     (DELIVERY_FAILED, RETURNED): 36.0}.items():
    MEAN_HOURS[_a, _b] = _h
SPED_UP = np.isin(np.arange(N_STATUS), [CONFIRMED, PROCESSING, PACKED, SHIPPED, DELIVERING])
NONE = -1


@dataclass
class OrderFlow:
    """Per-order state going into a day; the engine updates it in place.

    Times are second offsets from the start of the day; ``*_t`` outputs are ``NONE`` unless the
    event happened today. ``restore_t`` is when stock went back to the shelf (cancelled after the
    sale was booked, or returned to the sender).
    """

    status: np.ndarray
    t: np.ndarray                 # the next step is drawn from here
    attempts: np.ndarray
    cod: np.ndarray
    hours: np.ndarray             # shipping method hours
    cancel_p: np.ndarray          # Pending → Cancelled
    cancel_mean: np.ndarray       # mean hours of that cancellation
    failed_payment: np.ndarray    # a cancellation while Pending leaves the payment Failed
    pay: np.ndarray
    ship: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.status)
        for name in ("pay_t", "ship_t", "last_t", "confirmed_t", "delivered_t", "cancelled_t", "completed_t",
                     "restore_t"):
            setattr(self, name, np.full(n, NONE, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.status)


def run_orders(rng: np.random.Generator, f: OrderFlow, day_end: int,
               max_rounds: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move every order through today's transitions; return history rows (order index, status, time)."""
    n = len(f)
    rows_i, rows_s, rows_t = [], [], []
    speed = np.minimum(1.0, f.hours / 120.0)
    idle = TERMINAL[f.status] | (DEFAULT_NEXT[f.status] < 0) | (f.t >= day_end)
    for _ in range(max_rounds):
        u = rng.random(n)
        e = rng.exponential(1.0, n)
        if idle.all():
            break
        s = f.status
        p_alt = np.select([s == PENDING, s == CONFIRMED, s == DELIVERING, s == DELIVERY_FAILED],
                          [f.cancel_p, P_CANCEL_CONFIRMED, np.where(f.attempts == 0, P_FIRST_DELIVERY_FAILS, 0.0),
                           P_RETURN_AFTER_FAILURE], 0.0)
        nxt = np.where(u < p_alt, ALT_NEXT[s], DEFAULT_NEXT[s])
        safe = np.maximum(nxt, 0)
        mean = MEAN_HOURS[s, safe]
        mean = np.where(mean == METHOD, 0.575 * f.hours, mean * np.where(SPED_UP[safe], speed, 1.0))
        mean = np.where((s == PENDING) & (nxt == CANCELLED), f.cancel_mean, mean)
        when = f.t + np.maximum(np.rint(e * mean * HOUR), 60).astype(np.int64)
        go = ~idle & (nxt >= 0) & (when < day_end)
        idle |= ~go
        idx = np.flatnonzero(go)
        if len(idx) == 0:
            break
        _apply(f, idx, s[idx], nxt[idx], when[idx])
        rows_i.append(idx)
        rows_s.append(nxt[idx])
        rows_t.append(when[idx])
        idle[idx] = TERMINAL[nxt[idx]]
    cat = (lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
    return cat(rows_i), cat(rows_s), cat(rows_t)


def _apply(f: OrderFlow, idx: np.ndarray, old: np.ndarray, new: np.ndarray, t: np.ndarray) -> None:
    """Status ``old → new`` at ``t`` for orders ``idx``, with payment and shipment side effects."""
    f.status[idx] = new
    f.t[idx] = t
    f.last_t[idx] = t
    pay, cod = f.pay[idx], f.cod[idx]
    new_pay = pay.copy()
    new_pay = np.where((new == CONFIRMED) & ~cod & (pay == PAY_PENDING), PAY_COMPLETED, new_pay)
    new_pay = np.where((new == DELIVERED) & cod & (pay == PAY_PENDING), PAY_COMPLETED, new_pay)
    ends = (new == CANCELLED) | (new == RETURNED)
    refund = ends & (pay == PAY_COMPLETED)                   # T8: Refunded only from Completed
    fail = (new == CANCELLED) & (old == PENDING) & f.failed_payment[idx]
    new_pay = np.where(refund, PAY_REFUNDED,
                       np.where(ends & (pay == PAY_PENDING), np.where(fail, PAY_FAILED, PAY_CANCELLED), new_pay))
    moved = new_pay != pay
    f.pay[idx] = new_pay
    f.pay_t[idx[moved]] = t[moved]

    ship = f.ship[idx]
    new_ship = np.select([new == SHIPPED, new == DELIVERED, new == DELIVERY_FAILED, new == RETURNED],
                         [SHIP_IN_TRANSIT, SHIP_DELIVERED, SHIP_FAILED, SHIP_RETURN], ship)
    moved = new_ship != ship
    f.ship[idx] = new_ship
    f.ship_t[idx[moved]] = t[moved]
    f.attempts[idx] += np.isin(new, [DELIVERED, DELIVERY_FAILED])

    for status, field in ((CONFIRMED, "confirmed_t"), (DELIVERED, "delivered_t"), (CANCELLED, "cancelled_t"),
                          (COMPLETED, "completed_t")):
        hit = new == status
        getattr(f, field)[idx[hit]] = t[hit]
    restore = (new == RETURNED) | (new == CANCELLED)
    f.restore_t[idx[restore]] = t[restore]


# ----------------------------------------------------------------------------- returns
RETURN_STATUSES = ("pending", "approved", "processing", "completed", "rejected")
R_PENDING, R_APPROVED, R_PROCESSING, R_COMPLETED, R_REJECTED = range(5)
#: Mean hours from each open status to the next one (pending may instead be rejected, p = 0.1).
_RETURN_MEAN_HOURS = np.array([24.0, 24.0, 48.0, 0.0, 0.0])
P_REJECT = 0.1


def run_returns(rng: np.random.Generator, status: np.ndarray, t: np.ndarray,
                day_end: int) -> tuple[np.ndarray, np.ndarray]:
    """Progress return requests (pending → approved → processing → completed, or rejected).

    Returns the new status codes and the time of the last change today (``NONE`` if unchanged).
    """
    status, t = status.copy(), t.copy()
    last = np.full(len(status), NONE, dtype=np.int64)
    for _ in range(3):
        u = rng.random(len(status))
        e = rng.exponential(1.0, len(status))
        open_ = status < R_COMPLETED
        when = t + np.maximum(np.rint(e * _RETURN_MEAN_HOURS[np.minimum(status, 4)] * HOUR), HOUR).astype(np.int64)
        go = open_ & (when < day_end)
        nxt = np.where((status == R_PENDING) & (u < P_REJECT), R_REJECTED, status + 1)
        status = np.where(go, nxt, status)
        t = np.where(go, when, t)
        last = np.where(go, when, last)
    return status, last
