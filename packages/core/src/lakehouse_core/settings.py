"""The one settings object of the platform.

Every value comes from an environment variable with the prefix ``LAKEHOUSE_``
(nested groups use ``__``, e.g. ``LAKEHOUSE_SOURCE__HOST``). Profiles:

* ``local``   (default): embedded PostgreSQL started by the project, local
  warehouse directory under ``LAKEHOUSE_HOME``, Spark ``local[2]``.
* ``compose``: the docker-compose stack (Postgres service, MinIO, Spark master).
* ``cluster``: any Spark cluster and Iceberg catalog, entirely from settings.

No credential has a default: embedded PostgreSQL uses trust authentication on
the loopback interface only.
"""

from __future__ import annotations

import functools
from enum import Enum
from typing import Literal
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

CATALOG_NAME = "lakehouse"  # fixed (DESIGN §9): the same in Spark and pyiceberg


class Profile(str, Enum):
    local = "local"
    compose = "compose"
    cluster = "cluster"


class PostgresSettings(BaseModel):
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


class SparkSettings(BaseModel):
    master: str = "local[2]"
    driver_memory: str = "2g"
    shuffle_partitions: int = 4
    jdbc_partitions: int = 2
    jdbc_fetch_size: int = 10_000
    extra_conf: dict[str, str] = Field(default_factory=dict)


class S3Settings(BaseModel):
    """Object store for ``s3://`` warehouses (MinIO in compose)."""

    endpoint: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    region: str = "us-east-1"
    path_style_access: bool = True


class ExtractSettings(BaseModel):
    """Incremental extraction bounds (see lakehouse_bronze)."""

    safety_lag_seconds: int = 300
    lookback_seconds: int = 3600
    lookback_ids: int = 10_000
    # "auto": the simulator's clock table when present, else the database clock.
    source_clock: str = "auto"
    # "copy": key-range COPY streams parsed to Arrow in Spark tasks (first loads land as files
    # written by the tasks); "jdbc": Spark's JDBC reader, for source types COPY does not map
    reader: Literal["jdbc", "copy"] = "copy"


class MaintenanceSettings(BaseModel):
    """Compaction of merged (silver) tables before each run (``lakehouse_core.iceberg.compact``)."""

    compact: bool = True
    min_input_files: int = Field(5, ge=2)  # small data files of a partition that trigger a bin-pack
    delete_file_threshold: int = Field(2, ge=1)  # delete files on a data file that trigger its rewrite


class LineageSettings(BaseModel):
    enabled: bool = True
    namespace: str = "lakehouse"
    # None: file transport into <home>/lineage/ ; otherwise an HTTP endpoint (Marquez).
    http_url: str | None = None


class LakehouseSettings(BaseSettings):
    """All settings of the platform, read from ``LAKEHOUSE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_", env_nested_delimiter="__", extra="ignore")

    profile: Profile = Profile.local
    home: Path = Field(default_factory=lambda: Path.cwd() / ".lakehouse")
    jar_cache: Path = Field(default_factory=lambda: Path.home() / ".cache" / "lakehouse" / "jars")
    warehouse: str | None = None  # default: <home>/warehouse
    registry_path: Path | None = None  # default: the registry shipped with lakehouse-core
    expectations_dir: Path = Field(default_factory=lambda: Path.cwd() / "expectations")
    # bin/ of the environment that holds the built layer wheels (Airflow tasks run from it)
    runtime_bin: Path | None = None
    # key of the PII masking HMAC (required outside the local profile)
    pii_secret: SecretStr | None = None
    source_zone: str = "Asia/Ho_Chi_Minh"
    business_zone: str = "Asia/Ho_Chi_Minh"
    source: SourceDatabase = SourceDatabase()
    catalog: CatalogDatabase = CatalogDatabase()
    spark: SparkSettings = SparkSettings()
    s3: S3Settings = S3Settings()
    extract: ExtractSettings = ExtractSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
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


@functools.lru_cache(maxsize=1)
def get_settings() -> LakehouseSettings:
    """The process-wide settings (read once from the environment)."""
    return LakehouseSettings()
