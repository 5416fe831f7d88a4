"""Dictated text into a stock xterm, which pastes PRIMARY on Shift+Insert and has no
Ctrl+Shift+V paste: the real text output, X11 keyboard and focus backends against a real
xterm on a private X server (Xvfb), with the text read back from the file `cat` writes.

The two selections are driven through xclip (a real selection owner) rather than the app's
QtClipboard: this pytest process already runs Qt offscreen for the UI tests, and a second Qt
platform (xcb) cannot be started next to it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from desktop.harness import DesktopSession

from nanodictate.core.text_output import PasteMethod, TextOutput
from nanodictate.platform.x11 import X11FocusTracker, X11KeyboardOutput

pytestmark = pytest.mark.desktop

TEXT = "héllo 世界 wörld"


@pytest.fixture
def desk(monkeypatch: pytest.MonkeyPatch) -> Iterator[DesktopSession]:
    for tool in ("Xvfb", "xterm", "xclip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (sh scripts/setup.sh --tests installs it)")
    with DesktopSession(tray=False, audio=False, watchdog_s=60) as session:
        session.apply_env(monkeypatch)
        yield session
        assert not session.watchdog_fired
    assert session.leftover_pids() == []  # xterm, its shell and xclip's owners are gone


class XclipSelection:
    """One X selection ("clipboard" or "primary") as text output's ClipboardPort."""

    def __init__(self, desk: DesktopSession, selection: str) -> None:
        self.desk = desk
        self.selection = selection

    def snapshot(self) -> object:
        return self.read_text()

    def put_text(self, text: str) -> None:
        self.desk.set_clipboard_text(text, selection=self.selection)

    def read_text(self) -> str | None:
        return self.desk.read_clipboard_text(selection=self.selection)

    def arm_read_detection(self) -> None:
        """xclip cannot tell us about reads: was_read says so, and a fixed delay is kept."""

    def was_read(self) -> bool | None:
        return None

    def restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, str)
        self.put_text(snapshot)


def _open_xterm(desk: DesktopSession, output: Path) -> int:
    """A stock xterm whose shell copies every byte it gets to `output` (raw tty: no line
    editing, no echo); returns its window id once the shell is reading."""
    ready = output.with_suffix(".ready")
    script = 'stty raw -echo && : > "$2" && exec cat > "$1"'
    desk.popen(
        ["xterm", "-u8", "-title", "paste target", "-e", "sh", "-c", script, "sh", output, ready],
        name="xterm",
    )
    desk.wait_for(ready.exists, 15.0, "xterm's shell to start")
    window = desk.wait_for(lambda: desk.windows("XTerm"), 5.0, "the xterm window")[0]
    desk.focus(window.id)
    return window.id


def test_paste_into_stock_xterm_via_primary_and_shift_insert(
    desk: DesktopSession, tmp_path: Path
) -> None:
    output = tmp_path / "typed.txt"
    window_id = _open_xterm(desk, output)
    keyboard = X11KeyboardOutput()
    focus = X11FocusTracker()
    try:
        target = focus.focused_window()
        assert target is not None and target.id == window_id
        assert target.is_terminal and target.pastes_primary

        # The bug: stock xterm binds no Ctrl+Shift+V, it sends ^V to the program.
        desk.set_clipboard_text(TEXT)
        keyboard.send_paste(terminal=True)
        desk.wait_for(lambda: output.read_bytes() == b"\x16", 5.0, "^V in the file")

        desk.set_clipboard_text("user's clipboard")
        desk.set_clipboard_text("user's selection", selection="primary")
        text_output = TextOutput(
            XclipSelection(desk, "clipboard"),
            keyboard,
            focus,
            selection=XclipSelection(desk, "primary"),
        )
        result = text_output.deliver(TEXT, PasteMethod.PASTE, target)
        assert result.ok and result.clipboard_restored, result.message
        expected = b"\x16" + TEXT.encode()
        desk.wait_for(lambda: output.read_bytes() == expected, 5.0, "the pasted text")
        assert output.read_bytes() == expected
        assert desk.read_clipboard_text() == "user's clipboard"
        assert desk.read_clipboard_text(selection="primary") == "user's selection"
        assert keyboard.keys_down() == []  # Shift was released
    finally:
        keyboard.close()
        focus.close()
