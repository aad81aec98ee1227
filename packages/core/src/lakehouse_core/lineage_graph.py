"""The lineage graph of the recorded OpenLineage events, and a picture of it a person can open
when no Marquez is running (``lakehouse lineage``).

The events are those the platform writes to ``<home>/lineage/`` with the file transport: the
Spark listener's (``spark-events.jsonl``), the platform's own (``python-events.jsonl``: first
loads landed without a Spark write, gates) and Airflow's (``airflow-events.jsonl``). A job reads
and writes datasets; a dataset is named as the events name it (a source table by its database,
an Iceberg table by its folder in the warehouse), labelled ``<layer>.<table>``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Iterable

from lakehouse_core.errors import LakehouseError

class NoLineageError(LakehouseError):
    """No recorded lineage events to draw."""


#: the picture's columns, left to right (quarantine tables sit with the layer that wrote them)
LAYERS = ("source", "bronze", "silver", "gold")


@dataclass(frozen=True, order=True)
class Dataset:
    namespace: str
    name: str

    @property
    def label(self) -> str:
        """``source.<table>`` for a source table, ``<layer>.<table>`` for a warehouse table."""
        if self.namespace.startswith("postgres"):
            return f"source.{self.name.rsplit('.', 1)[-1]}"
        parts = self.name.rstrip("/").split("/")
        return f"{parts[-2]}.{parts[-1]}" if len(parts) >= 2 else self.name

    @property
    def layer(self) -> str:
        """The layer whose column holds the dataset (``quarantine.silver_x`` is silver's)."""
        layer, table = self.label.split(".", 1)
        return table.split("_", 1)[0] if layer == "quarantine" else layer


@dataclass
class LineageGraph:
    """Jobs with the datasets each read and wrote; where a written dataset names the datasets its
    columns come from (its ``columnLineage`` facet), those alone lead to it (a first load reads
    24 source tables and writes 24 bronze tables, each from one)."""

    reads: dict[str, set[Dataset]] = field(default_factory=lambda: defaultdict(set))
    writes: dict[str, set[Dataset]] = field(default_factory=lambda: defaultdict(set))
    #: (job, written dataset) -> the datasets its column lineage names
    column_sources: dict[tuple[str, Dataset], set[Dataset]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def from_events(cls, events: Iterable[dict], by_application: bool = False) -> "LineageGraph":
        """The graph of ``events`` (run events with inputs or outputs). ``by_application``: one job
        per Spark application (``lakehouse_silver``), not one per Spark action."""
        graph = cls()
        for event in events:
            job = event["job"]["name"]
            if by_application:
                job = job.split(".", 1)[0]
            for key, datasets in (("inputs", graph.reads), ("outputs", graph.writes)):
                for dataset in event.get(key) or []:
                    datasets[job].add(Dataset(dataset["namespace"], dataset["name"]))
            for output in event.get("outputs") or []:
                # what its values come from (fields) and what decides its rows (dataset: filters, joins)
                lineage = (output.get("facets") or {}).get("columnLineage", {})
                sources = [source for column in lineage.get("fields", {}).values()
                           for source in column.get("inputFields", [])] + lineage.get("dataset", [])
                graph.column_sources[job, Dataset(output["namespace"], output["name"])].update(
                    Dataset(source["namespace"], source["name"]) for source in sources)
        return graph

    @classmethod
    def read(cls, folder: Path, by_application: bool = False) -> "LineageGraph":
        """The graph of every ``*.jsonl`` event file in ``folder``.

        Raises NoLineageError naming the folder when it holds no event file."""
        files = sorted(folder.glob("*.jsonl"))
        if not files:
            raise NoLineageError(f"no OpenLineage event files (*.jsonl) in {folder}: run the pipeline first "
                                 "(with LAKEHOUSE_LINEAGE__HTTP_URL set, events go to Marquez instead)")
        return cls.from_events((json.loads(line) for path in files for line in path.read_text().splitlines()
                                if line.strip()), by_application)

    @property
    def jobs(self) -> set[str]:
        return set(self.reads) | set(self.writes)

    @property
    def datasets(self) -> set[Dataset]:
        return {d for group in (self.reads, self.writes) for found in group.values() for d in found}

    def unconnected_sources(self) -> list[Dataset]:
        """The source tables from which no path of jobs reaches a gold table (gaps in the lineage)."""
        return sorted(d for d in self.datasets if d.layer == "source"
                      and not any(reached.layer == "gold" for reached in self.downstream(d)))

    def downstream(self, start: Dataset) -> set[Dataset]:
        """Every dataset reached from ``start`` through jobs that read it and wrote others."""
        readers: dict[Dataset, set[str]] = defaultdict(set)
        for job, read in self.reads.items():
            for dataset in read:
                readers[dataset].add(job)
        seen, frontier = set(), [start]
        while frontier:
            dataset = frontier.pop()
            for job in readers[dataset]:
                for written in self.writes.get(job, ()):
                    sources = self.column_sources.get((job, written))
                    if written not in seen and (not sources or dataset in sources):
                        seen.add(written)
                        frontier.append(written)
        return seen


def render_svg(graph: LineageGraph) -> str:
    """The graph as an SVG picture: a column of datasets per layer (``LAYERS``), each job between
    the columns of what it reads and what it writes, an arrow per read and write."""
    by_layer: dict[str, list[Dataset]] = {layer: [] for layer in LAYERS}
    for dataset in sorted(graph.datasets, key=lambda d: d.label):
        by_layer.setdefault(dataset.layer, []).append(dataset)
    columns = list(by_layer)
    jobs_at: dict[int, list[str]] = defaultdict(list)  # job column i sits right of dataset column i
    for job in sorted(graph.jobs):
        written = [columns.index(d.layer) for d in graph.writes.get(job, ())]
        read = [columns.index(d.layer) for d in graph.reads.get(job, ())]
        jobs_at[max(min(written) - 1 if written else max(read, default=0), 0)].append(job)
    row, width, gap = 18, 230, 60
    place: dict[object, tuple[float, float]] = {}
    for i, layer in enumerate(columns):
        for j, dataset in enumerate(by_layer[layer]):
            place[dataset] = (i * 2 * (width + gap), 40 + j * row)
        for j, job in enumerate(jobs_at.get(i, [])):
            place[job] = ((i * 2 + 1) * (width + gap), 40 + j * row)
    height = 60 + row * max([len(v) for v in by_layer.values()] + [len(v) for v in jobs_at.values()] + [1])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{(2 * len(columns) - 1) * (width + gap)}" '
             f'height="{height}" font-family="sans-serif" font-size="11">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>']
    for i, layer in enumerate(columns):
        parts.append(f'<text x="{i * 2 * (width + gap)}" y="20" font-weight="bold">{escape(layer)}</text>')
    for job in graph.jobs:
        for dataset in graph.reads.get(job, ()):
            parts.append(_arrow(place[dataset], place[job], width))
        for dataset in graph.writes.get(job, ()):
            parts.append(_arrow(place[job], place[dataset], width))
    for node, (x, y) in place.items():
        job = isinstance(node, str)
        text = node if job else node.label
        fill = "#fde9c8" if job else "#dbe9f6"
        parts.append(f'<g><title>{escape(text if job else f"{node.namespace}/{node.name}")}</title>'
                     f'<rect x="{x}" y="{y - 12}" width="{width}" height="{row - 3}" rx="3" fill="{fill}" '
                     f'stroke="#999"/><text x="{x + 4}" y="{y}">{escape(text)}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)


def _arrow(start: tuple[float, float], end: tuple[float, float], width: float) -> str:
    """From the side of ``start`` facing ``end`` to the side of ``end`` facing ``start`` (a gate
    reads the column right of it)."""
    (x1, y1), (x2, y2) = start, end
    if x1 < x2:
        x1 += width
    else:
        x2 += width
    y1, y2 = y1 - 4, y2 - 4
    middle = (x1 + x2) / 2
    return (f'<path d="M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}" fill="none" stroke="#888" '
            f'stroke-opacity="0.5" marker-end="url(#arrow)"/>')
