"""Every user setting, declared once: name, type, default, choices, range, section and label.

The tray menu, the settings window and the CLI all read this declaration, so a setting is
added in one place. The settings window groups the settings by their ``section``, in the
order of `SECTIONS` and of the declarations below; precision and device take their choices
from the engine's own enums, so the two cannot drift apart.

This module imports no Qt and nothing of the UI. `Setting` and the store interface live in
`settings_types` (and are re-exported here). `Settings` (its machinery in `settings_access`)
reads and writes raw values through a small `SettingsStore` that its caller opens: the app
passes the QSettings INI file of `nanodictate.ui.settings_store`, in the user config folder
— or in ``$NANODICTATE_CONFIG_DIR`` so tests never touch the user's real file.
The file carries a schema version; `Settings` runs the upgrade hooks of newer versions once
when it opens an older file, and moves a damaged file aside instead of reading garbage.

Values are stored as text (lists and mappings as JSON) and decoded by their declared type:
an INI file gives back strings whatever was written, and a hand-edited or damaged value falls
back to the default (with a log line) instead of crashing the app.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import platformdirs

from nanodictate.core.languages import LANGUAGES
from nanodictate.core.profiles import PROFILES_FILE_NAME
from nanodictate.core.transcriber import DeviceChoice, Precision
from nanodictate.settings_access import SettingsAccess
from nanodictate.settings_types import MemoryStore as MemoryStore
from nanodictate.settings_types import Setting as Setting
from nanodictate.settings_types import SettingsStore as SettingsStore
from nanodictate.settings_types import StoreOpener as StoreOpener
from nanodictate.settings_types import Upgrade as Upgrade
from nanodictate.settings_types import enum_choices
from nanodictate.settings_types import file_damage as file_damage

CONFIG_DIR_ENV = "NANODICTATE_CONFIG_DIR"
SETTINGS_FILE_NAME = "nanodictate.ini"
SCHEMA_VERSION = 1

# The settings window's sections, in the order it shows them.
SECTIONS = ("Hotkeys", "Recognition", "Output", "Text", "Microphone", "Model", "Server", "System")
# Labels of the engine's enums; the choices are the enum members themselves, in their order.
PRECISION_LABELS = {Precision.INT8: "INT8", Precision.BF16: "BF16", Precision.FP32: "FP32"}
DEVICE_LABELS = {DeviceChoice.AUTO: "Auto", DeviceChoice.CUDA: "GPU", DeviceChoice.CPU: "CPU"}

# -------------------------------------------------------------------------------- hotkeys

HOTKEY_MODE = Setting(
    "hotkey_mode",
    str,
    "push_to_talk",
    "Hotkey mode",
    (("push_to_talk", "Push-to-talk (hold)"), ("toggle", "Toggle (press twice)")),
    section="Hotkeys",
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
    section="Hotkeys",
)
HOTKEY_TOGGLE = Setting(
    "hotkey_toggle",
    str,
    "",
    "Toggle hotkey",
    help="Optional: always press to start, press again to stop.",
    section="Hotkeys",
)
# Escape is grabbed only while recording, so it does not steal Esc from other programs.
HOTKEY_CANCEL = Setting("hotkey_cancel", str, "escape", "Cancel hotkey", section="Hotkeys")
FAVOURITE_HOTKEYS = Setting(
    "favourite_hotkeys",
    dict,
    cast(dict[str, str], {}),
    "Language hotkeys",
    help="Language code → hotkey that dictates in that language.",
    section="Hotkeys",
)

# ---------------------------------------------------------------------------- recognition

LANGUAGE = Setting(
    "language",
    str,
    "en",
    "Language",
    tuple((language.code, language.label) for language in LANGUAGES),
    section="Recognition",
)
HOTWORDS = Setting(
    "hotwords",
    list,
    cast(list[str], []),
    "Hotwords",
    help="Names and terms to favour, one a line.",
    section="Recognition",
)
ITN = Setting("itn", bool, True, "Write numbers as digits (ITN)", section="Recognition")

# --------------------------------------------------------------------------------- output

PASTE_METHOD = Setting(
    "paste_method",
    str,
    "paste",
    "Paste method",
    (("paste", "Paste (clipboard)"), ("type", "Type the text"), ("copy", "Copy only")),
    section="Output",
)
SOUNDS = Setting("sounds", bool, False, "Play sounds at start and stop", section="Output")
LIVE_TEXT = Setting(
    "live_text",
    str,
    "auto",
    "Live text while speaking",
    (("auto", "Auto (where the machine keeps up)"), ("on", "On"), ("off", "Off")),
    "Shows the words as they are recognised, in a small preview that never takes focus.",
    section="Output",
)
PASTE_AT_EACH_PAUSE = Setting(
    "paste_at_each_pause",
    bool,
    False,
    "Paste at each pause (continuous dictation)",
    help="Pastes each finished sentence when you pause, instead of all at key-up.",
    section="Output",
)
RECORDING_OVERLAY = Setting(
    "recording_overlay",
    bool,
    False,
    "Show a recording indicator with the input level",
    help="A small strip at the top of the screen while you speak; it never takes focus.",
    section="Output",
)

# ----------------------------------------------------------------------------------- text

# The text steps between the transcription and the paste (nanodictate/core/text_steps).
VOICE_COMMANDS = Setting(
    "voice_commands",
    bool,
    True,
    'Voice commands ("new line", "new paragraph", "delete that")',
    help="Said at the start or the end of a dictation; the words of each language are in "
    "nanodictate/core/text_steps/words.",
    section="Text",
)
SPOKEN_PUNCTUATION = Setting(
    "spoken_punctuation",
    bool,
    False,
    'Spoken punctuation ("comma", "period", "question mark")',
    help='Anywhere in the text: with it on, the word itself ("a comma") cannot be dictated.',
    section="Text",
)
REMOVE_FILLERS = Setting(
    "remove_fillers",
    bool,
    False,
    "Remove filler words (um, uh, 嗯, 呃)",
    section="Text",
)
REPLACEMENTS = Setting(
    "replacements",
    list,
    cast(list[str], []),
    "Replacements",
    help="One rule a line: wrong => right (whole words, any case), or /regex/ => replacement "
    "(/regex/i ignores case). Applied to every dictation.",
    section="Text",
)
AUTO_SUBMIT = Setting(
    "auto_submit",
    bool,
    False,
    "Press Enter after the paste",
    help="Sends a chat message or a command right away.",
    section="Text",
)

# ----------------------------------------------------------------------------- microphone

# Chosen from the tray menu's list of devices (a typed name would invite typos).
MICROPHONE = Setting(
    "microphone", str, "", "Microphone", help="Empty: the system default.", section=None
)
KEEP_MICROPHONE_OPEN = Setting(
    "keep_microphone_open",
    bool,
    True,
    "Keep the microphone open",
    help="Starts instantly and keeps the last 0.3 s before the key press (in memory only). "
    "Turn off if your headset switches to call quality while a microphone is open.",
    section="Microphone",
)
MAX_RECORDING_SECONDS = Setting(
    "max_recording_seconds",
    int,
    600,
    "Longest recording (seconds)",
    section="Microphone",
    minimum=10,
    maximum=3 * 3600,
)

# ---------------------------------------------------------------------------------- model

# The speech model's name in core.models.store; the language menu offers only its languages.
MODEL = Setting(
    "model",
    str,
    "fun-asr-mlt-nano",
    "Speech model",
    (
        ("fun-asr-mlt-nano", "Multilingual (31 languages)"),
        ("fun-asr-nano", "Chinese–English–Japanese"),
    ),
    "Chinese–English–Japanese (Fun-ASR-Nano) is stronger for Chinese, its 7 dialects and "
    "regional accents. Neither model covers German, French, Spanish, Italian or Russian.",
    section="Model",
)
PRECISION = Setting(
    "precision",
    str,
    Precision.INT8.value,
    "Precision",
    enum_choices(Precision, PRECISION_LABELS),
    "INT8 holds the least memory; BF16 and FP32 are slightly more accurate.",
    section="Model",
)
DEVICE = Setting(
    "device",
    str,
    DeviceChoice.AUTO.value,
    "Device",
    enum_choices(DeviceChoice, DEVICE_LABELS),
    section="Model",
)
UNLOAD_AFTER_MINUTES = Setting(
    "unload_after_minutes",
    int,
    5,
    "Unload after",
    ((0, "Immediately"), (1, "1 min"), (5, "5 min"), (15, "15 min"), (60, "60 min"), (-1, "Never")),
    "Idle time after which the model leaves memory; the next dictation loads it again.",
    section="Model",
)
TWO_TIER_IDLE = Setting(
    "two_tier_idle",
    bool,
    True,
    "Free the GPU first",
    help="On a GPU, move the model to RAM when idle and drop it later (at 3× the idle time).",
    section="Model",
)
MODEL_DIR = Setting(
    "model_dir",
    str,
    "",
    "Models folder",
    help="Empty: the user data folder. Applies at the next start.",
    section="Model",
)

# --------------------------------------------------------------------------------- server

TRANSCRIPTION_ENGINE = Setting(
    "transcription_engine",
    str,
    "local",
    "Transcription engine",
    (("local", "This computer"), ("server", "A server")),
    "A server is a `nanodictate serve` your team runs; audio goes to it over the network.",
    section="Server",
)
SERVER_URL = Setting(
    "server_url",
    str,
    "",
    "Server address",
    help="For example https://asr.example.org",
    section="Server",
)
SERVER_TOKEN = Setting(
    "server_token",
    str,
    "",
    "Server token",
    help="The access token your server's admin gave you (kept in this user's settings file).",
    section="Server",
)
SERVER_FALLBACK_LOCAL = Setting(
    "server_fallback_local",
    bool,
    False,
    "Use this computer when the server is unreachable",
    section="Server",
)

# --------------------------------------------------------------------------------- system

START_AT_LOGIN = Setting("start_at_login", bool, False, "Start at login", section="System")
HISTORY_MAX_ENTRIES = Setting(
    "history_max_entries",
    int,
    1000,
    "Transcriptions kept in history",
    section="System",
    minimum=0,
    maximum=100_000,
)
KEEP_AUDIO = Setting(
    "keep_audio",
    bool,
    False,
    "Keep the audio of recent dictations",
    help="FLAC files in your private data folder, so a dictation can be re-transcribed from "
    "Recent in the tray menu. Clearing the history deletes them.",
    section="System",
)
KEEP_AUDIO_MB = Setting(
    "keep_audio_mb",
    int,
    200,
    "Audio kept at most (MB)",
    help="The oldest recordings go first.",
    section="System",
    minimum=1,
    maximum=100_000,
)

SETTINGS: tuple[Setting[Any], ...] = (
    HOTKEY_MODE,
    HOTKEY_DICTATE,
    HOTKEY_TOGGLE,
    HOTKEY_CANCEL,
    FAVOURITE_HOTKEYS,
    LANGUAGE,
    HOTWORDS,
    ITN,
    PASTE_METHOD,
    SOUNDS,
    LIVE_TEXT,
    PASTE_AT_EACH_PAUSE,
    RECORDING_OVERLAY,
    VOICE_COMMANDS,
    SPOKEN_PUNCTUATION,
    REMOVE_FILLERS,
    REPLACEMENTS,
    AUTO_SUBMIT,
    MICROPHONE,
    KEEP_MICROPHONE_OPEN,
    MAX_RECORDING_SECONDS,
    MODEL,
    PRECISION,
    DEVICE,
    UNLOAD_AFTER_MINUTES,
    TWO_TIER_IDLE,
    MODEL_DIR,
    TRANSCRIPTION_ENGINE,
    SERVER_URL,
    SERVER_TOKEN,
    SERVER_FALLBACK_LOCAL,
    START_AT_LOGIN,
    HISTORY_MAX_ENTRIES,
    KEEP_AUDIO,
    KEEP_AUDIO_MB,
)
BY_NAME: dict[str, Setting[Any]] = {setting.name: setting for setting in SETTINGS}


def by_section() -> tuple[tuple[str, tuple[Setting[Any], ...]], ...]:
    """The settings window's sections with their settings, in display order."""
    return tuple(
        (section, tuple(setting for setting in SETTINGS if setting.section == section))
        for section in SECTIONS
    )


# version N → the hook that turns a version N-1 file into version N.
UPGRADES: dict[int, Upgrade] = {}


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("nanodictate", appauthor=False))


def settings_file() -> Path:
    return config_dir() / SETTINGS_FILE_NAME


def profiles_file() -> Path:
    """The per-app profiles (`core.profiles`): a TOML file beside the settings, not a setting,
    because a profile is a record the settings' types cannot hold."""
    return config_dir() / PROFILES_FILE_NAME


class Settings(SettingsAccess):
    """The settings declared above, in the user's settings file (or the one at ``path``)."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        open_store: StoreOpener,
        schema_version: int = SCHEMA_VERSION,
        upgrades: Mapping[int, Upgrade] | None = None,
    ) -> None:
        super().__init__(
            settings_file() if path is None else path,
            BY_NAME,
            open_store=open_store,
            schema_version=schema_version,
            upgrades=UPGRADES if upgrades is None else upgrades,
        )
