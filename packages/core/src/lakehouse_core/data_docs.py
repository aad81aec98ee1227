"""Data Docs that render without internet access.

Great Expectations' page templates load Bootstrap, Font Awesome, jQuery, bootstrap-table, Vega
and its logo from CDNs, so on a machine without internet (an air-gapped Airflow worker, a
laptop on a train) the reports open unstyled. The exact files are vendored in this package
(``data_docs_assets/``, listed with their CDN address and sha256 in its ``manifest.json``,
refreshed by ``scripts/vendor_data_docs_assets.py``); ``install_assets`` copies them into the
site's ``static/vendor`` folder and ``localise`` points each rendered page at them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lakehouse_core.errors import LakehouseError

ASSETS_DIR = Path(__file__).with_name("data_docs_assets")
#: where the vendored files go in a Data Docs site
VENDOR_FOLDER = "static/vendor"
#: GE's logos, served from its own static images (copied into every site by GE)
_GE_IMAGES = re.compile(r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/"
                        r"(?:logo-long|full_logo_dark)\.png(?:\?[^\"')]*)?")
#: a relative reference to the site's static folder (GE's favicon on a validation page climbs one
#: folder too few: every one is made relative to the site's root again)
_STATIC = re.compile(r"""(["'(])(?:\./|(?:\.\./)+)static/""")
#: SRI and CORS attributes of the CDN tags (a file:// page cannot make a CORS request)
_CDN_ATTRIBUTES = re.compile(r'\s(?:integrity|crossorigin)="[^"]*"')
#: what still makes a page fetch from the network: a script, stylesheet or image, or a CSS url()
_NETWORK_LOADS = re.compile(r"<(?:script|link|img)\b[^>]*?\b(?:src|href)=\"((?:https?:)?//[^\"]*)\""
                            r"|url\(\s*['\"]?((?:https?:)?//[^'\")]*)")


class DataDocsError(LakehouseError):
    """The vendored Data Docs assets are broken, or a page loads something that is not vendored."""


@dataclass(frozen=True)
class Asset:
    package: str  # npm name@version
    file: str  # path in the package
    url: str | None  # the CDN address the templates reference (None: loaded relatively by another asset)
    sha256: str

    @property
    def path(self) -> str:
        """Where the asset lives under the assets folder and the site's ``VENDOR_FOLDER``."""
        return f"{self.package.removeprefix('@').replace('/', '-')}/{self.file}"


@lru_cache(maxsize=1)
def assets() -> tuple[Asset, ...]:
    """The vendored assets of ``data_docs_assets/manifest.json``."""
    manifest = json.loads((ASSETS_DIR / "manifest.json").read_text())
    return tuple(Asset(a["package"], a["file"], a.get("url"), a["sha256"]) for a in manifest["assets"])


def install_assets(site: Path) -> bool:
    """Copy the vendored assets into ``site``'s ``VENDOR_FOLDER`` unless the same manifest is there;
    returns whether it copied. Raises DataDocsError when a vendored file is missing or its sha256
    is not the manifest's (a damaged install)."""
    manifest = (ASSETS_DIR / "manifest.json").read_bytes()
    target = site / VENDOR_FOLDER
    if (target / "manifest.json").is_file() and (target / "manifest.json").read_bytes() == manifest:
        return False
    for asset in assets():
        source = ASSETS_DIR / asset.path
        if not source.is_file() or hashlib.sha256(source.read_bytes()).hexdigest() != asset.sha256:
            raise DataDocsError(f"Data Docs asset {asset.path} ({asset.package}) is missing or not the vendored "
                                f"file (sha256 {asset.sha256}) in {ASSETS_DIR}: reinstall lakehouse-core")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ASSETS_DIR, target)
    return True


def localise(page: Path, site: Path) -> None:
    """Point ``page`` (a rendered page of ``site``) at the vendored assets instead of the CDNs.

    Raises DataDocsError naming the page and address when it still loads a script, stylesheet,
    image or CSS ``url()`` from the network (a Great Expectations upgrade referencing a new file:
    add it to the manifest)."""
    html = page.read_text()
    root = Path(*[".."] * len(page.parent.relative_to(site).parts)).as_posix()
    html = _STATIC.sub(rf"\1{root}/static/", html)
    for asset in assets():
        if asset.url:
            html = html.replace(f'"{asset.url}"', f'"{root}/{VENDOR_FOLDER}/{asset.path}"')
    html = _GE_IMAGES.sub(f"{root}/static/images/logo-long.png", _CDN_ATTRIBUTES.sub("", html))
    remote = _NETWORK_LOADS.search(html)
    if remote:
        raise DataDocsError(f"Data Docs page {page} loads {remote.group(1) or remote.group(2)}, which is not "
                            f"vendored: add it to {ASSETS_DIR / 'manifest.json'} and run "
                            "scripts/vendor_data_docs_assets.py")
    page.write_text(html)


def make_offline(site: Path, pages: list[Path]) -> None:
    """Install the assets into ``site`` and localise ``pages`` (every page of the site when the
    assets were not installed yet: a site rendered before). Raises DataDocsError."""
    if install_assets(site):
        pages = list(site.rglob("*.html"))
    for page in pages:
        localise(page, site)
