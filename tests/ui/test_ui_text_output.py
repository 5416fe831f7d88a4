"""The paste sequence (nanodictate.core.text_output) with in-test fakes of the clipboard and
the platform's keyboard and focus protocols, and a fake clock, so each step's order and each
failure path is checked without a desktop; and the keys the text steps ask for after a paste
(Enter) and before one (Backspace for "delete that"), with the rules that keep the latter safe."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from nanodictate.core.text_output import (
    OutputTimings,
    PasteMethod,
    TextOutput,
)


class Log:
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now


class FakeClipboard:
    def __init__(self, log: Log, *, detect: bool | None = True, takes: bool = True) -> None:
        self.log = log
        self.content: Any = "old"
        self.detect = detect
        self.takes = takes
        self.read = False
        self.armed = False

    def snapshot(self) -> object:
        self.log.steps.append("snapshot")
        return ("saved", self.content)

    def put_text(self, text: str) -> None:
        self.log.steps.append("put")
        if self.takes:
            self.content = text

    def read_text(self) -> str | None:
        return self.content if isinstance(self.content, str) else None

    def arm_read_detection(self) -> None:
        self.log.steps.append("arm")
        self.armed = True
        self.read = False

    def was_read(self) -> bool | None:
        return None if self.detect is None else self.read

    def restore(self, snapshot: object) -> None:
        self.log.steps.append(f"restore@{self.log.now:.2f}")
        assert isinstance(snapshot, tuple)
        self.content = snapshot[1]


class FakeKeyboard:
    def __init__(
        self,
        log: Log,
        clipboard: FakeClipboard,
        *,
        released: bool = True,
        target_reads: bool = True,
    ) -> None:
        self.log = log
        self.clipboard = clipboard
        self.released = released
        self.target_reads = target_reads
        self.pasted: list[tuple[str, bool]] = []
        self.typed: list[str] = []
        self.backspaces: list[int] = []
        # Set by tests of xterm-like targets: the PRIMARY selection the target reads.
        self.primary: FakeClipboard | None = None

    def wait_until_keys_released(self, timeout: float) -> bool:
        self.log.steps.append("keys")
        return self.released

    def send_paste(self, *, terminal: bool) -> None:
        self.log.steps.append(f"paste@{self.log.now:.2f}")
        self.pasted.append((str(self.clipboard.read_text()), terminal))
        if self.target_reads:
            self.clipboard.read = True

    def send_primary_paste(self) -> None:
        """Shift+Insert as xterm answers it: it reads PRIMARY, not the clipboard."""
        assert self.primary is not None
        self.log.steps.append(f"shift+insert@{self.log.now:.2f}")
        self.pasted.append((str(self.primary.read_text()), True))
        if self.target_reads:
            self.primary.read = True

    def type_text(self, text: str) -> None:
        self.log.steps.append("type")
        self.typed.append(text)

    def send_backspaces(self, count: int) -> None:
        self.log.steps.append(f"backspace×{count}")
        self.backspaces.append(count)


class FakeFocus:
    def __init__(self, log: Log, focused: Any, *, can_refocus: bool = True) -> None:
        self.log = log
        self.focused = focused
        self.can_refocus = can_refocus

    def focused_window(self) -> Any:
        return self.focused

    def refocus(self, window: Any) -> bool:
        self.log.steps.append("refocus")
        if self.can_refocus:
            self.focused = window
        return self.can_refocus


EDITOR = SimpleNamespace(id=1, is_terminal=False, pastes_primary=False)
TERMINAL = SimpleNamespace(id=2, is_terminal=True, pastes_primary=False)
XTERM = SimpleNamespace(id=3, is_terminal=True, pastes_primary=True)


def make(**options: Any) -> tuple[TextOutput, Log, FakeClipboard, FakeKeyboard, FakeFocus]:
    log = Log()
    clipboard = FakeClipboard(
        log, detect=options.pop("detect", True), takes=options.pop("takes", True)
    )
    keyboard = FakeKeyboard(
        log,
        clipboard,
        released=options.pop("released", True),
        target_reads=options.pop("target_reads", True),
    )
    focus = FakeFocus(
        log, options.pop("focused", EDITOR), can_refocus=options.pop("can_refocus", True)
    )
    output = TextOutput(
        clipboard,
        keyboard,
        focus,
        timings=OutputTimings(**options),
        sleep=log.sleep,
        clock=log.clock,
    )
    return output, log, clipboard, keyboard, focus


def test_paste_saves_confirms_waits_pastes_then_restores_after_the_read() -> None:
    output, log, clipboard, keyboard, _ = make(read_margin_s=0.3)
    result = output.deliver("héllo 你好", PasteMethod.PASTE, EDITOR)
    assert result.ok and result.clipboard_restored
    assert keyboard.pasted == [("héllo 你好", False)]  # our text was on it at Ctrl+V
    assert log.steps[:4] == ["snapshot", "put", "keys", "arm"]
    paste_at = float(log.steps[4].split("@")[1])
    restore_at = float(log.steps[5].split("@")[1])
    assert restore_at - paste_at >= 0.3  # the margin after the target read it
    assert clipboard.content == "old"


def test_terminal_gets_ctrl_shift_v() -> None:
    output, _, _, keyboard, _ = make(focused=TERMINAL)
    assert output.deliver("ls", PasteMethod.PASTE, TERMINAL).ok
    assert keyboard.pasted == [("ls", True)]


def test_xterm_gets_primary_and_clipboard_shift_insert_and_both_restored() -> None:
    output, log, clipboard, keyboard, _ = make(focused=XTERM, read_margin_s=0.3)
    primary = FakeClipboard(log)
    primary.content = "old selection"
    keyboard.primary = output.selection = primary
    result = output.deliver("héllo 世界", PasteMethod.PASTE, XTERM)
    assert result.ok and result.clipboard_restored
    # Both selections held the text when Shift+Insert went out, and no Ctrl+(Shift+)V did.
    assert keyboard.pasted == [("héllo 世界", True)]
    assert log.steps[:7] == ["snapshot", "snapshot", "put", "put", "keys", "arm", "arm"]
    assert log.steps[7].startswith("shift+insert@")
    paste_at = float(log.steps[7].split("@")[1])
    restores = [float(step.split("@")[1]) for step in log.steps[8:]]
    assert len(restores) == 2 and min(restores) - paste_at >= 0.3  # after the PRIMARY read
    assert clipboard.content == "old" and primary.content == "old selection"


def test_xterm_without_a_primary_selection_falls_back_to_ctrl_shift_v() -> None:
    output, log, clipboard, keyboard, _ = make(focused=XTERM)
    assert output.selection is None
    assert output.deliver("ls", PasteMethod.PASTE, XTERM).ok
    assert keyboard.pasted == [("ls", True)]
    assert not any(step.startswith("shift+insert") for step in log.steps)
    assert clipboard.content == "old"


def test_focus_moved_away_is_given_back_to_the_recording_window() -> None:
    output, log, _, _, focus = make(focused=TERMINAL)
    assert output.deliver("x", PasteMethod.PASTE, EDITOR).ok
    assert "refocus" in log.steps and focus.focused is EDITOR


def test_window_gone_leaves_the_text_on_the_clipboard() -> None:
    output, _, clipboard, keyboard, _ = make(focused=TERMINAL, can_refocus=False)
    result = output.deliver("x", PasteMethod.PASTE, EDITOR)
    assert not result.ok and "gone" in (result.message or "")
    assert "clipboard" in (result.message or "")
    assert keyboard.pasted == [] and clipboard.content == "x"


def test_keys_still_held_means_no_paste() -> None:
    output, _, clipboard, keyboard, _ = make(released=False)
    result = output.deliver("x", PasteMethod.PASTE, EDITOR)
    assert not result.ok and keyboard.pasted == [] and clipboard.content == "x"


def test_clipboard_that_does_not_take_the_text_is_reported() -> None:
    output, _, _, keyboard, _ = make(takes=False, confirm_timeout_s=0.2)
    result = output.deliver("x", PasteMethod.PASTE, EDITOR)
    assert not result.ok and keyboard.pasted == []


def test_paste_nobody_read_is_not_restored_and_is_told() -> None:
    output, log, clipboard, _, _ = make(target_reads=False, read_wait_s=0.5)
    result = output.deliver("x", PasteMethod.PASTE, EDITOR)
    assert not result.ok and "clipboard" in (result.message or "")
    assert clipboard.content == "x"
    assert not any(step.startswith("restore") for step in log.steps)


def test_without_read_detection_a_fixed_delay_of_at_least_300_ms_is_kept() -> None:
    output, log, clipboard, _, _ = make(detect=None, restore_delay_s=0.6)
    assert output.deliver("x", PasteMethod.PASTE, EDITOR).ok
    paste_at = float(log.steps[4].split("@")[1])
    restore_at = float(log.steps[5].split("@")[1])
    assert restore_at - paste_at == pytest.approx(0.6)
    assert clipboard.content == "old"
    with pytest.raises(ValueError):  # a restore sooner than 300 ms races slow targets
        TextOutput(clipboard, None, None, timings=OutputTimings(restore_delay_s=0.1))


def test_clipboard_changed_by_the_user_after_the_paste_is_not_overwritten() -> None:
    output, _, clipboard, keyboard, _ = make()
    original = keyboard.send_paste

    def paste_then_user_copies(*, terminal: bool) -> None:
        original(terminal=terminal)
        clipboard.content = "user copied this"

    keyboard.send_paste = paste_then_user_copies  # type: ignore[method-assign]
    result = output.deliver("x", PasteMethod.PASTE, EDITOR)
    assert result.ok and not result.clipboard_restored
    assert clipboard.content == "user copied this"


def test_copy_only_and_type_modes() -> None:
    output, log, clipboard, keyboard, _ = make()
    assert output.deliver("copied", PasteMethod.COPY, EDITOR).ok
    assert clipboard.content == "copied" and keyboard.pasted == []
    assert output.deliver("typed", PasteMethod.TYPE, EDITOR).ok
    assert "type" in log.steps


def test_a_failing_keyboard_backend_leaves_the_text_on_the_clipboard() -> None:
    from nanodictate.core.ports import KeyboardOutputUnavailableError

    output, _, clipboard, keyboard, _ = make()

    def broken(*, terminal: bool) -> None:
        raise KeyboardOutputUnavailableError("No display server found")

    keyboard.send_paste = broken  # type: ignore[method-assign]
    result = output.deliver("x", PasteMethod.PASTE, EDITOR)
    assert not result.ok
    assert result.message == "No display server found. It is on the clipboard and in Recent."
    assert clipboard.content == "x"


def test_no_keyboard_backend_copies_and_says_so() -> None:
    log = Log()
    clipboard = FakeClipboard(log)
    output = TextOutput(clipboard, None, None, sleep=log.sleep, clock=log.clock)
    result = output.deliver("x", PasteMethod.PASTE, None)
    assert not result.ok and "Ctrl+V" in (result.message or "") and clipboard.content == "x"


# ---------------------------------------------------------------- Enter and "delete that"


def test_enter_after_a_paste_goes_to_the_target_window() -> None:
    output, log, _, keyboard, focus = make(focused=TERMINAL)
    assert output.deliver("send this", PasteMethod.PASTE, EDITOR).ok
    focus.focused = TERMINAL  # the user clicked elsewhere meanwhile
    assert output.press_enter(EDITOR) is None
    assert keyboard.typed == ["\n"] and focus.focused is EDITOR
    assert log.steps[-2:] == ["keys", "type"]
    # What was sent with Enter cannot be taken back.
    assert output.erase_last(EDITOR) == "There is no dictation the app can still take back."


def test_enter_without_a_keyboard_or_with_keys_held_says_why() -> None:
    log = Log()
    assert TextOutput(FakeClipboard(log), None, None).press_enter(EDITOR) == (
        "Keys cannot be sent on this desktop."
    )
    output, _, _, keyboard, _ = make(released=False)
    assert output.press_enter(EDITOR) == "Keys were still held down, so the text was not pasted."
    assert keyboard.typed == []


def test_delete_that_takes_back_the_last_paste_once_with_one_backspace_a_character() -> None:
    output, log, _, keyboard, _ = make()
    # "é" written as e + a combining accent is one character in the window.
    assert output.deliver("Cafe\u0301 au lait 你好\n", PasteMethod.PASTE, EDITOR).ok
    log.now += 10
    assert output.erase_last(EDITOR) is None
    assert keyboard.backspaces == [16]
    assert log.steps[-2:] == ["keys", "backspace×16"]
    assert output.erase_last(EDITOR) == "There is no dictation the app can still take back."
    assert keyboard.backspaces == [16]


def test_typed_text_can_be_taken_back_too() -> None:
    output, _, _, keyboard, _ = make()
    assert output.deliver("typed", PasteMethod.TYPE, EDITOR).ok
    assert output.erase_last(EDITOR) is None and keyboard.backspaces == [5]


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("nothing pasted yet", "There is no dictation the app can still take back."),
        ("copy only", "There is no dictation the app can still take back."),
        ("paste failed", "There is no dictation the app can still take back."),
        ("other window", "The last dictation went to another window."),
        ("unknown window", "This desktop cannot tell which window the text went to."),
        ("terminal", "Text pasted into a terminal is not taken back."),
        ("too old", "The last dictation is more than 60 seconds old."),
        ("too long", "The last dictation is too long to take back; use the window's Undo."),
    ],
)
def test_delete_that_refuses_where_it_is_not_safe(setup: str, reason: str) -> None:
    target = TERMINAL if setup == "terminal" else EDITOR
    output, log, _, keyboard, _ = make(focused=target, target_reads=setup != "paste failed")
    text = "x" * 2001 if setup == "too long" else "hello"
    if setup != "nothing pasted yet":
        method = PasteMethod.COPY if setup == "copy only" else PasteMethod.PASTE
        output.deliver(text, method, None if setup == "unknown window" else target)
    if setup == "too old":
        log.now += 61
    later_target = XTERM if setup == "other window" else target
    assert output.erase_last(later_target) == reason
    assert keyboard.backspaces == []


def test_delete_that_needs_a_keyboard_that_can_press_backspace() -> None:
    log = Log()
    clipboard = FakeClipboard(log)

    class PasteOnlyKeyboard(FakeKeyboard):
        send_backspaces = None  # a protocol method set to None is one the object lacks

    keyboard = PasteOnlyKeyboard(log, clipboard)
    output = TextOutput(clipboard, keyboard, None, sleep=log.sleep, clock=log.clock)
    assert output.deliver("hello", PasteMethod.PASTE, EDITOR).ok
    assert output.erase_last(EDITOR) == "Backspace cannot be pressed on this desktop."
