"""The one settings object of the platform.

Every value comes from an environment variable with the prefix ``LAKEHOUSE_``
(nested groups use ``__``, e.g. ``LAKEHOUSE_SOURCE__HOST``). Profiles:

* ``local``   (default): embedded PostgreSQL started by the project, local
  warehouse directory under ``LAKEHOUSE_HOME``, Spark ``local[2]``.
* ``compose``: the docker-compose stack (Postgres service, MinIO, Spark master).
* ``cluster``: any Spark cluster and Iceberg catalog, entirely from settings.

No credential has a default: embedded PostgreSQL uses trust authentication on
the loopback interface only.

Nothing is ignored: a ``LAKEHOUSE_*`` variable that names no setting (a typo such as
``LAKEHOUSE_SOURCE__DATABASE``) or a value that does not parse raises
``ConfigurationError`` naming the variable (and the closest valid name).
"""

from __future__ import annotations

import difflib
import functools
import os
from datetime import date
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse_core.errors import ConfigurationError
from lakehouse_core.faults import CrashPoint

if TYPE_CHECKING:
    from lakehouse_core.batch import DataInterval

ENV_PREFIX = "LAKEHOUSE_"
NESTED = "__"

CATALOG_NAME = "lakehouse"  # fixed (DESIGN §9): the same in Spark and pyiceberg


class Profile(str, Enum):
    local = "local"
    compose = "compose"
    cluster = "cluster"


class SettingsGroup(BaseModel):
    """A nested group of settings (``LAKEHOUSE_<GROUP>__<NAME>``); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class PostgresSettings(SettingsGroup):
    """Connection to one PostgreSQL database. ``host=None`` means the embedded server."""

    host: str | None = None
    port: int | None = None
    user: str = "lakehouse"
    password: SecretStr | None = None
    dbname: str


class SourceDatabase(PostgresSettings):
    """The shop's operational database (source-system.md §1)."""

    dbname: str = "shop"


class CatalogDatabase(PostgresSettings):
    """The database holding the Iceberg JDBC catalog."""

    dbname: str = "iceberg_catalog"


class SparkSettings(SettingsGroup):
    master: str = "local[2]"
    # the Python executors run (it must hold the layer wheels): on a cluster, its path on the
    # workers (required unless PYSPARK_PYTHON is set); on a local master, this interpreter
    executor_python: str | None = None
    driver_memory: str = "2g"
    shuffle_partitions: int = 4
    jdbc_partitions: int = 2
    jdbc_fetch_size: int = 10_000
    # tables a layer job works on at once in its application, each after the tables it reads (a
    # table's work mostly waits on the source, the catalog and small Spark jobs)
    parallel_tables: int = Field(4, ge=1)
    extra_conf: dict[str, str] = Field(default_factory=dict)
    # options added to the driver JVM's own (spark.driver.extraJavaOptions). The default collects
    # with the throughput collector: a batch job has no pauses to keep short (bench/README.md,
    # driver JVM options; C1 alone was tried and is slower on large batches)
    driver_java_options: str = "-XX:+UseParallelGC"
    # the driver JVM maps the classes an earlier driver loaded from an archive written at its exit
    # (lakehouse_core.class_archive): seconds off every layer job's start
    class_data_sharing: bool = True
    class_archive_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "lakehouse" / "class-archives")


class S3Settings(SettingsGroup):
    """Object store for ``s3://`` warehouses (MinIO in compose)."""

    endpoint: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    region: str = "us-east-1"
    path_style_access: bool = True


