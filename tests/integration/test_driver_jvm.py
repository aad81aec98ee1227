"""The platform's Spark driver JVM, in driver processes of their own (each starting the
platform's SparkSession and running one query): it runs with ``spark.driver_java_options``, and a
driver with no class archive of its own writes one when it exits, which the next driver maps
Spark's and Iceberg's classes from (``lakehouse_core.class_archive``)."""

import os
import subprocess
import sys

PROBE = """
from lakehouse_core.settings import get_settings
from lakehouse_core.spark import get_spark
spark = get_spark(get_settings(), "class-archive-probe", listener=False)
assert spark.sql("SELECT count(*) FROM VALUES (1), (2) AS t(x)").first()[0] == 2
# a Python task (as the COPY reader's): the JVM connects to the driver's accumulator server
assert spark.sparkContext.parallelize([1, 2], 2).map(lambda x: x * 2).sum() == 6
jvm = spark.sparkContext._jvm.java.lang.management.ManagementFactory
print("jvm arguments:", *jvm.getRuntimeMXBean().getInputArguments())
print("collectors:", ";".join(sorted(bean.getName() for bean in jvm.getGarbageCollectorMXBeans())))
print("probe done")
"""


def _driver(env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "probe done" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def test_the_first_driver_writes_the_archive_the_next_maps_spark_from_it(settings, tmp_path):
    archives = tmp_path / "class archives"  # (a space: the JVM options are quoted)
    env = {**os.environ, "LAKEHOUSE_SPARK__CLASS_ARCHIVE_DIR": str(archives), "LAKEHOUSE_LINEAGE__ENABLED": "false"}

    first = _driver(env)
    written = list(archives.iterdir())
    assert len(written) == 1 and written[0].suffix == ".jsa", written  # renamed into place, no part left
    assert written[0].stat().st_size > 10_000_000
    messages = [line for line in (first.stdout + first.stderr).splitlines() if not line.startswith("jvm arguments:")]
    assert not [line for line in messages if "cds" in line]  # (the JVM's archiving messages are off)
    # the session stopped before the JVM ends: no EOFError from the accumulator server while it dumps
    assert "Traceback" not in first.stderr, first.stderr[-3000:]

    loaded = tmp_path / "class-load.txt"
    _driver({**env, "JAVA_TOOL_OPTIONS": f"-Xlog:class+load=info:file={loaded}"})
    assert list(archives.iterdir()) == written
    shared = {line.split()[1] for line in loaded.read_text().splitlines() if "source: shared objects file (top)" in line}
    # Spark's own classes, and Iceberg's from a jar the session adds (spark.jars)
    assert {"org.apache.spark.SparkContext", "org.apache.iceberg.spark.SparkCatalog"} <= shared, len(shared)


def _line(proc: subprocess.CompletedProcess, label: str) -> str:
    return next(line for line in proc.stdout.splitlines() if line.startswith(label)).removeprefix(label).strip()


def _collectors(proc: subprocess.CompletedProcess) -> str:
    return _line(proc, "collectors:")


def test_the_driver_jvm_runs_with_the_settings_java_options(settings):
    """The default collects with the throughput collector; a user's options replace it."""
    env = {**os.environ, "LAKEHOUSE_SPARK__CLASS_DATA_SHARING": "false", "LAKEHOUSE_LINEAGE__ENABLED": "false"}
    env.pop("LAKEHOUSE_SPARK__DRIVER_JAVA_OPTIONS", None)
    default = _driver(env)
    assert "-XX:+UseParallelGC" in _line(default, "jvm arguments:").split()
    assert _collectors(default) == "PS MarkSweep;PS Scavenge"

    chosen = _driver({**env, "LAKEHOUSE_SPARK__DRIVER_JAVA_OPTIONS": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"})
    arguments = _line(chosen, "jvm arguments:").split()
    assert {"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"} <= set(arguments) and "-XX:+UseParallelGC" not in arguments
    assert _collectors(chosen) == "Copy;MarkSweepCompact"
