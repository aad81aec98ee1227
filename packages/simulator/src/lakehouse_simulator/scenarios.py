"""What a simulated day looks like (:class:`Scenario`) and how the source misbehaves (:class:`SourceBehaviour`).

Scenarios are rows of one table (:data:`SCENARIOS`); every knob is a plain multiplier or share
so that a new scenario is one more row, not more code. Volumes are per simulated day at
``scale`` 1 (≈ 100,000 orders / 30 days, as for :func:`lakehouse_simulator.generate.generate`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

#: Normal daily volumes at scale 1 (per 30 days: 100k orders, 10k sign-ups, 1M activity rows).
ORDERS_PER_DAY = 100_000 / 30
CUSTOMERS_PER_DAY = 10_000 / 30


@dataclass(frozen=True)
class Scenario:
    """Knobs of one kind of day. Defaults are a normal day."""

    name: str
    #: Multiplier of the whole day's order volume.
    order_rate: float = 1.0
    #: Order rate multiplier during ``burst_hours`` (the extra orders are one-line "deal" orders).
    burst_rate: float = 1.0
    burst_hours: tuple[int, ...] = ()
    #: Multiplier of browsing, new carts and wishlist adds.
    activity_rate: float = 1.0
    #: Multiplier of cart conversion (share of orders placed from a cart, checkouts of open carts).
    conversion: float = 1.0
    #: Share of ordinary orders that use a running campaign of their channel.
    discount_share: float = 0.3
    #: Campaigns launched at 00:00 on every channel: how many days they run, percent range.
    campaigns: bool = False
    campaign_word: str = "Mega Sale"
    campaign_days: int = 1
    campaign_pct: tuple[int, int] = (10, 30)
    #: Deal orders per unit of deal stock (> 1 → some deal orders find no stock and are cancelled).
    oversubscription: float = 0.0
    #: Probability that an order placed today is cancelled while Pending.
    cancel_rate: float = 0.07
    #: New fraudulent customers per unit of scale (at least 2 when > 0), their orders each and
    #: the probability that one of their orders is cancelled (payment Failed).
    fraud_customers: float = 0.0
    fraud_orders: tuple[int, int] = (4, 10)
    fraud_cancel: float = 0.85


#: The scenario table.
SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("normal"),
    # "0h / 12h / 20h" flash windows: ×6 orders on a handful of deeply discounted products whose
    # stock runs out (deal orders that find no stock are cancelled).
    Scenario("flash_sale", order_rate=1.5, burst_rate=6.0, burst_hours=(0, 1, 12, 13, 20, 21, 22, 23),
             discount_share=0.5, campaigns=True, campaign_word="Flash Sale", campaign_days=1,
             campaign_pct=(30, 50), oversubscription=1.25, cancel_rate=0.09),
    # A marketing push: new campaigns on every channel, three times the browsing and carts, twice
    # the cart conversion, most orders discounted.
    Scenario("promotion_blast", order_rate=1.6, activity_rate=3.0, conversion=2.0, discount_share=0.7,
             campaigns=True, campaign_word="Mega Sale", campaign_days=3, campaign_pct=(15, 40)),
    # A few new accounts place bursts of expensive orders shipped far from home; most are cancelled.
    Scenario("fraud_attack", fraud_customers=15.0),
)}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})") from None


@dataclass(frozen=True)
class SourceBehaviour:
    """Deterministic switches that make the simulator behave like the real source (DESIGN §9).

    All off by default: a cooperative source where every change bumps ``updated_at`` to sim time.

    * ``unbumped_update_share``: share of updated rows (orders, payment, shipment, customers, cart,
      inventory, order_return, discount) whose ``updated_at`` is left untouched although other
      columns changed, like triggers T11 (order status from the shipment) and T3 (stock deductions).
    * ``wall_clock_columns``: customers.updated_at and cart.updated_at of rows changed today, the
      history rows of status transitions (actor ``System_Trigger``) and the ``sale``/``restock``
      inventory_log rows get the database wall clock ``now()::timestamp`` instead of sim time, like
      the triggers of source-system.md §1.3/§1.5.
    * ``late_rows_share``: share of today's direct orders (with their lines, payment, shipment,
      first history row and purchase event), browsing events and wishlist adds that arrive late:
      inserted today with timestamps of the previous day (an offline channel syncing overnight).
    """

    unbumped_update_share: float = 0.0
    wall_clock_columns: bool = False
    late_rows_share: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be within [0, 1], got {value}")
