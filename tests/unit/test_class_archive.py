"""The driver JVM's class-data-sharing archive (``lakehouse_core.class_archive``): which options a
session gets, what names an archive, what is cleaned up. That a driver writes an archive and the
next one maps Spark's classes from it: ``tests/integration/test_driver_jvm.py``."""

import os
import subprocess
import sys

import pytest

from lakehouse_core import class_archive
from lakehouse_core.settings import LakehouseSettings


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAKEHOUSE_SPARK__CLASS_ARCHIVE_DIR", str(tmp_path / "archives"))
    return LakehouseSettings()


@pytest.fixture
def conf(tmp_path):
    jar = tmp_path / "added.jar"
    jar.write_bytes(b"jar")
    return {"spark.jars": str(jar), "spark.driver.memory": "2g"}


def test_a_driver_without_an_archive_writes_one_of_its_own_the_next_maps_it(settings, conf):
    options, part = class_archive.java_options(settings, conf)
    assert part is not None and part.parent == settings.spark.class_archive_dir
    assert part.name == f"{class_archive.fingerprint(conf)}.{os.getpid()}.part"
    assert options == f"-Xlog:cds*=off -XX:ArchiveClassesAtExit={part}"

    archive = part.with_name(f"{class_archive.fingerprint(conf)}.jsa")
    archive.write_bytes(b"archive")
    options, part = class_archive.java_options(settings, conf)
    assert (options, part) == (f"-Xlog:cds*=off -XX:SharedArchiveFile={archive}", None)


def test_sharing_turned_off_adds_no_option(settings, conf, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_SPARK__CLASS_DATA_SHARING", "false")
    assert class_archive.java_options(LakehouseSettings(), conf) == ("", None)
    assert not settings.spark.class_archive_dir.exists()


def test_another_jar_set_heap_size_or_jvm_options_is_another_archive(conf, tmp_path):
    key = class_archive.fingerprint(conf)
    assert class_archive.fingerprint(dict(conf)) == key
    other = tmp_path / "other.jar"
    other.write_bytes(b"jar")
    assert class_archive.fingerprint({**conf, "spark.jars": f"{conf['spark.jars']},{other}"}) != key
    assert class_archive.fingerprint({**conf, "spark.driver.memory": "40g"}) != key
    assert class_archive.fingerprint({**conf, "spark.driver.extraJavaOptions": "-XX:+UseSerialGC"}) != key
    os.utime(conf["spark.jars"], ns=(0, 0))  # the same jar, rebuilt
    assert class_archive.fingerprint(conf) != key


def test_jars_as_urls_and_a_class_path_of_several_entries_have_a_fingerprint(conf, tmp_path):
    """(entries Spark resolves itself, or a user's ``extra_conf``, are named by their text)"""
    other = tmp_path / "other.jar"
    other.write_bytes(b"jar")
    several = {**conf, "spark.jars": f"{conf['spark.jars']},s3a://bucket/lib.jar",
               "spark.driver.extraClassPath": f"{other}{os.pathsep}{tmp_path}/lib/*"}
    key = class_archive.fingerprint(several)
    other.write_bytes(b"a longer jar")
    assert class_archive.fingerprint(several) != key


def test_leftovers_of_dead_drivers_and_archives_beyond_the_newest_are_removed(settings, conf):
    directory = settings.spark.class_archive_dir
    directory.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    abandoned, writing = directory / f"abc.{dead}.part", directory / f"abc.{os.getpid()}.part"
    abandoned.write_bytes(b"half")
    writing.write_bytes(b"half")
    archives = [directory / f"old{i}.jsa" for i in range(class_archive.KEEP_ARCHIVES + 2)]
    for age, archive in enumerate(archives):
        archive.write_bytes(b"archive")
        os.utime(archive, (1_000_000 - age, 1_000_000 - age))

    class_archive.java_options(settings, conf)  # (no archive of its fingerprint: cleans up)
    assert not abandoned.exists() and writing.exists()
    assert sorted(directory.glob("*.jsa")) == sorted(archives[:class_archive.KEEP_ARCHIVES])


def test_an_archive_folder_that_cannot_be_created_is_named(tmp_path, monkeypatch, conf):
    from lakehouse_core.errors import ConfigurationError

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAKEHOUSE_SPARK__CLASS_ARCHIVE_DIR", str(tmp_path / "file" / "archives"))
    with pytest.raises(ConfigurationError, match=r"LAKEHOUSE_SPARK__CLASS_ARCHIVE_DIR=.*/file/archives: cannot create it"):
        class_archive.java_options(LakehouseSettings(), conf)
