"""Iceberg helpers for write-audit-publish (WAP) and commit-attached state.

A layer run writes each table to the audit branch ``audit_<batch id>``; the run's
state (watermark, batch id, upstream snapshot, package version) is committed on
that branch as snapshot-summary properties ``lakehouse.*``. Publishing
fast-forwards ``main`` to the branch head, moves the tag ``last_publish`` to it and
drops the branch, all in one metadata commit, so state and data appear together
and the tag survives snapshot expiry and compaction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import version
from typing import Any, Callable, Iterator

from py4j.java_gateway import JavaClass
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from lakehouse_core.batch import check_not_older
from lakehouse_core.errors import BatchError, UpstreamNotPublishedError
from lakehouse_core.faults import crash_point
from lakehouse_core.locks import check_leases
from lakehouse_core.settings import CATALOG_NAME
from lakehouse_core.spark import catalog_uri_for_cloned_sessions

PUBLISH_TAG = "last_publish"
NAME_MAPPING = "schema.name-mapping.default"
PROPERTY_PREFIX = "lakehouse."
FAILED_BRANCH_RETENTION_MS = 3 * 24 * 3600 * 1000


class HistoryExpiredError(BatchError):
    """A table's batch history is needed further back than its snapshots were kept."""


class PublishError(BatchError):
    """An audit branch could not be published to ``main``."""


def audit_branch(batch_id: str) -> str:
    """The audit branch name of a batch: ``audit_<batch id>``."""
    return f"audit_{batch_id}"


class JavaStatics:
    """A Java class whose static members are looked up once: Py4J asks the JVM what a name is
    on every attribute access of a ``JavaClass`` (300 of a bronze first load's ~2,000 commit
    round trips were such lookups). A static field's value is read once (use it for constants).
    Calling it calls the constructor."""

    def __init__(self, java_class: JavaClass, client: Any):
        self._class, self.client = java_class, client

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe these: not Java members
            raise AttributeError(name)
        member = self.__dict__[name] = getattr(self._class, name)
        return member

    def __call__(self, *args: Any) -> Any:
        return self._class(*args)


_CLASSES: dict[str, JavaStatics] = {}


def java_class(spark: SparkSession, name: str) -> JavaStatics:
    """The Java class ``name`` (fully qualified) in the session's JVM, its static members cached.

    Not ``spark._jvm.org.apache...``: Py4J resolves that one dotted segment per round trip,
    first trying each package prefix as a class, and every miss searches all jars on the
    class path (the largest JVM cost of table commits in JFR samples before this).
    """
    client = spark.sparkContext._gateway._gateway_client
    cached = _CLASSES.get(name)
    if cached is None or cached.client is not client:  # a new session has a new gateway
        cached = _CLASSES[name] = JavaStatics(JavaClass(name, client), client)
    return cached


def java_table(spark: SparkSession, ident: str) -> Any:
    """The Iceberg Java ``Table`` of ``ident`` (freshly loaded from the catalog)."""
    return java_class(spark, "org.apache.iceberg.spark.Spark3Util").loadIcebergTable(spark._jsparkSession, ident)


_TRANSFORMS = {"years": "year", "months": "month", "days": "day", "hours": "hour"}


def _partition_field(spec: str) -> tuple[str, str]:
    """``"days(order_date)"`` → ``("day", "order_date")``; a bare name → ``("identity", name)``.

    Raises ValueError for an unknown transform.
    """
    match = re.fullmatch(r"(\w+)\((\w+)\)", spec.strip())
    if not match:
        return "identity", spec.strip()
    transform, column = match.groups()
    if transform not in _TRANSFORMS:
        raise ValueError(f"unknown partition transform {transform!r} in {spec!r}; expected one of {sorted(_TRANSFORMS)}")
    return _TRANSFORMS[transform], column


def table_names(spark: SparkSession, namespace: str) -> list[str]:
    """The tables of ``namespace`` in the ``lakehouse`` catalog, sorted."""
    return sorted(r.tableName for r in spark.sql(f"SHOW TABLES IN {CATALOG_NAME}.{namespace}").collect())


