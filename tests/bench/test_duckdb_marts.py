"""bench/duckdb_marts.py: the seven marts from a tiny hand-written source (no Spark, no PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import duckdb_marts  # noqa: E402

AS_OF = dt.date(2023, 1, 3)
ID, FK, INT = pa.int32(), pa.int64(), pa.int32()
TS, TEXT, BOOL = pa.timestamp("us"), pa.string(), pa.bool_()


def money(p: int = 12) -> pa.DataType:
    return pa.decimal128(p, 2)


def ts(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def table(columns: dict[str, pa.DataType], rows: list[tuple]) -> pa.Table:
    names = list(columns)
    data = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    for name, kind in columns.items():
        if kind == TS:
            data[name] = [ts(v) for v in data[name]]
        elif pa.types.is_decimal(kind):
            data[name] = [None if v is None else Decimal(v) for v in data[name]]
    return pa.table({n: pa.array(data[n], type=columns[n]) for n in names})


def source() -> dict[str, pa.Table]:
    """Three shop days (2023-01-01..03) and an order of the next day, which the marts leave out."""
    return {
        "order_channel": table({"id": ID, "name": TEXT}, [(1, "Shopee"), (2, "Website"), (3, "Tiki")]),
        "geo_location": table({"ward_code": FK, "ward_name": TEXT, "province_name": TEXT},
                              [(101, "Phường 1", "Hà Nội"), (202, "Phường 2", " Đà Nẵng ")]),
        "customers": table(
            {"id": ID, "customer_code": TEXT, "geo_location_id": FK, "name": TEXT, "email": TEXT, "phone": TEXT,
             "tier": TEXT, "created_at": TS},
            [(1, "KH_Shopee_001", 101, "Nguyễn Văn An", "an@mail.example.com", "0912345678", "Gold",
              "2023-01-01 08:00:00"),
             (2, "KH_Website_001", 202, "Trần Thị Hoa", "hoa@mail.example.com", "0987654321", "Bronze",
              "2023-01-01 09:00:00"),
             (3, "KH_Tiki_001", 101, "Lê Minh", "minh@mail.example.com", "0900000000", "Bronze",
              "2023-01-02 09:00:00")]),
        "orders": table(
            {"id": ID, "customer_id": FK, "shipping_id": FK, "location_id": FK, "order_channel_id": FK,
             "order_date": TS, "status": TEXT, "total_price": money(11)},
            [(1, 1, 1, 101, 1, "2023-01-02 10:00:00", "Completed", "300.00"),
             (2, 1, None, 101, 1, "2023-01-02 23:30:00", "Cancelled", "50.00"),   # still 2 January in the shop
             (3, 2, 2, 202, 2, "2023-01-03 05:00:00", "DeliveryFailed", "120.00"),  # 2 January in UTC
             (4, 1, None, 101, 1, "2023-01-04 09:00:00", "Pending", "999.00"),    # after as_of
             (5, 2, None, 202, 2, "2023-01-03 09:00:00", "Teleported", "77.00")]),  # quarantined by silver
        "order_items": table(
            {"id": ID, "order_id": FK, "product_id": FK, "unit_price": money(), "discount_amount": money(),
             "quantity": INT, "amount": money()},
            [(1, 1, 10, "100.00", "0.00", 2, "200.00"),
             (2, 1, 11, "100.00", "0.00", 1, "100.00"),
             (3, 2, 10, "50.00", "0.00", 1, "50.00"),
             (4, 3, 10, "130.00", "10.00", 1, "120.00"),
             (5, 3, 11, "0.00", "5.00", 1, "-5.00"),     # negative: silver clamps it to 0
             (6, 4, 11, "999.00", "0.00", 1, "999.00"),
             (7, 5, 10, "77.00", "0.00", 4, "77.00")]),
        "order_return": table(
            {"id": ID, "order_id": FK, "customer_id": FK, "reason": TEXT, "return_type": TEXT, "status": TEXT,
             "refund_amount": money(), "created_at": TS, "resolved_at": TS},
            [(1, 1, 1, "Defective ", "refund", "pending", "100.00", "2023-01-03 12:00:00", "2023-01-04 00:00:00"),
             (2, 1, 1, "Defective", "exchange", "pending", "50.00", "2023-01-03 13:00:00", None),    # no refund
             (3, 1, 1, "Wrong item", "refund", "Rejected", "30.00", "2023-01-03 14:00:00", None)]),  # no refund
        "shipment": table(
            {"id": ID, "logistics_partner_id": FK, "warehouse_id": FK, "is_expedited": BOOL, "shipping_method_id": FK,
             "shipping_cost": money(), "shipping_status": TEXT, "created_at": TS, "estimated_delivery": TS,
             "actual_delivery": TS, "delivery_attempts": INT},
            [(1, 1, 1, False, 1, "30.00", "Delivered", "2023-01-02 11:00:00", "2023-01-04 00:00:00",
              "2023-01-03 11:00:00", 0),
             (2, 1, 1, True, 1, "20.00", "Failed", "2023-01-03 09:00:00", "2023-01-05 00:00:00", None, 1)]),
        "logistics_partner": table({"id": ID, "name": TEXT}, [(1, "Giao Hàng Nhanh")]),
        "shipping_method": table({"id": ID, "name": TEXT, "estimated_delivery_time": INT}, [(1, "Standard", 120)]),
        "category": table({"id": ID, "name": TEXT}, [(1, "Phones")]),
        "sub_category": table({"id": ID, "name": TEXT, "category_id": FK}, [(1, "iPhone", 1)]),
        "brand": table({"id": ID, "name": TEXT}, [(1, "Apple")]),
        "product": table({"id": ID, "name": TEXT, "brand_id": FK, "sub_category_id": FK, "price": money()},
                         [(10, "iPhone 15 128GB", 1, 1, "130.00"), (11, "iPhone 15 Case", 1, 1, "100.00")]),
        "product_review": table(
            {"id": ID, "product_id": FK, "customer_id": FK, "rating": INT, "source_system": TEXT, "created_at": TS},
            [(1, 10, 1, 4, "Shopee", "2023-01-03 10:00:00"), (2, 10, 2, 5, "Website", "2023-01-03 11:00:00")]),
        "inventory": table(
            {"id": ID, "product_id": FK, "warehouse_id": FK, "quantity": INT, "safety_stock": INT,
             "reorder_level": INT, "unit_cost": money()},
            [(1, 10, 1, 0, 10, 20, "80.00"), (2, 11, 1, 56, 10, 20, "70.00")]),
        "inventory_log": table(
            {"id": ID, "inventory_id": FK, "change_type": TEXT, "quantity_change": INT, "created_at": TS},
            [(1, 2, "sale", -3, "2023-01-03 10:00:00"),
             (2, 2, "sale", -2, "2023-01-01 10:00:00"),
             (3, 2, "restock", 10, "2023-01-02 10:00:00"),
             (4, 1, "sale", -1, "2022-11-01 10:00:00")]),   # before the 28-day window
        "cart": table(
            {"id": ID, "customer_id": FK, "channel": TEXT, "status": TEXT, "expires_at": TS, "checked_out_at": TS,
             "created_at": TS, "updated_at": TS},
            [(1, 1, "Shopee", "checked_out", "2023-01-09 10:00:00", "2023-01-02 10:00:00", "2023-01-02 09:00:00",
              "2023-01-02 10:00:00"),
             (2, 2, "website", "active", "2023-01-03 20:00:00", None, "2023-01-02 20:00:00", "2023-01-02 20:00:00"),
             (3, 3, "Tiki", "active", "2023-01-10 10:00:00", None, "2023-01-02 10:00:00", "2023-01-02 10:00:00")]),
    }


@pytest.fixture(scope="module")
def marts() -> dict[str, list[dict]]:
    return {name: t.to_pylist() for name, t in duckdb_marts.compute_marts(source(), AS_OF).items()}


def rows(marts, mart: str, **key) -> list[dict]:
    return [r for r in marts[mart] if all(r[k] == v for k, v in key.items())]


def one(marts, mart: str, **key) -> dict:
    found = rows(marts, mart, **key)
    assert len(found) == 1, (mart, key, found)
    return found[0]


def test_seven_marts(marts):
    assert set(marts) == {"mart_daily_sales", "mart_customer_360", "mart_inventory_daily", "mart_logistics_daily",
                          "mart_product_performance", "mart_returns", "mart_cart_analytics"}


def test_daily_sales(marts):
    assert {(r["order_day"], r["channel"], r["province"]) for r in marts["mart_daily_sales"]} == {
        (dt.date(2023, 1, 2), "Shopee", "Hà Nội"), (dt.date(2023, 1, 3), "Website", "Đà Nẵng")}
    day = one(marts, "mart_daily_sales", order_day=dt.date(2023, 1, 2))
    assert (day["order_count"], day["sale_order_count"], day["cancelled_order_count"]) == (2, 1, 1)
    assert (day["gmv"], day["refund_amount"], day["net_revenue"], day["aov"]) == (
        Decimal("300.00"), Decimal("100.00"), Decimal("200.00"), Decimal("300.00"))
    assert (day["units_sold"], day["cancellation_rate"], day["orders_completed"], day["orders_cancelled"]) == (
        3, Decimal("0.5000"), 1, 1)
    day = one(marts, "mart_daily_sales", order_day=dt.date(2023, 1, 3))  # the quarantined order is left out
    assert (day["order_count"], day["gmv"], day["discount_amount"], day["units_sold"]) == (
        1, Decimal("120.00"), Decimal("15.00"), 2)
    assert day["orders_delivery_failed"] == 1


def test_customer_360(marts):
    assert len(marts["mart_customer_360"]) == 3
    an = one(marts, "mart_customer_360", customer_id=1)
    assert (an["order_count"], an["sale_order_count"], an["lifetime_value"], an["aov"]) == (
        2, 1, Decimal("200.00"), Decimal("300.00"))
    assert (an["tier"], an["province_name"], an["first_order_day"], an["days_since_last_order"]) == (
        "gold", "Hà Nội", dt.date(2023, 1, 2), 1)
    assert (an["churn_risk_band"], an["retention_cohort"], an["is_repeat_customer"]) == ("active", "2023-01", False)
    minh = one(marts, "mart_customer_360", customer_id=3)
    assert (minh["order_count"], minh["rfm_segment"], minh["churn_risk_band"], minh["recency_score"]) == (
        0, "no_purchase", "never_purchased", None)


def test_no_personal_data(marts):
    personal = {"Nguyễn Văn An", "an@mail.example.com", "0912345678", "Trần Thị Hoa", "hoa@mail.example.com"}
    values = {v for rows_ in marts.values() for r in rows_ for v in r.values()}
    assert not values & personal


def test_inventory(marts):
    assert {r["snapshot_day"] for r in marts["mart_inventory_daily"]} == {AS_OF}
    case = one(marts, "mart_inventory_daily", product_id=11)
    assert (case["stock_on_hand"], case["stock_value"], case["units_sold"], case["units_sold_28d"]) == (
        56, Decimal("3920.00"), 3, 5)
    assert (case["days_on_hand"], case["inventory_turnover"], case["is_below_safety_stock"]) == (
        Decimal("313.6"), Decimal("0.09"), False)
    phone = one(marts, "mart_inventory_daily", product_id=10)
    assert (phone["out_of_stock_incidents"], phone["is_below_safety_stock"], phone["units_sold_28d"]) == (1, True, 0)


def test_logistics(marts):
    day = one(marts, "mart_logistics_daily", ship_day=dt.date(2023, 1, 2))
    assert (day["carrier"], day["shipping_method"], day["province"], day["shipment_count"]) == (
        "Giao Hàng Nhanh", "Standard", "Hà Nội", 1)
    assert (day["avg_delivery_hours"], day["avg_promised_hours"], day["on_time_rate"]) == (
        Decimal("24.00"), Decimal("120.00"), Decimal("1.0000"))
    assert (day["shipping_cost_per_order"], day["shipping_cost_share_of_gmv"], day["return_rate"]) == (
        Decimal("30.00"), Decimal("0.1000"), Decimal("1.0000"))
    failed = one(marts, "mart_logistics_daily", ship_day=dt.date(2023, 1, 3))
    assert (failed["failed_delivery_attempts"], failed["avg_delivery_hours"], failed["on_time_rate"]) == (1, None, None)


def test_product_performance(marts):
    phone = one(marts, "mart_product_performance", product_id=10, day=dt.date(2023, 1, 2))
    assert (phone["units_sold"], phone["revenue"], phone["order_count"], phone["return_rate"]) == (
        2, Decimal("200.00"), 1, Decimal("1.0000"))
    assert (phone["product_name"], phone["brand_name"], phone["category_name"]) == (
        "iPhone 15 128GB", "Apple", "Phones")
    reviewed = one(marts, "mart_product_performance", product_id=10, day=dt.date(2023, 1, 3))
    assert (reviewed["units_sold"], reviewed["revenue"], reviewed["review_count"], reviewed["avg_rating"]) == (
        1, Decimal("120.00"), 2, Decimal("4.50"))
    case = one(marts, "mart_product_performance", product_id=11, day=dt.date(2023, 1, 3))
    assert (case["units_sold"], case["revenue"], case["review_count"], case["avg_rating"]) == (
        1, Decimal("0.00"), 0, None)
    assert not rows(marts, "mart_product_performance", day=dt.date(2023, 1, 4))


def test_returns(marts):
    ret = one(marts, "mart_returns", order_day=dt.date(2023, 1, 2), reason="Defective")
    assert (ret["return_count"], ret["returned_orders"], ret["refunded_amount"]) == (2, 1, Decimal("100.00"))
    assert (ret["avg_resolution_days"], ret["sale_orders"], ret["return_rate"]) == (
        Decimal("0.50"), 1, Decimal("1.0000"))
    rejected = one(marts, "mart_returns", reason="Wrong item")
    assert (rejected["return_count"], rejected["refunded_amount"], rejected["avg_resolution_days"]) == (
        1, Decimal("0.00"), None)


def test_cart_analytics(marts):
    carts = {r["channel"]: r for r in marts["mart_cart_analytics"]}
    assert set(carts) == {"Shopee", "Website", "Tiki"}
    assert (carts["Shopee"]["converted_carts"], carts["Shopee"]["conversion_rate"]) == (1, Decimal("1.0000"))
    assert (carts["Website"]["abandoned_carts"], carts["Website"]["abandonment_rate"]) == (1, Decimal("1.0000"))
    tiki = carts["Tiki"]
    assert (tiki["cart_count"], tiki["converted_carts"], tiki["abandoned_carts"]) == (1, 0, 0)


def test_rounding_is_spark_half_up():
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE MACRO as_of() AS DATE '2023-01-03'")
    for name, values in duckdb_marts.VOCABULARIES.items():
        con.execute(f"CREATE MACRO {name}() AS [{', '.join(repr(v) for v in values)}]")
    for name, t in source().items():
        con.register(name, t)
    con.execute(duckdb_marts.SETUP)
    # 0.285 is 0.28499999999999998 as a double: Spark rounds its shortest decimal form half up; ties go away from 0
    assert con.sql("SELECT round_double(0.285::DOUBLE, 2), div_half_up(5, 2), div_half_up(-5, 2), round2(18, 3600), "
                   "round4(1, 32), money_per(10.00::DECIMAL(18,2), 3), money_per(0.05::DECIMAL(18,2), 2)"
                   ).fetchone() == (
        Decimal("0.29"), 3, -3, Decimal("0.01"), Decimal("0.0313"), Decimal("3.33"), Decimal("0.03"))
    # Spark's avg of decimals keeps 4 more places before round(, 2): 99.99 / 20000 = 0.0049995 -> 0.005000 -> 0.01
    assert con.sql("SELECT avg_2dp(99.99::DECIMAL(18,2), 20000)").fetchone() == (Decimal("0.01"),)
    assert con.sql("SELECT canonical('Delivery Failed', order_statuses()), canonical('nope', order_statuses())"
                   ).fetchone() == ("delivery_failed", None)
