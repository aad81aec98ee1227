"""Vectorised random helpers shared by the table generators.

Simulated time is handled as int64 **seconds since the start of the period** (``offsets``);
conversion to timestamps happens only when a frame is built (:func:`SimClock.ts`).
Every function draws from the Generator it is given, in a fixed order, so a given seed
always produces the same arrays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

DAY = 86_400
HOUR = 3_600

#: Relative shop traffic per hour of day (local time): quiet at night, peaks at lunch and evening.
HOUR_WEIGHTS = np.array([
    0.8, 0.5, 0.3, 0.2, 0.2, 0.3, 0.6, 1.0, 1.5, 2.0, 2.3, 2.5,
    2.8, 2.5, 2.2, 2.1, 2.2, 2.4, 2.7, 3.1, 3.4, 3.3, 2.6, 1.6,
])
#: Relative traffic per weekday (Monday = 0): weekends are busier.
WEEKDAY_WEIGHTS = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.25])


@dataclass(frozen=True)
class SimClock:
    """The simulated period ``[start, start + days)``; ``end`` is the simulator clock after the run."""

    start: dt.date
    days: int

    @property
    def seconds(self) -> int:
        return self.days * DAY

    @property
    def start_ts(self) -> np.datetime64:
        return np.datetime64(self.start.isoformat(), "s")

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time()) + dt.timedelta(days=self.days)

    def ts(self, offsets: np.ndarray) -> np.ndarray:
        """Timestamps (datetime64[s]) for second offsets; masked offsets become NaT."""
        if isinstance(offsets, np.ma.MaskedArray):
            out = self.start_ts + np.ma.getdata(offsets).astype("timedelta64[s]")
            return np.where(np.ma.getmaskarray(offsets), np.datetime64("NaT", "s"), out)
        return self.start_ts + np.asarray(offsets).astype("timedelta64[s]")

    def start_of_period(self, n: int) -> np.ndarray:
        """``n`` copies of the period start (reference data is created then)."""
        return np.full(n, self.start_ts)

    def yyyymmdd(self, offsets: np.ndarray) -> np.ndarray:
        """The sim-time calendar date of each offset as ``YYYYMMDD`` strings."""
        days = self.ts(offsets).astype("datetime64[D]").astype(np.dtypes.StringDType())
        return np.strings.replace(days, "-", "")


def event_offsets(rng: np.random.Generator, n: int, clock: SimClock) -> np.ndarray:
    """``n`` sorted event times over the period with daily and weekly traffic patterns."""
    first_weekday = clock.start.weekday()
    day_w = WEEKDAY_WEIGHTS[(np.arange(clock.days) + first_weekday) % 7]
    day = rng.choice(clock.days, size=n, p=day_w / day_w.sum())
    hour = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    second = rng.integers(0, HOUR, size=n)
    return np.sort(day.astype(np.int64) * DAY + hour * HOUR + second)


def signup_offsets(rng: np.random.Generator, n: int, clock: SimClock) -> np.ndarray:
    """Sorted sign-up times, front-loaded (a base of customers exists early); the first is at 0."""
    out = np.sort((rng.random(n) ** 3 * clock.seconds).astype(np.int64))
    if n:
        out[0] = 0
    return out


def exp_seconds(rng: np.random.Generator, mean_hours: float | np.ndarray, size: int | tuple,
                minimum: int = 60) -> np.ndarray:
    """Exponential durations in whole seconds (at least ``minimum``)."""
    return np.maximum(np.rint(rng.exponential(1.0, size) * np.asarray(mean_hours) * HOUR), minimum).astype(np.int64)


def weighted(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    """``n`` indices drawn with replacement, proportional to ``weights``."""
    w = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(w), size=n, p=w / w.sum())


def pick_existing(rng: np.random.Generator, times: np.ndarray, created_sorted: np.ndarray,
                  cum_weights: np.ndarray) -> np.ndarray:
    """For each event time, a weighted entity among those created at or before it.

    ``created_sorted`` are the entities' creation offsets in ascending order and ``cum_weights``
    the running sum of their weights in that order. Every time must be >= created_sorted[0].
    """
    available = np.searchsorted(created_sorted, times, side="right")
    if np.any(available == 0):
        raise ValueError("an event happens before any entity exists")
    target = rng.random(len(times)) * cum_weights[available - 1]
    return np.minimum(np.searchsorted(cum_weights, target, side="right"), available - 1)


def ids_with_gaps(rng: np.random.Generator, n: int, gap_rate: float) -> np.ndarray:
    """Serial ids 1.. with the occasional hole, like sequence values burnt by rolled-back inserts."""
    holes = rng.random(n) < gap_rate
    return np.arange(1, n + 1, dtype=np.int64) + np.cumsum(holes)


def rank_within(groups: np.ndarray) -> np.ndarray:
    """0-based position of each element among the elements of its group, in array order."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(groups)]))
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - run_start
    return rank


def redraw_duplicates(rng: np.random.Generator, groups: np.ndarray, values: np.ndarray,
                      weights: np.ndarray, max_rounds: int = 100) -> np.ndarray:
    """Make ``values`` distinct within each group by redrawing repeated ones (weighted).

    Groups must have fewer members than there are distinct values.
    """
    values = values.copy()
    if len(values) == 0:
        return values
    for _ in range(max_rounds):
        order = np.lexsort((np.arange(len(values)), values, groups))
        dup_sorted = np.r_[False, (groups[order][1:] == groups[order][:-1]) & (values[order][1:] == values[order][:-1])]
        dup = order[dup_sorted]
        if len(dup) == 0:
            return values
        values[np.sort(dup)] = weighted(rng, len(dup), weights)
    raise RuntimeError("could not draw distinct values within groups")


def first_occurrence(*keys: np.ndarray) -> np.ndarray:
    """Boolean mask keeping the first element (in array order) of each distinct key tuple."""
    n = len(keys[0])
    order = np.lexsort((np.arange(n), *reversed(keys)))
    same = np.ones(n - 1, dtype=bool) if n else np.zeros(0, dtype=bool)
    for k in keys:
        same &= k[order][1:] == k[order][:-1]
    keep = np.ones(n, dtype=bool)
    keep[order[1:][same]] = False
    return keep


def round_to(values: np.ndarray, step: int) -> np.ndarray:
    """Round to a multiple of ``step`` (int64)."""
    return (np.rint(np.asarray(values, dtype=np.float64) / step) * step).astype(np.int64)