def table_exists(spark: SparkSession, ident: str) -> bool:
    return bool(spark.catalog.tableExists(ident))


def partition_values(spark: SparkSession, ident: str) -> set:
    """The values of the first partition field holding data in ``ident``'s current snapshot (read
    from its manifests, not its data)."""
    return {row[0] for row in spark.table(f"{ident}.partitions").select("partition.*").collect()}


def identity_partition_column(spark: SparkSession, ident: str) -> str | None:
    """The column of ``ident``'s first partition field when that field is an identity partition."""
    table = java_table(spark, ident)
    fields = list(table.spec().fields())
    if not fields or not fields[0].transform().isIdentity():
        return None
    return str(table.schema().findColumnName(fields[0].sourceId()))


def table_location(warehouse_uri: str, ident: str) -> str:
    """``<warehouse>/<namespace>/<table>`` for ``ident`` (``<catalog>.<namespace>.<table>``): a folder
    known before the table exists (pass it to ``create_table``)."""
    _, namespace, table = ident.split(".")
    return f"{warehouse_uri.rstrip('/')}/{namespace}/{table}"


@dataclass(frozen=True)
class StagedFiles:
    """Parquet files already written into one partition of a new table (``partition_path``, e.g.
    ``_batch_id=<id>``), to be committed on ``branch`` with the snapshot ``properties``."""

    branch: str
    paths: tuple[str, ...]
    partition_path: str
    properties: dict[str, str]


#: every commit writes a new metadata file: keep the last few, not every one since the table began
METADATA_RETENTION = {"write.metadata.delete-after-commit.enabled": "true",
                      "write.metadata.previous-versions-max": "20"}


def create_table(spark: SparkSession, ident: str, schema: T.StructType, partition_by: list[str] | None = None,
                 properties: dict[str, str] | None = None, location: str | None = None,
                 staged: StagedFiles | None = None) -> None:
    """Create ``ident`` (format v2, ``METADATA_RETENTION``) with ``schema`` (all columns nullable)
    and an initial empty snapshot, in one catalog commit.

    The empty snapshot lets audit branches be created before the first publish. ``staged``
    adds, in the same commit, its branch holding its files (read through the table's name
    mapping, as they carry no Iceberg field ids; metrics from their footers) and properties.
    ``partition_by`` takes column names and ``years|months|days|hours(column)``; ``location``
    fixes the table's folder (default: the catalog's choice).
    Raises ValueError for an unknown partition transform.
    """
    def iceberg(name: str) -> JavaStatics:
        return java_class(spark, f"org.apache.iceberg.{name}")

    catalog_name, namespace, name = ident.split(".")
    nullable = T.StructType([T.StructField(f.name, f.dataType, True, f.metadata) for f in schema.fields])
    iceberg_schema = iceberg("spark.SparkSchemaUtil").convert(spark._jsparkSession.parseDataType(nullable.json()))
    spec = iceberg("PartitionSpec").builderFor(iceberg_schema)
    for field in partition_by or []:
        transform, column = _partition_field(field)
        spec = getattr(spec, transform)(column)
    catalog = iceberg("spark.Spark3Util").loadIcebergCatalog(spark._jsparkSession, catalog_name)
    builder = (catalog.buildTable(iceberg("catalog.TableIdentifier").parse(f"{namespace}.{name}"), iceberg_schema)
               .withPartitionSpec(spec.build()).withProperty("format-version", "2"))
    for key, value in (METADATA_RETENTION | (properties or {})).items():
        builder = builder.withProperty(key, value)
    if location:
        builder = builder.withLocation(location)
    transaction = builder.createTransaction()
    # by the ids the table assigned (creation renumbers the converted schema's)
    mapping = iceberg("mapping.MappingUtil").create(transaction.table().schema())
    transaction.updateProperties().set(NAME_MAPPING, iceberg("mapping.NameMappingParser").toJson(mapping)).commit()
    transaction.newAppend().set(f"{PROPERTY_PREFIX}init", "true").commit()
    if staged:
        # the branch at the initial snapshot, then its files and properties
        table = transaction.table()
        transaction.manageSnapshots().createBranch(staged.branch, table.currentSnapshot().snapshotId()).commit()
        metrics = _footer_metrics(spark, iceberg("MetricsConfig").forTable(table), mapping)
        data_files, io, table_spec = iceberg("DataFiles"), table.io(), table.spec()
        append = transaction.newFastAppend().toBranch(staged.branch)
        for path in staged.paths:
            data_file = io.newInputFile(path)
            append = append.appendFile(data_files.builder(table_spec).withInputFile(data_file).withFormat("PARQUET")
                                       .withPartitionPath(staged.partition_path).withMetrics(metrics(path, data_file))
                                       .build())
        for key, value in staged.properties.items():
            append = append.set(key, value)
        append.commit()
    transaction.commitTransaction()


