"""Every user setting, declared once: name, type, default, choices and label.

The tray menu, the settings window and the CLI all read this declaration, so a setting is
added in one place. Values live in an INI file through QSettings (QtCore only, no GUI), in
the user config folder — or in ``$NANODICTATE_CONFIG_DIR`` so tests never touch the user's
real file. The file carries a schema version; `Settings` runs the upgrade hooks of newer
versions once when it opens an older file.

Values are stored as text (lists and mappings as JSON) and decoded by their declared type:
an INI file gives back strings whatever was written, and a hand-edited or damaged value falls
back to the default (with a log line) instead of crashing the app.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import platformdirs
from PySide6.QtCore import QSettings

from nanodictate.core.languages import LANGUAGES

log = logging.getLogger(__name__)

CONFIG_DIR_ENV = "NANODICTATE_CONFIG_DIR"
SETTINGS_FILE_NAME = "nanodictate.ini"
SCHEMA_VERSION = 1
_VERSION_KEY = "meta/schema_version"

T = TypeVar("T")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting. ``choices`` (value, label) pairs restrict the value when given."""

    name: str
    type: type[T]
    default: T
    label: str
    choices: tuple[tuple[T, str], ...] = ()
    help: str = ""

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
        elif self.type is str:
            if not isinstance(value, str):
                raise ValueError(f"{self.name} must be text, not {value!r}")
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


# ---------------------------------------------------------------------------------- model

MODEL_DIR = Setting(
    "model_dir",
    str,
    "",
    "Models folder",
    help="Empty: the user data folder. Applies at the next start.",
)
LANGUAGE = Setting(
    "language",
    str,
    "en",
    "Language",
    tuple((language.code, language.native_name) for language in LANGUAGES),
)
PRECISION = Setting(
    "precision",
    str,
    "int8",
    "Precision",
    (("int8", "INT8"), ("bf16", "BF16"), ("fp32", "FP32")),
    "INT8 holds the least memory; BF16 and FP32 are slightly more accurate.",
)
DEVICE = Setting(
    "device", str, "auto", "Device", (("auto", "Auto"), ("cuda", "GPU"), ("cpu", "CPU"))
)
UNLOAD_AFTER_MINUTES = Setting(
    "unload_after_minutes",
    int,
    5,
    "Unload after",
    ((0, "Immediately"), (1, "1 min"), (5, "5 min"), (15, "15 min"), (60, "60 min"), (-1, "Never")),
    "Idle time after which the model leaves memory; the next dictation loads it again.",
)
TWO_TIER_IDLE = Setting(
    "two_tier_idle",
    bool,
    True,
    "Free the GPU first",
    help="On a GPU, move the model to RAM when idle and drop it later (at 3× the idle time).",
)
HOTWORDS = Setting(
    "hotwords", list, cast(list[str], []), "Hotwords", help="Names and terms to favour, one a line."
)
ITN = Setting("itn", bool, True, "Write numbers as digits (ITN)")

# --------------------------------------------------------------------------------- hotkeys

HOTKEY_MODE = Setting(
    "hotkey_mode",
    str,
    "push_to_talk",
    "Hotkey mode",
    (("push_to_talk", "Push-to-talk (hold)"), ("toggle", "Toggle (press twice)")),
)
# Ctrl+Alt+Space: a chord no desktop binds by default and that a lone key press cannot
# trigger by accident (whisper-writer 100). A lone Right Ctrl is tempting but cannot be
# grabbed cleanly on X11 (a modifier-only grab swallows every Ctrl chord) nor bound on most
# Wayland compositors.
HOTKEY_DICTATE = Setting(
    "hotkey_dictate",
    str,
    "ctrl+alt+space",
    "Dictation hotkey",
    help="Held (push-to-talk) or pressed twice (toggle), as the hotkey mode says.",
)
HOTKEY_TOGGLE = Setting(
    "hotkey_toggle",
    str,
    "",
    "Toggle hotkey",
    help="Optional: always press to start, press again to stop.",
)
# Escape is grabbed only while recording, so it does not steal Esc from other programs.
HOTKEY_CANCEL = Setting("hotkey_cancel", str, "escape", "Cancel hotkey")
FAVOURITE_HOTKEYS = Setting(
    "favourite_hotkeys",
    dict,
    cast(dict[str, str], {}),
    "Language hotkeys",
    help="Language code → hotkey that dictates in that language.",
)

# ---------------------------------------------------------------------------------- audio

MICROPHONE = Setting("microphone", str, "", "Microphone", help="Empty: the system default.")
KEEP_MICROPHONE_OPEN = Setting(
    "keep_microphone_open",
    bool,
    True,
    "Keep the microphone open",
    help="Starts instantly and keeps the last 0.3 s before the key press (in memory only). "
    "Turn off if your headset switches to call quality while a microphone is open.",
)
MAX_RECORDING_SECONDS = Setting("max_recording_seconds", int, 600, "Longest recording (seconds)")
SOUNDS = Setting("sounds", bool, False, "Play sounds at start and stop")

