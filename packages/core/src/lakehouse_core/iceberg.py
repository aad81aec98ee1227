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
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession

from lakehouse_core.batch import check_not_older
from pyspark.sql import functions as F

PUBLISH_TAG = "last_publish"
PROPERTY_PREFIX = "lakehouse."
FAILED_BRANCH_RETENTION_MS = 3 * 24 * 3600 * 1000


class PublishError(RuntimeError):
    """An audit branch could not be published to ``main``."""


def audit_branch(batch_id: str) -> str:
    """The audit branch name of a batch: ``audit_<batch id>``."""
    return f"audit_{batch_id}"


def _java_table(spark: SparkSession, ident: str) -> Any:
    return spark._jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, ident)


_TRANSFORMS = {"years": F.years, "months": F.months, "days": F.days, "hours": F.hours}


def partition_column(spec: str) -> Column:
    """``"days(order_date)"`` → ``F.days(col)``; a bare name → identity partition.

    Raises ValueError for an unknown transform.
    """
    match = re.fullmatch(r"(\w+)\((\w+)\)", spec.strip())
    if not match:
        return F.col(spec.strip())
    transform, column = match.groups()
    if transform not in _TRANSFORMS:
        raise ValueError(f"unknown partition transform {transform!r} in {spec!r}; expected one of {sorted(_TRANSFORMS)}")
    return _TRANSFORMS[transform](F.col(column))


def table_exists(spark: SparkSession, ident: str) -> bool:
    return bool(spark.catalog.tableExists(ident))


def create_table(spark: SparkSession, ident: str, df: DataFrame, partition_by: list[str] | None = None,
                 properties: dict[str, str] | None = None) -> None:
    """Create ``ident`` with the schema of ``df`` (no data) and an initial empty snapshot.

    The empty snapshot lets audit branches be created before the first publish.
    """
    writer = df.limit(0).writeTo(ident).using("iceberg").tableProperty("format-version", "2")
    for key, value in (properties or {}).items():
        writer = writer.tableProperty(key, value)
    if partition_by:
        writer = writer.partitionedBy(*(partition_column(p) for p in partition_by))
    writer.create()
    table = _java_table(spark, ident)
    if table.currentSnapshot() is None:
        table.newAppend().set(f"{PROPERTY_PREFIX}init", "true").commit()


def start_audit_branch(spark: SparkSession, ident: str, branch: str) -> None:
    """(Re)create ``branch`` at ``main``'s head: an unpublished earlier attempt is discarded."""
    table = _java_table(spark, ident)
    head = table.currentSnapshot().snapshotId()
    manage = table.manageSnapshots()
    if table.refs().containsKey(branch):
        manage.replaceBranch(branch, head)
    else:
        manage.createBranch(branch, head)
    manage.commit()


def commit_properties(spark: SparkSession, ident: str, branch: str, properties: dict[str, str]) -> int:
    """Commit an empty snapshot carrying ``properties`` on ``branch``; return its id."""
    table = _java_table(spark, ident)
    append = table.newAppend().toBranch(branch)
    for key, value in properties.items():
        append = append.set(key, value)
    append.commit()
    table.refresh()
    return int(table.snapshot(branch).snapshotId())


def branch_exists(spark: SparkSession, ident: str, branch: str) -> bool:
    return bool(_java_table(spark, ident).refs().containsKey(branch))


def snapshot_id(spark: SparkSession, ident: str, ref: str = "main") -> int | None:
    snap = _java_table(spark, ident).snapshot(ref)
    return None if snap is None else int(snap.snapshotId())


def summary(spark: SparkSession, ident: str, ref: str = PUBLISH_TAG) -> dict[str, str]:
    """The ``lakehouse.*`` summary properties of the snapshot at ``ref`` ({} when absent)."""
    snap = _java_table(spark, ident).snapshot(ref)
    if snap is None:
        return {}
    return {k: v for k, v in dict(snap.summary()).items() if k.startswith(PROPERTY_PREFIX)}


def published_batches(spark: SparkSession, ident: str) -> set[str]:
    """Batch ids published to ``main`` (ancestors of its head)."""
    table = _java_table(spark, ident)
    snap = table.currentSnapshot()
    found = set()
    while snap is not None:
        batch = snap.summary().get(f"{PROPERTY_PREFIX}batch_id")
        if batch:
            found.add(str(batch))
        parent = snap.parentId()
        snap = None if parent is None else table.snapshot(parent)
    return found


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
    """Check ``batch_id`` against the batches published to ``ident``.

    Raises BatchOrderError when a newer batch is already published.
    """
    if not table_exists(spark, ident):
        return BatchStart(False, False, {})
    published = published_batches(spark, ident)
    if batch_id in published:
        return BatchStart(True, True, summary(spark, ident))
    check_not_older(batch_id, published, ident.split(".", 1)[1])
    return BatchStart(True, False, summary(spark, ident))


@dataclass(frozen=True)
class PublishResult:
    table: str
    snapshot_id: int | None
    already_published: bool


def publish(spark: SparkSession, ident: str, branch: str) -> PublishResult:
    """Fast-forward ``main`` to ``branch``, move the ``last_publish`` tag and drop the branch in one commit.

    Idempotent: when the branch is gone because an earlier attempt published it, nothing happens.
    Raises PublishError when ``main`` is not an ancestor of the branch (another writer moved it).
    """
    table = _java_table(spark, ident)
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


def keep_failed_branch(spark: SparkSession, ident: str, branch: str,
                       retention_ms: int = FAILED_BRANCH_RETENTION_MS) -> None:
    """Keep a branch that failed validation for inspection, expiring after ``retention_ms``."""
    table = _java_table(spark, ident)
    if table.refs().containsKey(branch):
        table.manageSnapshots().setMaxRefAgeMs(branch, retention_ms).commit()


def read_ref(spark: SparkSession, ident: str, ref: str) -> DataFrame:
    """Read ``ident`` as of a branch or tag."""
    return spark.read.option("branch", ref).table(ident) if ref != "main" else spark.read.table(ident)


def encode(value: Any) -> str:
    """Encode a state value for a snapshot-summary property."""
    return json.dumps(value, default=str, sort_keys=True)
