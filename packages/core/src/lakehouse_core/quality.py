"""The quality gate: Great Expectations 1.x checkpoints on audit branches, then publish.

Suites are reviewed files ``expectations/<layer>/<table>.json`` (GE suite format), shipped
inside each layer's wheel (entry point group ``lakehouse.expectations``: the layer name →
the package holding an ``expectations/`` folder) or read from ``LAKEHOUSE_EXPECTATIONS_DIR``
when set. A registered bronze or silver table without a file gets a suite checking its key;
a missing folder, an unreadable file or an unknown ``meta.severity`` is an error.

Each expectation carries ``meta.severity``: ``fail`` (the default) blocks the publish,
``warn`` is reported only, ``quarantine`` (silver suites, row rules of QUARANTINE_TYPES) has
silver set aside every row version that breaks it in ``quarantine.silver_<table>`` under the
rule's name ``<type>(<column>)`` before the merge; the gate then checks it like ``fail``.
``_batch.json`` in a layer's folder, when present, validates the batch's row counts: one row
per staged table with its ``lakehouse.*_rows`` state properties (bronze: ``deferred_rows``,
``future_rows``, ``landed_rows``; silver: ``quarantined_rows``) and the rows the gate counted.

The gate publishes a layer's batch all or nothing, together with the quarantine tables
``quarantine.<layer>_*`` staged on the same audit branch. It refuses a batch whose tables
were neither staged nor published (the layer's step failed or never ran). Validation
results and Data Docs go to the state folder; a machine-readable report per (layer, batch)
names every failing expectation, the primary keys of (at most MAX_REPORTED_KEYS of) its
failing rows and each table's batch state.

What a gate costs follows the batch, not the table's age or the suites' detail: append-only
tables are validated on the batch's rows (``batch_rows_filter``), a table holding the rows its
last published gate passed under the same suite keeps that validation, the tables are decided a
few at a time (``spark.parallel_tables``), each in one scan of its branch (``quality_scan``:
the suite compiled to one Spark aggregate; a suite that passes is stored as its checkpoint's
result without running Great Expectations' metric-by-metric jobs), a table that fails (or whose
suite the scan cannot compile) is held in memory and goes to GE's checkpoints, which decide and
name the failing rows, the few rows of a ``_batch`` suite are checked by GE in pandas, the
Data Docs pages of a gate are rendered together once it has decided, and what GE saves or reads
back per suite (its validation definition, its checkpoint) is done while the layer job stages the
batch (``prepare_gate``).

A gate runs in an application of its own (``run_gate``) or in the Spark application of the layer
job that staged the batch (``run_gate_in_layer_job``: no JVM start of its own, DESIGN §6); the
gate step then finds the passing report (``recorded_gate``) and reports it as its own
OpenLineage run without starting Spark.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timezone
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from string import Formatter
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse_core import data_docs, iceberg, lineage, quality_scan
from lakehouse_core.errors import ConfigurationError, LakehouseError, UpstreamNotPublishedError
from lakehouse_core.faults import crash_point
from lakehouse_core.parallel import run_tables
from lakehouse_core.progress import Progress
from lakehouse_core.registry import Registry, RegistryError, TableSpec, identifier
from lakehouse_core.settings import LakehouseSettings
from lakehouse_core.spark import spark_lineage_held_back

if TYPE_CHECKING:
    import pandas

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
logging.getLogger("great_expectations").setLevel(logging.WARNING)
_log = logging.getLogger(__name__)

DATA_DOCS_SITE = "lakehouse"
MAX_REPORTED_KEYS = 20
SEVERITIES = ("fail", "warn", "quarantine")
#: severities whose failure blocks the publish (a ``quarantine`` rule holds once its rows are set aside)
BLOCKING = ("fail", "quarantine")
#: the row rules a silver suite may give severity ``quarantine`` (lakehouse_silver.quarantine
#: turns each into a condition on a row)
QUARANTINE_TYPES = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set",
                    "expect_column_values_to_not_be_in_set", "expect_column_values_to_be_between",
                    "expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex",
                    "expect_column_value_lengths_to_be_between")
BATCH_SUITE = "_batch"
#: GE's query expectation: the rows ``unexpected_rows_query`` returns are the failing rows (its
#: ``meta.column`` names the column it checks); besides ``{batch}``, the query may read other
#: tables as ``{<layer>.<table>}``: the table as the batch sees it (``resolve_tables``)
UNEXPECTED_ROWS = "unexpected_rows_expectation"
_TABLE_REFERENCE = re.compile(r"\{(bronze|silver|gold|quarantine)\.([a-z0-9_]+)\}")
ROWS_SUFFIX = "_rows"
#: ``lakehouse.measure.<name>`` properties (e.g. ``freshness_lag_days``): a layer's measure of the
#: batch for the ``_batch`` suite, as column ``<name>``
MEASURE_PREFIX = "measure."
#: a ``<name>_rows`` count against the previous published batch's: ``<name>_rows_vs_previous``
VS_PREVIOUS_SUFFIX = "_vs_previous"
#: Snapshot-summary properties ``lakehouse.reconcile.<name>.<side>`` hold a total a layer computed
#: two ways (e.g. ``gmv.gold`` from the mart, ``gmv.silver`` straight from silver); the ``_batch``
#: suite compares them as columns ``<name>_<side>``.
RECONCILE_PREFIX = "reconcile."
SUITE_ENTRY_POINTS = "lakehouse.expectations"


class SuiteNotFoundError(ConfigurationError):
    """A table about to be published has no expectation suite."""


class QualityGateFailed(LakehouseError):
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
    state: dict[str, str] = field(default_factory=dict)  # lakehouse.* properties of the staged batch
    previous: dict[str, str] = field(default_factory=dict)  # those of the previous published batch
    batch_rows: int | None = None  # the rows the batch added, counted by the gate (append-only tables)
    seconds: float | None = None  # from the start of the table's scan to its result (a few scan at once)
    suite_digest: str | None = None  # the suite validated (``suite_digest``)
    #: the batch whose validation these outcomes are, when the table held the same rows as then
    validated_in: str | None = None
    location: str | None = None  # the table's folder in the warehouse (its OpenLineage dataset)

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity in BLOCKING]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "warn"]


def _describe(table: str, outcome: ExpectationOutcome) -> str:
    keys = ", ".join(json.dumps(k, default=str) for k in outcome.failing_keys[:5])
    return (f"{table}: {outcome.expectation}({outcome.column}) failed on {outcome.unexpected_count} row(s)"
            + (f"; keys: {keys}" if keys else ""))


@dataclass
class GateReport:
    layer: str
    batch_id: str
    tables: list[TableReport]
    published: list[str] = field(default_factory=list)
    already_published: list[str] = field(default_factory=list)
    started: str | None = None  # when the gate began and decided (UTC, ISO 8601)
    finished: str | None = None
    #: per table the gate decided (``<namespace>.<table>``), its metadata file once the gate was done
    #: (``recorded_gate`` trusts a passing report only while the catalog still points at them)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(not t.blocking_failures for t in self.tables)

    def describe_failures(self) -> str:
        return "\n".join(_describe(t.table, o) for t in self.tables for o in t.blocking_failures)

    def summary_lines(self) -> list[str]:
        """What the gate did, a line per table (warnings included)."""
        lines = []
        for t in self.tables:
            state = ", ".join(f"{k.removeprefix(iceberg.PROPERTY_PREFIX)} {v}" for k, v in sorted(t.state.items())
                              if k.endswith(ROWS_SUFFIX))
            if t.table.endswith(f".{BATCH_SUITE}"):
                lines.append(f"{t.table}: batch counts of {t.row_count} table(s) validated")
            else:
                done = "published" if t.table in self.published else "not published"
                validated = f"{t.row_count} rows validated" if t.outcomes else "no rows in the batch, nothing to validate"
                lines.append(f"{t.table}: {validated}, {done}" + (f" ({state})" if state else ""))
            lines.extend(f"  warning: {_describe(t.table, o)}" for o in t.warnings)
        lines.extend(f"{table}: already published, skipped" for table in self.already_published)
        return lines

    def covers(self, tables: list[str]) -> bool:
        """Whether the report decided each of ``tables`` (validated, or found published)."""
        decided = {t.table for t in self.tables} | set(self.already_published)
        return all(f"{self.layer}.{t}" in decided for t in tables)

    def report_lineage(self, reported: lineage.LineageRun) -> None:
        """Record the gate's datasets: each table validated, with its expectations' outcomes and
        rows, as an input; each table published as an output."""
        validated = [t for t in self.tables if t.location is not None]
        reported.inputs[:] = [lineage.validated_table(t.location, t.row_count, t.outcomes) for t in validated]
        reported.outputs[:] = [lineage.published_table(t.location) for t in validated if t.table in self.published]

    @staticmethod
    def path(directory: Path, layer: str, batch_id: str) -> Path:
        return directory / f"{layer}-{batch_id}.json"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = self.path(directory, self.layer, self.batch_id)
        path.write_text(json.dumps({**asdict(self), "success": self.success}, indent=2, default=str))
        return path

    @classmethod
    def read(cls, path: Path) -> "GateReport":
        """The report ``write`` wrote to ``path``. Raises ConfigurationError when it is malformed."""
        try:
            fields = json.loads(path.read_text())
            fields.pop("success")
            tables = [TableReport(**{**t, "outcomes": [ExpectationOutcome(**o) for o in t["outcomes"]]})
                      for t in fields.pop("tables")]
            return cls(**fields, tables=tables)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"gate report {path} is malformed ({exc}); remove it to gate the batch again") from None


@dataclass(frozen=True)
class LatestResult:
    """A table's latest gate result (``lakehouse quality``)."""

    table: str  # <namespace>.<table>
    batch_id: str
    passed: int
    warned: int
    failed: int
    rows: int
    quarantined: int | None  # rows of the batch set aside in quarantine (silver tables)
    published: bool | None  # None: the batch-level checks (``_batch``), not a table
    data_docs: Path | None  # the Data Docs page of the validation


