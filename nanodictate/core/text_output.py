"""Put dictated text into the window that had focus when the recording started.

Three methods: paste (clipboard + Ctrl+V, the default: exact for every script and layout),
type (simulated key presses: a fallback, garbles non-ASCII on some setups) and copy only.

Paste, step by step, and why:
1. Save the whole clipboard (every format, images too), so the user's clipboard is not
   clobbered (Handy 921, 1356).
2. Put the text on it and read it back until it matches (bounded): the clipboard may change
   owner asynchronously, and a Ctrl+V sent before that pastes the old content.
3. Bring the target window back if focus moved, and wait until no key is down: a still-held
   hotkey modifier would turn Ctrl+V into Ctrl+Alt+V, or route it to our own grab.
4. Send Ctrl+V (Ctrl+Shift+V in a terminal, where Ctrl+V is a control character). Terminals
   of the xterm family bind neither: they paste the PRIMARY selection on Shift+Insert. For
   those the text goes on PRIMARY as well (steps 1, 2 and 5 cover both selections) and
   Shift+Insert is sent, when the platform offers a PRIMARY selection and that key.
5. Restore the saved clipboard only after the paste landed. The target reads the clipboard
   asynchronously *after* it handles the key (≈7–16 ms in a test X server, hundreds of ms in
   Electron apps or a loaded machine); restoring earlier makes it paste the old content
   (Handy 502). When the clipboard can tell us it was read we wait for that, then a margin
   (apps may ask for several formats one after another); otherwise we wait
   ``restore_delay_s`` (≥ 300 ms, default 600 ms — the range OpenWhispr settled on). The
   clipboard is restored only if it still holds our text: anything the user copied in the
   meantime wins.

Two keys the text steps (`core.text_steps`) ask for, after or before a paste: Enter
(auto-submit, typed as a line break, which every keyboard backend maps to Return) and
Backspace to take back the previous dictation ("delete that"), only under the rules of
`core.text_steps.erase` and only with a keyboard that is also a `BackspaceKeyboard`.

On any failure the text stays on the clipboard (it is in the history already) and the
result says what the user should know. The clipboard, keyboard, focus and window it works
with are the ports of `core.ports`.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from nanodictate.core.errors import NanodictateError
from nanodictate.core.ports import (
    ClipboardPort,
    FocusTracker,
    KeyboardOutput,
    PrimaryPasteKeyboard,
    WindowInfo,
)
from nanodictate.core.text_steps.erase import LastOutput, characters_to_erase, erase_refusal

log = logging.getLogger(__name__)

MIN_RESTORE_DELAY_S = 0.3


class PasteMethod(enum.StrEnum):
    PASTE = "paste"
    TYPE = "type"
    COPY = "copy"


@dataclass(frozen=True)
class OutputResult:
    ok: bool
    method: PasteMethod
    # For the user when something went wrong (the text is then on the clipboard).
    message: str | None = None
    clipboard_restored: bool = False
    # Clock time the text reached the window (paste read / keys sent), before the restore.
    landed_at: float | None = None


@runtime_checkable
class BackspaceKeyboard(Protocol):
    """A keyboard backend that can press Backspace (to take back the previous dictation).

    Optional, like `core.ports.PrimaryPasteKeyboard`: checked at run time."""

    def send_backspaces(self, count: int) -> None: ...


class OutputError(Exception):
    """A step of the output failed; the message is for the user."""


@dataclass
class OutputTimings:
    confirm_timeout_s: float = 1.0
    keys_released_timeout_s: float = 2.0
    read_wait_s: float = 2.0  # how long to wait for the target to read the clipboard
    read_margin_s: float = 0.3  # after the first read, for further formats
    restore_delay_s: float = 0.6  # when reads cannot be detected
    poll_s: float = 0.01


class TextOutput:
    """Delivers text; blocking (runs on a worker thread, never the GUI thread)."""

    def __init__(
        self,
        clipboard: ClipboardPort,
        keyboard: KeyboardOutput | None,
        focus: FocusTracker | None,
        *,
        selection: ClipboardPort | None = None,
        timings: OutputTimings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clipboard = clipboard
        self.keyboard = keyboard
        self.focus = focus
        # X11's PRIMARY selection, where the desktop has one (for xterm-like terminals).
        self.selection = selection
        self.timings = timings or OutputTimings()
        if self.timings.restore_delay_s < MIN_RESTORE_DELAY_S:
            raise ValueError(f"restore_delay_s must be at least {MIN_RESTORE_DELAY_S} s")
        self._sleep = sleep
        self._clock = clock
        # What the last delivery put into a window, while "delete that" may still take it back.
        self._last: LastOutput | None = None

    def deliver(self, text: str, method: PasteMethod, target: WindowInfo | None) -> OutputResult:
        result = self._deliver(text, method, target)
        landed = result.ok and method is not PasteMethod.COPY
        self._last = (
            LastOutput(target, characters_to_erase(text), result.landed_at or self._clock())
            if landed
            else None
        )
        return result

    def erase_last(self, target: WindowInfo | None) -> str | None:
        """Take back the last text delivered, with Backspace, if it is still safe to (see
        `core.text_steps.erase`); once only. None when done, else why not, for the user."""
        last, self._last = self._last, None
        refusal = erase_refusal(last, target, self._clock())
        if refusal is not None or last is None:
            return refusal
        if not isinstance(self.keyboard, BackspaceKeyboard):
            return "Backspace cannot be pressed on this desktop."
        try:
            self._focus_target(target)
            self._wait_keys()
            self.keyboard.send_backspaces(last.characters)
        except Exception as error:
            log.warning("Taking back the last dictation failed: %s", error)
            return str(error) if isinstance(error, OutputError) else "Backspace could not be sent."
        return None

    def press_enter(self, target: WindowInfo | None) -> str | None:
        """Enter in `target`, after a paste (auto-submit). None when sent, else why not."""
        if self.keyboard is None:
            return "Keys cannot be sent on this desktop."
        try:
            self._focus_target(target)
            self._wait_keys()
            self.keyboard.type_text("\n")
        except Exception as error:
            log.warning("Pressing Enter after the paste failed: %s", error)
            return str(error) if isinstance(error, OutputError) else "Enter could not be sent."
        self._last = None  # sent: no longer in the window to take back
        return None

    def _deliver(self, text: str, method: PasteMethod, target: WindowInfo | None) -> OutputResult:
        try:
            if method is PasteMethod.COPY:
                self._copy(text)
                return OutputResult(True, method, landed_at=self._clock())
            if self.keyboard is None:
                self._copy(text)
                return OutputResult(
                    False,
                    method,
                    "Cannot send keys on this desktop, so the text was copied: paste it with "
                    "Ctrl+V.",
                )
            if method is PasteMethod.TYPE:
                return self._type(text, target)
            return self._paste(text, target)
        except Exception as error:
            log.warning("Text output (%s) failed: %s", method.value, error)
            # Our own and the platform's typed errors carry a message written for the user.
            message = (
                str(error)
                if isinstance(error, OutputError | NanodictateError)
                else "The text could not be pasted."
            )
            if not message.endswith((".", "!", "?")):
                message += "."
            try:
                self._copy(text)
                message += " It is on the clipboard and in Recent."
            except Exception:
                log.exception("Copying the text after a failed output failed too")
                message += " It is in Recent (tray menu)."
            return OutputResult(False, method, message)

    # ------------------------------------------------------------------ methods

    def _copy(self, text: str) -> None:
        self.clipboard.put_text(text)
        if not self._confirm(text, self.clipboard):
            raise OutputError("The clipboard did not take the text.")

    def _type(self, text: str, target: WindowInfo | None) -> OutputResult:
        assert self.keyboard is not None
        self._focus_target(target)
        self._wait_keys()
        self.keyboard.type_text(text)
        return OutputResult(True, PasteMethod.TYPE, landed_at=self._clock())

    def _paste(self, text: str, target: WindowInfo | None) -> OutputResult:
        assert self.keyboard is not None
        primary_keys = self._primary_paste_keys(target)
        # CLIPBOARD always; PRIMARY too for xterm-like targets. CLIPBOARD is set for them as
        # well because an xterm configured with selectToClipboard pastes CLIPBOARD on the
        # same Shift+Insert.
        ports = [self.clipboard]
        if primary_keys is not None and self.selection is not None:
            ports.append(self.selection)
        saved = [port.snapshot() for port in ports]
        for port in ports:
            port.put_text(text)
        if not all(self._confirm(text, port) for port in ports):
            raise OutputError("The clipboard did not take the text, so nothing was pasted.")
        self._focus_target(target)
        self._wait_keys()
        for port in ports:
            port.arm_read_detection()
        if primary_keys is not None:
            primary_keys.send_primary_paste()
        else:
            self.keyboard.send_paste(terminal=bool(target is not None and target.is_terminal))
        landed, landed_at = self._wait_for_read(ports)
        if landed is False:
            # Nobody asked for the text: the paste probably went nowhere (Handy 522). Keep
            # the text on the clipboard instead of restoring, and say so.
            return OutputResult(
                False,
                PasteMethod.PASTE,
                "The paste may not have arrived. The text is on the clipboard and in Recent.",
            )
        restored = [
            self._restore_if_ours(port, snapshot, text)
            for port, snapshot in zip(ports, saved, strict=True)
        ]
        return OutputResult(
            True, PasteMethod.PASTE, clipboard_restored=all(restored), landed_at=landed_at
        )

    def _primary_paste_keys(self, target: WindowInfo | None) -> PrimaryPasteKeyboard | None:
        """The keyboard, when `target` pastes PRIMARY and both PRIMARY and its key exist."""
        if target is None or not target.pastes_primary:
            return None
        if self.selection is None or not isinstance(self.keyboard, PrimaryPasteKeyboard):
            log.info("No PRIMARY selection or Shift+Insert here; sending Ctrl+Shift+V instead")
            return None
        return self.keyboard

    # ------------------------------------------------------------------ steps

    def _confirm(self, text: str, port: ClipboardPort) -> bool:
        deadline = self._clock() + self.timings.confirm_timeout_s
        while True:
            if port.read_text() == text:
                return True
            if self._clock() >= deadline:
                return False
            self._sleep(self.timings.poll_s)

    def _focus_target(self, target: WindowInfo | None) -> None:
        if target is None or self.focus is None:
            return
        current = self.focus.focused_window()
        if current is not None and current.id == target.id:
            return
        if not self.focus.refocus(target):
            raise OutputError("The window you dictated into is gone or cannot be focused.")

    def _wait_keys(self) -> None:
        assert self.keyboard is not None
        if not self.keyboard.wait_until_keys_released(self.timings.keys_released_timeout_s):
            raise OutputError("Keys were still held down, so the text was not pasted.")

    def _wait_for_read(self, ports: list[ClipboardPort]) -> tuple[bool | None, float]:
        """(True once the target read any of `ports` (+ margin), False if it never did, None
        if reads cannot be seen (then a fixed delay was waited); when it landed)."""
        sent = self._clock()
        deadline = sent + self.timings.read_wait_s
        while True:
            reads = [port.was_read() for port in ports]
            if True in reads:
                landed = self._clock()
                self._sleep(self.timings.read_margin_s)
                return True, landed
            if None in reads:
                self._sleep(self.timings.restore_delay_s)
                return None, sent
            if self._clock() >= deadline:
                return False, sent
            self._sleep(self.timings.poll_s)

    @staticmethod
    def _restore_if_ours(port: ClipboardPort, saved: object, text: str) -> bool:
        if port.read_text() != text:
            log.info("The clipboard changed after the paste; not restoring the old content")
            return False
        port.restore(saved)
        return True
