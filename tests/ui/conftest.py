"""Qt tests run offscreen with pytest-qt's one session QApplication, and never touch the
user's real settings, history or autostart folder. `rig` is the real controller around fakes
(`controller_rig`); a module that needs another engine or hotkeys overrides `engine` or
`hotkeys`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_rig import Rig
from ui_fakes import FakeEngine, FakeHotkeys


@pytest.fixture(scope="session")
def qapp_args() -> list[str]:
    # pytest-qt builds its one QApplication from these: offscreen through the command line,
    # not $QT_QPA_PLATFORM, so processes other tests start still get the real display.
    return ["nanodictate-tests", "-platform", "offscreen"]


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("NANODICTATE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NANODICTATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    yield


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def hotkeys() -> FakeHotkeys:
    return FakeHotkeys()


@pytest.fixture
def rig(qtbot: Any, tmp_path: Path, engine: FakeEngine, hotkeys: FakeHotkeys) -> Iterator[Rig]:
    rig = Rig(tmp_path, engine, hotkeys)
    yield rig
    rig.close()