# --------------------------------------------------------------------------------- output

PASTE_METHOD = Setting(
    "paste_method",
    str,
    "paste",
    "Paste method",
    (("paste", "Paste (clipboard)"), ("type", "Type the text"), ("copy", "Copy only")),
)
HISTORY_MAX_ENTRIES = Setting("history_max_entries", int, 1000, "Transcriptions kept in history")
START_AT_LOGIN = Setting("start_at_login", bool, False, "Start at login")

SETTINGS: tuple[Setting[Any], ...] = (
    MODEL_DIR,
    LANGUAGE,
    PRECISION,
    DEVICE,
    UNLOAD_AFTER_MINUTES,
    TWO_TIER_IDLE,
    HOTWORDS,
    ITN,
    HOTKEY_MODE,
    HOTKEY_DICTATE,
    HOTKEY_TOGGLE,
    HOTKEY_CANCEL,
    FAVOURITE_HOTKEYS,
    MICROPHONE,
    KEEP_MICROPHONE_OPEN,
    MAX_RECORDING_SECONDS,
    SOUNDS,
    PASTE_METHOD,
    HISTORY_MAX_ENTRIES,
    START_AT_LOGIN,
)
BY_NAME: dict[str, Setting[Any]] = {setting.name: setting for setting in SETTINGS}

Upgrade = Callable[[QSettings], None]
# version N → the hook that turns a version N-1 file into version N.
UPGRADES: dict[int, Upgrade] = {}


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("nanodictate", appauthor=False))


def settings_file() -> Path:
    return config_dir() / SETTINGS_FILE_NAME


Listener = Callable[[Setting[Any], Any], None]


class Settings:
    """Typed access to the settings file; listeners hear every change that was applied."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        schema_version: int = SCHEMA_VERSION,
        upgrades: Mapping[int, Upgrade] | None = None,
    ) -> None:
        self.path = settings_file() if path is None else path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.damaged_backup: Path | None = None  # where a damaged file was moved, if it was
        self._store = self._open()
        self._listeners: list[Listener] = []
        self._upgrade(schema_version, UPGRADES if upgrades is None else upgrades)

    def _open(self) -> QSettings:
        """The settings file; a damaged one is moved aside (kept) and defaults are used.

        QSettings reads almost anything as keys, so garbage (a half-written file after a
        crash, a binary file saved over it) would otherwise turn into odd keys and silently
        lost settings: the user is told instead, and can repair or compare the old file.
        """
        store = QSettings(str(self.path), QSettings.Format.IniFormat)
        problem = _damage(self.path, store)
        if problem is None:
            return store
        del store
        backup = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(self.path, backup)
        self.damaged_backup = backup
        log.warning("Settings file %s is damaged (%s); moved to %s", self.path, problem, backup)
        return QSettings(str(self.path), QSettings.Format.IniFormat)

    def _upgrade(self, target: int, upgrades: Mapping[int, Upgrade]) -> None:
        raw = self._store.value(_VERSION_KEY)
        try:
            stored = int(str(raw)) if raw is not None else None
        except ValueError:
            stored = None
        if stored is None:
            # A file without a version is new (or from before versioning: version 0).
            stored = 0 if self._store.allKeys() else target
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
        self._store.setValue(_VERSION_KEY, str(target))
        self._store.sync()

    @property
    def schema_version(self) -> int:
        return int(str(self._store.value(_VERSION_KEY, SCHEMA_VERSION)))

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
        self._store.setValue(setting.name, setting.encode(value))
        self._store.sync()
        for listener in list(self._listeners):
            listener(setting, value)

    def set_by_name(self, name: str, text: str) -> None:
        """Set from text, as a command line gives it (JSON for lists and mappings)."""
        setting = BY_NAME.get(name)
        if setting is None:
            raise ValueError(f"Unknown setting {name!r}. Known: {', '.join(BY_NAME)}.")
        self.set(setting, setting.decode(text))

    def reset(self, setting: Setting[Any]) -> None:
        self.set(setting, _fresh(setting.default))

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def sync(self) -> None:
        self._store.sync()


def _damage(path: Path, store: QSettings) -> str | None:
    """Why the settings file cannot be trusted, or None."""
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
    if store.status() is not QSettings.Status.NoError:
        return "it is not in INI format"
    return None


def _fresh(value: T) -> T:
    # Lists and mappings are copied so a caller editing the result never edits the default.
    if isinstance(value, list | dict):
        return cast(T, json.loads(json.dumps(value)))
    return value
