"""The vendored Data Docs assets: the exact files Great Expectations' templates reference, and
pages pointed at them (the offline rendering itself is opened in Chromium by the pipeline slice)."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from pathlib import Path

import great_expectations
import pytest

from lakehouse_core import data_docs

TEMPLATES = Path(great_expectations.__file__).parent / "render/view"


def _template_loads() -> dict[str, str]:
    """Every script or stylesheet URL GE's templates load from the network → its SRI integrity ('' if none)."""
    loads = {}
    for template in TEMPLATES.rglob("*.j2"):
        for tag in re.findall(r"<(?:script|link)\b[^>]*>", template.read_text()):
            url = re.search(r'(?:src|href)="(https?://[^"]+)"', tag)
            if url:
                integrity = re.search(r'integrity="sha384-([^"]+)"', tag)
                loads[url.group(1)] = integrity.group(1) if integrity else ""
    return loads


def test_every_cdn_file_the_templates_load_is_vendored_exactly():
    """A Great Expectations upgrade that loads a new file fails here, not in a user's browser; the
    files GE pins with SRI hashes are byte-identical to what the CDN serves."""
    loads = _template_loads()
    vendored = {a.url: a for a in data_docs.assets() if a.url}
    assert len(loads) >= 14 and set(loads) == set(vendored)
    for asset in data_docs.assets():
        content = (data_docs.ASSETS_DIR / asset.path).read_bytes()
        assert hashlib.sha256(content).hexdigest() == asset.sha256, asset.path
        if asset.url and loads[asset.url]:
            assert base64.b64encode(hashlib.sha384(content).digest()).decode() == loads[asset.url], asset.url


def _site(tmp_path: Path, page_html: str) -> tuple[Path, Path]:
    page = tmp_path / "site/validations/bronze/orders/run/time/page.html"
    page.parent.mkdir(parents=True)
    page.write_text(page_html)
    return tmp_path / "site", page


def test_a_page_is_pointed_at_the_vendored_copies(tmp_path):
    bootstrap = next(a for a in data_docs.assets() if a.file == "dist/js/bootstrap.min.js")
    site, page = _site(tmp_path, f"""<link rel="shortcut icon" href="../../../../static/images/favicon.ico"/>
        <script src="{bootstrap.url}" integrity="sha384-x" crossorigin="anonymous"></script>
        <img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&id=2" alt="GX">
        <a href="https://greatexpectations.io">a link is not a load</a>""")
    data_docs.make_offline(site, [page])
    html = page.read_text()
    up = "../../../../.."
    assert f'<script src="{up}/static/vendor/bootstrap@4.3.1/dist/js/bootstrap.min.js"></script>' in html
    assert f'href="{up}/static/images/favicon.ico"' in html and f'src="{up}/static/images/logo-long.png"' in html
    assert (page.parent / up / "static/vendor/bootstrap@4.3.1/dist/js/bootstrap.min.js").resolve().is_file()
    assert 'href="https://greatexpectations.io"' in html


def test_a_page_loading_an_unvendored_file_is_an_error(tmp_path):
    site, page = _site(tmp_path, '<div style="background: url(//cdn.example.org/new.png)"></div>')
    with pytest.raises(data_docs.DataDocsError, match=r"page\.html loads //cdn\.example\.org/new\.png, which is "
                                                      r"not vendored: add it to .*manifest\.json"):
        data_docs.make_offline(site, [page])


def test_a_damaged_vendored_file_is_an_error(tmp_path, monkeypatch):
    (asset, *_) = data_docs.assets()
    copy = tmp_path / "assets"
    shutil.copytree(data_docs.ASSETS_DIR, copy)
    (copy / asset.path).write_text("tampered")
    monkeypatch.setattr(data_docs, "ASSETS_DIR", copy)
    with pytest.raises(data_docs.DataDocsError, match=rf"{re.escape(asset.path)} .* is missing or not the vendored"):
        data_docs.install_assets(tmp_path / "site")
