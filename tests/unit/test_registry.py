from pathlib import Path

import pytest

from lakehouse_core.registry import LoadMode, Registry, RegistryError, identifier
from lakehouse_core.settings import LakehouseSettings

CONTRACT_TABLES = {
    "category", "sub_category", "brand", "order_channel", "shipping_method", "logistics_partner", "warehouse",
    "geo_location", "product", "customers", "orders", "payment", "shipment", "cart", "inventory", "order_return",
    "discount", "order_items", "cart_items", "wishlist", "product_review", "order_status_history",
    "inventory_log", "customer_activity_log",
}


def test_default_registry_has_all_24_source_tables():
    registry = Registry.load(LakehouseSettings())
    assert {t.name for t in registry} == CONTRACT_TABLES
    for table in registry:
        assert table.primary_key
        if table.load_mode is LoadMode.incremental:
            assert table.cursor
    assert registry.get("geo_location").primary_key == ("ward_code",)
    assert registry.get("inventory").load_mode is LoadMode.full  # no reliable cursor (§1.3)
    assert registry.get("customer_activity_log").cursor == "id"  # append-only log: serial id


def test_registry_override_from_settings(tmp_path: Path):
    path = tmp_path / "tables.toml"
    path.write_text('[tables.new_table]\nkind = "reference"\nprimary_key = ["id"]\nload_mode = "full"\n')
    registry = Registry.load(LakehouseSettings(registry_path=path))
    assert [t.name for t in registry] == ["new_table"]


@pytest.mark.parametrize("body, message", [
    ('[tables.x]\nkind = "mutable"\nprimary_key = ["id"]\nload_mode = "incremental"\n', "needs a cursor"),
    ('[tables."x; drop"]\nkind = "mutable"\nprimary_key = ["id"]\nload_mode = "full"\n', "invalid identifier"),
    ('[tables.x]\nkind = "mutable"\nprimary_key = []\nload_mode = "full"\n', "at least one column"),
    ('[tables.x]\nkind = "mutabel"\nprimary_key = ["id"]\nload_mode = "full"\n', r"table 'x': .*\nkind\n  Input should be 'reference', .* input_value='mutabel'"),
])
def test_malformed_registry_is_rejected(body, message):
    with pytest.raises(RegistryError, match=message):
        Registry.from_toml(body)


def test_identifiers():
    assert identifier("silver", "orders") == "lakehouse.silver.orders"
    with pytest.raises(RegistryError):
        identifier("platinum", "orders")
    with pytest.raises(RegistryError):
        Registry.load(LakehouseSettings()).get("nope")


def test_parents_come_before_children():
    order = [t.name for t in Registry.load(LakehouseSettings()).in_dependency_order()]
    assert order.index("orders") < order.index("order_items")
    assert len(order) == 24


def test_foreign_keys_are_validated():
    with pytest.raises(RegistryError, match="parent_table.column"):
        Registry.from_toml('[tables.x]\nkind = "mutable"\nprimary_key = ["id"]\nload_mode = "full"\n'
                           'foreign_keys = { a_id = "a" }\n')
    registry = Registry.from_toml('[tables.x]\nkind = "mutable"\nprimary_key = ["id"]\nload_mode = "full"\n'
                                  'foreign_keys = { a_id = "a.id" }\n')
    with pytest.raises(RegistryError, match="'a' is not in the registry"):
        registry.in_dependency_order()
