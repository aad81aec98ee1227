"""The embedded PostgreSQL server (profile ``local``) and connection helpers.

The server keeps its files in ``<home>/postgres`` so that the source database
and the Iceberg catalog survive between commands. It is started on demand by any
process that needs it and stopped afterwards: ``start`` records the process as one
of the server's users (``<home>/postgres/users/<pid>``), ``release`` removes it and
stops the server once no live process uses it, unless ``start(keep_running=True)``
(``lakehouse db start``) asked to keep it until ``stop``. Starting and releasing
take a file lock, so processes sharing a state folder never stop the server under
each other. PostgreSQL refuses to run as root, so under root the server runs as
the unprivileged user ``nobody``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from lakehouse_core.errors import InfrastructureError
from lakehouse_core.settings import LakehouseSettings, PostgresSettings

SERVICE_USER = "nobody"
SUPERUSER = "lakehouse"


class EmbeddedPostgresError(InfrastructureError):
    """The embedded PostgreSQL server could not be set up or started."""


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise EmbeddedPostgresError(
        f"PostgreSQL server binary {name!r} not found: install the Debian package 'postgresql' "
        "(make setup does this) or point LAKEHOUSE_SOURCE__HOST at a running server."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_service_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", SERVICE_USER, "--", *cmd] if os.geteuid() == 0 else cmd


def _make_reachable(path: Path) -> None:
    """Under root, let the service user traverse to ``path`` (adds o+x to its ancestors)."""
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A PostgreSQL cluster under ``root`` (``<home>/postgres``)."""

    root: Path

    @classmethod
    def for_settings(cls, settings: LakehouseSettings) -> "EmbeddedPostgres":
        return cls(settings.home.resolve() / "postgres")

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def port(self) -> int | None:
        return int(self.port_file.read_text()) if self.port_file.exists() else None

    def is_running(self) -> bool:
        port = self.port
        if port is None or not (self.data_dir / "postmaster.pid").exists():
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, SERVICE_USER, "nogroup")

    def initdb(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _make_reachable(self.root)
        self._chown(self.root)
        subprocess.run(
            _as_service_user([_pg_bin("initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                              "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"]),
            check=True, capture_output=True, text=True,
        )

    @property
    def _users_dir(self) -> Path:
        return self.root / "users"

    @property
    def _keep_running_file(self) -> Path:
        return self.root / "keep-running"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the server's file lock (one process at a time starts, releases or stops it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def start(self, keep_running: bool = False) -> int:
        """Start the server if needed (initialising it on first use), record this process as one
        of its users, and return its port; ``keep_running``: keep it running after its users
        released it, until ``stop``.

        Raises EmbeddedPostgresError with the server log tail when it does not come up.
        """
        with self._locked():
            port = self.port if self.is_running() else self._start()
            self._users_dir.mkdir(exist_ok=True)
            (self._users_dir / str(os.getpid())).touch()
            if keep_running:
                self._keep_running_file.touch()
        _USING.add(self)
        return port  # type: ignore[return-value]

    def release(self) -> None:
        """This process no longer uses the server: stop it when no live process does and
        ``start(keep_running=True)`` did not ask to keep it."""
        _USING.discard(self)
        with self._locked():
            (self._users_dir / str(os.getpid())).unlink(missing_ok=True)
            if not any(_alive(user) for user in self._users_dir.glob("[0-9]*")) and not self._keep_running_file.exists():
                self._stop()

    def _start(self) -> int:
        if not (self.data_dir / "PG_VERSION").exists():
            self.initdb()
        _make_reachable(self.root)
        port = _free_port()
        self.port_file.write_text(str(port))
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='{self.root}' "
                   "-c synchronous_commit=off -c max_connections=100 -c shared_buffers=256MB "
                   "-c max_parallel_workers_per_gather=0")
        proc = subprocess.run(
            _as_service_user([_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                              "-o", options, "-w", "-t", "60", "start"]),
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else proc.stderr
            raise EmbeddedPostgresError(f"embedded PostgreSQL did not start (port {port}):\n{tail}")
        return port

    def restart(self) -> None:
        """Restart the running server on its port (what a database failover is to the clients:
        every open connection dropped). Raises EmbeddedPostgresError when it does not come back."""
        proc = subprocess.run(_as_service_user([_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                                                "-m", "fast", "-w", "-t", "60", "restart"]), capture_output=True, text=True)
        if proc.returncode != 0:
            raise EmbeddedPostgresError(f"embedded PostgreSQL did not restart:\n{proc.stderr[-2000:]}")

    def stop(self) -> None:
        """Stop the server, whoever uses it (``lakehouse db stop``)."""
        _USING.discard(self)
        with self._locked():
            self._keep_running_file.unlink(missing_ok=True)
            self._stop()

    def _stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        subprocess.run(_as_service_user([_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
                       capture_output=True, text=True)


#: a lost or refused database connection, as psycopg2 (in the driver, or in a Spark task's
#: traceback text) or the JVM's PostgreSQL driver (the Iceberg catalog) reports it
_CONNECTION_LOST = re.compile(
    r"(?:psycopg2\.OperationalError|org\.postgresql\.util\.PSQLException):? *\n?\s*(?P<reason>[^\n]*"
    r"(?:I/O error|connection|terminat|refused|could not connect)[^\n]*)", re.IGNORECASE)


def lost_connection(exc: BaseException) -> str | None:
    """What ended a database connection under ``exc`` (a server restarted or unreachable: a rerun
    may succeed), or None when ``exc`` is something else."""
    if isinstance(exc, psycopg2.OperationalError):
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    found = _CONNECTION_LOST.search(str(exc))
    return found.group("reason").strip() if found else None


def _alive(user: Path) -> bool:
    """Whether the process a users file names still runs (a killed one left its file behind)."""
    try:
        os.kill(int(user.name), 0)
    except ProcessLookupError:
        user.unlink(missing_ok=True)
        return False
    except PermissionError:  # a live process of another OS user
        pass
    return True


#: the embedded servers this process started or uses (``EmbeddedPostgres.start``), until released
_USING: set[EmbeddedPostgres] = set()

#: (cluster folder, port, database) already started and created by this process.
_READY: set[tuple[Path, int, str]] = set()


@contextlib.contextmanager
def released_after() -> Iterator[None]:
    """Release the embedded servers this process starts using inside the block at its end (a
    ``lakehouse`` command), not those it used before (a test process calling commands)."""
    before = set(_USING)
    try:
        yield
    finally:
        for server in _USING - before:
            server.release()


def resolve(db: PostgresSettings, settings: LakehouseSettings) -> PostgresSettings:
    """Fill host and port of ``db`` from the embedded server (started on demand) when unset.

    Checked once per process and database (a probe is a server round trip and a connection),
    again when the server's port or pid file changed.
    """
    if db.host is not None:
        return db
    server = EmbeddedPostgres.for_settings(settings)
    port = server.port
    if (port is None or (server.root, port, db.dbname) not in _READY or server not in _USING
            or not (server.data_dir / "postmaster.pid").exists()):
        port = server.start()
        _ensure_database(port, db.dbname)
        _READY.add((server.root, port, db.dbname))
    return db.model_copy(update={"host": "127.0.0.1", "port": port})


def _ensure_database(port: int, dbname: str) -> None:
    conn = psycopg2.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))  # any name, quoted
    finally:
        conn.close()


def connection_params(db: PostgresSettings, settings: LakehouseSettings) -> dict[str, Any]:
    """psycopg2 connection arguments of ``db`` (embedded server started on demand)."""
    db = resolve(db, settings)
    return {"host": db.host, "port": db.port or 5432, "user": db.user, "dbname": db.dbname,
            "password": db.password.get_secret_value() if db.password else None}


def connect(db: PostgresSettings, settings: LakehouseSettings) -> psycopg2.extensions.connection:
    """Open a psycopg2 connection to ``db`` (embedded server started on demand)."""
    return psycopg2.connect(**connection_params(db, settings))


def jdbc_url(db: PostgresSettings) -> str:
    """JDBC URL of a resolved database (host and port set)."""
    return f"jdbc:postgresql://{db.host}:{db.port or 5432}/{db.dbname}?prepareThreshold=-1"


@contextlib.contextmanager
def embedded_server(settings: LakehouseSettings) -> Iterator[EmbeddedPostgres]:
    """Use the embedded server for the duration of a block, then release it (``release``)."""
    server = EmbeddedPostgres.for_settings(settings)
    server.start()
    try:
        yield server
    finally:
        server.release()
