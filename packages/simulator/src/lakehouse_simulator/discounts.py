"""Promotions: 20 campaigns bootstrapped at the start of the period, then new ones during it.

Every row satisfies the validation triggers T1/T2: start_date <= end_date, end_date >= created_at,
a percentage is in (0, 70], a fixed amount is > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse_simulator import vocab
from lakehouse_simulator.copyio import Frame
from lakehouse_simulator.reference import Reference
from lakehouse_simulator.sampling import DAY, SimClock, round_to

S = np.dtypes.StringDType()
N_BOOTSTRAP = 20


@dataclass(frozen=True)
class Discounts:
    """Discounts in id order; times are second offsets (start may precede the period)."""

    ids: np.ndarray
    created: np.ndarray
    start: np.ndarray
    end: np.ndarray
    channel: np.ndarray       # channel index of source_system
    is_percent: np.ndarray
    value: np.ndarray         # percent points or whole VND

    def active_at(self, t: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """Boolean matrix (event × discount): usable at time t on that channel."""
        t = t[:, None]
        return ((self.created[None, :] <= t) & (self.start[None, :] <= t) & (t <= self.end[None, :])
                & (self.channel[None, :] == channel[:, None]))


def draw_discounts(rng: np.random.Generator, clock: SimClock, ref: Reference) -> Discounts:
    """Bootstrap campaigns (four per channel, spread over the period) plus one new campaign every two days."""
    n_chan = len(ref.channel_names)
    n_new = max(1, clock.days // 2)
    n = N_BOOTSTRAP + n_new
    created = np.zeros(n, dtype=np.int64)
    created[N_BOOTSTRAP:] = np.sort(rng.integers(0, clock.seconds, n_new))
    start = np.empty(n, dtype=np.int64)
    start[:N_BOOTSTRAP] = (rng.integers(-10, max(clock.days, 1), N_BOOTSTRAP)) * DAY
    start[N_BOOTSTRAP:] = (created[N_BOOTSTRAP:] // DAY + rng.integers(0, 4, n_new)) * DAY
    end = start + rng.integers(7, 33, n) * DAY - 1
    end = np.maximum(end, created + DAY)                  # T1: never already over when created
    channel = np.r_[np.arange(N_BOOTSTRAP) % n_chan, rng.integers(0, n_chan, n_new)]
    is_percent = rng.random(n) < 0.45
    value = np.where(is_percent, rng.integers(5, 31, n), round_to(rng.integers(20_000, 500_001, n), 10_000))
    ids = np.arange(1, n + 1, dtype=np.int64)
    return Discounts(ids, created, start, end, channel, is_percent, value)


def discount_frame(rng: np.random.Generator, d: Discounts, clock: SimClock, ref: Reference) -> Frame:
    """The discount table."""
    n = len(d.ids)
    word = np.array(vocab.DISCOUNT_CAMPAIGNS, dtype=S)[rng.integers(0, len(vocab.DISCOUNT_CAMPAIGNS), n)]
    amount = np.where(d.is_percent, np.strings.add(d.value.astype(S), "%"),
                      np.strings.add((d.value // 1000).astype(S), "K"))
    name = np.strings.add(np.strings.add(np.strings.add(word, " "), ref.channel_names[d.channel]),
                          np.strings.add(" ", amount))
    applies = np.array(["order", "product", "category"], dtype=S)[rng.choice(3, n, p=[0.6, 0.25, 0.15])]
    return {
        "id": d.ids,
        "name": name,
        "discount_type": np.where(d.is_percent, "%", "fixed").astype(S),
        "value": d.value,
        "start_date": clock.ts(d.start),
        "end_date": clock.ts(d.end),
        "applies_to": applies,
        "source_system": ref.channel_names[d.channel],
        "is_active": np.ones(n, dtype=bool),
        "created_at": clock.ts(d.created),
        "updated_at": clock.ts(d.created),
    }
