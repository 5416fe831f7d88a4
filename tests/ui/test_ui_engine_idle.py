"""The idle timers and a recording in progress: the model loaded at key-down stays loaded
until the recording ends, however long it lasts (fake engine, real worker thread)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_ui_controller import WAIT_MS, Rig
from ui_fakes import FakeEngine, FakeHotkeys

from nanodictate import settings as S


@pytest.fixture
def rig(qtbot: Any, tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path, FakeEngine(), FakeHotkeys())
    yield rig
    rig.controller.shutdown()
    rig.service.stop()
    rig.recorder.close()
    rig.history.close()


def test_idle_timer_keeps_the_model_while_a_recording_runs_fake_engine(
    rig: Rig, qtbot: Any
) -> None:
    rig.service.worker.minute_ms = 30  # "unload after 1 min" fires after 30 ms
    rig.settings.set(S.UNLOAD_AFTER_MINUTES, 1)
    link = rig.controller.engine
    link.keep_loaded(True)  # as at key-down
    link.load()
    qtbot.waitUntil(lambda: link.state == "ready", timeout=WAIT_MS)
    qtbot.wait(300)  # ten idle times
    assert link.state == "ready" and "unload" not in rig.engine.names()
    link.keep_loaded(False)  # the recording ended without a transcription (cancelled)
    qtbot.waitUntil(lambda: link.state == "unloaded", timeout=WAIT_MS)
    assert rig.engine.names()[-1] == "unload"


def test_two_tier_idle_keeps_the_offloaded_model_while_a_recording_runs_fake_engine(
    rig: Rig, qtbot: Any
) -> None:
    rig.engine.device = "cuda"
    rig.service.worker.minute_ms = 30
    rig.settings.set(S.UNLOAD_AFTER_MINUTES, 1)
    actions: list[str] = []
    rig.service.worker.idle_action.connect(actions.append)
    link = rig.controller.engine
    link.load()
    qtbot.waitUntil(lambda: actions == ["offload"], timeout=WAIT_MS)
    link.keep_loaded(True)  # a recording began while the model was in RAM
    qtbot.wait(300)
    assert actions == ["offload"]
    link.keep_loaded(False)
    qtbot.waitUntil(lambda: actions == ["offload", "unload"], timeout=WAIT_MS)