def _footer_metrics(spark: SparkSession, metrics_config: Any, mapping: Any) -> Callable[[str, Any], Any]:
    """A function giving the Iceberg ``Metrics`` of a Parquet data file (its location and Iceberg ``InputFile``)
    from its footer.

    ``ParquetUtil.fileMetrics`` opens each footer with a new Hadoop ``Configuration``, which
    parses Hadoop's default XML resources again: two thirds of a bronze first-load commit's
    CPU (JFR). Local files are opened with the session's configuration instead (the Parquet
    classes are those shaded into the pinned Iceberg runtime); others go through ``fileMetrics``.
    """
    parquet_util = java_class(spark, "org.apache.iceberg.parquet.ParquetUtil")
    reader = java_class(spark, "org.apache.iceberg.shaded.org.apache.parquet.hadoop.ParquetFileReader")
    hadoop_path = java_class(spark, "org.apache.hadoop.fs.Path")
    no_field_metrics = java_class(spark, "java.util.stream.Stream").empty
    conf = spark.sparkContext._jsc.hadoopConfiguration()

    def metrics(location: str, data_file: Any) -> Any:
        if not location.startswith("file:"):
            return parquet_util.fileMetrics(data_file, metrics_config, mapping)
        footer = reader.open(conf, hadoop_path(location))
        try:
            return parquet_util.footerMetrics(footer.getFooter(), no_field_metrics(), metrics_config, mapping)
        finally:
            footer.close()

    return metrics


@dataclass(frozen=True)
class ColumnMetrics:
    """A column's metrics over some data files: its values (nulls included) and nulls, and the
    (lower, upper) bounds of each file holding a non-null value; ``bounds`` is None when such a
    file has none (Iceberg keeps none for the column)."""

    values: int
    nulls: int
    bounds: tuple[tuple[Any, Any], ...] | None


@dataclass(frozen=True)
class FileMetrics:
    """The rows of some whole data files, and the metrics of each of their columns asked for
    (absent: the files keep no counts for it)."""

    rows: int
    columns: dict[str, ColumnMetrics]


