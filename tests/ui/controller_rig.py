"""The real controller with its real worker thread, recorder, history and spool, driven through
small fakes (`ui_fakes`) for the engine, the microphone, the hotkeys and the desktop: what the
controller tests and the tests built on them (live text, idle timers, history actions, engine
faults) run against. The `rig` fixture in conftest.py builds one per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ui_fakes import FakeEngine, FakeFocus, FakeHotkeys, FakeNotifier, FakeSoundDevice

from nanodictate import settings as S
from nanodictate.core.history import History
from nanodictate.core.recorder import Recorder
from nanodictate.core.spool import RecordingSpool
from nanodictate.core.text_output import OutputResult, PasteMethod
from nanodictate.ui.controller import DictationController
from nanodictate.ui.setting_effects import start_microphone
from nanodictate.ui.settings_store import IniFileStore
from nanodictate.ui.worker import EngineService

WAIT_MS = 5000


class Clock:
    """The controller's clock: the tests move it, so a hold lasts what they say."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeOutput:
    """Records each delivery and how many history entries existed at that moment."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.delivered: list[tuple[str, PasteMethod, Any, int]] = []
        self.result: OutputResult | None = None

    def deliver(self, text: str, method: PasteMethod, target: Any) -> OutputResult:
        self.delivered.append((text, method, target, len(self.history)))
        return self.result or OutputResult(True, method)


class Rig:
    """The controller and its real parts around the fakes given, wired as the app wires them."""

    def __init__(
        self,
        tmp_path: Path,
        engine: FakeEngine,
        hotkeys: FakeHotkeys,
        *,
        history_path: Path | None = None,
    ) -> None:
        self.settings = S.Settings(tmp_path / "settings.ini", open_store=IniFileStore)
        self.sd = FakeSoundDevice(rate=16000, channels=1)
        self.recorder = Recorder(self.sd, keep_open=True)
        self.engine = engine
        self.engines_built = 0

        def build_engine() -> FakeEngine:
            self.engines_built += 1
            return engine

        self.service = EngineService(build_engine)
        self.history = History(history_path or tmp_path / "history.sqlite3")
        self.output = FakeOutput(self.history)
        self.hotkeys = hotkeys
        self.focus = FakeFocus()
        self.notifier = FakeNotifier()
        self.clock = Clock()
        self.report = tmp_path / "report.jsonl"
        self.spool = RecordingSpool(tmp_path / "spool")
        self.controller = DictationController(
            settings=self.settings,
            recorder=self.recorder,
            engine=self.service,
            history=self.history,
            output=self.output,
            notifier=self.notifier,
            hotkeys=hotkeys,
            focus=self.focus,
            spool=self.spool,
            clock=self.clock,
        )
        self.controller.dictation_finished.connect(self._write_record)
        hotkeys.start(self.controller.hotkey_event)
        self.controller.apply_hotkeys()
        start_microphone(self.controller)
        self.states: list[str] = []
        self.controller.state_changed.connect(self.states.append)

    def close(self, engine_stop_ms: int = 10_000) -> None:
        """Stop the controller and the engine's thread; close the microphone and history."""
        self.controller.shutdown()
        self.service.stop(timeout_ms=engine_stop_ms)
        self.recorder.close()
        self.history.close()

    def _write_record(self, record: dict[str, Any]) -> None:
        with self.report.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.report.exists():
            return []
        return [json.loads(line) for line in self.report.read_text().splitlines()]


def hold(rig: Rig, qtbot: Any, seconds: float, hotkey_id: str = "dictate") -> None:
    """Hold the hotkey for `seconds` of sound (a steady 0.1) on the fake clock."""
    rig.hotkeys.fire(hotkey_id, True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    rig.sd.stream.feed_seconds(seconds, value=0.1, block=160)
    rig.clock.now += seconds
    rig.hotkeys.fire(hotkey_id, False)
