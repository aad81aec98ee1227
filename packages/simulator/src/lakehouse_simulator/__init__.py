"""lakehouse-simulator: the source database DDL and a deterministic e-commerce shop simulator.

Public API::

    from lakehouse_simulator import SOURCE_TABLES, create_source_schema, generate
"""

from importlib.metadata import PackageNotFoundError, version

from lakehouse_simulator.generate import build_tables, generate
from lakehouse_simulator.schema import SOURCE_TABLES, create_source_schema

try:
    __version__ = version("lakehouse-simulator")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["SOURCE_TABLES", "build_tables", "create_source_schema", "generate"]
