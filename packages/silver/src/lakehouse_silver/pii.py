"""PII masking: HMAC-SHA256 with a secret key, computed in Spark's Python workers.

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

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StringType

from lakehouse_core.errors import ConfigurationError
from lakehouse_core.settings import LakehouseSettings, Profile
from lakehouse_core.task_secret import TaskSecret


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


#: the column beside an email or phone saying whether it was well formed
VALIDITY_SUFFIX = "_is_valid"
#: a well-formed value of a kind, once trimmed (a phone also without spaces, dots, dashes and
#: brackets): Vietnamese numbers, 0 or +84 then 9 digits
WELL_FORMED = {"email": r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$", "phone": r"^(\+84|0)[0-9]{9}$"}


def well_formed(column: Column, kind: str) -> Column | None:
    """Whether each value of ``column`` is a well-formed ``kind`` (NULL stays NULL); None for a kind
    without a format (names). Checked before masking: a masked value cannot be checked."""
    if kind not in WELL_FORMED:
        return None
    text = F.trim(column)
    if kind == "phone":
        text = F.regexp_replace(text, r"[\s().-]", "")
    return text.rlike(WELL_FORMED[kind])


def hmac_sha256(column: Column, key: bytes) -> Column:
    """HMAC-SHA256 of a string column as 64 hex characters (NULL stays NULL), computed by a
    vectorised Python UDF: the key reaches the tasks as a ``TaskSecret`` (a broadcast variable),
    never as a literal in the Spark plan, a pickled task or a log line."""
    secret = TaskSecret(key)

    @pandas_udf(StringType())
    def keyed_hash(values: pd.Series) -> pd.Series:
        k = secret.get()
        return values.map(lambda v: None if v is None else reference_hmac(v, k))

    return keyed_hash(column)


def reference_hmac(value: str, key: bytes) -> str:
    """The masked token of one normalised value (what the UDF computes; tests and lookups of a known value)."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def mask(column: Column, kind: str, key: bytes) -> Column:
    return hmac_sha256(normalise(column, kind), key)


#: the column beside a PII column holding its masked value (``with_masked_copies``)
MASKED_PREFIX = "_masked_"


def masked_copy(column: str) -> Column:
    """The masked value of PII column ``column``, as ``with_masked_copies`` added it."""
    return F.col(f"{MASKED_PREFIX}{column}")


def with_masked_copies(df: DataFrame, columns: dict[str, str], key: bytes) -> DataFrame:
    """``df`` with the masked value of each PII column of ``columns`` (column → kind) beside it
    (``masked_copy``), all computed in one pass through the Python workers (a Python UDF per
    projection would pass the rows through them once per column)."""
    if not columns:
        return df
    return df.select("*", *[mask(F.col(c), kind, key).alias(f"{MASKED_PREFIX}{c}") for c, kind in columns.items()])
