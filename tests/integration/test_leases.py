"""What a job is told when the catalog database drops its connections (a restart) mid-run.

Whichever connection meets the restart first (the lease's, Spark's catalog, a source read), a job
whose lease went with it stops with ``LeaseLostError``: its lease may be another job's by now.
A job that still holds its leases is told which connection failed. Both exit 75 (retried).
"""

from __future__ import annotations

import argparse
import time

import psycopg2

from lakehouse_core import cli, postgres
from lakehouse_core.errors import EXIT_RETRYABLE, BatchError

LOST = psycopg2.OperationalError("terminating connection due to administrator command\nSSL connection ...")


#: the advisory lock of a layer's lease (``lakehouse.<layer>``), in ``pg_locks``
_LEASE_LOCK = ("FROM pg_locks WHERE locktype = 'advisory' "
               "AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0)")


def _drop_lease_connection(settings, layer: str) -> None:
    """Terminate the catalog connection holding ``layer``'s lease, as a server restart does."""
    lease = (f"lakehouse.{layer}",)
    with postgres.connect(settings.catalog, settings) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT pg_terminate_backend(pid) {_LEASE_LOCK}", lease)
        assert [row[0] for row in cur.fetchall()] == [True], f"no connection held the {layer} lease"
        # (pg_terminate_backend only signals: the lease is free once that backend has exited)
        for _ in range(100):
            cur.execute(f"SELECT count(*) {_LEASE_LOCK}", lease)
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"the terminated connection still holds the {layer} lease after 5 s")


def _run_command(monkeypatch, command) -> int:
    """``lakehouse_core.cli.main`` running ``command`` as its subcommand."""
    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    return cli.main([])


def test_a_connection_lost_with_the_jobs_lease_stops_it_as_a_lost_lease(settings, monkeypatch, capsys):
    def command(args):
        cli.hold_leases(settings, ["gold"], "gold job")
        _drop_lease_connection(settings, "gold")
        raise LOST  # (another of the job's connections met the restart first)

    assert _run_command(monkeypatch, command) == EXIT_RETRYABLE
    line = capsys.readouterr().err.strip()
    assert line.startswith("lakehouse: error: gold job: lost its lease on the catalog database ("), line
    assert "nothing more was committed" in line and "\n" not in line


def test_a_connection_lost_while_the_lease_holds_names_the_failed_connection(settings, monkeypatch, capsys):
    def command(args):
        cli.hold_leases(settings, ["gold"], "gold job")
        raise LOST

    assert _run_command(monkeypatch, command) == EXIT_RETRYABLE
    assert capsys.readouterr().err.strip() == ("lakehouse: error: a database connection failed (terminating "
                                               "connection due to administrator command); run again")


def test_an_expected_error_is_reported_as_it_is(settings, monkeypatch, capsys):
    def command(args):
        cli.hold_leases(settings, ["gold"], "gold job")
        _drop_lease_connection(settings, "gold")
        raise BatchError("gold: batch 2023-01-05 is out of order")

    assert _run_command(monkeypatch, command) == BatchError().exit_code
    assert capsys.readouterr().err.strip() == "lakehouse: error: gold: batch 2023-01-05 is out of order"
