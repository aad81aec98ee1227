"""The driver JVM's class-data-sharing archive: Spark's classes mapped, not loaded, at start-up.

A Spark driver loads some 20,000 classes before its first query (Spark, Iceberg, Hadoop, the
JDBC driver): a few seconds of every layer job, paid once per Airflow task. HotSpot's
application class-data sharing (JDK 13+ dynamic archives) maps the classes an earlier run loaded
from an archive instead (measured on a quiet day at scale 0.1: bronze 2.5 s, silver 3.5 s and
gold 5 s less a job, ``bench/README.md``).

The archive depends on the JVM, Spark's class path and the jars a session adds: it is named by
their fingerprint (``<spark.class_archive_dir>/<fingerprint>.jsa``). A driver with no archive of
its own fingerprint writes one when it exits (``-XX:ArchiveClassesAtExit``) to a file of its
own, renamed into place once the JVM has exited cleanly; every later driver maps it. A missing or
unusable archive only costs the start-up time it would have saved: the JVM ignores it
(``-Xshare:auto``), and its CDS log lines are off either way.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from lakehouse_core.errors import ConfigurationError
from lakehouse_core.settings import LakehouseSettings

_log = logging.getLogger(__name__)

#: archives kept (the most recently used): one per JVM, Spark version and jar set in use
KEEP_ARCHIVES = 8
#: the JVM's CDS messages (classes it cannot archive, an archive of another JVM) stay out of the job's output
QUIET = "-Xlog:cds*=off"
#: how long a dumping driver's JVM may take to exit, archive written
EXIT_TIMEOUT_SECONDS = 180


def _java() -> Path | None:
    """The ``java`` Spark's launcher runs (``$JAVA_HOME/bin/java``, else the one on PATH)."""
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java" if os.environ.get("JAVA_HOME") else shutil.which("java")
    return Path(java).resolve() if java and Path(java).exists() else None


def _spark_home() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home())


def _identity(entry: str | Path) -> str:
    """A class path entry as an archive must match it: a local file with its size and modification
    time, anything else (a URL Spark fetches, a folder glob) by its text."""
    try:
        stat = Path(entry).stat()
    except OSError:
        return str(entry)
    return f"{entry}\0{stat.st_size}\0{stat.st_mtime_ns}"


def fingerprint(conf: dict[str, str]) -> str | None:
    """What a driver's archive must match, as a hex digest: the JVM binary, Spark's jars, the jars
    (``spark.jars``, comma-separated) and class path (``spark.driver.extraClassPath``, path-separated)
    the session adds, and the driver's memory and JVM options (they decide the heap's pointer
    encoding and its collector). None when no ``java`` is found (Spark then fails to start with its
    own message)."""
    java = _java()
    if java is None:
        return None
    added = [*conf.get("spark.jars", "").split(","), *conf.get("spark.driver.extraClassPath", "").split(os.pathsep)]
    entries = [java, *sorted((_spark_home() / "jars").glob("*.jar")), *filter(None, added)]
    digest = hashlib.sha256("\n".join(map(_identity, entries)).encode())
    for key in ("spark.driver.memory", "spark.driver.extraJavaOptions"):
        digest.update(f"\0{conf.get(key, '')}".encode())
    return digest.hexdigest()[:24]


def _remove_leftovers(directory: Path) -> None:
    """Delete archives being written by processes that no longer run (killed before their JVM
    exited: never renamed), and all but the ``KEEP_ARCHIVES`` most recently used archives."""
    for part in directory.glob("*.part"):
        pid = part.name.split(".")[-2]
        if pid.isdigit() and not _alive(int(pid)):
            part.unlink(missing_ok=True)
    archives = sorted(directory.glob("*.jsa"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in archives[KEEP_ARCHIVES:]:
        stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another user's process too: signalling it is refused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def java_options(settings: LakehouseSettings, conf: dict[str, str]) -> tuple[str, Path | None]:
    """The driver JVM options of class-data sharing for a session of ``conf``, and the file its
    JVM writes an archive to when there is none yet (to be published by ``publish_at_exit``), or
    None (each option quoted for Spark's split of ``extraJavaOptions``). Empty options when
    ``spark.class_data_sharing`` is off or no ``java`` is found.

    Raises ConfigurationError when ``spark.class_archive_dir`` cannot be created."""
    if not settings.spark.class_data_sharing:
        return "", None
    key = fingerprint(conf)
    if key is None:
        return "", None
    directory = settings.spark.class_archive_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"LAKEHOUSE_SPARK__CLASS_ARCHIVE_DIR={directory}: cannot create it ({exc.strerror}); "
                                 "name a writable folder, or set LAKEHOUSE_SPARK__CLASS_DATA_SHARING=false") from None
    archive = directory / f"{key}.jsa"
    if archive.exists():
        with contextlib.suppress(OSError):  # (recently used: kept; another user's archive is used all the same)
            os.utime(archive)
        return f"{QUIET} {shlex.quote(f'-XX:SharedArchiveFile={archive}')}", None
    _remove_leftovers(directory)
    part = directory / f"{key}.{os.getpid()}.part"
    return f"{QUIET} {shlex.quote(f'-XX:ArchiveClassesAtExit={part}')}", part


def publish_at_exit(gateway_process: subprocess.Popen | None, part: Path, stop_session: Callable[[], None]) -> None:
    """When this Python process exits, end its driver JVM (``stop_session``, then EOF on the
    gateway's stdin: the JVM exits, writing the archive) and, once it exited cleanly, rename the
    archive into place, where later drivers find it.

    The session is stopped first so that its Python side (the server receiving accumulator
    updates from Python tasks) closes before the JVM drops its connections: waiting for a JVM
    ended by EOF alone, that server printed an ``EOFError`` traceback to a successful job's output."""
    if gateway_process is None:
        return

    def publish() -> None:
        try:
            stop_session()
        except Exception as exc:  # (EOF below ends the JVM all the same)
            _log.warning("stopping the Spark session at exit failed: %s", exc)
        with contextlib.suppress(OSError, ValueError):
            gateway_process.stdin.close()
        try:
            code = gateway_process.wait(timeout=EXIT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            gateway_process.kill()
            code = -1
        if code == 0 and part.exists():
            os.replace(part, part.with_name(part.name.split(".")[0] + ".jsa"))
        else:
            part.unlink(missing_ok=True)

    atexit.register(publish)
