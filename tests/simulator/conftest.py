"""Fixtures of the simulator tests: private databases on the session's embedded PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Iterator

import psycopg2.extensions
import pytest

from lakehouse_core import postgres

START = dt.date(2023, 1, 1)
DAYS = 30


@pytest.fixture(scope="session")
def connect_db(settings) -> Callable[[str], psycopg2.extensions.connection]:
    """Open a connection to a database of our own (created on demand) on the embedded server."""
    def connect(dbname: str) -> psycopg2.extensions.connection:
        return postgres.connect(settings.source.model_copy(update={"dbname": dbname}), settings)
    return connect


@dataclass(frozen=True)
class Generated:
    conn: psycopg2.extensions.connection
    counts: dict[str, int]


@pytest.fixture(scope="session")
def generated(connect_db) -> Iterator[Generated]:
    """A source database generated in-process at scale 0.05 (about 5,000 orders)."""
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    conn = connect_db("sim_generated")
    create_source_schema(conn, reset=True)
    counts = generate(conn, scale=0.05, seed=42, start=START, days=DAYS)
    conn.commit()
    yield Generated(conn, counts)
    conn.close()
