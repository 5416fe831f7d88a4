"""The settings file: a `SettingsStore` over QSettings' INI format (QtCore only, no GUI).

`nanodictate.settings` declares the settings and types their values without Qt; this is where
they are written, in the format every earlier version wrote (a file written by QSettings reads
back the same). The file's bytes are checked without Qt (`settings_types.file_damage`); QSettings
adds its own verdict on the INI syntax.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from nanodictate.settings_types import file_damage


class IniFileStore:
    """The settings INI file at ``path``, through QSettings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._qsettings = QSettings(str(path), QSettings.Format.IniFormat)

    def value(self, key: str) -> object:
        return self._qsettings.value(key)

    def set_value(self, key: str, value: str) -> None:
        self._qsettings.setValue(key, value)

    def remove(self, key: str) -> None:
        self._qsettings.remove(key)

    def contains(self, key: str) -> bool:
        return self._qsettings.contains(key)

    def keys(self) -> list[str]:
        return list(self._qsettings.allKeys())

    def sync(self) -> None:
        self._qsettings.sync()

    def damage(self) -> str | None:
        problem = file_damage(self.path)
        if problem is None and self._qsettings.status() is not QSettings.Status.NoError:
            problem = "it is not in INI format"
        return problem
