"""A layer job's tables a few at a time, each after the tables it reads (``lakehouse_core.parallel``)."""

from __future__ import annotations

import threading
import time

import pytest

from lakehouse_core.errors import ConfigurationError
from lakehouse_core.parallel import run_in_dependency_order

#: order_items reads orders; the marts read both
PARENTS = {"orders": [], "order_items": ["orders"], "customers": [], "payment": [], "shipment": [],
           "mart": ["order_items", "customers"]}


def _tracked(fail: str | None = None):
    """A work function recording when each table starts and ends, and the most running at once."""
    lock, running, log = threading.Lock(), set(), {"most": 0, "started": [], "ended": []}

    def work(table: str) -> str:
        with lock:
            running.add(table)
            log["most"] = max(log["most"], len(running))
            log["started"].append(table)
        time.sleep(0.05)
        with lock:
            running.discard(table)
            log["ended"].append(table)
        if table == fail:
            raise ValueError(f"{table} failed")
        return table.upper()

    return work, log


def test_each_table_starts_after_its_parents_and_at_most_n_run_at_once():
    work, log = _tracked()
    tables = list(PARENTS)
    results = run_in_dependency_order(tables, work, 3, depends_on=lambda t: PARENTS[t])
    assert results == [t.upper() for t in tables]  # in the order given, whatever the order of work
    for table, parents in PARENTS.items():
        for parent in parents:
            assert log["ended"].index(parent) < log["started"].index(table), (parent, table)
    assert log["most"] == 3  # orders, customers, payment started together; never more


def test_a_failure_is_raised_and_nothing_starts_after_it():
    work, log = _tracked(fail="orders")
    with pytest.raises(ValueError, match="orders failed"):
        run_in_dependency_order(list(PARENTS), work, 1, depends_on=lambda t: PARENTS[t])
    assert log["started"] == ["orders"]  # one at a time: the first failed, nothing else began


def test_dependencies_outside_the_job_are_ignored_and_a_cycle_is_an_error():
    work, _ = _tracked()
    assert run_in_dependency_order(["order_items"], work, 2, depends_on=lambda t: PARENTS[t]) == ["ORDER_ITEMS"]
    with pytest.raises(ConfigurationError, match="cycle"):
        run_in_dependency_order(["a", "b"], work, 2, depends_on=lambda t: ["b" if t == "a" else "a"])
