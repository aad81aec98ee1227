"""Vendor the files Great Expectations' Data Docs load from CDNs into lakehouse_core.

Reads ``packages/core/src/lakehouse_core/data_docs_assets/manifest.json`` (package, file,
CDN url of each asset), fetches each npm package once with ``npm pack`` (npm's own client and
configuration), copies the listed files next to each package's ``package.json`` (its licence
field) and licence file (where it ships one), and records
every file's sha256 in the manifest (checked by the tests and when the assets are installed).

Run after changing the manifest, e.g. when a Great Expectations upgrade references new
versions: ``python3 scripts/vendor_data_docs_assets.py``. Needs ``npm`` on PATH.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "packages/core/src/lakehouse_core/data_docs_assets"
LICENCES = ("LICENSE", "LICENSE.txt", "LICENSE.md")


def folder(package: str) -> str:
    """``@scope/name@1.2.3`` → ``scope-name@1.2.3`` (one folder per package version)."""
    return package.removeprefix("@").replace("/", "-")


def unpack(package: str, work: Path) -> Path:
    """The unpacked tarball of ``package`` (npm ``name@version``); raises CalledProcessError."""
    packed = json.loads(subprocess.run(["npm", "pack", package, "--json", "--silent"], cwd=work, check=True,
                                       capture_output=True, text=True).stdout)
    target = work / folder(package)
    with tarfile.open(work / packed[0]["filename"]) as tar:
        tar.extractall(target, filter="data")
    return target / "package"


def main() -> int:
    if shutil.which("npm") is None:
        print("npm is not on PATH: install Node.js's npm to refresh the vendored Data Docs assets", file=sys.stderr)
        return 1
    manifest_path = ASSETS / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for old in ASSETS.iterdir():
        if old.is_dir():
            shutil.rmtree(old)
    with tempfile.TemporaryDirectory() as tmp:
        unpacked: dict[str, Path] = {}
        for asset in manifest["assets"]:
            package = asset["package"]
            if package not in unpacked:
                unpacked[package] = unpack(package, Path(tmp))
                (ASSETS / folder(package)).mkdir(parents=True)
                for name in ("package.json", *LICENCES):
                    if (unpacked[package] / name).exists():
                        shutil.copy(unpacked[package] / name, ASSETS / folder(package) / name)
            target = ASSETS / folder(package) / asset["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(unpacked[package] / asset["file"], target)
            asset["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
            print(f"{package} {asset['file']} {asset['sha256']}")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
