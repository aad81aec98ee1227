"""Customers: sign-ups over the period, then totals and tiers derived from their orders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse_simulator import vocab
from lakehouse_simulator.copyio import Frame
from lakehouse_simulator.reference import Reference, person_names, phone_numbers
from lakehouse_simulator.sampling import SimClock, ids_with_gaps, rank_within, signup_offsets, weighted

S = np.dtypes.StringDType()

#: Tier thresholds (trigger T7): (minimum total_spent in VND, tier, loyalty multiplier × 2).
TIERS: tuple[tuple[int, str, int], ...] = (
    (50_000_000, "Platinum", 6), (20_000_000, "Gold", 4), (5_000_000, "Silver", 3), (0, "Bronze", 2),
)


@dataclass(frozen=True)
class Customers:
    """Customers in id order (= sign-up order); ``created`` are second offsets."""

    ids: np.ndarray
    created: np.ndarray
    ward: np.ndarray          # ward_code
    channel: np.ndarray       # registration channel index (id - 1)
    propensity_cum: np.ndarray  # running sum of purchase propensity (for pick_existing)
    pii: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)


def draw_customers(rng: np.random.Generator, n: int, clock: SimClock, ref: Reference) -> Customers:
    """Sign-up time, home ward, registration channel, PII and purchase propensity of ``n`` customers."""
    ids = ids_with_gaps(rng, n, 0.01)
    created = signup_offsets(rng, n, clock)
    ward = ref.ward_codes[weighted(rng, n, ref.ward_weights)]
    channel = weighted(rng, n, ref.channel_weights)
    # A heavy-ish tail: a few customers buy far more often than most.
    propensity = rng.lognormal(0.0, 1.1, n)
    names, family, given = person_names(rng, n)
    domain = np.array(vocab.EMAIL_DOMAINS, dtype=S)[weighted(rng, n, np.array(vocab.EMAIL_DOMAIN_WEIGHTS))]
    email = np.strings.add(np.strings.add(np.strings.add(given, "."), np.strings.add(family, ids.astype(S))),
                           np.strings.add("@", domain))
    seq = np.strings.zfill((rank_within(channel) + 1).astype(S), 3)
    code = np.strings.add(np.strings.add("KH_", ref.channel_names[channel]), np.strings.add("_", seq))
    pii = {"customer_code": code, "name": names, "email": email, "phone": phone_numbers(rng, n)}
    return Customers(ids, created, ward, channel, np.cumsum(propensity), pii)


def tier_of(total_spent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tier and loyalty points (T7) for totals in whole VND."""
    tier = np.full(len(total_spent), "Bronze", dtype=object)
    mult2 = np.full(len(total_spent), 2, dtype=np.int64)
    for threshold, name, m2 in reversed(TIERS):
        hit = total_spent >= threshold
        tier[hit], mult2[hit] = name, m2
    points = ((total_spent // 10_000) * mult2 + 1) // 2   # numeric → int rounds half up, as in PostgreSQL
    return tier.astype(S), points


def customer_frame(c: Customers, clock: SimClock, *, total_spent: np.ndarray,
                   last_order: np.ndarray, last_change: np.ndarray) -> Frame:
    """The customers table once orders are known.

    ``total_spent`` is whole VND over Completed orders; ``last_order`` the latest order time
    (-1 when none); ``last_change`` the latest time an order changed the row (-1 when none).
    """
    tier, points = tier_of(total_spent)
    updated = np.maximum(c.created, np.maximum(last_order, last_change))
    return {
        "id": c.ids,
        "customer_code": c.pii["customer_code"],
        "geo_location_id": c.ward,
        "order_channel_id": c.channel.astype(np.int64) + 1,
        "created_at": clock.ts(c.created),
        "is_active": np.ones(len(c), dtype=bool),
        "name": c.pii["name"],
        "email": c.pii["email"],
        "phone": c.pii["phone"],
        "tier": tier,
        "total_spent": total_spent,
        "loyalty_points": points,
        "last_order_date": clock.ts(np.ma.masked_less(last_order, 0)),
        "updated_at": clock.ts(updated),
    }
