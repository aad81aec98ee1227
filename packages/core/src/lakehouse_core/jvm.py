"""JVM artifacts of the platform, pinned by Maven coordinates in this one place.

Jars are resolved from Maven Central with the installed ``mvn`` (its default
repository configuration) into a cache outside the state folder
(``~/.cache/lakehouse/jars``), so cleaning state never re-downloads them.
No jar is committed to the repository.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lakehouse_core.errors import InfrastructureError

SPARK_VERSION = "3.5"
SCALA_VERSION = "2.12"
ICEBERG_VERSION = "1.10.1"
OPENLINEAGE_SPARK_VERSION = "1.53.0"
POSTGRES_JDBC_VERSION = "42.7.8"


@dataclass(frozen=True)
class MavenArtifact:
    group: str
    artifact: str
    version: str

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"


ICEBERG_SPARK_RUNTIME = MavenArtifact(
    "org.apache.iceberg", f"iceberg-spark-runtime-{SPARK_VERSION}_{SCALA_VERSION}", ICEBERG_VERSION)
ICEBERG_AWS_BUNDLE = MavenArtifact("org.apache.iceberg", "iceberg-aws-bundle", ICEBERG_VERSION)
POSTGRES_JDBC = MavenArtifact("org.postgresql", "postgresql", POSTGRES_JDBC_VERSION)
OPENLINEAGE_SPARK = MavenArtifact("io.openlineage", f"openlineage-spark_{SCALA_VERSION}", OPENLINEAGE_SPARK_VERSION)
#: Hadoop's ``file:`` file system without a forked ``chmod`` per file created (java.nio instead).
HADOOP_LOCAL_FS = MavenArtifact("com.globalmentor", "hadoop-bare-naked-local-fs", "0.1.0")


class ArtifactResolutionError(InfrastructureError):
    """A pinned JVM artifact could not be resolved into the cache."""


def resolve(artifacts: list[MavenArtifact], cache_dir: Path) -> list[Path]:
    """Return local paths of ``artifacts``, downloading missing ones with ``mvn``.

    Raises ArtifactResolutionError naming the coordinates when Maven fails or is missing.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for art in artifacts:
        target = cache_dir / art.file_name
        if not target.exists():
            mvn = shutil.which("mvn")
            if mvn is None:
                raise ArtifactResolutionError(
                    f"cannot resolve {art.coordinates}: Maven ('mvn') is not installed (make setup installs it)")
            proc = subprocess.run(
                [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={art.coordinates}",
                 f"-DoutputDirectory={cache_dir}", "-Dtransitive=false", "-Dmdep.overWriteIfNewer=false"],
                capture_output=True, text=True,
            )
            if proc.returncode != 0 or not target.exists():
                raise ArtifactResolutionError(f"cannot resolve {art.coordinates}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        paths.append(target)
    return paths
