"""Cursor planning when the registry's cursor changed kind between runs: the batch migrates
(reads the whole table once, commits a watermark of the new kind) instead of failing on a
watermark it cannot read."""

from __future__ import annotations

import logging
from datetime import datetime

from lakehouse_bronze.cursors import plan_read
from lakehouse_bronze.source import SourceState
from lakehouse_core.batch import DataInterval
from lakehouse_core.registry import Registry
from lakehouse_core.settings import LakehouseSettings

SETTINGS = LakehouseSettings()
STATE = SourceState(now=datetime(2023, 1, 5, 12), snapshot="900:900:")
INTERVAL = DataInterval.parse("2023-01-04T00:00:00+07:00", "2023-01-05T00:00:00+07:00")
TIMESTAMP_MARK = {"kind": "timestamp", "value": "2023-01-04T00:00:00"}
XMIN_MARK = {"kind": "xmin", "snapshot": "800:800:"}
SERIAL_MARK = {"kind": "serial", "value": 41}


def _spec(table: str, **changes):
    spec = Registry.load(SETTINGS).get(table)
    return spec.model_copy(update=changes) if changes else spec


def test_a_watermark_of_the_cursor_kind_bounds_the_read():
    orders = _spec("orders")  # cursor xmin
    assert "pg_visible_in_snapshot" in plan_read(orders, None, XMIN_MARK, STATE, INTERVAL, SETTINGS).predicate
    by_time = _spec("orders", cursor="updated_at")
    assert ">=" in plan_read(by_time, "timestamp without time zone", TIMESTAMP_MARK, STATE, INTERVAL, SETTINGS).predicate
    by_id = _spec("orders", cursor="id")
    lookback = SETTINGS.extract.lookback_ids
    assert plan_read(by_id, "integer", SERIAL_MARK, STATE, INTERVAL, SETTINGS).predicate == f'src_t."id" >= {41 - lookback}'


def test_a_cursor_changed_to_xmin_reads_the_whole_table_once(caplog):
    with caplog.at_level(logging.WARNING, logger="lakehouse_bronze.cursors"):
        plan = plan_read(_spec("orders"), None, TIMESTAMP_MARK, STATE, INTERVAL, SETTINGS)
    assert plan.predicate is None and plan.watermark == {"kind": "xmin", "snapshot": STATE.snapshot}
    assert "orders: the registry's cursor 'xmin' commits a xmin watermark" in caplog.text
    assert "last batch committed a timestamp one" in caplog.text


def test_a_cursor_changed_from_xmin_to_a_timestamp_or_an_id_reads_up_to_the_interval(caplog):
    by_time = plan_read(_spec("orders", cursor="updated_at"), "timestamp without time zone", XMIN_MARK, STATE,
                        INTERVAL, SETTINGS)
    assert by_time.predicate.startswith('((src_t."updated_at" <') and ">=" not in by_time.predicate
    assert by_time.watermark["kind"] == "timestamp"
    by_id = plan_read(_spec("orders", cursor="id"), "integer", TIMESTAMP_MARK, STATE, INTERVAL, SETTINGS)
    assert by_id.predicate is None and by_id.watermark is None and by_id.watermark_is_max_of == "id"
    assert caplog.text.count("the cursor changed") == 2
