"""OpenLineage events for work the Spark listener does not see, or should not report query by query.

Bronze's first loads are written as files by Spark tasks and committed by the driver
(``lakehouse_bronze.landing``): no Spark write plan names their tables, so the Spark
listener reports no outputs for them. A quality gate runs many Great Expectations queries
per table: it runs without the listener and reports one run, each table it validated with
its ``dataQualityAssertions`` and ``dataQualityMetrics`` (``validated_table``). ``lineage_run`` reports such a step with the
openlineage-python client: START, then COMPLETE (or FAIL) with its input and output
datasets, named as the Spark integration names them, as a child of the Airflow task
that launched the process (``OPENLINEAGE_PARENT_*``). Transport as for Spark: HTTP to
``LAKEHOUSE_LINEAGE__HTTP_URL``, else the file ``<home>/lineage/python-events.jsonl``.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any, Iterator, Protocol, Sequence
from urllib.parse import urlparse

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    schema_dataset,
    storage_dataset,
)
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from openlineage.client.uuid import generate_new_uuid

from pyspark.sql import SparkSession

from lakehouse_core import iceberg
from lakehouse_core.settings import LakehouseSettings, PostgresSettings
from lakehouse_core.spark import ParentRun

PRODUCER = f"urn:lakehouse:lakehouse-core:{version('lakehouse-core')}"


def postgres_table(db: PostgresSettings, table: str) -> InputDataset:
    """A source table (resolved ``db``), named per the OpenLineage naming of PostgreSQL."""
    return InputDataset(namespace=f"postgres://{db.host}:{db.port or 5432}", name=f"{db.dbname}.public.{table}")


def _iceberg_name(location: str) -> tuple[str, str]:
    """(namespace, name) of the Iceberg table at ``location`` (``file:`` or ``s3://``), as the Spark
    integration names it."""
    parsed = urlparse(location)
    return ("file", parsed.path) if parsed.scheme in ("", "file") else \
        (f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/"))


@dataclass(frozen=True)
class ColumnSource:
    """Where a written column comes from: ``column`` of the dataset ``source`` (an Iceberg table's
    location, or a dataset as ``postgres_table`` names it), transformed as ``how`` says;
    ``masked``: the value is not recoverable from it (a keyed hash); ``kind``/``subtype``: the
    OpenLineage transformation (DIRECT: IDENTITY, TRANSFORMATION, AGGREGATION; INDIRECT: FILTER,
    JOIN, GROUP_BY, SORT, WINDOW)."""

    source: str | InputDataset
    column: str
    how: str
    masked: bool = False
    subtype: str = "TRANSFORMATION"
    kind: str = "DIRECT"

    @property
    def dataset(self) -> tuple[str, str]:
        """(namespace, name) of the source dataset."""
        return ((self.source.namespace, self.source.name) if isinstance(self.source, InputDataset)
                else _iceberg_name(self.source))


@dataclass(frozen=True)
class ColumnLineage:
    """A written table's column lineage: the sources of each column's value (``fields``; none for a
    constant or rows not read from a table), and the columns that decide which rows it holds
    (``dataset``: filters, join keys, grouping; INDIRECT)."""

    fields: dict[str, list[ColumnSource]]
    dataset: list[ColumnSource] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing known: no column traced to a source (e.g. rows the step checkpointed first)."""
        return not self.dataset and not any(self.fields.values())

    def facet(self) -> column_lineage_dataset.ColumnLineageDatasetFacet:
        def inputs(sources: list[ColumnSource]) -> list[column_lineage_dataset.InputField]:
            return [column_lineage_dataset.InputField(*source.dataset, field=source.column, transformations=[
                column_lineage_dataset.Transformation(type=source.kind, subtype=source.subtype,
                                                      description=source.how, masking=source.masked)])
                    for source in sources]

        return column_lineage_dataset.ColumnLineageDatasetFacet(
            fields={column: column_lineage_dataset.Fields(inputFields=inputs(sources))
                    for column, sources in self.fields.items() if sources},
            dataset=inputs(self.dataset))


def iceberg_table(location: str, columns: list[tuple[str, str]], rows: int, files: int,
                  source: InputDataset | None = None) -> OutputDataset:
    """An Iceberg table at ``location`` written by a step, with its schema and what was written;
    ``source``: the dataset its columns were copied from, by name (but ``_*`` metadata columns)."""
    namespace, name = _iceberg_name(location)
    facets: dict[str, Any] = {}
    if source is not None:
        facets["columnLineage"] = ColumnLineage({c: [ColumnSource(source, c, "copied", subtype="IDENTITY")]
                                                 for c, _ in columns if not c.startswith("_")}).facet()
    return OutputDataset(
        namespace=namespace, name=name,
        facets={"schema": schema_dataset.SchemaDatasetFacet(
                    fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in columns]),
                "storage": storage_dataset.StorageDatasetFacet(storageLayer="iceberg", fileFormat="parquet"),
                **facets},
        outputFacets={"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=rows, fileCount=files)})


class Assertion(Protocol):
    """One expectation's outcome on a table (``lakehouse_core.quality.ExpectationOutcome``)."""

    expectation: str
    column: str | None
    severity: str  # fail | warn
    success: bool
    unexpected_count: int


def validated_table(location: str, rows: int, assertions: Sequence[Assertion]) -> InputDataset:
    """An Iceberg table a gate read (the batch's rows on its audit branch), with the outcome of
    every expectation (a blocking one, ``fail`` or ``quarantine``, has the spec's severity ``error``;
    no assertions facet when none ran: a batch without rows) and the rows validated."""
    namespace, name = _iceberg_name(location)
    facets: dict[str, Any] = {"dataQualityMetrics": data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
        columnMetrics={}, rowCount=rows)}
    if assertions:
        facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(assertions=[
            data_quality_assertions_dataset.Assertion(
                assertion=a.expectation, success=a.success, column=a.column,
                severity="warn" if a.severity == "warn" else "error",
                name=f"{a.expectation}({a.column})" if a.column else a.expectation,
                actual=f"{a.unexpected_count} unexpected rows")
            for a in assertions])
    return InputDataset(namespace=namespace, name=name, inputFacets=facets)


def table_step(spark: SparkSession, reads: Sequence[str], writes: Sequence[str],
               column_lineage: dict[str, ColumnLineage] | None = None
               ) -> tuple[list[InputDataset], list[OutputDataset]]:
    """The datasets of a step that read the Iceberg tables ``reads`` and wrote ``writes`` (their
    identifiers; tables that do not exist are left out), ``column_lineage`` per written identifier."""
    def location(ident: str) -> str:
        return iceberg.java_table(spark, ident).location()

    return ([read_table(location(i)) for i in reads if iceberg.table_exists(spark, i)],
            [published_table(location(i), (column_lineage or {}).get(i)) for i in writes if iceberg.table_exists(spark, i)])


def published_table(location: str, column_lineage: ColumnLineage | None = None) -> OutputDataset:
    """An Iceberg table a step wrote to (its audit branch) or whose ``main`` it moved (a gate
    publishing the batch), with its ``columnLineage`` facet when one is known."""
    namespace, name = _iceberg_name(location)
    facets: dict[str, Any] = {"storage": storage_dataset.StorageDatasetFacet(storageLayer="iceberg",
                                                                             fileFormat="parquet")}
    if column_lineage is not None and not column_lineage.empty:
        facets["columnLineage"] = column_lineage.facet()
    return OutputDataset(namespace=namespace, name=name, facets=facets)


def read_table(location: str) -> InputDataset:
    """An Iceberg table a step read."""
    namespace, name = _iceberg_name(location)
    return InputDataset(namespace=namespace, name=name)


@dataclass
class LineageRun:
    """The datasets of a reported step, filled in while it runs."""

    inputs: list[InputDataset] = field(default_factory=list)
    outputs: list[OutputDataset] = field(default_factory=list)


_EMITTING = threading.Lock()


def _client(settings: LakehouseSettings) -> OpenLineageClient:
    if settings.lineage.http_url:
        return OpenLineageClient(transport=HttpTransport(HttpConfig(url=settings.lineage.http_url)))
    settings.lineage_dir.mkdir(parents=True, exist_ok=True)
    path = settings.lineage_dir / "python-events.jsonl"
    return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(path), append=True)))