class ExtractSettings(SettingsGroup):
    """Incremental extraction bounds (see lakehouse_bronze)."""

    safety_lag_seconds: int = 300
    lookback_seconds: int = 3600
    lookback_ids: int = 10_000
    # "auto": the simulator's clock table when present, else the database clock.
    source_clock: str = "auto"
    # "copy": key-range COPY streams parsed to Arrow in Spark tasks (first loads land as files
    # written by the tasks); "jdbc": Spark's JDBC reader, for source types COPY does not map
    reader: Literal["jdbc", "copy"] = "copy"
    # a batch deleting more than this share of the keys bronze holds for a table (and at least
    # mass_delete_min_keys keys) is held: nothing is staged for the table until the deletes are
    # confirmed (`lakehouse bronze extract --confirm-mass-deletes TABLE`), e.g. a table emptied at the source
    max_delete_share: float = Field(0.5, gt=0, le=1)
    mass_delete_min_keys: int = Field(20, ge=1)
    # each incremental table read whole and compared with bronze (changed, missed and deleted
    # rows land; an insert-only table's changed rows, and deleted ones unless it reconciles its
    # deletes, are refused): on every batch (1), on the batches whose last day is a multiple of N
    # days after 2000-01-01 (7: weekly), never (0, the default until its cost at scale is measured).
    # It finds what a cursor cannot see: a timestamp moved back past the lookback, a delete or an
    # update in an insert-only table
    reconcile_every_days: int = Field(0, ge=0)

    def reconciles(self, interval: DataInterval, zone: str) -> bool:
        """Whether the batch of ``interval`` (its last day in ``zone``) reads its tables whole."""
        return _every(self.reconcile_every_days, interval, zone)


class MaintenanceSettings(SettingsGroup):
    """Compaction (of merged silver tables before each run, ``lakehouse_core.iceberg.compact``, and
    of every table by ``lakehouse maintain``) and retention (``lakehouse_core.maintenance``)."""

    compact: bool = True
    min_input_files: int = Field(5, ge=2)  # small data files of a partition that trigger a bin-pack
    delete_file_threshold: int = Field(2, ge=1)  # delete files on a data file that trigger its rewrite
    min_manifests: int = Field(10, ge=2)  # manifests of a table's current snapshot that trigger their rewrite
    # snapshots older than this are expired (time travel reaches back this far) ...
    snapshot_retention_days: float = Field(7, ge=0)
    # ... except the newest few of each table (and those a branch or tag holds)
    retain_last: int = Field(10, ge=1)
    # files no snapshot references are deleted once this old: longer than any write may take ...
    orphan_retention_hours: float = Field(72, ge=1)
    # ... by a sweep that lists the whole table, run at most this often per table (0: every time)
    orphan_sweep_days: float = Field(7, ge=0)


class GoldSettings(SettingsGroup):
    """How daily gold builds are scoped (``lakehouse_gold.build``)."""

    # a daily build that would rebuild more than this share of a table's days rebuilds it whole
    # (rewriting most partitions one by one costs more than rewriting the table)
    incremental_max_share: float = Field(0.5, ge=0, le=1)


class QualitySettings(SettingsGroup):
    """Checks whose cost follows a table's history rather than the batch's rows."""

    # silver's reconciliation of each table's current state with bronze (it reads the table's whole
    # bronze history): on every batch (1); on the batches whose last day is a multiple of N days
    # after 2000-01-01 (7: once a week, 30: about once a month); never (0)
    reconcile_every_days: int = Field(7, ge=0)
    # the newest validation results the Data Docs index lists (each gate renders the index again,
    # reading every result it lists: about a day of every layer's gates; older results keep their
    # pages, and `lakehouse quality` names the latest page of every table)
    data_docs_index_results: int = Field(100, ge=1)

    def reconciles(self, interval: DataInterval, zone: str) -> bool:
        """Whether the batch of ``interval`` (its last day in ``zone``) runs the reconciliation."""
        return _every(self.reconcile_every_days, interval, zone)


def _every(days: int, interval: DataInterval, zone: str) -> bool:
    """Whether the last day of ``interval`` in ``zone`` is a multiple of ``days`` after RECONCILE_EPOCH (0: never)."""
    return days > 0 and (interval.last_day(zone) - RECONCILE_EPOCH).days % days == 0


#: the day the reconciliation schedule counts from
RECONCILE_EPOCH = date(2000, 1, 1)


class LineageSettings(SettingsGroup):
    enabled: bool = True
    namespace: str = "lakehouse"
    # None: file transport into <home>/lineage/ ; otherwise an HTTP endpoint (Marquez).
    http_url: str | None = None


