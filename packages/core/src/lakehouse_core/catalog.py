"""The Iceberg catalog ``lakehouse`` from Python (pyiceberg), configured like Spark's.

Spark and pyiceberg share one JDBC/SQL catalog database and one warehouse, so a table
written by either is read by both. Used where Spark would only add overhead, such as
committing data files that Spark tasks already wrote (``lakehouse_bronze.landing``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from lakehouse_core import postgres
from lakehouse_core.settings import CATALOG_NAME, LakehouseSettings

if TYPE_CHECKING:  # pyiceberg is imported where a catalog is loaded: its import costs ~1.5 s
    from pyiceberg.catalog.sql import SqlCatalog


def catalog_properties(settings: LakehouseSettings) -> dict[str, str]:
    """pyiceberg properties of the ``lakehouse`` catalog (also the FileIO properties of its tables).

    Starts the embedded catalog database when the profile uses it.
    """
    db = postgres.resolve(settings.catalog, settings)
    password = f":{quote(db.password.get_secret_value(), safe='')}" if db.password else ""
    properties = {
        "uri": f"postgresql+psycopg2://{quote(db.user, safe='')}{password}@{db.host}:{db.port or 5432}/{db.dbname}",
        "warehouse": settings.warehouse_uri,
        "init_catalog_tables": "false",  # Spark's JDBC catalog owns the schema
    }
    if settings.warehouse_uri.startswith("s3"):
        s3 = settings.s3
        properties |= {"s3.region": s3.region, "s3.force-virtual-addressing": str(not s3.path_style_access).lower()}
        if s3.endpoint:
            properties["s3.endpoint"] = s3.endpoint
        if s3.access_key_id and s3.secret_access_key:
            properties["s3.access-key-id"] = s3.access_key_id.get_secret_value()
            properties["s3.secret-access-key"] = s3.secret_access_key.get_secret_value()
    return properties


def load_catalog(settings: LakehouseSettings) -> "SqlCatalog":
    """The ``lakehouse`` catalog as a pyiceberg ``SqlCatalog``."""
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(CATALOG_NAME, **catalog_properties(settings))
