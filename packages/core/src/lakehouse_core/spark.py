"""The SparkSession factory: Iceberg JDBC catalog ``lakehouse``, pinned jars, lineage listener.

One session per process: layer jobs run all their tables in the session they get here.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pyspark.sql import SparkSession

from lakehouse_core import class_archive, jvm, postgres
from lakehouse_core.errors import ConfigurationError
from lakehouse_core.settings import CATALOG_NAME, LakehouseSettings

LOG_CONFIG = Path(__file__).with_name("log4j2.properties")


@dataclass(frozen=True)
class ParentRun:
    """The OpenLineage run (an Airflow task) that launched this Spark application."""

    namespace: str
    job_name: str
    run_id: str
    root_namespace: str | None = None
    root_job_name: str | None = None
    root_run_id: str | None = None

    @classmethod
    def from_env(cls) -> "ParentRun | None":
        """Read ``OPENLINEAGE_PARENT_*`` variables set by the Airflow task, if any."""
        env = os.environ
        if not env.get("OPENLINEAGE_PARENT_RUN_ID"):
            return None
        return cls(env["OPENLINEAGE_PARENT_NAMESPACE"], env["OPENLINEAGE_PARENT_JOB_NAME"],
                   env["OPENLINEAGE_PARENT_RUN_ID"], env.get("OPENLINEAGE_ROOT_PARENT_NAMESPACE"),
                   env.get("OPENLINEAGE_ROOT_PARENT_JOB_NAME"), env.get("OPENLINEAGE_ROOT_PARENT_RUN_ID"))


def _catalog_conf(settings: LakehouseSettings) -> dict[str, str]:
    catalog = postgres.resolve(settings.catalog, settings)
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    conf = {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "jdbc",
        f"{prefix}.uri": postgres.jdbc_url(catalog),
        f"{prefix}.jdbc.user": catalog.user,
        f"{prefix}.jdbc.schema-version": "V1",
        f"{prefix}.warehouse": settings.warehouse_uri,
        f"{prefix}.cache-enabled": "false",
        # catalog connections (default 2): layers create and commit tables from a few threads
        f"{prefix}.clients": "8",
    }
    if catalog.password:
        conf[f"{prefix}.jdbc.password"] = catalog.password.get_secret_value()
    if settings.warehouse_uri.startswith("s3"):
        s3 = settings.s3
        conf[f"{prefix}.io-impl"] = "org.apache.iceberg.aws.s3.S3FileIO"
        conf[f"{prefix}.s3.path-style-access"] = str(s3.path_style_access).lower()
        conf[f"{prefix}.client.region"] = s3.region
        if s3.endpoint:
            conf[f"{prefix}.s3.endpoint"] = s3.endpoint
        if s3.access_key_id and s3.secret_access_key:
            conf[f"{prefix}.s3.access-key-id"] = s3.access_key_id.get_secret_value()
            conf[f"{prefix}.s3.secret-access-key"] = s3.secret_access_key.get_secret_value()
    return conf


OPENLINEAGE_LISTENER = "io.openlineage.spark.agent.OpenLineageSparkListener"


@contextlib.contextmanager
def spark_lineage_held_back(spark: SparkSession) -> Iterator[None]:
    """Keep the session's OpenLineage Spark listener from the Spark jobs of a block (a gate in a
    layer's application: its queries are reported as the gate's own run, not one run each). The
    events of what ran before reach the listener first, and it is back for what runs after."""
    context = spark.sparkContext._jsc.sc()
    bus = context.listenerBus()
    listeners = [x for x in bus.listeners() if x.getClass().getName() == OPENLINEAGE_LISTENER]
    if listeners:
        bus.waitUntilEmpty()
    for listener in listeners:
        context.removeSparkListener(listener)
    try:
        yield
    finally:
        if listeners:
            bus.waitUntilEmpty()
        for listener in listeners:
            context.addSparkListener(listener)


def _lineage_conf(settings: LakehouseSettings, parent: ParentRun | None) -> dict[str, str]:
    lineage = settings.lineage
    conf = {
        "spark.extraListeners": OPENLINEAGE_LISTENER,
        "spark.openlineage.namespace": lineage.namespace,
    }
    if lineage.http_url:
        conf |= {"spark.openlineage.transport.type": "http", "spark.openlineage.transport.url": lineage.http_url}
    else:
        settings.lineage_dir.mkdir(parents=True, exist_ok=True)
        conf |= {"spark.openlineage.transport.type": "file",
                 "spark.openlineage.transport.location": str(settings.lineage_dir / "spark-events.jsonl")}
    if parent:
        conf |= {"spark.openlineage.parentJobNamespace": parent.namespace,
                 "spark.openlineage.parentJobName": parent.job_name,
                 "spark.openlineage.parentRunId": parent.run_id}
        if parent.root_run_id:
            conf |= {"spark.openlineage.rootParentJobNamespace": parent.root_namespace or parent.namespace,
                     "spark.openlineage.rootParentJobName": parent.root_job_name or parent.job_name,
                     "spark.openlineage.rootParentRunId": parent.root_run_id}
    return conf


def spark_conf(settings: LakehouseSettings, app_name: str, parent: ParentRun | None = None,
               listener: bool = True) -> dict[str, str]:
    """Every Spark setting of a platform session (also usable for spark-submit ``--conf``);
    ``listener``: the OpenLineage Spark listener when lineage is on (a gate reports its own run)."""
    listener = listener and settings.lineage.enabled
    artifacts = [jvm.ICEBERG_SPARK_RUNTIME, jvm.POSTGRES_JDBC]
    if listener:
        artifacts.append(jvm.OPENLINEAGE_SPARK)
    local_warehouse = not settings.warehouse_uri.startswith("s3")
    if not local_warehouse:
        artifacts.append(jvm.ICEBERG_AWS_BUNDLE)
    jars = jvm.resolve(artifacts, settings.jar_cache)
    conf = {
        "spark.app.name": app_name,
        "spark.master": settings.spark.master,
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.jars": ",".join(str(p) for p in jars),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.defaultCatalog": CATALOG_NAME,
        # tables run a few at a time (``lakehouse_core.parallel.run_tables``), each thread's jobs in
        # a pool of their own: a table's small jobs no longer queue behind another table's large one
        "spark.scheduler.mode": "FAIR",
        # the OpenLineage listener reflects into the class loader (Java 17 module rules); the
        # platform's logging configuration (see log4j2.properties beside this module)
        "spark.driver.extraJavaOptions": "--add-opens=java.base/java.security=ALL-UNNAMED "
                                         f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()} "
                                         f"{settings.spark.driver_java_options}".strip(),
    }
    if settings.spark.master.startswith("local"):
        conf |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    if local_warehouse:
        # Without Hadoop's native library, its local file system forks `chmod` for every file it
        # creates (and its checksum file): ~190 processes forked from the JVM per bronze first
        # load of 24 tables, about half of the commits' CPU (measured with JFR). The same file
        # system with permissions set through java.nio:
        # (on the JVM's class path: spark-submit reads `spark.jars` through this file system)
        conf |= {"spark.hadoop.fs.file.impl": "com.globalmentor.apache.hadoop.fs.BareLocalFileSystem",
                 "spark.driver.extraClassPath": str(jvm.resolve([jvm.HADOOP_LOCAL_FS], settings.jar_cache)[0])}
    conf |= _catalog_conf(settings)
    if listener:
        conf |= _lineage_conf(settings, parent)
    conf |= settings.spark.extra_conf
    return conf


def executor_python(settings: LakehouseSettings) -> str:
    """The Python executors run Python tasks (the COPY reader) with: ``spark.executor_python``,
    else ``$PYSPARK_PYTHON``, else (a local master) this interpreter.

    Raises ConfigurationError for a cluster master without either: a worker's own ``python3``
    would not hold the layer wheels."""
    python = settings.spark.executor_python or os.environ.get("PYSPARK_PYTHON")
    if python:
        return python
    if settings.spark.master.startswith("local"):
        return sys.executable
    raise ConfigurationError(f"LAKEHOUSE_SPARK__EXECUTOR_PYTHON is not set: the Spark master {settings.spark.master} "
                             "runs executors on workers; name the Python there that holds the layer wheels "
                             "(e.g. /opt/lakehouse/runtime/bin/python)")


def get_spark(settings: LakehouseSettings, app_name: str, parent: ParentRun | None = None,
              listener: bool = True) -> SparkSession:
    """Return the process's SparkSession, creating it on first call (``listener``: see ``spark_conf``).

    Raises ArtifactResolutionError when a pinned jar cannot be resolved, EmbeddedPostgresError
    when the embedded catalog database does not start, ConfigurationError (``executor_python``).
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if settings.spark.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # PySpark 3.5 reads only the environment variable, not spark.pyspark.python, in a plain driver
    os.environ["PYSPARK_PYTHON"] = executor_python(settings)
    conf = spark_conf(settings, app_name, parent, listener)
    sharing, archive_to_write = class_archive.java_options(settings, conf)
    if sharing:
        conf["spark.driver.extraJavaOptions"] = f"{conf.get('spark.driver.extraJavaOptions', '')} {sharing}".strip()
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if archive_to_write:
        class_archive.publish_at_exit(spark.sparkContext._gateway.proc, archive_to_write, spark.stop)
    for namespace in ("bronze", "silver", "gold", "quarantine"):
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG_NAME}.{namespace}")
    _name_catalog_for_lineage(spark)
    return spark


