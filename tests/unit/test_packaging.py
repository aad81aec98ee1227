"""Each package is its own distribution: own pyproject, own version, own wheel, core by range."""

from __future__ import annotations

import ast
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["core", "bronze", "silver", "gold", "simulator"]


def _pyproject(package: str) -> dict:
    return tomllib.loads((REPO / "packages" / package / "pyproject.toml").read_text())["project"]


def _build_distribution(package: str) -> dict[str, str]:
    """The keyword arguments of python_artifact(...) in the package's BUILD file."""
    tree = ast.parse((REPO / "packages" / package / "BUILD").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "python_artifact":
            return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    raise AssertionError(f"packages/{package}/BUILD declares no python_artifact")


@pytest.mark.parametrize("package", PACKAGES)
def test_build_file_agrees_with_pyproject(package):
    project = _pyproject(package)
    artifact = _build_distribution(package)
    assert artifact["name"] == project["name"] == f"lakehouse-{package}"
    # versions live only in pyproject.toml; a BUILD file that states one must agree
    assert artifact.get("version", project["version"]) == project["version"]


def test_layers_depend_on_core_by_range_in_wheel_metadata(tmp_path):
    subprocess.run(["uv", "build", "--all-packages", "--wheel", "-o", str(tmp_path), "-q"], cwd=REPO, check=True)
    core_version = _pyproject("core")["version"]
    for package in PACKAGES:
        version = _pyproject(package)["version"]
        wheel = tmp_path / f"lakehouse_{package}-{version}-py3-none-any.whl"
        assert wheel.exists(), sorted(p.name for p in tmp_path.iterdir())
        with zipfile.ZipFile(wheel) as zf:
            metadata = zf.read(f"lakehouse_{package}-{version}.dist-info/METADATA").decode()
            names = set(zf.namelist())
        if package == "core":
            # the Data Docs assets ship in the wheel (their dist/ and build/ folders are not build output)
            from lakehouse_core import data_docs
            assert {f"lakehouse_core/data_docs_assets/{a.path}" for a in data_docs.assets()} <= names
            continue
        requirement = next(l for l in metadata.splitlines() if l.startswith("Requires-Dist: lakehouse-core"))
        assert "<" in requirement and ">=" in requirement, requirement  # a range, never a path or a pin
        assert "file:" not in metadata and "packages/" not in metadata
        major, minor, _ = core_version.split(".")
        assert f">={major}.{minor}" in requirement


def test_layers_import_only_core():
    """Layers share only lakehouse_core: no layer imports another."""
    layers = ["bronze", "silver", "gold", "simulator"]
    for layer in layers:
        for path in (REPO / "packages" / layer / "src").rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for name in names:
                    for other in layers:
                        if other != layer:
                            assert not name.startswith(f"lakehouse_{other}"), f"{path} imports {name}"
