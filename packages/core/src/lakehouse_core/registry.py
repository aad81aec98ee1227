"""The table registry: which source tables exist and how each one is loaded.

The registry is data (``tables.toml`` shipped with this package, or the file at
``LAKEHOUSE_REGISTRY_PATH``); everything per-table in the platform is driven by it.
"""

from __future__ import annotations

import re
import tomllib
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from lakehouse_core.errors import ConfigurationError
from lakehouse_core.settings import CATALOG_NAME, LakehouseSettings

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
LAYERS = ("bronze", "silver", "gold", "quarantine")
XMIN_CURSOR = "xmin"


class RegistryError(ConfigurationError):
    """The registry file is malformed or names an unknown table."""


class LoadMode(str, Enum):
    full = "full"
    incremental = "incremental"


def validate_identifier(name: str) -> str:
    """Return ``name`` if it is a safe lower-case SQL identifier; raise RegistryError otherwise."""
    if not _IDENTIFIER.match(name):
        raise RegistryError(f"invalid identifier {name!r}: expected lower-case letters, digits and '_'")
    return name


class TableSpec(BaseModel):
    """One source table and how it flows through the layers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Literal["reference", "catalogue", "mutable", "insert_only", "append_log"]
    primary_key: tuple[str, ...]
    load_mode: LoadMode
    cursor: str | None = None
    event_time: str | None = None
    partitioned: bool = False
    reconcile_deletes: bool = False
    pii: dict[str, str] = {}  # column -> kind (email | phone | name): masked in silver
    foreign_keys: dict[str, str] = {}  # column -> "parent_table.column"; orphans quarantined in silver

    @property
    def append_only(self) -> bool:
        """Rows are only ever added at the source (order lines, logs): a batch's silver rows are
        new rows, never updates of old ones."""
        return self.kind in ("insert_only", "append_log")

    @property
    def uses_commit_cursor(self) -> bool:
        """The cursor is PostgreSQL's row ``xmin``: rows are taken by commit visibility."""
        return self.cursor == XMIN_CURSOR

    @field_validator("name", "cursor", "event_time")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else validate_identifier(value)

    @field_validator("pii", "foreign_keys")
    @classmethod
    def _column_map(cls, value: dict[str, str]) -> dict[str, str]:
        for column, target in value.items():
            validate_identifier(column)
            for part in target.split("."):
                validate_identifier(part)
        return value

    @field_validator("foreign_keys")
    @classmethod
    def _references(cls, value: dict[str, str]) -> dict[str, str]:
        for column, target in value.items():
            if target.count(".") != 1:
                raise RegistryError(f"foreign key {column} -> {target!r}: expected 'parent_table.column'")
        return value

    def check_columns(self, columns: Iterable[str], where: str) -> None:
        """Raise RegistryError when a column the entry declares (pii, foreign key, event time, key)
        is not among ``columns`` of the table read (``where`` names it): a declaration that
        matches nothing would silently do nothing (e.g. leave personal data unmasked)."""
        present = set(columns)
        declared = [("pii column", c) for c in self.pii] + [("foreign key column", c) for c in self.foreign_keys]
        declared += [("primary key column", c) for c in self.primary_key]
        if self.event_time:
            declared.append(("event_time column", self.event_time))
        missing = [f"{what} {column!r}" for what, column in declared if column not in present]
        if missing:
            raise RegistryError(f"registry table {self.name}: {', '.join(missing)} not in {where} "
                                f"(columns: {', '.join(sorted(present))})")

    def parent_tables(self) -> list[str]:
        return [target.split(".")[0] for target in self.foreign_keys.values()]

    @field_validator("primary_key")
    @classmethod
    def _key(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise RegistryError("primary_key must name at least one column")
        return tuple(validate_identifier(v) for v in value)

    @model_validator(mode="after")
    def _consistent(self) -> "TableSpec":
        if self.load_mode is LoadMode.incremental and not self.cursor:
            raise RegistryError(f"table {self.name}: load_mode incremental needs a cursor column")
        if self.partitioned and not self.event_time:
            raise RegistryError(f"table {self.name}: partitioned needs an event_time column")
        return self


def identifier(layer: str, table: str) -> str:
    """The Iceberg identifier ``lakehouse.<layer>.<table>`` (validated)."""
    if layer not in LAYERS:
        raise RegistryError(f"unknown layer {layer!r}; expected one of {LAYERS}")
    return f"{CATALOG_NAME}.{layer}.{validate_identifier(table)}"


class Registry:
    """All registered tables, in file order."""

    def __init__(self, tables: list[TableSpec]):
        self._tables = {t.name: t for t in tables}

    @classmethod
    def from_toml(cls, text: str, source: str = "<registry>") -> "Registry":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError(f"{source}: {exc}") from exc
        tables = []
        for name, spec in data.get("tables", {}).items():
            try:
                tables.append(TableSpec(name=name, **spec))
            except ValueError as exc:
                raise RegistryError(f"{source}: table {name!r}: {exc}") from exc
        return cls(tables)

    @classmethod
    def load(cls, settings: LakehouseSettings) -> "Registry":
        """The registry at ``settings.registry_path``, or the default shipped with lakehouse-core."""
        if settings.registry_path is not None:
            path = Path(settings.registry_path)
            return cls.from_toml(path.read_text(), str(path))
        text = resources.files("lakehouse_core").joinpath("tables.toml").read_text()
        return cls.from_toml(text, "lakehouse_core/tables.toml")

    def __iter__(self):
        return iter(self._tables.values())

    def __len__(self) -> int:
        return len(self._tables)

    def get(self, name: str) -> TableSpec:
        try:
            return self._tables[name]
        except KeyError:
            raise RegistryError(f"table {name!r} is not in the registry") from None

    def in_dependency_order(self) -> list[TableSpec]:
        """Every table, parents before children (by foreign keys), else in file order.

        Raises RegistryError when a foreign key names an unregistered table or the keys form a cycle.
        """
        ordered: list[TableSpec] = []
        visiting: set[str] = set()

        def visit(spec: TableSpec) -> None:
            if spec in ordered:
                return
            if spec.name in visiting:
                raise RegistryError(f"foreign keys form a cycle through {spec.name}")
            visiting.add(spec.name)
            for parent in spec.parent_tables():
                visit(self.get(parent))
            ordered.append(spec)

        for spec in self:
            visit(spec)
        return ordered
