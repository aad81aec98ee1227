"""Fixtures of the integration tests that put bronze against a live source table per case."""

from __future__ import annotations

import pytest

from lakehouse_core import postgres


@pytest.fixture(scope="module")
def source(settings):
    """Settings pointing at a dedicated source database with a simulator clock."""
    own = settings.model_copy(update={"source": settings.source.model_copy(update={"dbname": "bronze_cases"})})
    with postgres.connect(own.source, own) as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS lakehouse_sim; "
                    "CREATE TABLE IF NOT EXISTS lakehouse_sim.clock (id int PRIMARY KEY, sim_now timestamp NOT NULL)")
        conn.commit()
    return own
