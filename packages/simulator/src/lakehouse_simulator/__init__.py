"""lakehouse-simulator: the source database DDL and a deterministic e-commerce shop simulator.

Public API (import from the modules; the package itself re-exports nothing, so the module
``lakehouse_simulator.generate`` is never shadowed by the function of the same name)::

    from lakehouse_simulator.schema import SOURCE_TABLES, create_source_schema
    from lakehouse_simulator.generate import generate, build_tables
    from lakehouse_simulator.advance import advance, SourceBehaviour      # simulator v1: days with change
    from lakehouse_simulator.scenarios import SCENARIOS, Scenario
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lakehouse-simulator")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"
