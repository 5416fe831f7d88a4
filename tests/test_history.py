"""The history file: private from its first byte, newest first, trimmed."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from nanodictate.core import history as history_module
from nanodictate.core.history import History


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_is_0600_before_sqlite_writes_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data" / "history.sqlite3"
    seen: list[tuple[int, int]] = []
    real_connect = sqlite3.connect

    def connect(target: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        seen.append((_mode(path), path.stat().st_size))
        return real_connect(target, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(history_module.sqlite3, "connect", connect)
    monkeypatch.setattr("os.umask", lambda _mask: 0)  # not that it could widen 0600 anyway
    history = History(path)
    history.add("secret words", language="en", audio_seconds=1.0, latency_seconds=0.2)
    assert seen == [(0o600, 0)]  # existed, private and empty when SQLite opened it
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    history.close()


def test_a_too_open_existing_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    History(path).close()
    assert _mode(path) == 0o600


def test_recent_is_newest_first_with_all_fields(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    for i in range(3):
        history.add(
            f"text {i}",
            language="ja",
            audio_seconds=i + 0.5,
            latency_seconds=0.1 * i,
            created=1000.0 + i,
        )
    entries = history.recent(2)
    assert [e.text for e in entries] == ["text 2", "text 1"]
    assert entries[0].language == "ja"
    assert entries[0].audio_seconds == 2.5
    assert entries[0].created == 1002.0
    assert len(history) == 3


def test_retention_keeps_the_newest_max_entries(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3", max_entries=5)
    for i in range(12):
        history.add(str(i), language="en", audio_seconds=1, latency_seconds=0)
    assert len(history) == 5
    assert [e.text for e in history.recent(10)] == ["11", "10", "9", "8", "7"]
    history.set_max_entries(2)
    assert [e.text for e in history.recent(10)] == ["11", "10"]
    history.clear()
    assert history.recent(10) == []


def test_entries_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    History(path).add("kept", language="en", audio_seconds=1, latency_seconds=0)
    assert History(path).recent(1)[0].text == "kept"


def test_env_var_moves_the_default_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(history_module.DATA_DIR_ENV, str(tmp_path / "d"))
    assert history_module.default_history_path() == tmp_path / "d" / "history.sqlite3"
