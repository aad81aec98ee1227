"""No secret is committed: every tracked file is scanned with detect-secrets (its default
plugins: keys of cloud providers, private keys, tokens, high-entropy strings, passwords in
assignments and URLs). A test value is marked ``# pragma: allowlist secret`` where it is
written; third-party files vendored for the offline Data Docs are not ours to scan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENDORED = "packages/core/src/lakehouse_core/data_docs_assets/"
SCANNER = Path(sys.executable).with_name("detect-secrets")


def _findings(root: Path, files: list[str]) -> list[str]:
    proc = subprocess.run([str(SCANNER), "scan", "--no-verify", *files], cwd=root, capture_output=True, text=True,
                          check=True)
    return [f"{path}:{hit['line_number']}: {hit['type']}"
            for path, hits in json.loads(proc.stdout)["results"].items() for hit in hits]


def test_no_tracked_file_holds_a_secret():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split("\0")
    files = [f for f in tracked if f and not f.startswith(VENDORED) and (REPO / f).is_file()]
    assert len(files) > 100
    assert _findings(REPO, files) == []


def test_the_scan_finds_a_planted_secret(tmp_path):
    """The scanner is live: a file holding an access key and a password in a URL is reported."""
    (tmp_path / "settings.py").write_text(
        'AWS_ACCESS_KEY_ID = "AKIA' + 'Q4ZP7XK2LMN3BV5R"\n'
        'DATABASE_URL = "postgres://admin:' + 'Sup3rS3cretPw@db.internal/shop"\n')
    found = _findings(tmp_path, ["settings.py"])
    assert any("AWS Access Key" in f for f in found) and any("Basic Auth" in f for f in found), found
