"""The settings declaration over a temporary QSettings file (never the user's), and over the
in-memory store that shows what `Settings` needs of a store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from nanodictate import settings as S
from nanodictate.core.languages import LANGUAGES
from nanodictate.core.transcriber import DeviceChoice, Precision
from nanodictate.ui.settings_store import IniFileStore


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "nanodictate.ini"


def test_defaults_are_what_the_issue_asks_for(path: Path) -> None:
    settings = S.Settings(path, open_store=IniFileStore)
    for setting in S.SETTINGS:
        assert settings.get(setting) == setting.default, setting.name
        setting.validate(setting.default)  # every default fits its own declaration
    assert settings.get(S.LANGUAGE) == "en"
    assert settings.get(S.PRECISION) == "int8"
    assert settings.get(S.DEVICE) == "auto"
    assert settings.get(S.UNLOAD_AFTER_MINUTES) == 5
    assert settings.get(S.MAX_RECORDING_SECONDS) == 600
    assert settings.get(S.HOTKEY_DICTATE) == "ctrl+alt+space"
    assert settings.get(S.MODEL_DIR) == ""
    assert settings.schema_version == S.SCHEMA_VERSION


def test_choices_cover_the_menu() -> None:
    assert [code for code, _label in S.LANGUAGE.choices] == [lang.code for lang in LANGUAGES]
    assert len(S.LANGUAGE.choices) == 31
    assert [value for value, _ in S.UNLOAD_AFTER_MINUTES.choices] == [0, 1, 5, 15, 60, -1]
    assert S.DEVICE.label_for("cuda") == "GPU"
    assert len({setting.name for setting in S.SETTINGS}) == len(S.SETTINGS)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        (S.LANGUAGE, "ja"),
        (S.PRECISION, "bf16"),
        (S.UNLOAD_AFTER_MINUTES, -1),
        (S.ITN, False),
        (S.HOTWORDS, ["Kubernetes", "Zürich, CH", "東京"]),
        (S.FAVOURITE_HOTKEYS, {"ja": "ctrl+alt+j", "zh": "ctrl+alt+z"}),
        (S.HOTKEY_TOGGLE, "ctrl+shift+F9"),
        (S.MODEL_DIR, "/data/models with space"),
    ],
)
def test_values_round_trip_through_the_file(
    path: Path, setting: S.Setting[Any], value: Any
) -> None:
    S.Settings(path, open_store=IniFileStore).set(setting, value)
    assert S.Settings(path, open_store=IniFileStore).get(setting) == value


def test_wrong_values_are_refused(path: Path) -> None:
    settings = S.Settings(path, open_store=IniFileStore)
    with pytest.raises(ValueError):
        settings.set(S.PRECISION, "int4")
    with pytest.raises(ValueError):
        settings.set(S.ITN, "yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        settings.set(S.UNLOAD_AFTER_MINUTES, 7)
    with pytest.raises(ValueError):
        settings.set_by_name("no_such_setting", "1")
    settings.set_by_name("unload_after_minutes", "15")
    assert settings.get(S.UNLOAD_AFTER_MINUTES) == 15


def test_a_damaged_value_falls_back_to_the_default(path: Path) -> None:
    raw = QSettings(str(path), QSettings.Format.IniFormat)
    raw.setValue("hotwords", "[not json")
    raw.setValue("itn", "perhaps")
    raw.setValue("precision", "int4")
    raw.sync()
    settings = S.Settings(path, open_store=IniFileStore)
    assert settings.get(S.HOTWORDS) == []
    assert settings.get(S.ITN) is True
    assert settings.get(S.PRECISION) == "int8"


def test_listeners_hear_changes_once(path: Path) -> None:
    settings = S.Settings(path, open_store=IniFileStore)
    heard: list[tuple[str, Any]] = []
    settings.add_listener(lambda setting, value: heard.append((setting.name, value)))
    settings.set(S.LANGUAGE, "ja")
    settings.set(S.LANGUAGE, "ja")  # no change, no event
    settings.set(S.HOTWORDS, ["a"])
    assert heard == [("language", "ja"), ("hotwords", ["a"])]


def test_the_default_list_is_not_shared(path: Path) -> None:
    settings = S.Settings(path, open_store=IniFileStore)
    settings.get(S.HOTWORDS).append("leak")
    assert settings.get(S.HOTWORDS) == [] and S.HOTWORDS.default == []


def test_upgrade_hooks_run_once_in_order(path: Path) -> None:
    old = QSettings(str(path), QSettings.Format.IniFormat)
    old.setValue("meta/schema_version", "1")
    old.setValue("unload_minutes", "15")  # the name "version 1" used
    old.sync()
    ran: list[int] = []

    def to_2(store: S.SettingsStore) -> None:
        ran.append(2)
        store.set_value("unload_after_minutes", str(store.value("unload_minutes")))
        store.remove("unload_minutes")

    def to_3(store: S.SettingsStore) -> None:
        ran.append(3)

    upgrades = {2: to_2, 3: to_3}
    settings = S.Settings(path, open_store=IniFileStore, schema_version=3, upgrades=upgrades)
    assert ran == [2, 3]
    assert settings.schema_version == 3
    assert settings.get(S.UNLOAD_AFTER_MINUTES) == 15
    S.Settings(path, open_store=IniFileStore, schema_version=3, upgrades=upgrades)
    assert ran == [2, 3]


def test_a_file_without_version_counts_as_version_0(path: Path) -> None:
    old = QSettings(str(path), QSettings.Format.IniFormat)
    old.setValue("language", "fr")
    old.sync()
    ran: list[int] = []
    S.Settings(
        path, open_store=IniFileStore, schema_version=1, upgrades={1: lambda _store: ran.append(1)}
    )
    assert ran == [1]


def test_config_dir_env_redirects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(S.CONFIG_DIR_ENV, str(tmp_path / "cfg"))
    settings = S.Settings(open_store=IniFileStore)
    assert settings.path == tmp_path / "cfg" / S.SETTINGS_FILE_NAME
    settings.set(S.LANGUAGE, "sv")
    assert "language=sv" in settings.path.read_text()


@pytest.mark.parametrize(
    "damage",
    [
        b"\x00\x01\xff\xfe garbage [[[ =\n",  # binary data saved over it
        b"\xff\xfe\xfd\n[General]\nx=1\n",  # not UTF-8
        b'[General\nlanguage="en\n',  # cut off mid-write
    ],
)
def test_damaged_file_gives_defaults_and_is_kept_aside(tmp_path: Path, damage: bytes) -> None:
    path = tmp_path / "nanodictate.ini"
    path.write_bytes(damage)
    settings = S.Settings(path, open_store=IniFileStore)
    backup = settings.damaged_backup
    assert backup is not None and backup.read_bytes() == damage
    assert backup.parent == tmp_path and backup.name.startswith("nanodictate.ini.damaged-")
    assert settings.get(S.LANGUAGE) == S.LANGUAGE.default
    settings.set(S.LANGUAGE, "ja")
    assert S.Settings(path, open_store=IniFileStore).get(S.LANGUAGE) == "ja"  # the new file works
    assert S.Settings(path, open_store=IniFileStore).damaged_backup is None


def test_sound_file_is_not_taken_for_damaged(tmp_path: Path) -> None:
    path = tmp_path / "nanodictate.ini"
    S.Settings(path, open_store=IniFileStore).set(S.LANGUAGE, "ko")
    reopened = S.Settings(path, open_store=IniFileStore)
    assert reopened.damaged_backup is None and reopened.get(S.LANGUAGE) == "ko"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nanodictate.ini"]


# ------------------------------------------------------------------ ranges, sections, enums


def test_ranges_are_checked_when_set_and_when_read(path: Path) -> None:
    settings = S.Settings(path, open_store=IniFileStore)
    assert (S.MAX_RECORDING_SECONDS.minimum, S.MAX_RECORDING_SECONDS.maximum) == (10, 3 * 3600)
    assert (S.HISTORY_MAX_ENTRIES.minimum, S.HISTORY_MAX_ENTRIES.maximum) == (0, 100_000)
    for setting, good, bad in [
        (S.MAX_RECORDING_SECONDS, (10, 3 * 3600), (9, 3 * 3600 + 1)),
        (S.HISTORY_MAX_ENTRIES, (0, 100_000), (-1, 100_001)),
    ]:
        for value in good:  # the bounds themselves are allowed
            settings.set(setting, value)
            assert settings.get(setting) == value
        for value in bad:
            with pytest.raises(ValueError, match=setting.name):
                settings.set(setting, value)
            with pytest.raises(ValueError):
                settings.set_by_name(setting.name, str(value))
    # A hand-edited value out of range falls back to the default, as a damaged one does.
    raw = QSettings(str(path), QSettings.Format.IniFormat)
    raw.setValue("max_recording_seconds", "5")
    raw.sync()
    assert S.Settings(path, open_store=IniFileStore).get(S.MAX_RECORDING_SECONDS) == 600


def test_every_free_whole_number_has_a_range_and_only_numbers_have_one() -> None:
    for setting in S.SETTINGS:
        if setting.type is int and not setting.choices:
            assert setting.minimum is not None and setting.maximum is not None, setting.name
        if setting.type is not int:
            assert setting.minimum is None and setting.maximum is None, setting.name
    with pytest.raises(ValueError, match="range"):
        S.Setting("bad", str, "", "Bad", section=None, minimum=0)
    with pytest.raises(ValueError):  # a default outside its own range
        S.Setting("bad", int, 0, "Bad", section=None, minimum=1, maximum=2)


def test_sections_group_the_settings_window_as_before() -> None:
    assert all(setting.section in (*S.SECTIONS, None) for setting in S.SETTINGS)
    grouped = [(title, [s.name for s in members]) for title, members in S.by_section()]
    assert grouped == [
        (
            "Hotkeys",
            [
                "hotkey_mode",
                "hotkey_dictate",
                "hotkey_toggle",
                "hotkey_cancel",
                "favourite_hotkeys",
            ],
        ),
        ("Recognition", ["language", "hotwords", "itn"]),
        (
            "Output",
            ["paste_method", "sounds", "live_text", "paste_at_each_pause", "recording_overlay"],
        ),
        (
            "Text",
            [
                "voice_commands",
                "spoken_punctuation",
                "remove_fillers",
                "replacements",
                "auto_submit",
            ],
        ),
        ("Microphone", ["keep_microphone_open", "max_recording_seconds"]),
        (
            "Model",
            ["model", "precision", "device", "unload_after_minutes", "two_tier_idle", "model_dir"],
        ),
        (
            "Server",
            [
                "transcription_engine",
                "server_url",
                "server_token",
                "server_fallback_local",
            ],
        ),
        ("System", ["start_at_login", "history_max_entries", "keep_audio", "keep_audio_mb"]),
    ]
    # The microphone is picked from the tray menu's device list, not typed in the window.
    assert [s.name for s in S.SETTINGS if s.section is None] == ["microphone"]


def test_precision_and_device_choices_are_the_engines_enums(path: Path) -> None:
    assert [value for value, _ in S.PRECISION.choices] == [member.value for member in Precision]
    assert [value for value, _ in S.DEVICE.choices] == [member.value for member in DeviceChoice]
    assert set(S.PRECISION_LABELS) == set(Precision)  # every member has a label of its own
    assert set(S.DEVICE_LABELS) == set(DeviceChoice)
    assert [label for _, label in S.DEVICE.choices] == ["Auto", "GPU", "CPU"]
    assert S.PRECISION.default == Precision.INT8 and S.DEVICE.default == DeviceChoice.AUTO
    settings = S.Settings(path, open_store=IniFileStore)
    settings.set(S.PRECISION, Precision.BF16)  # an enum member is stored as its text
    assert type(settings.get(S.PRECISION)) is str and settings.get(S.PRECISION) == "bf16"
    assert Precision(settings.get(S.PRECISION)) is Precision.BF16
    assert "precision=bf16" in path.read_text()


# ------------------------------------------------------------------------ the store interface


def test_settings_work_over_an_in_memory_store(tmp_path: Path) -> None:
    store = S.MemoryStore({"itn": "perhaps", "hotwords": ["native", "list"]})
    opened: list[Path] = []

    def open_store(at: Path) -> S.SettingsStore:
        opened.append(at)
        return store

    ran: list[int] = []
    settings = S.Settings(
        tmp_path / "never.ini", open_store=open_store, upgrades={1: lambda _s: ran.append(1)}
    )
    assert opened == [tmp_path / "never.ini"] and ran == [1]  # keys present: a version-0 file
    assert store.values["meta/schema_version"] == "1" and settings.schema_version == 1
    assert settings.get(S.ITN) is True  # a damaged value still falls back to the default
    assert settings.get(S.HOTWORDS) == ["native", "list"]
    heard: list[Any] = []
    settings.add_listener(lambda setting, value: heard.append((setting.name, value)))
    settings.set(S.HOTWORDS, ["Zürich"])
    settings.set(S.ITN, False)
    settings.set_by_name("max_recording_seconds", "42")
    assert store.values["hotwords"] == '["Zürich"]'  # values are stored as text
    assert store.values["itn"] == "false" and store.values["max_recording_seconds"] == "42"
    assert heard == [("hotwords", ["Zürich"]), ("itn", False), ("max_recording_seconds", 42)]
    assert store.syncs == 4  # once after the version, once a change
    settings.reset(S.ITN)
    assert store.values["itn"] == "true"
    assert list(tmp_path.iterdir()) == []  # the memory store never touches the file


def test_a_store_that_reports_damage_has_its_file_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "nanodictate.ini"
    path.write_text("[General]\nlanguage=ja\n")

    class DamagedStore(S.MemoryStore):
        def damage(self) -> str | None:
            return "it is not in INI format"

    stores = [DamagedStore({"language": "ja"}), S.MemoryStore()]
    settings = S.Settings(path, open_store=lambda _at: stores.pop(0))
    assert stores == []  # opened again after the move
    assert settings.damaged_backup is not None
    assert settings.damaged_backup.read_text() == "[General]\nlanguage=ja\n"
    assert settings.get(S.LANGUAGE) == "en"


def test_the_ini_store_writes_what_qsettings_reads(path: Path) -> None:
    store: S.SettingsStore = IniFileStore(path)  # the app's store fits the protocol
    settings = S.Settings(path, open_store=IniFileStore)
    settings.set(S.HOTWORDS, ["a, b", "東京"])
    settings.set(S.FAVOURITE_HOTKEYS, {"ja": "ctrl+alt+j"})
    settings.set(S.UNLOAD_AFTER_MINUTES, -1)
    raw = QSettings(str(path), QSettings.Format.IniFormat)
    assert raw.value("hotwords") == '["a, b", "東京"]'
    assert raw.value("favourite_hotkeys") == '{"ja": "ctrl+alt+j"}'
    assert raw.value("unload_after_minutes") == "-1"
    assert raw.value("meta/schema_version") == "1"
    store.sync()
    assert sorted(store.keys()) == sorted(raw.allKeys())


def test_settings_import_and_work_without_qt(tmp_path: Path) -> None:
    """The declarations and `Settings` over a store of its own never load PySide6 (the CLI and
    the core may read them); only the app's INI store does."""
    code = (
        "import sys\n"
        "from nanodictate import settings as S\n"
        "s = S.Settings(open_store=lambda _p: S.MemoryStore())\n"
        "s.set(S.LANGUAGE, 'ja'); assert s.get(S.LANGUAGE) == 'ja'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6')))\n"
    )
    env = {**os.environ, "NANODICTATE_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_settings_reach_no_ui_and_are_given_their_store(tmp_path: Path) -> None:
    """The app opens the INI store and passes it in; `settings` never imports the UI."""
    code = (
        "import sys\n"
        "from nanodictate import settings as S\n"
        "try:\n"
        "    S.Settings()\n"
        "except TypeError:\n"
        "    print('needs a store')\n"
        "print(sorted(m for m in sys.modules if m.startswith('nanodictate.ui')))\n"
    )
    env = {**os.environ, "NANODICTATE_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["needs a store", "[]"]
    assert list(tmp_path.iterdir()) == []


def test_the_model_setting_offers_each_speech_model_with_its_languages() -> None:
    from nanodictate.core.languages import languages_of
    from nanodictate.core.models.store import SPEECH_MODELS

    assert [value for value, _label in S.MODEL.choices] == [spec.name for spec in SPEECH_MODELS]
    assert S.MODEL.default == "fun-asr-mlt-nano"
    assert "German, French, Spanish, Italian or Russian" in S.MODEL.help
    assert [language.code for language in languages_of("fun-asr-nano")] == ["zh", "en", "ja"]
    assert len(languages_of("fun-asr-mlt-nano")) == 31
