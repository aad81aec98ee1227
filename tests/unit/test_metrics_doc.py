"""Metrics are defined once: the functions in lakehouse_gold.metrics and docs/metrics.md agree."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from lakehouse_gold import metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
#: Public functions of metrics.py that are building blocks, not metrics.
HELPERS = {"is_sale", "metric"}


def documented() -> dict[str, dict[str, str]]:
    """The metrics table of docs/metrics.md: name → grain, statuses, definition."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`\w+`", cells[0]):
            rows[cells[0].strip("`")] = {"grain": cells[1], "statuses": cells[2], "definition": cells[3]}
    return rows


def test_every_metric_is_documented_with_its_definition():
    doc = documented()
    assert sorted(doc) == sorted(metrics.METRICS)
    for name, registered in metrics.METRICS.items():
        assert doc[name] == {"grain": registered.grain, "statuses": registered.statuses,
                             "definition": registered.definition}, name


def test_every_public_function_of_the_module_is_a_registered_metric():
    functions = {name for name, f in inspect.getmembers(metrics, inspect.isfunction)
                 if f.__module__ == metrics.__name__ and not name.startswith("_")}
    assert functions - HELPERS == set(metrics.METRICS)
