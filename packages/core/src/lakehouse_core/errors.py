"""The root of every expected failure of the platform.

Layers raise subclasses of ``LakehouseError`` for failures a user can act on (bad
settings, a malformed registry or suite, a refused batch, a failing gate, a source
value that cannot be loaded). The ``lakehouse`` CLI prints them as one line, without a
traceback, and exits with:

* ``EXIT_DETERMINISTIC`` (3) when running the same command again cannot succeed before
  somebody changes data, code or settings: orchestrators must not retry it;
* ``EXIT_RETRYABLE`` (75, ``EX_TEMPFAIL``) for infrastructure failures (a server that did
  not start, an artifact that could not be downloaded), which a retry may cure.

A lost or refused database connection (a source or catalog restarted under the job) is
reported as one line with ``EXIT_RETRYABLE`` too (``postgres.lost_connection``). Anything else
(a JVM crash) is unexpected: it keeps its traceback and exits 1, and is retried like any
infrastructure failure.
"""

from __future__ import annotations

EXIT_DETERMINISTIC = 3
EXIT_RETRYABLE = 75


class LakehouseError(Exception):
    """An expected failure, reported as one line. ``retryable`` says whether a rerun may cure it."""

    retryable = False

    @property
    def exit_code(self) -> int:
        return EXIT_RETRYABLE if self.retryable else EXIT_DETERMINISTIC

    def one_line(self) -> str:
        """The message on one line (``; `` joins the lines of a multi-line message)."""
        return "; ".join(line.strip() for line in str(self).splitlines() if line.strip())


class InfrastructureError(LakehouseError):
    """A service or download the platform needs failed; retrying may succeed."""

    retryable = True


class ConfigurationError(LakehouseError, ValueError):
    """A setting, registry entry or suite is unknown, malformed or names something that does not exist."""


class BatchError(LakehouseError):
    """A batch cannot run: out of order, or its upstream batch is not published."""


class UpstreamNotPublishedError(BatchError):
    """A layer was asked to run a batch whose upstream batch was never published."""


class DataError(LakehouseError, ValueError):
    """Source or layer data the platform refuses to load as it is (the message names table, column, value)."""
