"""The text's way out with its real parts: `TextDelivery` with the real history, the real paste
sequence (core.text_output) on its paste lane and the profiles file in the config folder, into
the windows of a stand-in desktop (`ui_fakes.FakeDesktop`). The text steps and per-app profile
tests dictate through it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ui_fakes import FakeDesktop, FakeFocus, FakeNotifier

from nanodictate import settings as S
from nanodictate.core.dictation import Dictation
from nanodictate.core.history import History
from nanodictate.core.ports import WindowInfo
from nanodictate.core.text_output import OutputResult, TextOutput
from nanodictate.settings_types import MemoryStore
from nanodictate.ui.delivery import TextDelivery

WAIT_MS = 5000


class DeliveryRig:
    def __init__(self, tmp_path: Path, window: WindowInfo, clipboard: str = "") -> None:
        self.settings = S.Settings(tmp_path / "settings.ini", open_store=lambda _p: MemoryStore())
        self.history = History(tmp_path / "history.sqlite3")
        self.focus = FakeFocus()
        self.focus.window = window
        self.desktop = FakeDesktop(self.focus, clipboard)
        self.notifier = FakeNotifier()
        output = TextOutput(
            self.desktop, self.desktop, self.focus, sleep=lambda _s: None, clock=lambda: 0.0
        )
        # The text steps and profiles come from the settings and the profiles file, as in the app.
        self.delivery = TextDelivery(
            settings=self.settings,
            history=self.history,
            output=output,
            notifier=self.notifier,
            spool=None,
            clock=lambda: 0.0,
            focus=self.focus,
        )

    def dictate(
        self, qtbot: Any, said: str, language: str = "en", window: WindowInfo | None = None
    ) -> OutputResult:
        """Deliver `said` as the engine's transcription of a dictation into `window` (else the
        window with focus); the paste's outcome."""
        if window is not None:
            self.focus.window = window
        dictation = Dictation(1, "dictate", True, language, 0.0, self.delivery.target_window())
        done = SimpleNamespace(result=SimpleNamespace(text=said, audio_seconds=1.0))
        with qtbot.waitSignal(self.delivery.delivered, timeout=WAIT_MS) as signal:
            self.delivery.deliver(dictation, done, said)
        outcome: OutputResult = signal.args[2]
        return outcome

    def history_texts(self) -> list[str]:
        return [entry.text for entry in self.history.recent(10)]

    def close(self) -> None:
        self.delivery.shutdown()
        self.history.close()
