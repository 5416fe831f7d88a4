"""Reading and writing declared settings in a store: typed values, a damaged file moved
aside, schema upgrades, and listeners told of every change.

`nanodictate.settings` declares the settings and binds them to the user's file
(`settings.Settings`); this is the machinery, which knows none of them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from nanodictate.settings_types import Setting, SettingsStore, StoreOpener, Upgrade

log = logging.getLogger(__name__)

T = TypeVar("T")
_VERSION_KEY = "meta/schema_version"


Listener = Callable[[Setting[Any], Any], None]


class SettingsAccess:
    """Typed access to declared settings in a store; listeners hear every change that was
    applied.

    `open_store(path)` opens the store at `path`: the app passes
    `nanodictate.ui.settings_store.IniFileStore`, tests may pass one of their own. It is an
    opener, not a store, so a damaged file can be moved aside and a fresh one opened.
    """

    def __init__(
        self,
        path: Path,
        declared: Mapping[str, Setting[Any]],
        *,
        open_store: StoreOpener,
        schema_version: int,
        upgrades: Mapping[int, Upgrade],
    ) -> None:
        """``declared``: the settings by name; ``upgrades``: version N → the hook that turns
        a version N-1 store into version N."""
        self.path = path
        self.damaged_backup: Path | None = None  # where a damaged file was moved, if it was
        self._declared = declared
        self._schema_version = schema_version
        self._store = self._open(open_store)
        self._listeners: list[Listener] = []
        self._upgrade(schema_version, upgrades)

    def _open(self, open_store: StoreOpener) -> SettingsStore:
        """The settings store; a damaged file is moved aside (kept) and defaults are used.

        QSettings reads almost anything as keys, so garbage (a half-written file after a
        crash, a binary file saved over it) would otherwise turn into odd keys and silently
        lost settings: the user is told instead, and can repair or compare the old file.
        """
        store = open_store(self.path)
        problem = store.damage()
        if problem is None:
            return store
        del store
        backup = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(self.path, backup)
        self.damaged_backup = backup
        log.warning("Settings file %s is damaged (%s); moved to %s", self.path, problem, backup)
        return open_store(self.path)

    def _upgrade(self, target: int, upgrades: Mapping[int, Upgrade]) -> None:
        raw = self._store.value(_VERSION_KEY)
        try:
            stored = int(str(raw)) if raw is not None else None
        except ValueError:
            stored = None
        if stored is None:
            # A file without a version is new (or from before versioning: version 0).
            stored = 0 if self._store.keys() else target
        if stored > target:
            log.warning(
                "Settings file %s is from a newer version (%d > %d); unknown keys are kept",
                self.path,
                stored,
                target,
            )
            return
        for version in range(stored + 1, target + 1):
            hook = upgrades.get(version)
            if hook is not None:
                log.info("Upgrading settings to version %d", version)
                hook(self._store)
        self._store.set_value(_VERSION_KEY, str(target))
        self._store.sync()

    @property
    def schema_version(self) -> int:
        raw = self._store.value(_VERSION_KEY)
        return self._schema_version if raw is None else int(str(raw))

    def get(self, setting: Setting[T]) -> T:
        raw = self._store.value(setting.name)
        if raw is None:
            return _fresh(setting.default)
        try:
            return setting.decode(raw)
        except (ValueError, TypeError) as error:
            log.warning(
                "Setting %s has an unusable value (%s); using the default", setting.name, error
            )
            return _fresh(setting.default)

    def set(self, setting: Setting[T], value: T) -> None:
        """Store a value (ValueError when it does not fit) and tell the listeners."""
        value = setting.validate(value)
        if self._store.contains(setting.name) and self.get(setting) == value:
            return
        self._store.set_value(setting.name, setting.encode(value))
        self._store.sync()
        for listener in list(self._listeners):
            listener(setting, value)

    def set_by_name(self, name: str, text: str) -> None:
        """Set from text, as a command line gives it (JSON for lists and mappings)."""
        setting = self._declared.get(name)
        if setting is None:
            raise ValueError(f"Unknown setting {name!r}. Known: {', '.join(self._declared)}.")
        self.set(setting, setting.decode(text))

    def reset(self, setting: Setting[Any]) -> None:
        self.set(setting, _fresh(setting.default))

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def sync(self) -> None:
        self._store.sync()


def _fresh(value: T) -> T:
    # Lists and mappings are copied so a caller editing the result never edits the default.
    if isinstance(value, list | dict):
        return cast(T, json.loads(json.dumps(value)))
    return value