def latest_results(settings: LakehouseSettings) -> list[LatestResult]:
    """The latest gate result per table, from the reports in ``quality_dir``: the newest batch
    (for a batch gated again, its last attempt), with the expectations passed, warned and
    failed, the rows validated and the Data Docs page."""
    latest: dict[str, tuple[dict, dict]] = {}
    for path in sorted(settings.quality_dir.glob("*.json"), key=lambda p: (p.stem.split("-", 1)[1], p.stem)):
        report = json.loads(path.read_text())
        for table in report["tables"]:
            latest[table["table"]] = (report, table)
    results = []
    for name, (report, table) in sorted(latest.items()):
        outcomes = table["outcomes"]
        failed = [o for o in outcomes if not o["success"]]
        quarantined = table["state"].get(f"{iceberg.PROPERTY_PREFIX}quarantined_rows")
        results.append(LatestResult(
            name, report["batch_id"], len(outcomes) - len(failed), sum(o["severity"] == "warn" for o in failed),
            sum(o["severity"] in BLOCKING for o in failed), table["row_count"],
            None if quarantined is None else int(quarantined),
            None if name.endswith(f".{BATCH_SUITE}") else name in report["published"],
            _data_docs_page(settings, name, table.get("validated_in") or report["batch_id"])))
    return results


def _data_docs_page(settings: LakehouseSettings, table: str, batch_id: str) -> Path | None:
    """The newest Data Docs page of ``table``'s validation for ``batch_id`` (None: not rendered)."""
    namespace, name = table.split(".", 1)
    pages = sorted((settings.data_docs_dir / "validations" / namespace / name / batch_id).glob("*/*.html"))
    return pages[-1] if pages else None


def severity(meta: dict[str, Any] | None) -> str:
    """The severity an expectation's ``meta`` declares (``fail`` when it declares none)."""
    return (meta or {}).get("severity", "fail")


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


def quarantine_suite(table: str) -> dict[str, Any]:
    """The built-in suite of a quarantine table: every row names its rule, batch and key."""
    return {"name": f"quarantine.{table}", "meta": {"primary_key": ["batch_id", "primary_key"]},
            "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c},
                              "meta": {"severity": "fail"}} for c in ("rule", "batch_id", "primary_key")]}


def suite_folder(settings: LakehouseSettings, layer: str) -> Path:
    """The folder of ``layer``'s suites: ``LAKEHOUSE_EXPECTATIONS_DIR/<layer>`` when set, else the
    ``expectations/`` folder shipped in the wheel of the package registered for ``layer`` in the
    ``lakehouse.expectations`` entry-point group.

    Raises ConfigurationError when the setting names no folder, no installed package ships the
    layer's suites, or the folder does not exist.
    """
    if settings.expectations_dir is not None:
        root = Path(settings.expectations_dir)
        if not root.is_dir():
            raise ConfigurationError(f"LAKEHOUSE_EXPECTATIONS_DIR={root}: no such folder")
        folder = root / layer
    else:
        shipped = [ep for ep in entry_points(group=SUITE_ENTRY_POINTS) if ep.name == layer]
        if not shipped:
            raise ConfigurationError(f"no installed package ships the expectation suites of layer {layer} "
                                     f"(entry point group {SUITE_ENTRY_POINTS}): install lakehouse-{layer} "
                                     "or set LAKEHOUSE_EXPECTATIONS_DIR")
        folder = Path(str(shipped[0].dist.locate_file(f"{shipped[0].value}/expectations")))
    if not folder.is_dir():
        raise ConfigurationError(f"expectation suites of layer {layer}: folder {folder} does not exist")
    return folder


def _check_quarantine_rule(what: str, expectation: dict[str, Any], layer: str) -> None:
    """Raises ConfigurationError unless ``expectation`` (severity ``quarantine``) is a row rule
    silver can set rows aside for."""
    kwargs = expectation.get("kwargs") or {}
    if layer != "silver":
        raise ConfigurationError(f"{what}: meta.severity 'quarantine' is for silver suites (silver sets rows "
                                 f"aside before its merge), not {layer}")
    if expectation.get("type") not in QUARANTINE_TYPES or "column" not in kwargs:
        raise ConfigurationError(f"{what}: meta.severity 'quarantine' needs a column row rule, one of "
                                 f"{', '.join(QUARANTINE_TYPES)}")
    if "mostly" in kwargs:
        raise ConfigurationError(f"{what}: meta.severity 'quarantine' sets aside every row that breaks the rule; "
                                 "'mostly' does not apply")


def quarantine_rules(settings: LakehouseSettings, table: str) -> list[dict[str, Any]]:
    """The expectations of severity ``quarantine`` in silver's suite file of ``table`` (none
    without a file), read without importing Great Expectations.

    Raises ConfigurationError for an unreadable file or a rule silver cannot apply.
    """
    path = suite_folder(settings, "silver") / f"{table}.json"
    if not path.exists():
        return []
    rules = [e for e in _read_suite(path).get("expectations") or [] if severity(e.get("meta")) == "quarantine"]
    for number, rule in enumerate(rules, 1):
        _check_quarantine_rule(f"{path}: quarantine rule {number} ({rule.get('type')})", rule, "silver")
    return rules


