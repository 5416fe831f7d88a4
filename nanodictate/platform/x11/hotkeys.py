"""Global push-to-talk hotkeys on X11: XGrabKey on the root window, on our own connection and
thread.

How it works
- One X connection, used only by one thread. `register`/`unregister` post a command to that
  thread (woken through a self-pipe) and wait for its answer, so they are synchronous for the
  caller and python-xlib is never used from two threads.
- Each hotkey is grabbed four times: plain, with CapsLock, with NumLock, with both, so it
  still fires when a lock is on.
- Conflicts: another client's grab makes XGrabKey fail with BadAccess, which arrives
  asynchronously. Every grab carries its own error catcher and `display.sync()` (a round trip)
  runs before `register` answers, so the conflict is known before it returns; the variants that
  did succeed are ungrabbed again.
- Key repeat: XKB's detectable auto-repeat (per-client flag) turns a held key into presses
  only, and a press while the key is already down is ignored. If the server has no XKB the
  classic pair — KeyRelease followed by a KeyPress of the same key with the same timestamp —
  is recognised and dropped.
- The thread waits in select() on the X socket and the self-pipe, with a timeout: no busy loop.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from Xlib import X
from Xlib import error as xerror

from nanodictate.core.hotkeys import Hotkey
from nanodictate.platform.base import (
    HotkeyEventCallback,
    HotkeysUnavailableError,
    HotkeyTakenError,
)
from nanodictate.platform.x11._xlib import (
    Display,
    KeyboardMap,
    ModifierMasks,
    X11ConnectionError,
    keysym_from_name,
    open_display,
    select_xkb_map_notify,
    set_detectable_autorepeat,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_COMMAND_TIMEOUT_S = 5.0
_SELECT_TIMEOUT_S = 0.5
# Without XKB: how long to wait for the KeyPress that follows a repeat's KeyRelease.
_REPEAT_PEEK_S = 0.01


@dataclass(frozen=True)
class _Grab:
    hotkey: Hotkey
    keycodes: tuple[int, ...]
    mask: int
    variants: tuple[tuple[int, int], ...]  # (keycode, modifiers) actually grabbed


class X11HotkeyBackend:
    """`HotkeyBackend` for X11 (python-xlib, XGrabKey)."""

    name = "x11"
    temporary_grabs = True

    def __init__(self, display_name: str | None = None, *, detectable_autorepeat: bool = True):
        self._display_name = display_name
        self._want_detectable = detectable_autorepeat
        self._display: Display | None = None
        self._root: Any = None
        self._on_event: HotkeyEventCallback | None = None
        self._thread: threading.Thread | None = None
        self._commands: list[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = []
        self._commands_lock = threading.Lock()
        self._wake_r = -1
        self._wake_w = -1
        self._pipe_lock = threading.Lock()
        self._started = False
        self._stopping = threading.Event()
        self._failure: str | None = None
        # Owned by the thread once started:
        self._grabs: dict[str, _Grab] = {}
        self._down: dict[int, str] = {}  # keycode → hotkey id currently pressed
        self._masks = ModifierMasks()
        self._pushback: list[Any] = []
        self._xkb_event_type: int | None = None
        #: "xkb-detectable" or "release-press-filter", known after start().
        self.autorepeat_mode = ""

    # --- HotkeyBackend ---------------------------------------------------------------------

    def availability(self) -> tuple[bool, str]:
        if self._failure is not None:
            return False, self._failure
        if self._display is not None:
            return True, ""
        try:
            display = open_display(self._display_name)
        except X11ConnectionError as exc:
            return False, f"Global hotkeys need an X server: {exc}."
        display.close()
        return True, ""

    def start(self, on_event: HotkeyEventCallback) -> None:
        if self._started:
            raise RuntimeError("X11HotkeyBackend.start() can be called once; make a new one")
        self._started = True
        try:
            display = open_display(self._display_name)
        except X11ConnectionError as exc:
            raise HotkeysUnavailableError(f"Global hotkeys need an X server: {exc}.") from exc
        self._display = display
        self._root = display.screen().root
        self._on_event = on_event
        display.set_error_handler(self._unexpected_x_error)
        if self._want_detectable and set_detectable_autorepeat(display):
            self.autorepeat_mode = "xkb-detectable"
            # XKB clients get XkbMapNotify instead of the core MappingNotify.
            self._xkb_event_type = select_xkb_map_notify(display)
            display.sync()
        else:
            self.autorepeat_mode = "release-press-filter"
        self._masks = ModifierMasks.read(display)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name="nanodictate-x11-hotkeys", daemon=True
        )
        self._thread.start()
        log.info("X11 hotkeys started (key repeat: %s)", self.autorepeat_mode)

    def register(self, hotkey_id: str, hotkey: Hotkey) -> None:
        self._call(lambda: self._register(hotkey_id, hotkey))

    def unregister(self, hotkey_id: str) -> None:
        self._call(lambda: self._unregister(hotkey_id))

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wake()
        self._thread = None
        if threading.current_thread() is thread:
            return  # called from on_event: the thread ends (and cleans up) after the callback
        thread.join(timeout=_COMMAND_TIMEOUT_S)
        if thread.is_alive():
            log.warning("the X11 hotkey thread did not stop within %.0f s", _COMMAND_TIMEOUT_S)
        else:
            self._close_pipe()

    def _close_pipe(self) -> None:
        with self._pipe_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1

    # --- Introspection (tests, diagnostics) ---------------------------------------------------

    def registered(self) -> dict[str, Hotkey]:
        return {hotkey_id: grab.hotkey for hotkey_id, grab in self._grabs.items()}

    # --- Calling into the thread -------------------------------------------------------------

    def _call(self, function: Callable[[], T]) -> T:
        thread = self._thread
        if thread is None or not thread.is_alive():
            raise HotkeysUnavailableError(
                self._failure or "The hotkey backend is not running (start() was not called)."
            )
        if threading.current_thread() is thread:
            return function()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._commands_lock:
            self._commands.append((function, future))
        self._wake()
        try:
            return future.result(timeout=_COMMAND_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise HotkeysUnavailableError(
                "The hotkey thread did not answer; hotkeys may not work until a restart."
            ) from None

    def _wake(self) -> None:
        with self._pipe_lock, contextlib.suppress(OSError):  # pipe full: already woken
            if self._wake_w >= 0:
                os.write(self._wake_w, b"x")

    def _run_commands(self) -> None:
        with self._commands_lock:
            commands, self._commands = self._commands, []
        for function, future in commands:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)

    # --- The thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        display = self._display
        assert display is not None
        try:
            x_fd = display.fileno()
            while not self._stopping.is_set():
                self._run_commands()
                self._drain_events()
                readable, _, _ = select.select([x_fd, self._wake_r], [], [], _SELECT_TIMEOUT_S)
                if self._wake_r in readable:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
        except (xerror.ConnectionClosedError, OSError) as exc:
            self._failure = f"The connection to the X server was lost: {exc}"
            log.error("X11 hotkeys stopped: %s", self._failure)
        except Exception:
            self._failure = "The hotkey thread failed; see the log."
            log.exception("X11 hotkey thread failed")
        finally:
            self._shutdown()
            if self._thread is None:  # stop() was called from on_event on this thread
                self._close_pipe()

    def _shutdown(self) -> None:
        display = self._display
        self._display = None
        # Commands that arrived too late get an answer rather than a timeout.
        with self._commands_lock:
            commands, self._commands = self._commands, []
        for _, future in commands:
            if future.set_running_or_notify_cancel():
                future.set_exception(HotkeysUnavailableError("The hotkey backend has stopped."))
        if display is None:
            return
        with contextlib.suppress(Exception):
            for grab in self._grabs.values():
                for keycode, modifiers in grab.variants:
                    self._root.ungrab_key(keycode, modifiers)
            display.sync()
        self._grabs.clear()
        self._down.clear()
        with contextlib.suppress(Exception):
            display.close()
        log.info("X11 hotkeys stopped")

    def _unexpected_x_error(self, error: Any, request: Any) -> None:
        log.warning("X error on the hotkey connection: %s", error)

    # --- Grabs (thread only) ------------------------------------------------------------------

    def _register(self, hotkey_id: str, hotkey: Hotkey) -> None:
        display = self._display
        assert display is not None
        if hotkey_id in self._grabs:
            self._unregister(hotkey_id)
        keysym = keysym_from_name(hotkey.key)
        if not keysym:
            raise ValueError(f"{hotkey.key!r} is not a key this X server knows")
        keymap = KeyboardMap.read(display)
        keycodes = tuple(keymap.keycodes_for(keysym))
        if not keycodes:
            raise ValueError(f"The key {hotkey} is not on this keyboard layout")
        mask = self._masks.mask_for(hotkey.modifiers)
        # One error catcher per request: we must know exactly which variants succeeded.
        attempts: list[tuple[int, int, xerror.CatchError]] = []
        for keycode in keycodes:
            for extra in sorted(set(self._masks.lock_variants)):
                catcher = xerror.CatchError()
                self._root.grab_key(
                    keycode, mask | extra, True, X.GrabModeAsync, X.GrabModeAsync, onerror=catcher
                )
                attempts.append((keycode, mask | extra, catcher))
        display.sync()  # round trip: every grab's error, if any, has arrived now
        granted = tuple((kc, mods) for kc, mods, catcher in attempts if catcher.get_error() is None)
        failed = [
            (kc, mods, catcher.get_error())
            for kc, mods, catcher in attempts
            if catcher.get_error() is not None
        ]
        if failed:
            for keycode, modifiers in granted:
                self._root.ungrab_key(keycode, modifiers)
            display.sync()
            if any(isinstance(err, xerror.BadAccess) for _, _, err in failed):
                log.info("hotkey %s is grabbed by another client", hotkey)
                raise HotkeyTakenError(hotkey)
            raise ValueError(f"The X server refused the hotkey {hotkey}: {failed[0][2]}")
        self._grabs[hotkey_id] = _Grab(hotkey, keycodes, mask, granted)
        log.info("hotkey %r registered: %s", hotkey_id, hotkey)

    def _unregister(self, hotkey_id: str) -> None:
        grab = self._grabs.pop(hotkey_id, None)
        if grab is None:
            return
        for keycode, modifiers in grab.variants:
            self._root.ungrab_key(keycode, modifiers)
        assert self._display is not None
        self._display.sync()
        for keycode, down_id in list(self._down.items()):
            if down_id == hotkey_id:
                del self._down[keycode]
        log.info("hotkey %r unregistered", hotkey_id)

    def _regrab_changed(self, *, everything: bool = False) -> None:
        """After a keyboard mapping change, grab again the hotkeys whose keycodes or modifier
        bits moved (a layout switch). Changes that do not touch them — like the spare keycode
        that typing non-ASCII text maps for a moment — leave the grabs, and a held key, alone.
        """
        assert self._display is not None
        keymap = KeyboardMap.read(self._display)
        for hotkey_id, grab in list(self._grabs.items()):
            keycodes = tuple(keymap.keycodes_for(keysym_from_name(grab.hotkey.key)))
            if not everything and keycodes == grab.keycodes:
                continue
            try:
                self._unregister(hotkey_id)
                self._register(hotkey_id, grab.hotkey)
            except Exception as exc:
                log.warning("hotkey %s lost after a keyboard mapping change: %s", grab.hotkey, exc)

    # --- Events (thread only) -----------------------------------------------------------------

    def _next_queued(self) -> Any | None:
        display = self._display
        assert display is not None
        if self._pushback:
            return self._pushback.pop(0)
        if display.pending_events():
            return display.next_event()
        return None

    def _drain_events(self) -> None:
        while True:
            event = self._next_queued()
            if event is None:
                return
            self._handle(event)

    def _handle(self, event: Any) -> None:
        if event.type == X.KeyPress:
            self._on_press(event)
        elif event.type == X.KeyRelease:
            if self.autorepeat_mode != "xkb-detectable" and self._is_repeat_release(event):
                return
            self._on_release(event)
        elif event.type == X.MappingNotify or event.type == self._xkb_event_type:
            assert self._display is not None
            if event.type == X.MappingNotify:
                self._display.refresh_keyboard_mapping(event)
                if event.request not in (X.MappingKeyboard, X.MappingModifier):
                    return
            old_masks, self._masks = self._masks, ModifierMasks.read(self._display)
            self._regrab_changed(everything=old_masks != self._masks)

    def _is_repeat_release(self, release: Any) -> bool:
        """Without XKB, a repeat is KeyRelease + KeyPress with the same keycode and time."""
        display = self._display
        assert display is not None
        following = self._next_queued()
        if following is None:
            deadline = time.monotonic() + _REPEAT_PEEK_S
            while following is None and time.monotonic() < deadline:
                select.select([display.fileno()], [], [], _REPEAT_PEEK_S)
                following = self._next_queued()
        if following is None:
            return False
        if (
            following.type == X.KeyPress
            and following.detail == release.detail
            and following.time == release.time
        ):
            return True  # drop both: the key is still held
        self._pushback.insert(0, following)
        return False

    def _on_press(self, event: Any) -> None:
        keycode = int(event.detail)
        if keycode in self._down:
            return  # key repeat, or a second press while held
        state = int(event.state) & self._masks.relevant
        for hotkey_id, grab in self._grabs.items():
            if keycode in grab.keycodes and grab.mask == state:
                self._down[keycode] = hotkey_id
                self._emit(hotkey_id, True)
                return

    def _on_release(self, event: Any) -> None:
        hotkey_id = self._down.pop(int(event.detail), None)
        if hotkey_id is not None:
            self._emit(hotkey_id, False)

    def _emit(self, hotkey_id: str, pressed: bool) -> None:
        callback = self._on_event
        if callback is None:
            return
        try:
            callback(hotkey_id, pressed)
        except Exception:
            log.exception("hotkey callback failed for %r (pressed=%s)", hotkey_id, pressed)
