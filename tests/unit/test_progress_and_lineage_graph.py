"""Progress output of long commands, the lineage graph walk and its picture, and the executors'
Python on a cluster (no Spark, no database)."""

from __future__ import annotations

import io
import json
from xml.etree import ElementTree

import pytest

from lakehouse_core.errors import ConfigurationError
from lakehouse_core.lineage_graph import Dataset, LineageGraph, NoLineageError, render_svg
from lakehouse_core.progress import Progress


def test_progress_prints_a_line_per_table_and_a_summary():
    out = io.StringIO()
    progress = Progress("silver transform", total=2, stream=out)
    progress.done("silver.orders", "12 keys merged", 1.5, merged=12, quarantined=1, staged=True)
    progress.done("silver.customers", "already published, skipped", None, merged=0, quarantined=0, staged=False)
    progress.summary()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] silver.orders: 12 keys merged"
    assert lines[1] == "[2/2] silver.customers: already published, skipped"
    assert lines[3].startswith("silver transform: 2 of 2 tables in ")
    assert lines[4].split() == ["table", "merged", "quarantined", "staged", "seconds"]
    assert lines[5].split() == ["silver.orders", "12", "1", "yes", "1.50"]
    assert lines[6].split() == ["silver.customers", "0", "0", "no", "-"]
    assert lines[7].split()[:3] == ["total", "12", "1"]


def _event(job: str, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]],
           column_sources: dict[tuple[str, str], tuple[str, str]] | None = None) -> dict:
    """A COMPLETE event; ``column_sources``: output -> the dataset its one column ``id`` comes from."""
    def output(dataset: tuple[str, str]) -> dict:
        source = (column_sources or {}).get(dataset)
        facets = {} if source is None else {"columnLineage": {"fields": {"id": {"inputFields": [
            {"namespace": source[0], "name": source[1], "field": "id"}]}}}}
        return {"namespace": dataset[0], "name": dataset[1], "facets": facets}

    return {"eventType": "COMPLETE", "job": {"namespace": "lakehouse", "name": job},
            "inputs": [{"namespace": n, "name": p} for n, p in inputs], "outputs": [output(d) for d in outputs]}


SOURCE = ("postgres://127.0.0.1:5432", "shop.public.orders")
OTHER_SOURCE = ("postgres://127.0.0.1:5432", "shop.public.brand")


def _table(layer: str, name: str) -> tuple[str, str]:
    return ("file", f"/home/x/warehouse/{layer}/{name}")


def _events(with_silver_step: bool = True) -> list[dict]:
    events = [_event("lakehouse_bronze.land_first_loads", [SOURCE, OTHER_SOURCE],
                     [_table("bronze", "orders"), _table("bronze", "brand")],
                     {_table("bronze", "orders"): SOURCE, _table("bronze", "brand"): OTHER_SOURCE}),
              _event("lakehouse_bronze_gate", [_table("bronze", "orders")], [_table("bronze", "orders")]),
              _event("lakehouse_gold.build_fct_orders", [_table("silver", "orders")], [_table("gold", "fct_orders")]),
              _event("lakehouse_silver.transform_brand", [_table("bronze", "brand")],
                     [_table("silver", "brand"), _table("quarantine", "silver_brand")])]
    if with_silver_step:
        events.append(_event("lakehouse_silver.transform_orders", [_table("bronze", "orders")],
                             [_table("silver", "orders")]))
    return events


def test_the_walk_finds_a_gap_in_the_lineage():
    """A first load's outputs each follow from the source their column lineage names, not from
    every table the step read. Without the silver step of ``orders`` no path leads from a source
    table to gold: the walk reports both source tables (``brand`` never reaches gold either)."""
    complete = LineageGraph.from_events(_events())
    orders = Dataset(*SOURCE)
    assert {d.label for d in complete.downstream(orders)} == {"bronze.orders", "silver.orders", "gold.fct_orders"}
    assert [d.label for d in complete.unconnected_sources()] == ["source.brand"]
    broken = LineageGraph.from_events(_events(with_silver_step=False))
    assert [d.label for d in broken.unconnected_sources()] == ["source.brand", "source.orders"]
    assert Dataset(*_table("quarantine", "silver_brand")).layer == "silver"


def test_the_picture_is_svg_with_every_dataset_and_job(tmp_path):
    graph = LineageGraph.from_events(_events(), by_application=True)
    assert graph.jobs == {"lakehouse_bronze", "lakehouse_bronze_gate", "lakehouse_silver", "lakehouse_gold"}
    svg = ElementTree.fromstring(render_svg(graph))
    texts = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"source.orders", "bronze.orders", "silver.orders", "gold.fct_orders", "quarantine.silver_brand",
            "lakehouse_silver", "lakehouse_bronze_gate"} <= texts
    assert len(list(svg.iter("{http://www.w3.org/2000/svg}path"))) >= 9  # a read or write each, plus the marker

    (tmp_path / "spark-events.jsonl").write_text("\n".join(json.dumps(e) for e in _events()) + "\n")
    assert LineageGraph.read(tmp_path).unconnected_sources() == [Dataset(*OTHER_SOURCE)]
    with pytest.raises(NoLineageError, match="no OpenLineage event files"):
        LineageGraph.read(tmp_path / "missing")


def test_a_cluster_needs_the_executors_python(monkeypatch):
    from lakehouse_core.settings import LakehouseSettings
    from lakehouse_core.spark import executor_python

    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    monkeypatch.setenv("LAKEHOUSE_SPARK__MASTER", "spark://spark-master:7077")
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_SPARK__EXECUTOR_PYTHON is not set.*spark://spark-master"):
        executor_python(LakehouseSettings())
    monkeypatch.setenv("LAKEHOUSE_SPARK__EXECUTOR_PYTHON", "/opt/lakehouse/runtime/bin/python")
    assert executor_python(LakehouseSettings()) == "/opt/lakehouse/runtime/bin/python"