def partition_file_metrics(spark: SparkSession, ident: str, ref: str, column: str, value: str,
                           columns: list[str]) -> FileMetrics | None:
    """The metrics Iceberg keeps for ``columns`` (top-level) in the data files of ``ident`` at
    ``ref`` that hold the rows where ``column`` = ``value``, read from the manifests (no data
    file is opened). Bounds are Iceberg's values (a date as days, a timestamp as microseconds).
    None when those rows are not whole files (``column`` is not an identity partition of each of
    them) or a file has row-level deletes."""
    table = java_table(spark, ident)
    expressions = java_class(spark, "org.apache.iceberg.expressions.Expressions")
    convert = java_class(spark, "org.apache.iceberg.types.Conversions").fromByteBuffer
    fields = {name: field for name in columns if (field := table.schema().findField(name)) is not None}
    rows, counts = 0, {name: [0, 0] for name in fields}
    bounds: dict[str, list[tuple[Any, Any]] | None] = {name: [] for name in fields}
    tasks = table.newScan().useRef(ref).filter(expressions.equal(column, value)).includeColumnStats().planFiles()
    try:
        found = tasks.iterator()
        while found.hasNext():
            task = found.next()
            if not task.deletes().isEmpty() or task.residual().op().name() != "TRUE":
                return None
            file = task.file()
            rows += file.recordCount()
            values, nulls = file.valueCounts() or {}, file.nullValueCounts() or {}
            lower, upper = file.lowerBounds() or {}, file.upperBounds() or {}
            for name in list(counts):
                field = fields[name]
                held, null = values.get(field.fieldId()), nulls.get(field.fieldId())
                if held is None or null is None:  # no counts kept: nothing is known of the column
                    del counts[name]
                    continue
                counts[name][0] += held
                counts[name][1] += null
                low, high = lower.get(field.fieldId()), upper.get(field.fieldId())
                if held == null or bounds[name] is None:
                    continue  # (no value in the file: no bounds to keep)
                bounds[name] = None if low is None or high is None else [
                    *bounds[name], (_bound(convert(field.type(), low)), _bound(convert(field.type(), high)))]
    finally:
        tasks.close()
    return FileMetrics(rows, {name: ColumnMetrics(held, null, None if bounds[name] is None else tuple(bounds[name]))
                              for name, (held, null) in counts.items()})


def _bound(value: Any) -> Any:
    """A bound as Python holds it (Py4J maps numbers; a string bound is a Java ``CharSequence``)."""
    return value if isinstance(value, (int, float, Decimal, str)) else value.toString()


def start_audit_branch(spark: SparkSession, ident: str, branch: str) -> None:
    """(Re)create ``branch`` at ``main``'s head: an unpublished earlier attempt is discarded."""
    table = java_table(spark, ident)
    head = table.currentSnapshot().snapshotId()
    manage = table.manageSnapshots()
    if table.refs().containsKey(branch):
        manage.replaceBranch(branch, head)
    else:
        manage.createBranch(branch, head)
    manage.commit()


def commit_properties(spark: SparkSession, ident: str, branch: str, properties: dict[str, str]) -> int:
    """Commit an empty snapshot carrying ``properties`` on ``branch``; return its id."""
    table = java_table(spark, ident)
    append = table.newAppend().toBranch(branch)
    for key, value in properties.items():
        append = append.set(key, value)
    append.commit()
    table.refresh()
    return int(table.snapshot(branch).snapshotId())


#: snapshot-summary counts of the files a commit added or removed (a state commit has none)
_FILE_CHANGES = ("added-data-files", "deleted-data-files", "added-delete-files", "removed-delete-files")


def same_rows_as_published(spark: SparkSession, ident: str, branch: str) -> bool:
    """Whether ``branch`` holds the rows of the last published batch (the ``last_publish`` tag):
    every commit since is a state commit without files or a compaction (``replace``: the same
    rows in other files). False when nothing was published yet."""
    table = java_table(spark, ident)
    published, snap = table.snapshot(PUBLISH_TAG), table.snapshot(branch)
    return published is not None and snap is not None and _same_rows(table, published.snapshotId(), snap.snapshotId())


def same_rows_between(spark: SparkSession, ident: str, since: int, until: int) -> bool:
    """Whether snapshot ``until`` holds the rows of its ancestor ``since``: every commit after
    ``since`` up to ``until`` is a state commit without files or a compaction. False when
    ``since`` is not an ancestor of ``until`` (or was expired)."""
    return _same_rows(java_table(spark, ident), since, until)


def _same_rows(table: Any, since: int, until: int) -> bool:
    snap = table.snapshot(until)
    while snap is not None and snap.snapshotId() != since:
        summary = snap.summary()
        if snap.operation() != "replace" and any(int(summary.get(k) or 0) for k in _FILE_CHANGES):
            return False
        parent = snap.parentId()
        snap = None if parent is None else table.snapshot(parent)
    return snap is not None


def branch_exists(spark: SparkSession, ident: str, branch: str) -> bool:
    return bool(java_table(spark, ident).refs().containsKey(branch))


