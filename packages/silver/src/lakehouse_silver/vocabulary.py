"""One canonical vocabulary per enumerated column (source-system.md §1.4).

Source values are matched case- and separator-insensitively (``DeliveryFailed``,
``delivery failed`` and ``DELIVERY_FAILED`` are the same key); synonyms map to one
canonical, lower snake_case value (``Momo``/``MoMo`` → ``momo``, ``Cash on
Delivery``/``COD`` → ``cod``). A value outside the vocabulary is quarantined with
the rule ``unknown_<column>``, never guessed.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def _canonical(*values: str, synonyms: dict[str, str] | None = None) -> dict[str, str]:
    mapping = {_key(v): v for v in values}
    for alias, canonical in (synonyms or {}).items():
        mapping[_key(alias)] = canonical
    return mapping


def _key(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch.isalnum() or ch == "%")


VOCABULARIES: dict[str, dict[str, str]] = {
    "order_status": _canonical(
        "pending", "confirmed", "processing", "packed", "shipped", "delivering", "delivered",
        "delivery_failed", "completed", "cancelled", "returned", "refunded"),
    "payment_status": _canonical("pending", "completed", "cancelled", "refunded", "failed"),
    "payment_method": _canonical(
        "momo", "zalopay", "vnpay", "credit_card", "cod", "bank_transfer", "paypal",
        synonyms={"Cash on Delivery": "cod"}),
    "shipment_status": _canonical("created", "in_transit", "failed", "delivered", "return_to_sender"),
    "cart_status": _canonical("active", "checked_out", "abandoned", "expired"),
    "return_status": _canonical("pending", "approved", "rejected", "processing", "completed"),
    "return_type": _canonical("refund", "exchange", "repair"),
    "tier": _canonical("bronze", "silver", "gold", "platinum"),
    "inventory_change": _canonical("sale", "restock", "return", "adjustment", "damage"),
    "activity_type": _canonical("view", "search", "add_to_cart", "remove_from_cart", "purchase", "review",
                                "wishlist"),
    "channel": _canonical("shopee", "lazada", "tiki", "website", "tiktok"),
    "discount_type": _canonical("percent", "fixed", synonyms={"%": "percent"}),
}

#: (table, column) → vocabulary.
ENUM_COLUMNS: dict[tuple[str, str], str] = {
    ("orders", "status"): "order_status",
    ("order_status_history", "status"): "order_status",
    ("payment", "payment_status"): "payment_status",
    ("payment", "payment_method"): "payment_method",
    ("shipment", "shipping_status"): "shipment_status",
    ("cart", "status"): "cart_status",
    ("cart", "channel"): "channel",
    ("order_return", "status"): "return_status",
    ("order_return", "return_type"): "return_type",
    ("customers", "tier"): "tier",
    ("inventory_log", "change_type"): "inventory_change",
    ("customer_activity_log", "activity_type"): "activity_type",
    ("customer_activity_log", "channel"): "channel",
    ("product_review", "source_system"): "channel",
    ("discount", "source_system"): "channel",
    ("discount", "discount_type"): "discount_type",
}


def enum_columns(table: str) -> dict[str, str]:
    """Enumerated columns of ``table`` → vocabulary name."""
    return {column: vocab for (t, column), vocab in ENUM_COLUMNS.items() if t == table}


def canonical(column: Column, vocabulary: str) -> Column:
    """The canonical value of ``column`` in ``vocabulary``; NULL when unknown (or NULL)."""
    mapping = VOCABULARIES[vocabulary]
    key = F.regexp_replace(F.lower(column), r"[^\p{L}\p{N}%]", "")
    lookup = F.create_map(*[F.lit(x) for pair in mapping.items() for x in pair])
    return lookup[key]
