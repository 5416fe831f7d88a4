"""Synthetic keystrokes on X11 through the XTEST extension (what xdotool uses).

The connection is opened on first use and guarded by a lock, so any one thread at a time may
call in (the app calls from its output worker).

Typing (`type_text`) limits: characters on the current layout's first group are typed with
their real key (Shift added as needed, CapsLock taken into account). Other characters —
most non-ASCII text — are typed by mapping them onto a spare keycode for a moment, as xdotool
does; toolkits must reload the keymap on MappingNotify to see them, and input methods, some
terminals and some apps garble or drop them. Paste (`send_paste`) has none of these problems
and is the default.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from Xlib import XK, X
from Xlib import error as xerror
from Xlib.ext import xtest

from nanodictate.core.ports import KeyboardOutputUnavailableError
from nanodictate.platform.x11._xlib import (
    Display,
    KeyboardMap,
    X11ConnectionError,
    keys_down,
    keysym_for_char,
    open_display,
)

log = logging.getLogger(__name__)

_POLL_S = 0.005
# After typing through temporarily mapped keycodes, keep the mapping this long so the target
# app has processed the keys before they change meaning again.
_REMAP_SETTLE_S = 0.05


def _log_x_error(error: Any, request: Any) -> None:
    log.debug("X error on the output connection: %s", error)


class X11Connection:
    """One lazily opened python-xlib connection shared by keyboard output and focus tracking."""

    def __init__(self, display_name: str | None = None) -> None:
        self._display_name = display_name
        self._display: Display | None = None
        self.lock = threading.RLock()

    @contextlib.contextmanager
    def use(self) -> Iterator[Display]:
        with self.lock:
            if self._display is None:
                self._display = open_display(self._display_name)
                self._display.set_error_handler(_log_x_error)
            try:
                yield self._display
            except (OSError, xerror.ConnectionClosedError) as exc:  # server gone: reconnect later
                self._drop()
                raise X11ConnectionError(f"lost the X server connection: {exc}") from exc

    def availability(self) -> tuple[bool, str]:
        try:
            with self.use():
                return True, ""
        except X11ConnectionError as exc:
            return False, str(exc)

    def _drop(self) -> None:
        display, self._display = self._display, None
        if display is not None:
            with contextlib.suppress(Exception):
                display.close()

    def close(self) -> None:
        with self.lock:
            self._drop()


class X11KeyboardOutput:
    """`KeyboardOutput` for X11: XQueryKeymap to wait, XTEST to press keys."""

    name = "x11-xtest"

    def __init__(self, connection: X11Connection | None = None) -> None:
        self._connection = connection or X11Connection()

    def availability(self) -> tuple[bool, str]:
        ok, reason = self._connection.availability()
        if not ok:
            return False, f"Cannot send keystrokes: {reason}."
        with self._connection.use() as display:
            if not display.has_extension("XTEST"):
                return False, "The X server has no XTEST extension, so keystrokes cannot be sent."
        return True, ""

    def close(self) -> None:
        self._connection.close()

    def keys_down(self) -> list[int]:
        with self._connection.use() as display:
            return keys_down(display)

    def wait_until_keys_released(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if not self.keys_down():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)

    def send_paste(self, *, terminal: bool) -> None:
        held = [XK.XK_Control_L, XK.XK_Shift_L] if terminal else [XK.XK_Control_L]
        self._press_chord(held, XK.XK_v)
        log.debug("sent %s", "Ctrl+Shift+V" if terminal else "Ctrl+V")

    def send_primary_paste(self) -> None:
        """Shift+Insert: xterm and the rxvt family paste the PRIMARY selection with it."""
        self._press_chord([XK.XK_Shift_L], XK.XK_Insert)
        log.debug("sent Shift+Insert")

    def send_backspaces(self, count: int) -> None:
        """Backspace ``count`` times: "delete that" takes back the previous dictation."""
        with self._connection.use() as display:
            self._require_xtest(display)
            keycode = self._keycode(KeyboardMap.read(display), int(XK.XK_BackSpace))
            for _ in range(count):
                xtest.fake_input(display, X.KeyPress, keycode)
                xtest.fake_input(display, X.KeyRelease, keycode)
            display.sync()

    def _press_chord(self, held_keysyms: list[int], keysym: int) -> None:
        with self._connection.use() as display:
            self._require_xtest(display)
            keymap = KeyboardMap.read(display)
            held = [self._keycode(keymap, int(held_keysym)) for held_keysym in held_keysyms]
            with self._temporary_keycodes(display, keymap, [int(keysym)]) as codes:
                key_code = codes[int(keysym)][0]
                for code in held:
                    xtest.fake_input(display, X.KeyPress, code)
                xtest.fake_input(display, X.KeyPress, key_code)
                xtest.fake_input(display, X.KeyRelease, key_code)
                for code in reversed(held):
                    xtest.fake_input(display, X.KeyRelease, code)
                display.sync()

    def type_text(self, text: str) -> None:
        if not text:
            return
        with self._connection.use() as display:
            self._require_xtest(display)
            keymap = KeyboardMap.read(display)
            shift = self._keycode(keymap, int(XK.XK_Shift_L))
            lock_on = bool(display.screen().root.query_pointer().mask & X.LockMask)
            keysyms = [keysym_for_char(char) for char in text]
            # Characters without a key get spare keycodes; if there are more distinct ones
            # than spares, the text is typed in chunks, each with its own mapping.
            spares = max(1, len(keymap.spare_keycodes()))
            start = 0
            while start < len(keysyms):
                end = start
                unmapped: set[int] = set()
                while end < len(keysyms):
                    keysym = keysyms[end]
                    if not keymap.lookup(keysym) and keysym not in unmapped:
                        if len(unmapped) >= spares:
                            break
                        unmapped.add(keysym)
                    end += 1
                chunk = keysyms[start:end]
                with self._temporary_keycodes(display, keymap, chunk) as codes:
                    for keysym, char in zip(chunk, text[start:end], strict=True):
                        keycode, shifted = codes[keysym]
                        if lock_on and char.isalpha() and char.lower() != char.upper():
                            shifted = not shifted  # CapsLock inverts letters' case
                        if shifted:
                            xtest.fake_input(display, X.KeyPress, shift)
                        xtest.fake_input(display, X.KeyPress, keycode)
                        xtest.fake_input(display, X.KeyRelease, keycode)
                        if shifted:
                            xtest.fake_input(display, X.KeyRelease, shift)
                        display.sync()
                start = end

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _require_xtest(display: Display) -> None:
        if not display.has_extension("XTEST"):
            raise KeyboardOutputUnavailableError(
                "The X server has no XTEST extension, so keystrokes cannot be sent."
            )

    @staticmethod
    def _keycode(keymap: KeyboardMap, keysym: int) -> int:
        found = keymap.lookup(keysym)
        if not found:
            raise KeyboardOutputUnavailableError(
                f"The keyboard layout has no key for {XK.keysym_to_string(keysym)!r}."
            )
        return found[0][0]

    @contextlib.contextmanager
    def _temporary_keycodes(
        self, display: Display, keymap: KeyboardMap, keysyms: list[int]
    ) -> Iterator[dict[int, tuple[int, bool]]]:
        """keysym → (keycode, needs Shift); keysyms not on the layout are mapped onto spare
        keycodes for the duration of the block and unmapped afterwards."""
        codes: dict[int, tuple[int, bool]] = {}
        missing: list[int] = []
        for keysym in dict.fromkeys(keysyms):
            found = keymap.lookup(keysym)
            if found:
                keycode, index = found[0]
                codes[keysym] = (keycode, index == 1)
            else:
                missing.append(keysym)
        spares = keymap.spare_keycodes()
        if len(missing) > len(spares):
            raise KeyboardOutputUnavailableError(
                "Not enough free keycodes to type these characters; use paste instead."
            )
        mapped: list[int] = []
        try:
            for keysym, keycode in zip(missing, spares, strict=False):
                display.change_keyboard_mapping(keycode, [(keysym, keysym)])
                mapped.append(keycode)
                codes[keysym] = (keycode, False)
            if mapped:
                display.sync()
            yield codes
        finally:
            if mapped:
                display.sync()
                time.sleep(_REMAP_SETTLE_S)
                for keycode in mapped:
                    display.change_keyboard_mapping(keycode, [(X.NoSymbol, X.NoSymbol)])
                display.sync()