def metadata_file(spark: SparkSession, ident: str) -> str:
    """The table's current metadata file, as its catalog records it (``lakehouse.<ns>.<t>`` or ``<ns>.<t>``)."""
    name = ident if ident.startswith(f"{CATALOG_NAME}.") else f"{CATALOG_NAME}.{ident}"
    return str(java_table(spark, name).operations().current().metadataFileLocation())


def snapshot_id(spark: SparkSession, ident: str, ref: str = "main") -> int | None:
    snap = java_table(spark, ident).snapshot(ref)
    return None if snap is None else int(snap.snapshotId())


def added_rows(spark: SparkSession, ident: str, ref: str, since: int | None) -> int:
    """The rows that the snapshots committed to ``ref`` after snapshot ``since`` added (their summaries'
    ``added-records``; 0 when none was committed). ``since`` None: every snapshot of ``ref``."""
    table = java_table(spark, ident)
    snap, added = table.snapshot(ref), 0
    while snap is not None and snap.snapshotId() != since:
        added += int(snap.summary().get("added-records") or 0)
        parent = snap.parentId()
        snap = None if parent is None else table.snapshot(parent)
    return added


def summary(spark: SparkSession, ident: str, ref: str = PUBLISH_TAG) -> dict[str, str]:
    """The ``lakehouse.*`` summary properties of the snapshot at ``ref`` ({} when absent)."""
    snap = java_table(spark, ident).snapshot(ref)
    if snap is None:
        return {}
    # as JSON in one call (iterating the Java map costs a Py4J round trip per entry)
    summary = json.loads(java_class(spark, "org.apache.iceberg.SnapshotParser").toJson(snap))["summary"]
    return {k: v for k, v in summary.items() if k.startswith(PROPERTY_PREFIX)}


def published_snapshots(spark: SparkSession, ident: str, until: int, after: str | None = None) -> list[tuple[str, int]]:
    """(batch id, snapshot id) of every batch published on ``main`` up to snapshot ``until`` (and
    after batch ``after``), oldest first: the table's history batch by batch, each batch's last
    snapshot. Without ``after`` it reads the whole ancestry (for rebuilds).

    Raises HistoryExpiredError when a snapshot of that history was expired (``maintenance``)."""
    table = java_table(spark, ident)
    history, snap = [], table.snapshot(until)
    while snap is not None:
        batch = snap.summary().get(f"{PROPERTY_PREFIX}batch_id")
        if batch is not None and after is not None and str(batch) <= after:
            break
        if batch is not None and (not history or history[-1][0] != str(batch)):
            history.append((str(batch), snap.snapshotId()))
        parent = snap.parentId()
        snap = None if parent is None else table.snapshot(parent)
        if parent is not None and snap is None:
            raise HistoryExpiredError(
                f"{ident.split('.', 1)[1]}: the snapshots {'after batch ' + after if after else 'of its history'} "
                f"before batch {history[-1][0] if history else 'the pinned one'} were expired by maintenance "
                "(LAKEHOUSE_MAINTENANCE__SNAPSHOT_RETENTION_DAYS, RETAIN_LAST); raise the retention, or rebuild "
                "what reads it from the retained history")
    return history[::-1]


def published_head(spark: SparkSession, ident: str, batch_id: str) -> int | None:
    """The newest snapshot of ``main`` holding no batch newer than ``batch_id``: what a consumer of
    ``batch_id`` reads, however many batches were published since (a read pinned there sees none
    of them). ``main``'s head when no newer batch is published; None when no batch up to
    ``batch_id`` is. The walk back stops at the first batch not newer than ``batch_id``."""
    newest = summary(spark, ident).get(f"{PROPERTY_PREFIX}batch_id")
    if newest is None or newest <= batch_id:
        return snapshot_id(spark, ident)
    for snap in _ancestors(java_table(spark, ident)):
        batch = snap.summary().get(f"{PROPERTY_PREFIX}batch_id")
        if batch is not None and str(batch) <= batch_id:
            return int(snap.snapshotId())
    return None


def _ancestors(table: Any) -> Iterator[Any]:
    """The snapshots of ``main``, head first."""
    snap = table.currentSnapshot()
    while snap is not None:
        yield snap
        parent = snap.parentId()
        snap = None if parent is None else table.snapshot(parent)


