"""What settings are made of, without Qt and without the list of settings itself.

`Setting` declares one setting (type, default, choices, range, section, label) and turns its
values to and from the text a store keeps. `SettingsStore` is all that `settings.Settings`
needs of where the values live; `MemoryStore` is one in memory, and
`nanodictate.ui.settings_store.IniFileStore` is the app's INI file through QSettings.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar, cast

T = TypeVar("T")
E = TypeVar("E", bound=enum.StrEnum)


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting. ``choices`` (value, label) pairs restrict the value when given; a whole
    number may have a ``minimum`` and ``maximum`` (inclusive). ``section`` is where the
    settings window shows it (one of `settings.SECTIONS`), None when it is chosen elsewhere."""

    name: str
    type: type[T]
    default: T
    label: str
    choices: tuple[tuple[T, str], ...] = ()
    help: str = ""
    section: str | None = field(kw_only=True)
    minimum: int | None = field(default=None, kw_only=True)
    maximum: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if (self.minimum is not None or self.maximum is not None) and self.type is not int:
            raise ValueError(f"{self.name}: only whole numbers have a range")
        self.validate(self.default)

    def label_for(self, value: T) -> str:
        for choice, label in self.choices:
            if choice == value:
                return label
        return str(value)

    def validate(self, value: object) -> T:
        """The value as this setting's type; ValueError when it does not fit."""
        if self.type is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be true or false, not {value!r}")
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{self.name} must be a whole number, not {value!r}")
            self._check_range(value)
        elif self.type is str:
            if not isinstance(value, str):
                raise ValueError(f"{self.name} must be text, not {value!r}")
            value = str(value)  # an engine enum member is stored and handed out as its text
        elif self.type is list:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{self.name} must be a list of text, not {value!r}")
            value = list(value)
        elif self.type is dict:
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ValueError(f"{self.name} must map text to text, not {value!r}")
            value = dict(value)
        if self.choices and value not in [choice for choice, _label in self.choices]:
            allowed = ", ".join(str(choice) for choice, _label in self.choices)
            raise ValueError(f"{self.name} must be one of {allowed}, not {value!r}")
        return cast(T, value)

    def _check_range(self, value: int) -> None:
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{'…' if low is None else low} to {'…' if high is None else high}"
            raise ValueError(f"{self.name} must be from {bounds}, not {value}")

    def encode(self, value: T) -> str:
        if self.type is bool:
            return "true" if value else "false"
        if self.type in (list, dict):
            return json.dumps(value, ensure_ascii=False)
        return str(value)

    def decode(self, raw: object) -> T:
        """A stored value as this setting's type (ValueError for a damaged value)."""
        if self.type is bool:
            if isinstance(raw, bool):
                return self.validate(raw)
            text = str(raw).strip().lower()
            if text not in ("true", "false", "1", "0"):
                raise ValueError(f"not a boolean: {raw!r}")
            return self.validate(text in ("true", "1"))
        if self.type is int:
            return self.validate(int(str(raw).strip()))
        if self.type in (list, dict):
            # QSettings may hand back a list when an older value was written natively.
            value = raw if isinstance(raw, list) else json.loads(str(raw))
            return self.validate(value)
        return self.validate(str(raw))


def enum_choices(members: type[E], labels: Mapping[E, str]) -> tuple[tuple[str, str], ...]:
    """Choices for each member of an engine enum, in its order (a new member is offered at
    once, labelled with its value until it is given a label here)."""
    return tuple((member.value, labels.get(member, member.value)) for member in members)


class SettingsStore(Protocol):
    """Where the values live: raw values under keys such as ``language`` or
    ``meta/schema_version``. A store opened on a file reports whether that file is damaged."""

    def value(self, key: str) -> object:
        """The stored value (text, or a list a native INI value gave), None when absent."""
        ...

    def set_value(self, key: str, value: str) -> None: ...

    def remove(self, key: str) -> None: ...

    def contains(self, key: str) -> bool: ...

    def keys(self) -> list[str]: ...

    def sync(self) -> None:
        """Write pending changes out (and read others' changes in)."""
        ...

    def damage(self) -> str | None:
        """Why the store's file cannot be trusted (it is then moved aside), or None."""
        ...


# Opens the store of a settings file (the file need not exist yet).
StoreOpener = Callable[[Path], SettingsStore]
Upgrade = Callable[[SettingsStore], None]


class MemoryStore:
    """A `SettingsStore` in memory: for tests, and for tools that must not touch the file."""

    def __init__(self, values: Mapping[str, object] | None = None) -> None:
        self.values: dict[str, object] = dict(values or {})
        self.syncs = 0

    def value(self, key: str) -> object:
        return self.values.get(key)

    def set_value(self, key: str, value: str) -> None:
        self.values[key] = value

    def remove(self, key: str) -> None:
        self.values.pop(key, None)

    def contains(self, key: str) -> bool:
        return key in self.values

    def keys(self) -> list[str]:
        return list(self.values)

    def sync(self) -> None:
        self.syncs += 1

    def damage(self) -> str | None:
        return None


def file_damage(path: Path) -> str | None:
    """Why a settings file's bytes cannot be a settings file, or None (also when absent)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"unreadable: {error.strerror}"
    if b"\0" in data:
        return "it holds binary data"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not text"
    return None