_CATALOG_URI = f"spark.sql.catalog.{CATALOG_NAME}.uri"
_JDBC_URI = "spark.lakehouse.catalog.jdbc-uri"  # the original, kept for cloned sessions


def _name_catalog_for_lineage(spark: SparkSession) -> None:
    """Let OpenLineage name datasets of the JDBC catalog.

    OpenLineage 1.53 has no handler for Iceberg JDBC catalogs and falls back to its
    Hive handler, which parses the catalog ``uri`` as a URI with an authority and fails
    on ``jdbc:postgresql://...`` (no dataset then reaches the events). The Iceberg
    catalog is initialised by now and keeps its own copy of its properties, so the
    session-level value is replaced by the same address without the ``jdbc:`` scheme.
    """
    uri = spark.conf.get(_CATALOG_URI, "")
    if uri.startswith("jdbc:"):
        spark.conf.set(_JDBC_URI, uri)
        spark.conf.set(_CATALOG_URI, uri.removeprefix("jdbc:").split("?")[0])


class _ClonedSessionUri:
    """Who holds the JDBC ``uri`` in the session conf now (``catalog_uri_for_cloned_sessions``):
    tables are maintained and compacted a few at a time, the first block in sets it, the last out
    restores the lineage one."""

    lock = threading.Lock()
    holders = 0
    lineage_uri = ""


@contextlib.contextmanager
def catalog_uri_for_cloned_sessions(spark: SparkSession) -> Iterator[None]:
    """Give the session conf back its JDBC catalog ``uri`` for the duration of a block (thread-safe:
    blocks may overlap in threads of the session).

    Iceberg actions that clone the session (``rewrite_data_files``) initialise the catalog
    again from the session conf, which ``_name_catalog_for_lineage`` changed for OpenLineage.
    """
    jdbc_uri = spark.conf.get(_JDBC_URI, "")
    if not jdbc_uri:
        yield
        return
    state = _ClonedSessionUri
    with state.lock:
        if state.holders == 0:
            state.lineage_uri = spark.conf.get(_CATALOG_URI)
            spark.conf.set(_CATALOG_URI, jdbc_uri)
        state.holders += 1
    try:
        yield
    finally:
        with state.lock:
            state.holders -= 1
            if state.holders == 0:
                spark.conf.set(_CATALOG_URI, state.lineage_uri)
