"""PII masking: HMAC-SHA256 with a secret key, computed inside Spark.

Values are normalised first (trimmed, lower case; phones reduced to their digits)
so the same person masks to the same token everywhere, and joins on masked
columns still work. The key comes from settings (``LAKEHOUSE_PII_SECRET``); in
the local profile a random key is created once in the state folder.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from pyspark.sql import Column
from pyspark.sql import functions as F

from lakehouse_core.errors import ConfigurationError
from lakehouse_core.settings import LakehouseSettings, Profile

BLOCK = 64  # SHA-256 block size in bytes


class MissingSecretError(ConfigurationError):
    """No PII key is configured for a non-local profile."""


def pii_key(settings: LakehouseSettings) -> bytes:
    """The masking key: ``settings.pii_secret``, or (local profile only) a key kept in the state folder.

    Raises MissingSecretError for compose/cluster profiles without LAKEHOUSE_PII_SECRET.
    """
    if settings.pii_secret is not None:
        return settings.pii_secret.get_secret_value().encode()
    if settings.profile is not Profile.local:
        raise MissingSecretError("set LAKEHOUSE_PII_SECRET: PII masking needs a key outside the local profile")
    path = settings.home / "secrets" / "pii.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def normalise(column: Column, kind: str) -> Column:
    """Canonical text of a PII value before hashing (phones: digits only)."""
    text = F.lower(F.trim(column))
    return F.regexp_replace(text, r"[^0-9]", "") if kind == "phone" else text


def hmac_sha256(column: Column, key: bytes) -> Column:
    """HMAC-SHA256 of a string column as 64 hex characters (NULL stays NULL)."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in key)
    outer_pad = bytes(b ^ 0x5C for b in key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), F.encode(column, "UTF-8")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner), 256)


def reference_hmac(value: str, key: bytes) -> str:
    """The same HMAC computed in Python (for tests and for looking up a known value)."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def mask(column: Column, kind: str, key: bytes) -> Column:
    return hmac_sha256(normalise(column, kind), key)
