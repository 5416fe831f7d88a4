"""The idle timers and a recording in progress: the model loaded at key-down stays loaded
until the recording ends, however long it lasts (fake engine, real worker thread)."""

from __future__ import annotations

from typing import Any

from controller_rig import WAIT_MS, Rig

from nanodictate import settings as S


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