@dataclass(frozen=True)
class BatchStatus:
    """Whether a batch is published to a table's ``main``, and the newest published batch when newer."""

    published: bool
    newer: str | None = None


def batch_status(spark: SparkSession, ident: str, batch_id: str) -> BatchStatus:
    """Where ``batch_id`` stands on ``main`` of an existing table.

    The ``last_publish`` tag holds the newest published batch (and survives snapshot expiry):
    it answers for that batch and any newer one. Batch ids sort by time and ``main`` only ever
    receives batches in order (an older one after a newer one is refused), so for an older
    batch the walk back from the head stops at the first batch not newer than ``batch_id``:
    it reads the snapshots published since that batch, not the table's whole history. An older
    batch whose snapshots were expired reads as not published (a rerun of it is refused).
    """
    newest_published = summary(spark, ident).get(f"{PROPERTY_PREFIX}batch_id")
    if newest_published is not None and batch_id >= newest_published:
        return BatchStatus(batch_id == newest_published)
    newest = newest_published
    for snap in _ancestors(java_table(spark, ident)):
        batch = snap.summary().get(f"{PROPERTY_PREFIX}batch_id")
        if batch is None:  # the creation snapshot and compactions carry no batch
            continue
        batch = str(batch)
        if batch == batch_id:
            return BatchStatus(True)
        if batch < batch_id:
            break
        newest = newest or batch
    return BatchStatus(False, newest)


@dataclass(frozen=True)
class BatchStart:
    """Where a table stands when a batch starts."""

    exists: bool
    already_published: bool
    summary: dict[str, str]  # lakehouse.* properties at the last_publish tag

    def state(self, key: str) -> Any:
        """A JSON-encoded state property (``lakehouse.<key>``) of the last publish, or None."""
        return json.loads(self.summary.get(f"{PROPERTY_PREFIX}{key}", "null"))


def start_batch(spark: SparkSession, ident: str, batch_id: str) -> BatchStart:
    """Check ``batch_id`` against the batches published to ``ident``: call it before planning any read.

    Raises BatchOrderError when a newer batch is published and this one never was.
    """
    if not table_exists(spark, ident):
        return BatchStart(False, False, {})
    status = batch_status(spark, ident, batch_id)
    if status.newer and not status.published:
        check_not_older(batch_id, {status.newer}, ident.split(".", 1)[1])
    return BatchStart(True, status.published, summary(spark, ident))


def require_published(spark: SparkSession, ident: str, batch_id: str, consumer: str) -> None:
    """Refuse to build on an upstream batch that is not published.

    Raises UpstreamNotPublishedError naming ``consumer``, the upstream table and the batch.
    """
    if not table_exists(spark, ident) or not batch_status(spark, ident, batch_id).published:
        raise UpstreamNotPublishedError(
            f"{consumer}: batch {batch_id} of upstream table {ident.split('.', 1)[1]} is not published; "
            "run (and gate) the upstream layer for this interval first")


def stage(spark: SparkSession, ident: str, batch_id: str, write: Callable[[str], None] | None, package: str,
          properties: dict[str, str] | Callable[[], dict[str, str]] | None = None) -> int:
    """Stage a batch of ``ident`` on its audit branch: (re)start the branch at ``main`` (an unpublished
    earlier attempt is discarded), let ``write`` write to the branch identifier it is given, then
    commit the batch's state (``lakehouse.batch_id``, ``lakehouse.package_version`` of ``package``
    and ``properties``, or what ``properties()`` returns once ``write`` is done) on the branch.
    ``write`` None: the batch changes no rows of the table, its state alone is staged (no files).
    Publishing is the gate's. Returns the branch head's id. Raises LeaseLostError, before the
    state is committed, when this job lost its layer's lease (``locks.check_leases``).
    """
    branch = audit_branch(batch_id)
    start_audit_branch(spark, ident, branch)
    crash_point("stage.branch_started")
    if write is not None:
        write(f"{ident}.branch_{branch}")
    crash_point("stage.written")
    if callable(properties):
        properties = properties()
    check_leases()
    state = {f"{PROPERTY_PREFIX}batch_id": batch_id, f"{PROPERTY_PREFIX}package_version": version(package)}
    head = commit_properties(spark, ident, branch, state | (properties or {}))
    crash_point("stage.committed")
    return head


