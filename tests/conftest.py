"""Shared fixtures: one embedded PostgreSQL and (lazily) one SparkSession per test process."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Py4J logs "Closing down clientserver connection" at INFO from __del__ at interpreter exit, after
# pytest closed the streams its handlers write to ("--- Logging error --- ... closed file").
logging.getLogger("py4j").setLevel(logging.WARNING)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


#: the end-to-end modules share one session-scoped Airflow backfill: one worker runs them all
END_TO_END = "tests/e2e/"
#: the groups that take longest (a few minutes each, `--durations` of `make test`), longest first:
#: started first, they do not leave one worker running alone at the end
LONGEST_FIRST = (END_TO_END, "tests/integration/test_crashes.py", "tests/bench/test_bench_pipeline.py",
                 "tests/integration/test_gold.py", "tests/integration/test_restarts.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest groups first (``LONGEST_FIRST``), then the rest in collection order; a stable
    sort, so every module keeps its tests' order."""
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)


class _ModulesWhole:
    """Under ``pytest -n`` (``make test``): each test module runs whole on one worker, in order
    (its module fixtures build state its tests share), and the end-to-end modules together."""

    @staticmethod
    def pytest_xdist_make_scheduler(config: pytest.Config, log):
        from xdist.scheduler import LoadFileScheduling

        class ModuleScheduling(LoadFileScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return END_TO_END if nodeid.startswith(END_TO_END) else super()._split_scope(nodeid)

        return ModuleScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):  # (not with -p no:xdist)
        config.pluginmanager.register(_ModulesWhole())


@pytest.fixture(scope="session")
def lakehouse_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lakehouse-home")


@pytest.fixture(scope="session")
def settings(lakehouse_home: Path):
    """Settings on a throw-away state folder, with the embedded PostgreSQL running for the session."""
    from lakehouse_core import postgres
    from lakehouse_core.settings import LakehouseSettings, get_settings

    os.environ["LAKEHOUSE_HOME"] = str(lakehouse_home)
    os.environ["LAKEHOUSE_EXPECTATIONS_DIR"] = str(REPO_ROOT / "expectations")
    # code that read the process-wide settings earlier (e.g. a DAG module imported by a test) must
    # not keep the state folder it saw then: in-process CLI calls would start a server there
    get_settings.cache_clear()
    s = LakehouseSettings()
    server = postgres.EmbeddedPostgres.for_settings(s)
    server.start()
    yield s
    server.stop()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder beside the repository (fails loudly when it is missing, never skips)."""
    if not SHARED_DIR.is_dir():
        pytest.fail(f"{SHARED_DIR} is missing: put a copy of shared/ beside the clone")
    return SHARED_DIR


@pytest.fixture(scope="session")
def spark(settings):
    """The one SparkSession of the test process (lineage off: the end-to-end test covers it)."""
    from lakehouse_core.settings import get_settings
    from lakehouse_core.spark import get_spark

    os.environ["LAKEHOUSE_LINEAGE__ENABLED"] = "false"
    get_settings.cache_clear()
    quiet = settings.model_copy(update={"lineage": settings.lineage.model_copy(update={"enabled": False})})
    session = get_spark(quiet, "lakehouse-tests")
    yield session
    session.stop()


def _drop_every_table(spark) -> None:
    for namespace in ("bronze", "silver", "gold", "quarantine"):
        for row in spark.sql(f"SHOW TABLES IN lakehouse.{namespace}").collect():
            spark.sql(f"DROP TABLE lakehouse.{namespace}.{row.tableName} PURGE")


@pytest.fixture(scope="module")
def empty_lakehouse(spark):
    """Every Iceberg table dropped before the module's tests and after them: for modules that
    build their own lakehouse from a hand-written source. Yields a function that drops them
    again (between cases of the module)."""
    _drop_every_table(spark)
    yield lambda: _drop_every_table(spark)
    _drop_every_table(spark)


@pytest.fixture(scope="session")
def source_sql():
    """``run(settings, sql, clock)``: run ``sql`` on the settings' source database and set the
    simulator's clock (what the extract takes as the source's now)."""
    from lakehouse_core import postgres

    def run(settings, sql: str, clock: str) -> None:
        with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
            cur.execute(sql)
            cur.execute("DELETE FROM lakehouse_sim.clock; INSERT INTO lakehouse_sim.clock (sim_now) VALUES (%s)",
                        (clock,))
            conn.commit()

    return run


@pytest.fixture(scope="session")
def openlineage_validate(shared_dir: Path):
    """``validate(event)``: check an OpenLineage event against the official schemas in
    ``../shared/openlineage-spec`` (offline), each facet against its own schema; returns how many
    facets had a schema."""
    import json

    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    spec = shared_dir / "openlineage-spec"
    paths = [spec / "OpenLineage.json", *sorted((spec / "facets").glob("*.json"))]
    schemas = [json.loads(path.read_text()) for path in paths]
    registry = Registry().with_resources([(schema["$id"], Resource.from_contents(schema)) for schema in schemas])
    core = Draft202012Validator(schemas[0], registry=registry)
    facets = {name: Draft202012Validator({**prop, "$id": f"{schema['$id']}#{name}", "$defs": schema.get("$defs", {})},
                                         registry=registry)
              for schema in schemas[1:] for name, prop in schema.get("properties", {}).items()}

    def validate(event: dict) -> int:
        core.validate(event)
        checked = 0
        datasets = [*event.get("inputs", []), *event.get("outputs", [])]
        for group in [event.get("run", {}).get("facets"), event.get("job", {}).get("facets"),
                      *[d.get(kind) for d in datasets for kind in ("facets", "inputFacets", "outputFacets")]]:
            for name, facet in (group or {}).items():
                if name in facets:
                    facets[name].validate(facet)
                    checked += 1
        return checked

    return validate