@contextlib.contextmanager
def lineage_run(settings: LakehouseSettings, job_name: str) -> Iterator[LineageRun]:
    """Report the block as an OpenLineage run of ``job_name``: START, then COMPLETE with the
    datasets the block recorded, or FAIL when it raises. Does nothing when lineage is off."""
    record = LineageRun()
    if not settings.lineage.enabled:
        yield record
        return
    client = _client(settings)
    facets = {}
    parent = ParentRun.from_env()
    if parent:
        root = None
        if parent.root_run_id:
            root = parent_run.Root(run=parent_run.RootRun(runId=parent.root_run_id),
                                   job=parent_run.RootJob(namespace=parent.root_namespace or parent.namespace,
                                                          name=parent.root_job_name or parent.job_name))
        facets["parent"] = parent_run.ParentRunFacet(run=parent_run.Run(runId=parent.run_id),
                                                     job=parent_run.Job(namespace=parent.namespace, name=parent.job_name),
                                                     root=root)
    run = Run(runId=str(generate_new_uuid()), facets=facets)
    job = Job(namespace=settings.lineage.namespace, name=job_name,
              facets={"jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="SPARK",
                                                              jobType="TASK")})

    def emit(state: RunState) -> None:
        with _EMITTING:  # one event at a time: tables run in threads, the file transport appends lines
            client.emit(RunEvent(eventType=state, eventTime=datetime.now(timezone.utc).isoformat(), run=run, job=job,
                                 producer=PRODUCER, inputs=record.inputs, outputs=record.outputs))

    emit(RunState.START)
    try:
        yield record
    except BaseException:
        emit(RunState.FAIL)
        raise
    emit(RunState.COMPLETE)
