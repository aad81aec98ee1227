"""The quality gate: Great Expectations 1.x checkpoints on audit branches, then publish.

Suites are reviewed files ``expectations/<layer>/<table>.json`` (GE suite format).
Each expectation carries ``meta.severity``: ``fail`` blocks the publish, ``warn``
is reported only. Validation results and Data Docs go to the state folder; a
machine-readable report per (layer, batch) names every failing expectation and
the primary keys of its failing rows.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from lakehouse_core import iceberg
from lakehouse_core.registry import Registry, RegistryError, TableSpec, identifier
from lakehouse_core.settings import CATALOG_NAME, LakehouseSettings

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
logging.getLogger("great_expectations").setLevel(logging.WARNING)

DATA_DOCS_SITE = "lakehouse"
MAX_REPORTED_KEYS = 20


class SuiteNotFoundError(FileNotFoundError):
    """A table about to be published has no expectation suite."""


class QualityGateFailed(RuntimeError):
    """At least one ``fail`` expectation failed; nothing was published."""

    def __init__(self, message: str, report: "GateReport"):
        super().__init__(message)
        self.report = report


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int = 0
    failing_keys: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TableReport:
    table: str
    row_count: int
    success: bool
    outcomes: list[ExpectationOutcome]

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "fail"]


@dataclass
class GateReport:
    layer: str
    batch_id: str
    tables: list[TableReport]
    published: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(not t.blocking_failures for t in self.tables)

    def describe_failures(self) -> str:
        lines = []
        for t in self.tables:
            for o in t.blocking_failures:
                keys = ", ".join(json.dumps(k, default=str) for k in o.failing_keys[:5])
                lines.append(f"{t.table}: {o.expectation}({o.column}) failed on {o.unexpected_count} row(s); keys: {keys}")
        return "\n".join(lines)

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.layer}-{self.batch_id}.json"
        path.write_text(json.dumps({**asdict(self), "success": self.success}, indent=2, default=str))
        return path


def default_suite(layer: str, spec: TableSpec) -> dict[str, Any]:
    """The suite of a registered table without a reviewed file: its key is present (and unique in silver)."""
    keys = list(spec.primary_key)
    expectations = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": k},
                     "meta": {"severity": "fail"}} for k in keys]
    if layer == "silver":
        expectations.append({"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": keys},
                             "meta": {"severity": "fail"}} if len(keys) > 1 else
                            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": keys[0]},
                             "meta": {"severity": "fail"}})
    return {"name": f"{layer}.{spec.name}", "meta": {"primary_key": keys + (["_batch_id"] if layer == "bronze" else [])},
            "expectations": expectations}


def load_suite(settings: LakehouseSettings, layer: str, table: str) -> dict[str, Any]:
    """The suite ``expectations/<layer>/<table>.json``, else the default suite of a registered table.

    Raises SuiteNotFoundError for an unregistered table (e.g. a gold mart) without a suite file.
    """
    path = settings.expectations_dir / layer / f"{table}.json"
    if path.exists():
        return json.loads(path.read_text())
    if layer in ("bronze", "silver"):
        try:
            return default_suite(layer, Registry.load(settings).get(table))
        except RegistryError:
            pass
    raise SuiteNotFoundError(f"no expectation suite for {layer}.{table}: expected {path}")


class GreatExpectationsRunner:
    """One file-backed GE context under ``<home>/gx`` with a Data Docs site in ``<home>/data_docs``."""

    def __init__(self, settings: LakehouseSettings):
        import great_expectations as gx

        self._gx = gx
        self.context = gx.get_context(mode="file", project_root_dir=str(settings.home / "gx"))
        self.context.variables.progress_bars = {"globally": False}
        if DATA_DOCS_SITE not in self.context.get_site_names():
            self.context.add_data_docs_site(site_name=DATA_DOCS_SITE, site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(settings.data_docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            })
        self.datasource = self.context.data_sources.add_or_update_spark("lakehouse", persist=False)

    def _batch_definition(self, name: str):
        try:
            asset = self.datasource.get_asset(name)
        except LookupError:
            asset = self.datasource.add_dataframe_asset(name)
        try:
            return asset.get_batch_definition("whole")
        except (KeyError, LookupError):
            return asset.add_batch_definition_whole_dataframe("whole")

    def validate(self, name: str, df: DataFrame, suite_json: dict[str, Any], key_columns: list[str],
                 run_name: str) -> list[ExpectationOutcome]:
        gx = self._gx
        suite = self.context.suites.add_or_update(gx.ExpectationSuite(**{**suite_json, "name": name}))
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=self._batch_definition(name), suite=suite))
        checkpoint = self.context.checkpoints.add_or_update(gx.Checkpoint(
            name=name, validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DATA_DOCS_SITE])],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": key_columns,
                           "partial_unexpected_count": MAX_REPORTED_KEYS},
        ))
        result = checkpoint.run(batch_parameters={"dataframe": df}, run_id=gx.RunIdentifier(run_name=run_name))
        outcomes = []
        for validation in result.run_results.values():
            for r in validation.results:
                config = r.expectation_config
                index = (r.result or {}).get("unexpected_index_list") or []
                outcomes.append(ExpectationOutcome(
                    expectation=config.type,
                    column=config.kwargs.get("column"),
                    severity=(config.meta or {}).get("severity", "fail"),
                    success=bool(r.success),
                    unexpected_count=int((r.result or {}).get("unexpected_count") or 0),
                    failing_keys=[{k: row.get(k) for k in key_columns} for row in index[:MAX_REPORTED_KEYS]],
                ))
        return outcomes


def tables_on_branch(spark: SparkSession, layer: str, branch: str) -> list[str]:
    """Tables of ``layer`` that have ``branch`` (i.e. were written by this batch's run)."""
    names = [r.tableName for r in spark.sql(f"SHOW TABLES IN {CATALOG_NAME}.{layer}").collect()]
    return sorted(n for n in names if iceberg.branch_exists(spark, identifier(layer, n), branch))


def run_gate(spark: SparkSession, settings: LakehouseSettings, layer: str, batch_id: str) -> GateReport:
    """Validate every table of ``layer`` on the batch's audit branch, then publish all or none.

    Failing rows are named by the suite's ``meta.primary_key`` columns.
    Raises QualityGateFailed (main untouched, branches kept) when a ``fail``
    expectation fails, SuiteNotFoundError when a written table has no suite.
    """
    branch = iceberg.audit_branch(batch_id)
    runner = GreatExpectationsRunner(settings)
    report = GateReport(layer, batch_id, [])
    tables = tables_on_branch(spark, layer, branch)
    for table in tables:
        ident = identifier(layer, table)
        df = spark.read.option("branch", branch).table(ident)
        suite = load_suite(settings, layer, table)
        keys = list((suite.get("meta") or {}).get("primary_key", []))
        outcomes = runner.validate(f"{layer}.{table}", df, suite, keys, run_name=batch_id)
        report.tables.append(TableReport(table, df.count(), all(o.success for o in outcomes), outcomes))
    if report.success:
        for table in tables:
            iceberg.publish(spark, identifier(layer, table), branch)
            report.published.append(table)
    else:
        for table in tables:
            iceberg.keep_failed_branch(spark, identifier(layer, table), branch)
    report.write(settings.quality_dir)
    if not report.success:
        raise QualityGateFailed(f"{layer} gate failed for batch {batch_id}; nothing published:\n"
                                f"{report.describe_failures()}", report)
    return report