def _read_suite(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path}: not a JSON suite ({exc})") from None


def validate_suite(suite: dict[str, Any], source: str, pii_columns: set[str] = frozenset(),
                   layer: str = "silver") -> dict[str, Any]:
    """Check a suite of ``layer`` read from ``source``: every expectation type and ``meta.severity``
    known (``quarantine`` only on silver row rules), no expectation on a column in ``pii_columns``
    (its failing values would be copied into results and Data Docs).

    Raises ConfigurationError naming the file, the expectation and the value.
    """
    expectations = suite.get("expectations")
    if not isinstance(expectations, list):
        raise ConfigurationError(f"{source}: a suite needs a list 'expectations'")
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    for number, expectation in enumerate(expectations, 1):
        what = f"{source}: expectation {number} ({expectation.get('type')})"
        try:  # Great Expectations logs an unknown type and validates without it: refuse it here
            get_expectation_impl(str(expectation.get("type")))
        except ExpectationNotFoundError:
            raise ConfigurationError(f"{what}: unknown expectation type {expectation.get('type')!r}") from None
        value = severity(expectation.get("meta"))
        if value not in SEVERITIES:
            raise ConfigurationError(f"{what}: unknown meta.severity {value!r}; expected one of {', '.join(SEVERITIES)}")
        if value == "quarantine":
            _check_quarantine_rule(what, expectation, layer)
        kwargs = expectation.get("kwargs") or {}
        if expectation.get("type") == UNEXPECTED_ROWS:
            _check_query(what, str(kwargs.get("unexpected_rows_query")))
        columns = {kwargs.get("column"), *(kwargs.get("column_list") or [])} & pii_columns
        if columns:
            raise ConfigurationError(f"{what}: column {sorted(columns)[0]} holds personal data in this layer; "
                                     "validate it in silver, where it is masked")
    return suite


#: rows per task of the frames a gate validates: Great Expectations runs a few Spark jobs per
#: table, and on a frame this small each job costs its scheduling, so fewer tasks are faster
ROWS_PER_VALIDATION_TASK = 500_000


