"""The settings declaration over a temporary QSettings file (never the user's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from nanodictate import settings as S
from nanodictate.core.languages import LANGUAGES


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "nanodictate.ini"


def test_defaults_are_what_the_issue_asks_for(path: Path) -> None:
    settings = S.Settings(path)
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
    S.Settings(path).set(setting, value)
    assert S.Settings(path).get(setting) == value


def test_wrong_values_are_refused(path: Path) -> None:
    settings = S.Settings(path)
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
    settings = S.Settings(path)
    assert settings.get(S.HOTWORDS) == []
    assert settings.get(S.ITN) is True
    assert settings.get(S.PRECISION) == "int8"


def test_listeners_hear_changes_once(path: Path) -> None:
    settings = S.Settings(path)
    heard: list[tuple[str, Any]] = []
    settings.add_listener(lambda setting, value: heard.append((setting.name, value)))
    settings.set(S.LANGUAGE, "ja")
    settings.set(S.LANGUAGE, "ja")  # no change, no event
    settings.set(S.HOTWORDS, ["a"])
    assert heard == [("language", "ja"), ("hotwords", ["a"])]


def test_the_default_list_is_not_shared(path: Path) -> None:
    settings = S.Settings(path)
    settings.get(S.HOTWORDS).append("leak")
    assert settings.get(S.HOTWORDS) == [] and S.HOTWORDS.default == []


def test_upgrade_hooks_run_once_in_order(path: Path) -> None:
    old = QSettings(str(path), QSettings.Format.IniFormat)
    old.setValue("meta/schema_version", "1")
    old.setValue("unload_minutes", "15")  # the name "version 1" used
    old.sync()
    ran: list[int] = []

    def to_2(store: QSettings) -> None:
        ran.append(2)
        store.setValue("unload_after_minutes", store.value("unload_minutes"))
        store.remove("unload_minutes")

    def to_3(store: QSettings) -> None:
        ran.append(3)

    upgrades = {2: to_2, 3: to_3}
    settings = S.Settings(path, schema_version=3, upgrades=upgrades)
    assert ran == [2, 3]
    assert settings.schema_version == 3
    assert settings.get(S.UNLOAD_AFTER_MINUTES) == 15
    S.Settings(path, schema_version=3, upgrades=upgrades)
    assert ran == [2, 3]


def test_a_file_without_version_counts_as_version_0(path: Path) -> None:
    old = QSettings(str(path), QSettings.Format.IniFormat)
    old.setValue("language", "fr")
    old.sync()
    ran: list[int] = []
    S.Settings(path, schema_version=1, upgrades={1: lambda _store: ran.append(1)})
    assert ran == [1]


def test_config_dir_env_redirects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(S.CONFIG_DIR_ENV, str(tmp_path / "cfg"))
    settings = S.Settings()
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
    settings = S.Settings(path)
    backup = settings.damaged_backup
    assert backup is not None and backup.read_bytes() == damage
    assert backup.parent == tmp_path and backup.name.startswith("nanodictate.ini.damaged-")
    assert settings.get(S.LANGUAGE) == S.LANGUAGE.default
    settings.set(S.LANGUAGE, "ja")
    assert S.Settings(path).get(S.LANGUAGE) == "ja"  # the new file works
    assert S.Settings(path).damaged_backup is None


def test_sound_file_is_not_taken_for_damaged(tmp_path: Path) -> None:
    path = tmp_path / "nanodictate.ini"
    S.Settings(path).set(S.LANGUAGE, "ko")
    reopened = S.Settings(path)
    assert reopened.damaged_backup is None and reopened.get(S.LANGUAGE) == "ko"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nanodictate.ini"]