def drop_branch(spark: SparkSession, ident: str, branch: str) -> None:
    """Remove ``branch`` from ``ident`` when it exists (e.g. a staged attempt that no longer applies)."""
    table = java_table(spark, ident)
    if table.refs().containsKey(branch):
        table.manageSnapshots().removeBranch(branch).commit()


@dataclass(frozen=True)
class PublishResult:
    table: str
    snapshot_id: int | None
    already_published: bool


def publish(spark: SparkSession, ident: str, branch: str) -> PublishResult:
    """Fast-forward ``main`` to ``branch``, move the ``last_publish`` tag and drop the branch in one commit.

    Idempotent: when the branch is gone because an earlier attempt published it, nothing happens.
    Raises PublishError when ``main`` is not an ancestor of the branch (another writer moved it),
    LeaseLostError when this job lost its layer's lease (``locks.check_leases``).
    """
    check_leases()
    table = java_table(spark, ident)
    if not table.refs().containsKey(branch):
        return PublishResult(ident, snapshot_id(spark, ident), already_published=True)
    head = table.snapshot(branch).snapshotId()
    manage = table.manageSnapshots().fastForwardBranch("main", branch)
    manage = manage.replaceTag(PUBLISH_TAG, head) if table.refs().containsKey(PUBLISH_TAG) else manage.createTag(PUBLISH_TAG, head)
    try:
        manage.removeBranch(branch).commit()
    except Exception as exc:  # py4j wraps the Iceberg exception
        raise PublishError(f"cannot publish {ident} from branch {branch}: {exc}") from exc
    return PublishResult(ident, int(head), already_published=False)


def compact(spark: SparkSession, ident: str, min_input_files: int = 5, delete_file_threshold: int = 2) -> dict[str, int]:
    """Compact ``main`` of ``ident``: bin-pack the small data files of every partition holding at
    least ``min_input_files`` of them, rewrite data files with at least ``delete_file_threshold``
    position-delete files (applying the deletes) and drop the deletes left dangling.

    The data read from ``main`` is unchanged (``replace`` snapshots); the ``lakehouse.*`` state
    stays readable at the ``last_publish`` tag. Call it before an audit branch is started.
    Returns the procedure's counts (``rewritten_data_files_count``, ``added_data_files_count``,
    ``removed_delete_files_count``, ...).
    """
    catalog_name, table = ident.split(".", 1)
    options = {"min-input-files": min_input_files, "delete-file-threshold": delete_file_threshold,
               "remove-dangling-deletes": "true"}
    rendered = ", ".join(f"'{k}', '{v}'" for k, v in options.items())
    with catalog_uri_for_cloned_sessions(spark):
        row = spark.sql(f"CALL {catalog_name}.system.rewrite_data_files(table => '{table}', "
                        f"options => map({rendered}))").first()
    return {k: int(v) for k, v in row.asDict().items()}


def keep_failed_branch(spark: SparkSession, ident: str, branch: str,
                       retention_ms: int = FAILED_BRANCH_RETENTION_MS) -> None:
    """Keep a branch that failed validation for inspection, expiring after ``retention_ms``."""
    table = java_table(spark, ident)
    if table.refs().containsKey(branch):
        table.manageSnapshots().setMaxRefAgeMs(branch, retention_ms).commit()


def read_ref(spark: SparkSession, ident: str, ref: str) -> DataFrame:
    """Read ``ident`` as of a branch or tag."""
    return spark.read.option("branch", ref).table(ident) if ref != "main" else spark.read.table(ident)


def encode(value: Any) -> str:
    """Encode a state value for a snapshot-summary property."""
    return json.dumps(value, default=str, sort_keys=True)