def in_memory(df: DataFrame) -> tuple[DataFrame, int]:
    """``df`` computed once and held by the executors (a local checkpoint: memory, spilling to
    disk; freed with the frame), in about one task per ROWS_PER_VALIDATION_TASK rows (at most the
    cores): so that every query of a validation scans the blocks, not the table. Returns the
    frame and its row count."""
    df = df.localCheckpoint()
    rows = df.count()
    tasks = min(-(-rows // ROWS_PER_VALIDATION_TASK) or 1, df.sparkSession.sparkContext.defaultParallelism)
    return (df.coalesce(tasks) if df.rdd.getNumPartitions() > tasks else df), rows


class ParentTables:
    """The tables a gate's ``unexpected_rows_query`` expectations read as ``{<layer>.<table>}``
    (referential integrity): each read as the batch publishes it (its audit branch where the
    batch staged it, else ``main``) and named in the queries by a temporary view; ``close`` drops
    the views."""

    VIEW_PREFIX = "lakehouse_gate_"

    def __init__(self, spark: SparkSession, branch: str):
        self._spark, self._branch = spark, branch
        self._frames: dict[str, DataFrame] = {}
        self._lock = threading.Lock()  # (tables are scanned a few at a time)

    def view(self, suite_name: str, layer: str, table: str) -> str:
        """The temporary view holding ``layer.table`` for this gate.

        Raises ConfigurationError naming ``suite_name`` and the table when it does not exist."""
        view = self.view_name(layer, table)
        with self._lock:
            if view not in self._frames:
                self._hold(suite_name, layer, table, view)
        return view

    @classmethod
    def view_name(cls, layer: str, table: str) -> str:
        """The name of the temporary view holding ``layer.table`` in a gate."""
        return f"{cls.VIEW_PREFIX}{layer}_{table}"

    def _hold(self, suite_name: str, layer: str, table: str, view: str) -> None:
        ident = identifier(layer, table)
        if not iceberg.table_exists(self._spark, ident):
            raise ConfigurationError(f"suite {suite_name}: {UNEXPECTED_ROWS} reads {layer}.{table}, "
                                     "which does not exist")
        read = self._spark.read
        if iceberg.branch_exists(self._spark, ident, self._branch):
            read = read.option("branch", self._branch)
        self._frames[view] = read.table(ident)
        self._frames[view].createOrReplaceTempView(view)

    def close(self) -> None:
        for view in self._frames:
            self._spark.catalog.dropTempView(view)
        self._frames.clear()


def resolve_tables(suite: dict[str, Any], parents: ParentTables | None) -> dict[str, Any]:
    """``suite`` with each ``{<layer>.<table>}`` of its ``unexpected_rows_query`` replaced by the
    view of ``parents`` holding that table as the batch publishes it (a referential-integrity
    query reads the parents the batch publishes with the table); ``parents`` None: by the view's
    name alone, no table read (the suite as the gate will hand it to Great Expectations).

    Raises ConfigurationError naming the suite and the table when a referenced table does not exist."""
    if not any(e["type"] == UNEXPECTED_ROWS for e in suite["expectations"]):
        return suite
    view = parents.view if parents is not None else lambda _, layer, table: ParentTables.view_name(layer, table)
    return {**suite, "expectations": [
        {**e, "kwargs": {**e["kwargs"], "unexpected_rows_query": _TABLE_REFERENCE.sub(
            lambda m: view(suite["name"], m.group(1), m.group(2)), e["kwargs"]["unexpected_rows_query"])}}
        if e["type"] == UNEXPECTED_ROWS else e
        for e in suite["expectations"]]}


def _check_query(what: str, query: str) -> None:
    """Raise ConfigurationError unless every placeholder of ``query`` is ``{batch}`` or a table."""
    try:
        fields = {f for _, f, _, _ in Formatter().parse(_TABLE_REFERENCE.sub("", query)) if f is not None}
    except ValueError as exc:
        raise ConfigurationError(f"{what}: unexpected_rows_query: {exc} (a literal brace is written twice)") from None
    if fields - {"batch"}:
        raise ConfigurationError(f"{what}: unexpected_rows_query placeholder {{{sorted(fields - {'batch'})[0]}}} is "
                                 "neither {batch} nor a table {<bronze|silver|gold|quarantine>.<table>}")
    if "batch" not in fields:
        raise ConfigurationError(f"{what}: unexpected_rows_query does not read {{batch}}, the rows validated")


def only_row_checks(suite: dict[str, Any]) -> bool:
    """Whether every expectation of ``suite`` judges rows one by one (a column, column-pair or
    multicolumn map expectation: it passes on no rows), none the table as a whole (row counts,
    aggregates)."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.registry import get_expectation_impl

    row_checks = (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
    return all(issubclass(get_expectation_impl(e["type"]), row_checks) for e in suite["expectations"])


def load_suite(settings: LakehouseSettings, layer: str, table: str) -> dict[str, Any]:
    """The suite of ``layer.table``: its file, else (registered bronze/silver tables) the default
    suite; quarantine tables use the built-in ``quarantine_suite``.

    Raises SuiteNotFoundError for an unregistered table without a file, ConfigurationError for
    a missing suite folder or an invalid file (see ``validate_suite``).
    """
    if layer == "quarantine":
        return quarantine_suite(table)
    path = suite_folder(settings, layer) / f"{table}.json"
    spec = None
    if layer in ("bronze", "silver") and table != BATCH_SUITE:
        try:
            spec = Registry.load(settings).get(table)
        except RegistryError:
            pass
    if path.exists():
        pii = set(spec.pii) if spec is not None and layer == "bronze" else set()
        return validate_suite(_read_suite(path), str(path), pii, layer)
    if spec is not None:
        return default_suite(layer, spec)
    raise SuiteNotFoundError(f"no expectation suite for {layer}.{table}: expected {path}")


def _unsaved(suite: Any) -> dict[str, Any]:
    """A GE suite as JSON without the ids saving gives it and its expectations (GE's equality
    compares the expectations' ids)."""
    found = suite.to_json_dict()
    found.pop("id", None)
    found["expectations"] = sorted(json.dumps({k: v for k, v in e.items() if k != "id"}, sort_keys=True, default=str)
                                   for e in found["expectations"])
    return found


class GreatExpectationsRunner:
    """One file-backed GE context under ``<home>/gx`` with a Data Docs site in ``<home>/data_docs``.

    A validation runs its checkpoint with the ``BOOLEAN_ONLY`` result format (GE's cheapest: no
    failing values collected, a few Spark jobs per table); only when an expectation fails does a
    second checkpoint run the suite again in ``SUMMARY`` format to count the failing rows and
    collect (at most MAX_REPORTED_KEYS of) their keys. Checkpoints store their results; the Data
    Docs pages of the results are rendered together (``build_data_docs``), not one per checkpoint
    (each of which would render the index again).
    """

    #: the result format of the decision and of the failing-row diagnosis
    DECISION = {"result_format": "BOOLEAN_ONLY"}
    DIAGNOSIS = "SUMMARY"

    def __init__(self, settings: LakehouseSettings):
        import great_expectations as gx

        self._gx = gx
        self._settings = settings
        self.context = gx.get_context(mode="file", project_root_dir=str(settings.home / "gx"))
        if self.context.variables.config_variables_file_path is not None:
            # no config variable is used here, and GE parses their YAML file again on every store
            # lookup (a few hundred a gate): the project names none, from the context loaded next
            self.context.variables.config_variables_file_path = None
            self.context.variables.save()
            self.context = gx.get_context(mode="file", project_root_dir=str(settings.home / "gx"))
        self.context.variables.progress_bars = {"globally": False}
        site = {"class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(settings.data_docs_dir)},
                # (GE's index reads every result it lists: unbounded, a gate would cost more every day)
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                       "validation_results_limit": settings.quality.data_docs_index_results}}
        if DATA_DOCS_SITE not in self.context.get_site_names():
            self.context.add_data_docs_site(site_name=DATA_DOCS_SITE, site_config=site)
        elif self.context.variables.data_docs_sites[DATA_DOCS_SITE] != site:
            self.context.update_data_docs_site(site_name=DATA_DOCS_SITE, site_config=site)
        # Spark frames (the tables), pandas frames (the few rows of a ``_batch`` suite)
        self.datasource = self._data_source("spark", "lakehouse", persist=False)
        self.local_datasource = self._data_source("pandas", "lakehouse_local")
        # saved by this runner: suite name -> (its JSON, the saved suite); checkpoint name -> ((the
        # saved suite's id, its result format), the saved checkpoint)
        self._suites: dict[str, tuple[str, Any]] = {}
        self._checkpoints: dict[str, tuple[tuple[int, str], Any]] = {}

    def _data_source(self, kind: str, name: str, **options: Any):
        """The data source ``name`` as earlier processes saved it (with the assets and batch
        definitions of every suite: GE rewrites its whole project file for each one added), added
        or replaced when missing or of another kind or options."""
        sources = self.context.data_sources
        try:
            saved = sources.get(name)
        except KeyError:
            return getattr(sources, f"add_{kind}")(name, **options)
        if saved.type != kind or any(getattr(saved, option) != value for option, value in options.items()):
            return getattr(sources, f"add_or_update_{kind}")(name, **options)
        return saved

    def add_assets(self, names: list[str]) -> None:
        """Add to the Spark data source the assets ``names`` (each with its whole-frame batch
        definition) that it lacks, in one save of GE's project file: added one at a time, GE
        rewrites the whole file (every asset of every layer) for each asset and each definition."""
        held = {asset.name for asset in self.datasource.assets}
        missing = [name for name in dict.fromkeys(names) if name not in held]
        if not missing:
            return
        kept = [json.loads(asset.json()) for asset in self.datasource.assets]  # (their ids kept)
        added = [{"name": name, "type": "dataframe", "batch_definitions": [{"name": "whole"}]} for name in missing]
        self.datasource = self.context.data_sources.add_or_update_spark(
            name=self.datasource.name, persist=self.datasource.persist, assets=kept + added)

    def prepare(self, name: str, suite_json: dict[str, Any], local: bool = False) -> None:
        """Have ready (found or saved) the checkpoint that ``validate`` runs or stores the passing
        result of, for ``suite_json`` as suite ``name`` (on a pandas frame: ``local``)."""
        self._checkpoint(name, {**suite_json, "name": name}, self.DECISION, local)

    def _batch_definition(self, name: str, local: bool):
        datasource = self.local_datasource if local else self.datasource
        try:
            asset = datasource.get_asset(name)
        except LookupError:
            asset = datasource.add_dataframe_asset(name)
        try:
            return asset.get_batch_definition("whole")
        except (KeyError, LookupError):
            return asset.add_batch_definition_whole_dataframe("whole")

    def _suite(self, suite_json: dict[str, Any]):
        """The suite ``suite_json`` as saved in the context (saved again only when it changed: every
        checkpoint of the suite holds the saved object)."""
        definition = json.dumps(suite_json, sort_keys=True, default=str)
        saved = self._suites.get(suite_json["name"])
        if saved is None or saved[0] != definition:  # (GE is handed a copy: it adds to a suite's meta)
            wanted = self._gx.ExpectationSuite(**json.loads(definition))
            saved = self._suites[suite_json["name"]] = (definition, self._kept(
                self.context.suites, wanted, lambda found: _unsaved(found) == _unsaved(wanted)))
        return saved[1]

    @staticmethod
    def _kept(store: Any, wanted: Any, same: Callable[[Any], bool]) -> Any:
        """What an earlier process saved as ``wanted.name`` in ``store`` (a GE factory) when ``same``
        holds for it (a new process does not rewrite what it finds unchanged); else ``wanted``,
        added, or saved over what differs (GE's ``add_or_update`` saves again every object the new
        one refers to, which this runner has just found or saved: only when it has to)."""
        from great_expectations.exceptions import DataContextError

        try:
            found = store.get(wanted.name)
        except DataContextError:
            return store.add(wanted)
        return found if same(found) else store.add_or_update(wanted)

    def _checkpoint(self, name: str, suite_json: dict[str, Any], result_format: dict[str, Any], local: bool = False):
        """The checkpoint ``name`` validating ``suite_json`` in ``result_format`` on a Spark frame
        (on a pandas frame: ``local``), saved to the context once per definition (a new process
        finds what an earlier one saved)."""
        gx = self._gx
        suite = self._suite(suite_json)
        definition = (id(suite), json.dumps(result_format, sort_keys=True), local)
        saved = self._checkpoints.get(name)
        if saved is not None and saved[0] == definition:
            return saved[1]
        data = self._batch_definition(suite.name, local)
        validation = self._kept(self.context.validation_definitions,
                                gx.ValidationDefinition(name=name, data=data, suite=suite),
                                lambda found: found.suite.id == suite.id and found.data.id == data.id)
        checkpoint = self._kept(
            self.context.checkpoints,
            gx.Checkpoint(name=name, validation_definitions=[validation], actions=[], result_format=result_format),
            lambda found: ([v.id for v in found.validation_definitions] == [validation.id] and not found.actions
                           and found.result_format == result_format))
        self._checkpoints[name] = (definition, checkpoint)
        return checkpoint

    def _run(self, name: str, suite_json: dict[str, Any], result_format: dict[str, Any], df: Any, run_name: str):
        from great_expectations.exceptions.resource_freshness import ResourceFreshnessAggregateError

        local = not isinstance(df, DataFrame)  # (a pandas frame)

        def run():
            return self._checkpoint(name, suite_json, result_format, local).run(
                batch_parameters={"dataframe": df}, run_id=self._gx.RunIdentifier(run_name=run_name))

        try:
            return run()
        except ResourceFreshnessAggregateError:  # another runner saved the suite since: save this one again
            self._suites.pop(suite_json["name"], None)
            self._checkpoints.pop(name, None)
            return run()

    def validate(self, name: str, df: Any, suite_json: dict[str, Any], key_columns: list[str],
                 run_name: str, decision: quality_scan.ScanDecision | None = None) -> list[ExpectationOutcome]:
        """Run ``suite_json`` on ``df`` (a Spark frame, or a pandas frame of a few rows) as a
        checkpoint (its results stored in the state folder),
        again with failing-row details when an expectation fails. Persist ``df`` first when it is
        expensive to compute: each checkpoint runs several Spark jobs on it.

        ``decision``: the suite's outcome on ``df`` found by ``quality_scan.decide``; when every
        expectation passed, its result is stored as the decision checkpoint's would be, without
        running it."""
        suite_json = {**suite_json, "name": name}
        if decision is not None and decision.success:
            return self._store_passed(name, suite_json, run_name, decision.decided_by)
        result = None if decision is not None else self._run(name, suite_json, self.DECISION, df, run_name)
        if result is None or not result.success:  # (the scan found a failure: straight to its diagnosis)
            # SUMMARY: exact counts, and at most MAX_REPORTED_KEYS failing rows brought to the
            # driver (COMPLETE would collect every failing row's keys)
            diagnosis = {"result_format": self.DIAGNOSIS, "unexpected_index_column_names": key_columns,
                         "partial_unexpected_count": MAX_REPORTED_KEYS}
            result = self._run(f"{name} failing rows", suite_json, diagnosis, df, run_name)
        outcomes = []
        for validation in result.run_results.values():
            for r in validation.results:
                config, details = r.expectation_config, r.result or {}
                index = details.get("partial_unexpected_index_list") or []
                unexpected = (details.get("observed_value") if config.type == UNEXPECTED_ROWS
                              else details.get("unexpected_count"))
                outcomes.append(ExpectationOutcome(
                    expectation=config.type,
                    column=_checked_column(config),
                    severity=severity(config.meta),
                    success=bool(r.success),
                    unexpected_count=int(unexpected or 0),
                    failing_keys=[{k: row.get(k) for k in key_columns} for row in index[:MAX_REPORTED_KEYS]],
                ))
        return outcomes

    def _store_passed(self, name: str, suite_json: dict[str, Any], run_name: str,
                      decided_by: str) -> list[ExpectationOutcome]:
        """Store, as the result of ``name``'s decision checkpoint, ``suite_json`` passing in full
        (``BOOLEAN_ONLY``: no details); ``meta.lakehouse_decided_by`` says what decided it."""
        from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        checkpoint = self._checkpoint(name, suite_json, self.DECISION)
        (validation,) = checkpoint.validation_definitions
        batch_id = f"{self.datasource.name}-{name}"
        run_id = self._gx.RunIdentifier(run_name=run_name, run_time=datetime.now(timezone.utc))
        configurations = [replace_kwargs(e.configuration, batch_id=batch_id) for e in validation.suite.expectations]
        result = ExpectationSuiteValidationResult(
            success=True, suite_name=name, batch_id=batch_id,
            results=[ExpectationValidationResult(success=True, expectation_config=c, result={},
                                                 exception_info={"raised_exception": False, "exception_message": None,
                                                                 "exception_traceback": None})
                     for c in configurations],
            statistics={"evaluated_expectations": len(configurations), "successful_expectations": len(configurations),
                        "unsuccessful_expectations": 0, "success_percent": 100.0},
            meta={"great_expectations_version": self._gx.__version__, "batch_spec": {"batch_data": "SparkDataFrame"},
                  "active_batch_definition": {"datasource_name": self.datasource.name,
                                              "data_connector_name": "fluent", "data_asset_name": name,
                                              "batch_identifiers": {"dataframe": "<DATAFRAME>"}},
                  "validation_id": validation.id, "checkpoint_id": checkpoint.id, "run_id": run_id,
                  "validation_time": run_id.run_time, "batch_parameters": {"dataframe": "<DATAFRAME>"},
                  "lakehouse_decided_by": decided_by})
        suite_id = ExpectationSuiteIdentifier(name=name)
        self.context.validation_results_store.store_validation_results(
            suite_validation_result=result, expectation_suite_identifier=suite_id,
            suite_validation_result_identifier=ValidationResultIdentifier(
                expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=batch_id))
        return [ExpectationOutcome(expectation=c.type, column=_checked_column(c), severity=severity(c.meta),
                                   success=True) for c in configurations]

    def build_data_docs(self) -> Path:
        """Render the Data Docs pages of the stored validation results that have none yet, and
        the index, pointed at the vendored CDN assets (``data_docs``); returns the index page.
        Raises DataDocsError when a page loads an asset that is not vendored."""
        site = self._settings.data_docs_dir
        bound = self._settings.quality.data_docs_index_results
        # GE renders the pages of the newest ``bound`` results only (its index's bound)
        newest = sorted(self.context.validation_results_store.list_keys(), key=lambda k: k.run_id.run_time,
                        reverse=True)
        unrendered = [key for key in newest[bound:bound * 2] if not self._page(key).exists()]
        if unrendered:
            _log.warning("Data Docs: %d validation results beyond the newest %d have no page (raise "
                         "LAKEHOUSE_QUALITY__DATA_DOCS_INDEX_RESULTS to render them)", len(unrendered), bound)
        pending = [key for key in newest[:bound] if not self._page(key).exists()]
        if pending:  # (an empty list would make GE render every page again)
            suites = {key.expectation_suite_identifier for key in pending}
            suites = {s for s in suites if self._suite_page_stale(s)}  # (rendered again when the suite changed)
            self.context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=[*pending, *suites])
            data_docs.make_offline(site, [site / "index.html", *map(self._page, pending),
                                          *(site.joinpath("expectations", *s.to_tuple()).with_suffix(".html")
                                            for s in suites)])
        return site / "index.html"

    def _suite_page_stale(self, suite) -> bool:
        """Whether the Data Docs page of the stored suite ``suite`` is missing or older than it."""
        page = self._settings.data_docs_dir.joinpath("expectations", *suite.to_tuple()).with_suffix(".html")
        stored = Path(self.context.root_directory).joinpath("expectations", *suite.to_tuple()).with_suffix(".json")
        return not page.exists() or not stored.exists() or stored.stat().st_mtime >= page.stat().st_mtime

    def _page(self, key) -> Path:
        *folders, batch = key.to_tuple()
        return self._settings.data_docs_dir.joinpath("validations", *folders, f"{batch}.html")


_RUNNERS: dict[Path, GreatExpectationsRunner] = {}


def ge_runner(settings: LakehouseSettings) -> GreatExpectationsRunner:
    """The process's runner for the state folder of ``settings`` (its context and checkpoints are
    created once, not per gate)."""
    if settings.home not in _RUNNERS or not settings.home.joinpath("gx").is_dir():
        _RUNNERS[settings.home] = GreatExpectationsRunner(settings)
    return _RUNNERS[settings.home]


def prepare_gate(settings: LakehouseSettings, layer: str) -> None:
    """Find or save in the Great Expectations project, ahead of ``layer``'s gate and in this
    process's runner (``ge_runner``), what the gate's validations use: the assets, suites,
    validation definitions and checkpoints of the layer's tables (bronze, silver: the registered
    ones; gold: those with a suite) and of its ``_batch`` suite. A fresh project saves a few files
    per table, a new process reads them back: a layer job does this in a thread while it stages
    the batch (``lakehouse_core.cli.preload_great_expectations``), the gate then finds them ready.
    Reads no table. Raises what ``load_suite`` raises."""
    folder = suite_folder(settings, layer)
    tables = ([spec.name for spec in Registry.load(settings)] if layer in ("bronze", "silver")
              else sorted(path.stem for path in folder.glob("*.json") if path.stem != BATCH_SUITE))
    runner = ge_runner(settings)
    runner.add_assets([f"{layer}.{table}" for table in tables])
    for table in tables:
        runner.prepare(f"{layer}.{table}", resolve_tables(load_suite(settings, layer, table), None))
    if (folder / f"{BATCH_SUITE}.json").exists():
        runner.prepare(f"{layer}.{BATCH_SUITE}", load_suite(settings, layer, BATCH_SUITE), local=True)


def _checked_column(config) -> str | None:
    """The column(s) an expectation configuration checks, as reports name them."""
    return (config.kwargs.get("column") or ", ".join(config.kwargs[k] for k in ("column_A", "column_B")
                                                     if k in config.kwargs)
            or (config.meta or {}).get("column"))


def replace_kwargs(config, **kwargs: Any):
    """A copy of the expectation configuration ``config`` with ``kwargs`` added to its kwargs."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    return ExpectationConfiguration(type=config.type, kwargs={**config.kwargs, **kwargs}, meta=config.meta,
                                    id=config.id, notes=config.notes, description=config.description,
                                    rendered_content=config.rendered_content, severity=config.severity)


def tables_on_branch(spark: SparkSession, namespace: str, branch: str, prefix: str = "") -> list[str]:
    """Tables of ``namespace`` (named ``prefix*``) that have ``branch``, i.e. were staged by the batch's run."""
    return [n for n in iceberg.table_names(spark, namespace)
            if n.startswith(prefix) and iceberg.branch_exists(spark, identifier(namespace, n), branch)]


@dataclass(frozen=True)
class _Batch:
    """Where the tables of a layer stand for one batch."""

    staged: list[str]
    published: list[str]
    missing: list[str]


def _batch_tables(spark: SparkSession, layer: str, branch: str, batch_id: str, expected: list[str]) -> _Batch:
    staged, published, missing = [], [], []
    for table in expected:
        ident = identifier(layer, table)
        if not iceberg.table_exists(spark, ident):
            missing.append(table)
        elif iceberg.branch_exists(spark, ident, branch):
            staged.append(table)
        elif iceberg.batch_status(spark, ident, batch_id).published:
            published.append(table)
        else:
            missing.append(table)
    return _Batch(staged, published, missing)


def _batch_values(report: TableReport) -> dict[str, int | Decimal]:
    """A table's batch-level values: ``lakehouse.*_rows`` counts (and each against the previous
    published batch's, as a ratio, when that one was not 0), ``lakehouse.measure.*`` measures,
    ``lakehouse.reconcile.*`` totals and, for an append-only table, ``batch_rows``: the rows of the
    batch the gate counted in the table (what the layer's own counts are reconciled with)."""
    values: dict[str, int | Decimal] = {} if report.batch_rows is None else {BATCH_ROWS: report.batch_rows}
    for key, value in report.state.items():
        name = key.removeprefix(iceberg.PROPERTY_PREFIX)
        if name.startswith(RECONCILE_PREFIX):
            values[name.removeprefix(RECONCILE_PREFIX).replace(".", "_")] = Decimal(value)
        elif name.startswith(MEASURE_PREFIX):
            values[name.removeprefix(MEASURE_PREFIX)] = Decimal(value)
        elif name.endswith(ROWS_SUFFIX):
            values[name] = int(value)
            previous = int(report.previous.get(key, 0))
            if previous:
                values[name + VS_PREVIOUS_SUFFIX] = (Decimal(value) / previous).quantize(Decimal("0.01"))
    return values


def _batch_frame(reports: list[TableReport], suite: dict) -> "pandas.DataFrame":
    """One row per staged table with its batch counts and reconciliation totals (for the ``_batch``
    suite), a pandas frame: a few rows Great Expectations checks in memory, without Spark jobs. A
    column the suite names that no table of the batch reports (the reconciliation of a table
    outside a gated subset) is None, which its checks skip."""
    import pandas

    values = [_batch_values(r) for r in reports]
    named = {e["kwargs"][k] for e in suite["expectations"] for k in ("column", "column_A", "column_B")
             if k in e["kwargs"]}
    names = sorted(set().union(*values, named - {"table"}))
    return pandas.DataFrame([(r.table, *[v.get(n) for n in names]) for r, v in zip(reports, values)],
                            columns=["table", *names], dtype=object)


#: the ``_batch`` column of the rows a batch added to an append-only table, as the gate counted them
BATCH_ROWS = "batch_rows"
#: the column naming the batch that wrote a row, where a gate validates only the batch's rows
BATCH_COLUMNS = {"bronze": "_batch_id", "silver": "_source_batch_id", "quarantine": "batch_id"}
#: where the rows a batch writes are whole files (its ``BATCH_COLUMNS`` value is their identity
#: partition): a passing batch is shown by their metrics (``quality_scan.decide_from_file_metrics``)
BATCH_FILES = ("bronze", "quarantine")
#: gold: the days of its first (identity) partition column a batch rebuilt (None: all), ``lakehouse_gold.build``
TOUCHED_DAYS = f"{iceberg.PROPERTY_PREFIX}touched_days"


def batch_rows_filter(spark: SparkSession, registry: Registry, namespace: str, table: str, batch_id: str,
                      published: dict[str, str], staged: dict[str, str]) -> Column | None:
    """The rows of the staged ``namespace.table`` the batch wrote, where every other row is as an
    earlier batch published it (and that batch's gate validated it): so that a gate's cost follows
    the batch, not the table's age. None: the batch may have rewritten any row, validate them all.

    * bronze (append-only) and quarantine: the rows of ``batch_id``;
    * silver tables of append-only sources: the rows landed since the last published batch
      (``published`` is its state); mutable silver tables: None (a ``MERGE`` may touch any row);
    * gold tables rebuilt day by day: the days the batch rebuilt (``lakehouse.touched_days`` of the
      ``staged`` state, on the table's identity partition column); rebuilt whole: None.
    """
    if namespace in ("bronze", "quarantine"):
        return F.col(BATCH_COLUMNS[namespace]) == F.lit(batch_id)
    if namespace == "silver":
        previous = published.get(f"{iceberg.PROPERTY_PREFIX}batch_id")
        if not registry.get(table).append_only or previous is None:
            return None
        return F.col(BATCH_COLUMNS[namespace]) > F.lit(previous)
    days = json.loads(staged.get(TOUCHED_DAYS, "null"))
    column = iceberg.identity_partition_column(spark, identifier(namespace, table))
    if days is None or column is None:
        return None
    dated = F.col(column).isin([date.fromisoformat(d) for d in days if d is not None])
    return dated | F.col(column).isNull() if None in days else dated


@dataclass(frozen=True)
class _GateRun:
    """What one gate's validations share."""

    spark: SparkSession
    settings: LakehouseSettings
    layer: str
    batch_id: str
    branch: str
    runner: GreatExpectationsRunner
    registry: Registry
    parents: ParentTables
    #: the reports of earlier gates read so far, by path: table -> its entry
    reports: dict[Path, dict[str, dict]] = field(default_factory=dict)


@dataclass
class _Scanned:
    """A staged table of the gate after its scan (``_scan_staged``)."""

    table: str  # <namespace>.<table>
    began: float
    suite: dict[str, Any]  # its parent tables resolved (``resolve_tables``)
    digest: str
    staged: dict[str, str]
    published: dict[str, str]
    batch_rows: Column | None
    frame: DataFrame | None = None  # None with no ``earlier``: the batch wrote no row of it (nothing to scan)
    decision: quality_scan.ScanDecision | None = None
    earlier: TableReport | None = None  # the validation it keeps


def _scan_staged(gate: _GateRun, ident: str) -> _Scanned:
    """The staged table ``ident`` of the gate, read as it will be validated (the batch's rows,
    ``batch_rows_filter``, or the whole table) and decided in one scan (``quality_scan``); a whole
    table holding the rows its last published batch's gate passed under the same suite keeps
    that validation instead; a batch that wrote no row of the table (an append-only table's batch
    that added no files, a gold batch that rebuilt no day) has none to validate: with row checks
    only, nothing to scan; else its table-level checks are decided on an empty frame of the table's
    schema. Runs in a thread, a few tables at once."""
    began = time.perf_counter()
    spark, branch = gate.spark, gate.branch
    namespace, table = ident.split(".")[1:]
    suite = load_suite(gate.settings, namespace, table)
    published = iceberg.summary(spark, ident)  # the state of the last published batch
    staged = iceberg.summary(spark, ident, branch)
    batch_rows = batch_rows_filter(spark, gate.registry, namespace, table, gate.batch_id, published, staged)
    scanned = _Scanned(f"{namespace}.{table}", began, resolve_tables(suite, gate.parents), suite_digest(suite),
                       staged, published, batch_rows)
    same_rows = iceberg.same_rows_as_published(spark, ident, branch)
    if same_rows and batch_rows is None:
        scanned.earlier = _earlier_validation(gate, published, scanned.table, scanned.digest)
        if scanned.earlier is not None:
            return scanned
    # the rows a batch writes carry its id (a batch that wrote no files wrote none); a gold batch
    # names the days it rebuilt (none: it wrote no row)
    wrote_no_rows = batch_rows is not None and (
        (same_rows and namespace in BATCH_COLUMNS) or json.loads(staged.get(TOUCHED_DAYS, "null")) == [])
    if wrote_no_rows and only_row_checks(scanned.suite):
        return scanned
    df = spark.read.option("branch", branch).table(ident)
    if wrote_no_rows:  # the table-level checks see a batch of no rows, which Spark's optimizer knows empty
        scanned.frame = df.limit(0)  # (a relation joined with it is not read)
    else:
        scanned.frame = df if batch_rows is None else df.where(batch_rows)
        if batch_rows is not None and namespace in BATCH_FILES:  # the batch's rows are whole files
            scanned.decision = quality_scan.decide_from_file_metrics(
                df, scanned.suite, ident, branch, BATCH_COLUMNS[namespace], gate.batch_id)
    if scanned.decision is None:
        scanned.decision = quality_scan.decide(scanned.frame, scanned.suite)
    return scanned


def _judge_staged(gate: _GateRun, scanned: _Scanned) -> TableReport:
    """The report of a scanned table: the validation it keeps, its scan's decision stored as the
    suite's checkpoint result when every expectation passed, else Great Expectations' checkpoints
    (which decide and name the failing rows)."""
    if scanned.earlier is not None:
        earlier = scanned.earlier
        return replace(earlier, state=scanned.staged, previous=scanned.published,
                       seconds=round(time.perf_counter() - scanned.began, 3),
                       validated_in=earlier.validated_in or scanned.published[f"{iceberg.PROPERTY_PREFIX}batch_id"])
    df, decision = scanned.frame, scanned.decision
    if df is None:
        rows = 0
    elif decision is not None and decision.success:
        rows = decision.rows
    else:  # several jobs on the frame follow: compute it once
        df, rows = in_memory(df)
    if rows == 0 and scanned.batch_rows is not None and only_row_checks(scanned.suite):
        outcomes = []  # the batch added no rows: nothing for a row-level check to look at
    else:
        keys = list((scanned.suite.get("meta") or {}).get("primary_key", []))
        outcomes = gate.runner.validate(scanned.table, df, scanned.suite, keys, run_name=gate.batch_id,
                                        decision=decision)
    return TableReport(scanned.table, rows, all(o.success for o in outcomes), outcomes, scanned.staged,
                       scanned.published, None if scanned.batch_rows is None else rows,
                       round(time.perf_counter() - scanned.began, 3), scanned.digest)


def suite_digest(suite: dict[str, Any]) -> str:
    """A short fingerprint of a suite's definition (a changed suite validates again)."""
    return hashlib.sha256(json.dumps(suite, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _earlier_validation(gate: _GateRun, published: dict[str, str], table: str, digest: str) -> TableReport | None:
    """``table``'s result in the report of the gate that published its last batch, when that gate
    validated all its rows with the suite of ``digest`` (None: no such report or result)."""
    batch = published.get(f"{iceberg.PROPERTY_PREFIX}batch_id")
    if batch is None:
        return None
    path = gate.settings.quality_dir / f"{gate.layer}-{batch}.json"
    if path not in gate.reports:
        gate.reports[path] = ({t["table"]: t for t in json.loads(path.read_text())["tables"]}
                              if path.is_file() else {})
    entry = gate.reports[path].get(table)
    if entry is None or entry.get("suite_digest") != digest or entry.get("batch_rows") is not None:
        return None
    return TableReport(**{**entry, "outcomes": [ExpectationOutcome(**o) for o in entry["outcomes"]]})


def run_gate(spark: SparkSession, settings: LakehouseSettings, layer: str, batch_id: str,
             tables: list[str] | None = None, progress: Progress | None = None) -> GateReport:
    """Validate the batch's tables of ``layer`` on its audit branch, then publish all or none.

    ``tables``: the tables the batch must hold (default: every registered table for bronze and
    silver, the gold tables staged or published for gold). Each must be staged on the branch
    or already published; quarantine tables ``quarantine.<layer>_*`` staged on the branch are
    validated and published with them. Failing rows are named by the suite's
    ``meta.primary_key`` columns.

    Raises UpstreamNotPublishedError when a table of the batch was neither staged nor published
    (nothing is published), QualityGateFailed (main untouched, branches kept) when a ``fail``
    expectation fails, SuiteNotFoundError/ConfigurationError for a missing or invalid suite.

    Reported as one OpenLineage run (``lakehouse_<layer>_gate``): every table validated with the
    outcome of each expectation and the rows validated, every table published as an output;
    FAIL (with the failing assertions) when the gate fails. The Data Docs of its validations are
    rendered once it has decided, whether it passed or failed. ``progress``: a line per table as
    it is validated.
    """
    try:
        with lineage.lineage_run(settings, f"lakehouse_{layer}_gate") as reported:
            try:
                report = _gate(spark, settings, layer, batch_id, tables, progress)
            except QualityGateFailed as failed:
                failed.report.report_lineage(reported)
                raise
            report.report_lineage(reported)
            return report
    finally:
        _render_data_docs(settings)


def run_gate_in_layer_job(spark: SparkSession, settings: LakehouseSettings, layer: str, batch_id: str,
                          tables: list[str] | None = None, progress: Progress | None = None) -> GateReport:
    """``run_gate`` in the Spark application of the layer job that just staged the batch (DESIGN §6:
    the gate step then starts no JVM of its own), with the application's OpenLineage Spark
    listener held back meanwhile (no Spark run per Great Expectations query).

    Emits no OpenLineage run: the gate step reports the outcome the report records, as its own
    run (``recorded_gate``). A failing expectation is returned, not raised: the report says
    ``success`` false, nothing is published and the gate step validates the branches again
    (after a suite was fixed, say). Raises what ``run_gate`` raises otherwise.
    """
    try:
        with spark_lineage_held_back(spark):
            return _gate(spark, settings, layer, batch_id, tables, progress)
    except QualityGateFailed as failed:
        return failed.report
    finally:
        _render_data_docs(settings)


def recorded_gate(settings: LakehouseSettings, layer: str, batch_id: str, tables: list[str] | None) -> GateReport | None:
    """The passing gate recorded for the batch, when it decided every table of ``tables`` (default:
    as ``run_gate``; for gold any passing report of the batch) and the catalog still points at the
    metadata files the gate left (nothing committed to those tables since, no rollback): every one
    of them is published then, since a report is written once the gate has published. None
    otherwise: the gate has to run (it finds the batch published, or validates it)."""
    path = GateReport.path(settings.quality_dir, layer, batch_id)
    if not path.exists():
        return None
    report = GateReport.read(path)
    if not report.success:
        return None
    if tables is None and layer in ("bronze", "silver"):
        tables = [t.name for t in Registry.load(settings)]
    if not report.covers(tables or []) or not report.metadata:
        return None
    return report if catalog_metadata(settings, list(report.metadata)) == report.metadata else None


def catalog_metadata(settings: LakehouseSettings, tables: list[str]) -> dict[str, str]:
    """The current metadata file of each of ``tables`` (``<namespace>.<table>``) that the JDBC
    catalog holds, read from its database without Spark."""
    from lakehouse_core import postgres
    from lakehouse_core.settings import CATALOG_NAME

    wanted = {tuple(t.split(".", 1)) for t in tables}
    with postgres.connect(settings.catalog, settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_namespace, table_name, metadata_location FROM iceberg_tables WHERE catalog_name = %s",
                    (CATALOG_NAME,))
        return {f"{ns}.{name}": location for ns, name, location in cur.fetchall() if (ns, name) in wanted}


def report_recorded_gate(settings: LakehouseSettings, report: GateReport) -> None:
    """Emit the OpenLineage run of a gate that ran in its layer's job, from its report."""
    with lineage.lineage_run(settings, f"lakehouse_{report.layer}_gate") as reported:
        report.report_lineage(reported)


def _render_data_docs(settings: LakehouseSettings) -> None:
    if settings.home.joinpath("gx").is_dir():
        ge_runner(settings).build_data_docs()


def _gate(spark: SparkSession, settings: LakehouseSettings, layer: str, batch_id: str, tables: list[str] | None,
          progress: Progress | None) -> GateReport:
    started = datetime.now(timezone.utc).isoformat()
    branch = iceberg.audit_branch(batch_id)
    strict = tables is not None or layer != "gold"
    if tables is None:
        tables = ([t.name for t in Registry.load(settings)] if layer in ("bronze", "silver")
                  else iceberg.table_names(spark, layer))
    batch = _batch_tables(spark, layer, branch, batch_id, tables)
    if (strict and batch.missing) or not (batch.staged or batch.published):
        raise UpstreamNotPublishedError(
            f"{layer} gate, batch {batch_id}: nothing staged or published for "
            f"{', '.join(batch.missing) or 'any table'}; run the {layer} step for this interval first "
            "(--tables gates a subset)")
    report = GateReport(layer, batch_id, [], already_published=[f"{layer}.{t}" for t in batch.published],
                        started=started)
    if not batch.staged:
        return report
    runner = ge_runner(settings)
    staged = [(layer, t) for t in batch.staged] + [("quarantine", t) for t in
                                                    tables_on_branch(spark, "quarantine", branch, f"{layer}_")]
    runner.add_assets([f"{namespace}.{table}" for namespace, table in staged])
    gate = _GateRun(spark, settings, layer, batch_id, branch, runner, Registry.load(settings),
                    ParentTables(spark, branch))
    if progress is not None:
        progress.total = len(staged)
    judged: dict[str, TableReport] = {}

    def judge(ident: str, scanned: _Scanned) -> None:  # (in this thread, while other tables are scanned)
        checked = judged[ident] = _judge_staged(gate, scanned)
        if progress is not None:
            failed = len(checked.blocking_failures)
            progress.done(checked.table, f"{checked.row_count:,} rows, {len(checked.outcomes)} expectations, "
                          f"{failed} failing" + (f" (as validated in {checked.validated_in})"
                                                 if checked.validated_in else ""), checked.seconds,
                          rows=checked.row_count, passed=sum(o.success for o in checked.outcomes),
                          warned=len(checked.warnings), failed=failed)
        checked.location = iceberg.java_table(spark, ident).location()

    idents = [identifier(n, t) for n, t in staged]
    try:
        run_tables(spark, settings, idents, lambda ident: _scan_staged(gate, ident), on_done=judge)
    finally:
        gate.parents.close()
    report.tables.extend(judged[ident] for ident in idents)
    if (suite_folder(settings, layer) / f"{BATCH_SUITE}.json").exists():
        batch_reports = [r for r in report.tables if r.table.startswith(f"{layer}.")]
        suite = load_suite(settings, layer, BATCH_SUITE)
        outcomes = runner.validate(f"{layer}.{BATCH_SUITE}", _batch_frame(batch_reports, suite), suite, ["table"],
                                   run_name=batch_id)
        report.tables.append(TableReport(f"{layer}.{BATCH_SUITE}", len(batch_reports),
                                         all(o.success for o in outcomes), outcomes))
    if report.success:
        crash_point("gate.validated")
        for namespace, table in staged:
            iceberg.publish(spark, identifier(namespace, table), branch)
            crash_point("gate.published_some")
            report.published.append(f"{namespace}.{table}")
    else:
        for namespace, table in staged:
            iceberg.keep_failed_branch(spark, identifier(namespace, table), branch)
    report.finished = datetime.now(timezone.utc).isoformat()
    report.metadata = {name: iceberg.metadata_file(spark, name) for name in
                       [t.table for t in report.tables if t.location is not None] + report.already_published}
    report.write(settings.quality_dir)
    if not report.success:
        raise QualityGateFailed(f"{layer} gate failed for batch {batch_id}; nothing published:\n"
                                f"{report.describe_failures()}", report)
    return report
