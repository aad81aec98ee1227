"""Shared foundation of the lakehouse layers: settings, registry, Spark, Iceberg, quality gates, lineage."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lakehouse-core")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"
