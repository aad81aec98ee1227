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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any, Iterator, Protocol, Sequence
from urllib.parse import urlparse

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
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


def iceberg_table(location: str, columns: list[tuple[str, str]], rows: int, files: int) -> OutputDataset:
    """An Iceberg table at ``location`` written by a step, with its schema and what was written."""
    namespace, name = _iceberg_name(location)
    return OutputDataset(
        namespace=namespace, name=name,
        facets={"schema": schema_dataset.SchemaDatasetFacet(
                    fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in columns]),
                "storage": storage_dataset.StorageDatasetFacet(storageLayer="iceberg", fileFormat="parquet")},
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


def published_table(location: str) -> OutputDataset:
    """An Iceberg table whose ``main`` a step moved (a gate publishing the batch)."""
    namespace, name = _iceberg_name(location)
    return OutputDataset(namespace=namespace, name=name,
                         facets={"storage": storage_dataset.StorageDatasetFacet(storageLayer="iceberg",
                                                                                fileFormat="parquet")})


@dataclass
class LineageRun:
    """The datasets of a reported step, filled in while it runs."""

    inputs: list[InputDataset] = field(default_factory=list)
    outputs: list[OutputDataset] = field(default_factory=list)


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
        client.emit(RunEvent(eventType=state, eventTime=datetime.now(timezone.utc).isoformat(), run=run, job=job,
                             producer=PRODUCER, inputs=record.inputs, outputs=record.outputs))

    emit(RunState.START)
    try:
        yield record
    except BaseException:
        emit(RunState.FAIL)
        raise
    emit(RunState.COMPLETE)
