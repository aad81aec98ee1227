"""A lost database connection is told apart from other failures (the CLI exits 75 on it: retried)."""

from __future__ import annotations

import psycopg2
import pytest

from lakehouse_core.postgres import lost_connection


@pytest.mark.parametrize("exc, reason", [
    (psycopg2.OperationalError("server closed the connection unexpectedly\n\tThis probably means ..."),
     "server closed the connection unexpectedly"),
    (RuntimeError("PythonException: Traceback ...\npsycopg2.OperationalError: terminating connection due to "
                  "administrator command\n"), "terminating connection due to administrator command"),
    (RuntimeError("o123.commit.\n: org.apache.iceberg.jdbc.UncheckedSQLException: Failed to commit\nCaused by: "
                  "org.postgresql.util.PSQLException: An I/O error occurred while sending to the backend.\n\tat x"),
     "An I/O error occurred while sending to the backend."),
    (RuntimeError("org.postgresql.util.PSQLException: ERROR: relation \"t\" does not exist"), None),
    (ValueError("bad value"), None),
])
def test_a_lost_connection_is_recognised_and_nothing_else(exc, reason):
    assert lost_connection(exc) == reason