class LakehouseSettings(BaseSettings):
    """All settings of the platform, read from ``LAKEHOUSE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="forbid")

    def __init__(self, **values: Any):
        """Read the environment. Raises ConfigurationError for an unknown ``LAKEHOUSE_*`` variable
        or a value that does not parse (naming the variable)."""
        check_environment(os.environ)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{NESTED.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
                for error in exc.errors())
            raise ConfigurationError(f"invalid settings: {problems}") from None

    profile: Profile = Profile.local
    home: Path = Field(default_factory=lambda: Path.cwd() / ".lakehouse")
    jar_cache: Path = Field(default_factory=lambda: Path.home() / ".cache" / "lakehouse" / "jars")
    warehouse: str | None = None  # default: <home>/warehouse
    registry_path: Path | None = None  # default: the registry shipped with lakehouse-core
    # Great Expectations suites: <dir>/<layer>/<table>.json; default: the suites each layer's wheel ships
    expectations_dir: Path | None = None
    # bin/ of the environment that holds the built layer wheels (Airflow tasks run from it)
    runtime_bin: Path | None = None
    # key of the PII masking HMAC (required outside the local profile)
    pii_secret: SecretStr | None = None
    # fault-injection tests only: kill -9 the job at this named point (lakehouse_core.faults)
    crash_at: CrashPoint | None = None
    # fault-injection tests only: stop the job once at this named point until SIGCONT
    pause_at: CrashPoint | None = None
    source_zone: str = "Asia/Ho_Chi_Minh"
    business_zone: str = "Asia/Ho_Chi_Minh"
    source: SourceDatabase = SourceDatabase()
    catalog: CatalogDatabase = CatalogDatabase()
    spark: SparkSettings = SparkSettings()
    s3: S3Settings = S3Settings()
    extract: ExtractSettings = ExtractSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    gold: GoldSettings = GoldSettings()
    quality: QualitySettings = QualitySettings()
    lineage: LineageSettings = LineageSettings()

    @property
    def warehouse_uri(self) -> str:
        return self.warehouse or (self.home / "warehouse").resolve().as_uri()

    @property
    def data_docs_dir(self) -> Path:
        return self.home / "data_docs"

    @property
    def quality_dir(self) -> Path:
        return self.home / "quality"

    @property
    def lineage_dir(self) -> Path:
        return self.home / "lineage"

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.source.host is None or self.catalog.host is None


def _variables(model: type[BaseModel], prefix: str) -> Iterator[str]:
    """Every environment variable ``model`` reads under ``prefix`` (nested groups included)."""
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        nested = [a for a in (field.annotation, *get_args(field.annotation))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            yield from _variables(nested[0], variable + NESTED)
        yield variable


def known_variables() -> set[str]:
    """Every ``LAKEHOUSE_*`` variable that names a setting. A mapping setting such as
    ``LAKEHOUSE_SPARK__EXTRA_CONF`` takes a JSON object: its keys keep their case, which
    per-key variables (``..._EXTRA_CONF__<key>``, lower-cased by pydantic-settings) would not."""
    return set(_variables(LakehouseSettings, ENV_PREFIX))


def check_environment(environ: Mapping[str, str]) -> None:
    """Raise ConfigurationError naming every ``LAKEHOUSE_*`` variable that is no setting, with the
    closest valid name (pydantic-settings would ignore it silently)."""
    known = known_variables()
    groups = {k for k in known for other in known if other.startswith(k + NESTED)}
    unknown = []
    for variable in sorted(environ):
        name = variable.upper()
        if name.startswith(ENV_PREFIX) and name not in known:
            # a per-key variable of a mapping setting (no group) names the mapping
            close = ([k for k in known - groups if name.startswith(k + NESTED)]
                     or difflib.get_close_matches(name, known, n=1, cutoff=0.6))
            unknown.append(f"{variable}" + (f" (did you mean {close[0]}?)" if close else ""))
    if unknown:
        raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)}; "
                                 f"every {ENV_PREFIX}* variable must name a setting")


@functools.lru_cache(maxsize=1)
def get_settings() -> LakehouseSettings:
    """The process-wide settings (read once from the environment)."""
    return LakehouseSettings()
