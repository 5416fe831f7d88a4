"""The X11 platform backends against a real X server (Xvfb), driven by real XTest key events
(xdotool), with a real Qt text window to paste into.

Run with `-s` to see the measured hotkey latencies.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from desktop.harness import DesktopSession
from Xlib import XK, X, Xatom
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.ext import xtest

from nanodictate.core.hotkeys import Hotkey
from nanodictate.core.ports import (
    KeyboardOutputUnavailableError,
    WindowInfo,
    normal_process_name,
)
from nanodictate.platform import select_backends
from nanodictate.platform.base import HotkeysUnavailableError, HotkeyTakenError
from nanodictate.platform.wayland import WAYLAND_HOTKEY_REASON
from nanodictate.platform.x11 import X11FocusTracker, X11HotkeyBackend, X11KeyboardOutput
from nanodictate.platform.x11.terminals import (
    PRIMARY_PASTE_WINDOW_CLASSES,
    TERMINAL_WINDOW_CLASSES,
    is_terminal_class,
    pastes_primary_class,
)

pytestmark = pytest.mark.desktop

PASTE_TEXT = "你好世界 é à ü"


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def desk(monkeypatch: pytest.MonkeyPatch) -> Iterator[DesktopSession]:
    """A private X server (no tray, no audio), with this process's DISPLAY pointing at it."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb); X11 tests need an X server")
    with DesktopSession(tray=False, audio=False, watchdog_s=60) as session:
        session.apply_env(monkeypatch)
        yield session
        assert not session.watchdog_fired


class Events:
    """What a hotkey backend reported: (hotkey_id, pressed, perf_counter at delivery)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bool, float]] = []
        self._cond = threading.Condition()

    def __call__(self, hotkey_id: str, pressed: bool) -> None:
        with self._cond:
            self.items.append((hotkey_id, pressed, time.perf_counter()))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 3.0) -> list[tuple[str, bool]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.items) >= count, timeout)
            return [(hotkey_id, pressed) for hotkey_id, pressed, _ in self.items]

    def settle(self, seconds: float = 0.3) -> list[tuple[str, bool]]:
        """Everything reported, after `seconds` of extra time for stray events."""
        time.sleep(seconds)
        with self._cond:
            return [(hotkey_id, pressed) for hotkey_id, pressed, _ in self.items]


@pytest.fixture
def hotkeys(desk: DesktopSession) -> Iterator[tuple[X11HotkeyBackend, Events]]:
    backend = X11HotkeyBackend()
    events = Events()
    backend.start(events)
    yield backend, events
    backend.stop()


def _grab_results(display_name: str, keysym_name: str, masks: list[int]) -> dict[int, bool]:
    """Try XGrabKey on `masks` from a fresh client: mask → True if granted (then ungrabbed)."""
    display = xdisplay.Display(display_name)
    try:
        root = display.screen().root
        keycode = display.keysym_to_keycode(XK.string_to_keysym(keysym_name))
        catchers = {}
        for mask in masks:
            catchers[mask] = xerror.CatchError(xerror.BadAccess)
            root.grab_key(keycode, mask, True, X.GrabModeAsync, X.GrabModeAsync,
                          onerror=catchers[mask])  # fmt: skip
        display.sync()
        granted = {mask: catcher.get_error() is None for mask, catcher in catchers.items()}
        for mask, ok in granted.items():
            if ok:
                root.ungrab_key(keycode, mask)
        display.sync()
        return granted
    finally:
        display.close()


_BLOCKER = r"""
import sys
from Xlib import X, XK, display
d = display.Display()
root = d.screen().root
code = d.keysym_to_keycode(XK.string_to_keysym(sys.argv[1]))
root.grab_key(code, int(sys.argv[2]), True, X.GrabModeAsync, X.GrabModeAsync)
d.sync()
print("grabbed", flush=True)
sys.stdin.read()   # hold the grab until the harness closes our stdin or kills us
"""


# --- Terminals (no X needed) -------------------------------------------------------------------


def test_terminal_classes() -> None:
    assert is_terminal_class(("xterm", "XTerm"))
    assert is_terminal_class(("gnome-terminal-server", "Gnome-terminal"))
    assert is_terminal_class(("", "Alacritty"))
    assert not is_terminal_class(("code", "Code"))
    assert not is_terminal_class(())


def test_only_xterm_like_terminals_paste_primary() -> None:
    for names in [("xterm", "XTerm"), ("uxterm", "UXTerm"), ("urxvt", "URxvt"), ("", "Eterm")]:
        assert pastes_primary_class(names) and is_terminal_class(names)
    # These bind Ctrl+Shift+V to a CLIPBOARD paste.
    for names in [
        ("st-256color", "st-256color"),
        ("gnome-terminal-server", "Gnome-terminal"),
        ("konsole", "konsole"),
        ("Alacritty", "Alacritty"),
        ("kitty", "kitty"),
    ]:
        assert not pastes_primary_class(names) and is_terminal_class(names)
    assert PRIMARY_PASTE_WINDOW_CLASSES <= TERMINAL_WINDOW_CLASSES


# --- Hotkeys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("combo", "detectable"),
    [("F9", True), ("ctrl+alt+space", False)],
    ids=["F9-xkb-detectable-repeat", "ctrl+alt+space-release-press-filter"],
)
def test_held_hotkey_is_one_press_and_one_release(
    desk: DesktopSession, combo: str, detectable: bool
) -> None:
    # The server really repeats held keys (Xvfb: after 660 ms at 25 Hz), or this proves nothing.
    probe = xdisplay.Display(desk.display)
    assert probe.get_keyboard_control().global_auto_repeat == X.AutoRepeatModeOn
    probe.close()

    backend = X11HotkeyBackend(detectable_autorepeat=detectable)
    events = Events()
    backend.start(events)
    try:
        assert backend.autorepeat_mode == (
            "xkb-detectable" if detectable else "release-press-filter"
        )
        backend.register("ptt", Hotkey.parse(combo))
        desk.hold(combo, 1.5)
        assert events.wait_for(2) == [("ptt", True), ("ptt", False)]
        assert events.settle() == [("ptt", True), ("ptt", False)]
        held = events.items[1][2] - events.items[0][2]
        print(f"\n{combo} ({backend.autorepeat_mode}): held 1.5 s → 1 press, 1 release, "
              f"{held:.3f} s apart")  # fmt: skip
        assert 1.3 < held < 2.5
    finally:
        backend.stop()


@pytest.mark.parametrize("locks", [("Caps_Lock",), ("Num_Lock",), ("Caps_Lock", "Num_Lock")])
def test_hotkey_fires_with_capslock_and_numlock_on(
    desk: DesktopSession, hotkeys: tuple[X11HotkeyBackend, Events], locks: tuple[str, ...]
) -> None:
    backend, events = hotkeys
    backend.register("ptt", Hotkey.parse("ctrl+alt+space"))
    for lock in locks:
        desk.xdotool("key", lock)  # toggles the lock on
    probe = xdisplay.Display(desk.display)
    state = probe.screen().root.query_pointer().mask
    probe.close()
    assert bool(state & X.LockMask) == ("Caps_Lock" in locks)
    assert bool(state & X.Mod2Mask) == ("Num_Lock" in locks)

    desk.xdotool("key", "ctrl+alt+space")
    assert events.wait_for(2) == [("ptt", True), ("ptt", False)]


def test_two_hotkeys_and_unregister(
    desk: DesktopSession, hotkeys: tuple[X11HotkeyBackend, Events]
) -> None:
    backend, events = hotkeys
    backend.register("ptt", Hotkey.parse("F9"))
    backend.register("toggle", Hotkey.parse("ctrl+F9"))
    desk.xdotool("key", "ctrl+F9")
    desk.xdotool("key", "F9")
    assert events.wait_for(4) == [
        ("toggle", True), ("toggle", False), ("ptt", True), ("ptt", False),
    ]  # fmt: skip
    backend.unregister("toggle")
    assert set(backend.registered()) == {"ptt"}
    desk.xdotool("key", "ctrl+F9")
    assert events.settle() == events.wait_for(4)  # nothing more
    # Released for real: another client can grab it now.
    assert _grab_results(desk.display, "F9", [X.ControlMask]) == {X.ControlMask: True}


def test_hotkey_held_by_another_client_raises_and_leaves_no_partial_grab(
    desk: DesktopSession, hotkeys: tuple[X11HotkeyBackend, Events]
) -> None:
    backend, events = hotkeys
    ctrl_alt = X.ControlMask | X.Mod1Mask
    blocker = desk.popen(
        [sys.executable, "-c", _BLOCKER, "space", str(ctrl_alt)],
        name="grab-blocker", stdin=subprocess.PIPE, stdout=desk.root / "blocker.out",
    )  # fmt: skip
    out = desk.root / "blocker.out"
    deadline = time.monotonic() + 10
    while "grabbed" not in out.read_text() and time.monotonic() < deadline:
        assert blocker.poll() is None, desk.log_tail("grab-blocker")
        time.sleep(0.02)

    started = time.perf_counter()
    with pytest.raises(HotkeyTakenError) as caught:
        backend.register("ptt", Hotkey.parse("ctrl+alt+space"))
    took = time.perf_counter() - started
    message = str(caught.value)
    assert "Ctrl+Alt+Space" in message and "already used by another program" in message
    assert caught.value.hotkey == Hotkey.parse("ctrl+alt+space")
    print(f"\nconflict reported synchronously by register() in {took * 1000:.1f} ms")
    assert backend.registered() == {}

    # Our Lock/NumLock variants were granted and then released again: a third client gets
    # them; only the blocker's own combination stays taken.
    lock, num = X.LockMask, X.Mod2Mask
    variants = [ctrl_alt, ctrl_alt | lock, ctrl_alt | num, ctrl_alt | lock | num]
    assert _grab_results(desk.display, "space", variants) == {
        ctrl_alt: False, ctrl_alt | lock: True, ctrl_alt | num: True,
        ctrl_alt | lock | num: True,
    }  # fmt: skip

    # The backend is still healthy: a free hotkey registers and fires. (Not Ctrl+Alt+F1…F12:
    # the X server itself consumes those as "switch to virtual terminal".)
    backend.register("ptt", Hotkey.parse("ctrl+shift+F10"))
    desk.xdotool("key", "ctrl+shift+F10")
    assert events.wait_for(2) == [("ptt", True), ("ptt", False)]
    assert blocker.stdin is not None
    blocker.stdin.close()


def test_unknown_key_and_unstarted_backend(desk: DesktopSession) -> None:
    backend = X11HotkeyBackend()
    with pytest.raises(HotkeysUnavailableError, match="not running"):
        backend.register("ptt", Hotkey.parse("F9"))
    backend.start(Events())
    try:
        with pytest.raises(ValueError, match="not a key this X server knows"):
            backend.register("ptt", Hotkey("NoSuchKeyName"))
    finally:
        backend.stop()
        backend.stop()  # twice is fine


def test_stop_releases_grabs_and_joins_thread(desk: DesktopSession) -> None:
    backend = X11HotkeyBackend()
    backend.start(Events())
    backend.register("ptt", Hotkey.parse("F9"))
    assert _grab_results(desk.display, "F9", [0]) == {0: False}
    thread_names = {t.name for t in threading.enumerate()}
    assert "nanodictate-x11-hotkeys" in thread_names
    backend.stop()
    assert "nanodictate-x11-hotkeys" not in {t.name for t in threading.enumerate()}
    assert _grab_results(desk.display, "F9", [0]) == {0: True}


def test_keymap_change_while_held_loses_no_release(
    desk: DesktopSession, hotkeys: tuple[X11HotkeyBackend, Events]
) -> None:
    """Typing non-ASCII maps a spare keycode for a moment (MappingNotify): the grabs stay, and
    the held hotkey still reports its release."""
    backend, events = hotkeys
    backend.register("ptt", Hotkey.parse("F9"))
    desk.xdotool("keydown", "F9")
    assert events.wait_for(1) == [("ptt", True)]
    keyboard = X11KeyboardOutput()
    keyboard.type_text("é")  # goes to us (the grab is active), but changes the keymap twice
    keyboard.close()
    desk.xdotool("keyup", "F9")
    assert events.wait_for(2) == [("ptt", True), ("ptt", False)]
    desk.xdotool("key", "F9")
    assert events.wait_for(4)[2:] == [("ptt", True), ("ptt", False)]


def test_hotkey_follows_a_keyboard_mapping_change(
    desk: DesktopSession, hotkeys: tuple[X11HotkeyBackend, Events]
) -> None:
    """A layout change moves F9 to another keycode: the grab moves with it."""
    backend, events = hotkeys
    backend.register("ptt", Hotkey.parse("F9"))
    other = xdisplay.Display(desk.display)
    f9 = XK.string_to_keysym("F9")
    old_code = other.keysym_to_keycode(f9)
    first, last = other.display.info.min_keycode, other.display.info.max_keycode
    rows = other.get_keyboard_mapping(first, last - first + 1)
    new_code = next(first + i for i, row in enumerate(rows) if not any(row))  # a spare one
    width = len(rows[0])
    other.change_keyboard_mapping(new_code, [(f9,) * width])
    other.change_keyboard_mapping(old_code, [(X.NoSymbol,) * width])
    other.sync()
    deadline = time.monotonic() + 3
    while not events.items and time.monotonic() < deadline:
        xtest.fake_input(other, X.KeyPress, new_code)
        xtest.fake_input(other, X.KeyRelease, new_code)
        other.sync()
        time.sleep(0.05)
    other.close()
    assert events.wait_for(2) == [("ptt", True), ("ptt", False)]


def test_stop_from_the_callback_ends_the_thread(desk: DesktopSession) -> None:
    backend = X11HotkeyBackend()
    events = Events()

    def on_event(hotkey_id: str, pressed: bool) -> None:
        events(hotkey_id, pressed)
        backend.stop()  # e.g. the app quits from a hotkey

    backend.start(on_event)
    backend.register("quit", Hotkey.parse("F9"))
    desk.xdotool("key", "F9")
    assert events.wait_for(1) == [("quit", True)]
    deadline = time.monotonic() + 3
    while "nanodictate-x11-hotkeys" in {t.name for t in threading.enumerate()}:
        assert time.monotonic() < deadline, "the hotkey thread did not end"
        time.sleep(0.01)
    assert _grab_results(desk.display, "F9", [0]) == {0: True}
    with pytest.raises(HotkeysUnavailableError):
        backend.register("quit", Hotkey.parse("F9"))


def test_hotkey_latency(desk: DesktopSession, hotkeys: tuple[X11HotkeyBackend, Events]) -> None:
    """Key event injected (XTest, flushed) → on_event called on the backend thread."""
    backend, events = hotkeys
    backend.register("ptt", Hotkey.parse("F9"))
    injector = xdisplay.Display(desk.display)
    keycode = injector.keysym_to_keycode(XK.string_to_keysym("F9"))
    press_ms: list[float] = []
    release_ms: list[float] = []
    for i in range(25):
        sent = time.perf_counter()
        xtest.fake_input(injector, X.KeyPress, keycode)
        injector.sync()
        events.wait_for(2 * i + 1)
        press_ms.append((events.items[-1][2] - sent) * 1000)
        sent = time.perf_counter()
        xtest.fake_input(injector, X.KeyRelease, keycode)
        injector.sync()
        events.wait_for(2 * i + 2)
        release_ms.append((events.items[-1][2] - sent) * 1000)
    injector.close()
    assert len(events.items) == 50

    # The same through a whole xdotool process (what a test or a user's script would do).
    xdotool_ms = []
    for i in range(5):
        sent = time.perf_counter()
        desk.xdotool("keydown", "F9")
        events.wait_for(51 + 2 * i)
        xdotool_ms.append((events.items[-1][2] - sent) * 1000)
        desk.xdotool("keyup", "F9")
        events.wait_for(52 + 2 * i)

    def summary(values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return (f"median {statistics.median(values):.2f} ms, p95 {p95:.2f} ms, "
                f"max {max(values):.2f} ms (n={len(values)})")  # fmt: skip

    print("\nhotkey latency, XTest event sent → on_event:")
    print(f"  press:   {summary(press_ms)}")
    print(f"  release: {summary(release_ms)}")
    print(f"  `xdotool keydown` spawn → press event: {summary(xdotool_ms)}")
    assert statistics.median(press_ms) < 50
    assert statistics.median(release_ms) < 50


# --- Keyboard output ----------------------------------------------------------------------------


def test_wait_until_keys_released_waits_while_a_key_is_held(desk: DesktopSession) -> None:
    keyboard = X11KeyboardOutput()
    try:
        assert keyboard.wait_until_keys_released(0.5)
        desk.xdotool("keydown", "shift+a")
        assert keyboard.keys_down()
        started = time.monotonic()
        assert not keyboard.wait_until_keys_released(0.2)
        assert time.monotonic() - started >= 0.2

        timer = threading.Timer(0.5, lambda: desk.xdotool("keyup", "shift+a"))
        started = time.monotonic()
        timer.start()
        assert keyboard.wait_until_keys_released(5.0)
        waited = time.monotonic() - started
        timer.join()
        print(f"\nwait_until_keys_released returned {waited - 0.5:+.3f} s after the keyup call")
        assert 0.45 <= waited < 2.0
        assert keyboard.keys_down() == []
    finally:
        keyboard.close()


def test_send_paste_into_text_window_exactly(desk: DesktopSession) -> None:
    window = desk.open_text_window()
    keyboard = X11KeyboardOutput()
    try:
        desk.set_clipboard_text(PASTE_TEXT)
        assert keyboard.wait_until_keys_released(1.0)
        keyboard.send_paste(terminal=False)
        window.wait_for_text(PASTE_TEXT)
        assert keyboard.keys_down() == []  # nothing left pressed
    finally:
        keyboard.close()


def test_terminal_paste_uses_ctrl_shift_v(desk: DesktopSession) -> None:
    # Pastes on Ctrl+Shift+V like gnome-terminal (stock xterm: tests/test_platform_x11_xterm.py).
    terminal = desk.open_text_window(
        terminal=True, title="term", wm_class=("gnome-terminal-server", "Gnome-terminal")
    )
    keyboard = X11KeyboardOutput()
    focus = X11FocusTracker()
    try:
        info = focus.focused_window()
        assert info is not None and info.is_terminal and not info.pastes_primary
        assert info.app_class == "Gnome-terminal"
        desk.set_clipboard_text(PASTE_TEXT)
        keyboard.send_paste(terminal=False)
        terminal.wait_for_text("^V")  # what Ctrl+V does in a terminal
        terminal.clear()
        keyboard.send_paste(terminal=info.is_terminal)
        terminal.wait_for_text(PASTE_TEXT)
    finally:
        keyboard.close()
        focus.close()


def test_type_text(desk: DesktopSession) -> None:
    window = desk.open_text_window()
    keyboard = X11KeyboardOutput()
    try:
        keyboard.type_text("Hello, World! 123 (a+b) ~/x_y")
        window.wait_for_text("Hello, World! 123 (a+b) ~/x_y")
        window.clear()
        desk.xdotool("key", "Caps_Lock")  # CapsLock on must not change the case typed
        keyboard.type_text("Mixed Case")
        window.wait_for_text("Mixed Case")
        desk.xdotool("key", "Caps_Lock")
        window.clear()
        # Not on the layout: typed through a temporarily mapped spare keycode. Qt reloads its
        # keymap on MappingNotify, so this works here; other apps may garble it (paste is the
        # default for that reason).
        keyboard.type_text("é ü 你好")
        window.wait_for_text("é ü 你好")
    finally:
        keyboard.close()


def test_backspaces_take_back_exactly_that_many_characters(desk: DesktopSession) -> None:
    window = desk.open_text_window()
    keyboard = X11KeyboardOutput()
    try:
        keyboard.type_text("keep this, not that")
        window.wait_for_text("keep this, not that")
        keyboard.send_backspaces(len(", not that"))
        window.wait_for_text("keep this")
    finally:
        keyboard.close()


# --- Focus --------------------------------------------------------------------------------------


def test_focused_window_and_refocus(desk: DesktopSession) -> None:
    focus = X11FocusTracker()
    try:
        first = desk.open_text_window(title="first window – ü")
        info = focus.focused_window()
        # Qt sets _NET_WM_PID and WM_CLIENT_MACHINE; the window's process is a Python.
        assert info == WindowInfo(
            id=first.window_id, title="first window – ü",
            app_class=info.app_class if info else "", is_terminal=False,
            process_name=Path(sys.executable).name.lower(),
        )  # fmt: skip
        assert info is not None and info.app_class

        second = desk.open_text_window(title="second", wm_class=("xterm", "XTerm"))
        other = focus.focused_window()
        assert other is not None and other.id == second.window_id and other.is_terminal

        started = time.perf_counter()
        assert focus.refocus(info)  # no window manager here: XSetInputFocus
        print(f"\nrefocus took {(time.perf_counter() - started) * 1000:.1f} ms")
        assert desk.focused_window_id() == first.window_id
        desk.set_clipboard_text("back")
        keyboard = X11KeyboardOutput()
        keyboard.send_paste(terminal=False)
        keyboard.close()
        first.wait_for_text("back")

        second.close()
        gone = WindowInfo(id=second.window_id, title="", app_class="", is_terminal=False)
        assert not focus.refocus(gone)
    finally:
        focus.close()


def test_focused_window_names_its_process_unless_it_runs_on_another_host(
    desk: DesktopSession,
) -> None:
    """_NET_WM_PID names the window's process only where WM_CLIENT_MACHINE is this host (a
    Qt window's process name is checked in test_focused_window_and_refocus)."""
    focus = X11FocusTracker()
    display = xdisplay.Display()
    try:
        # A bare window that claims this test's pid: believed only for a client on this host.
        window = display.screen().root.create_window(0, 0, 50, 50, 0, X.CopyFromParent)
        window.set_wm_class("remote", "Remote")
        window.change_property(
            display.intern_atom("_NET_WM_PID"), Xatom.CARDINAL, 32, [os.getpid()]
        )
        window.map()
        window.set_input_focus(X.RevertToParent, X.CurrentTime)
        display.sync()
        ours = normal_process_name(psutil.Process().name())
        assert ours
        machine = display.intern_atom("WM_CLIENT_MACHINE")
        names = {}
        for host in ("elsewhere.invalid", socket.gethostname(), None):
            if host is None:
                window.delete_property(machine)
            else:
                window.change_property(machine, Xatom.STRING, 8, host.encode())
            display.sync()
            seen = focus.focused_window()
            assert seen is not None and seen.id == window.id
            names[host] = seen.process_name
        assert names == {"elsewhere.invalid": "", socket.gethostname(): ours, None: ""}
    finally:
        display.close()
        focus.close()


_MINI_EWMH_WM = r"""
# The EWMH part of a window manager that matters here: it announces _NET_ACTIVE_WINDOW
# support and activates windows on request (no reparenting, no map redirection).
from Xlib import X, Xatom, display
d = display.Display()
root = d.screen().root
A = d.intern_atom
check = root.create_window(-10, -10, 1, 1, 0, 0)
check.change_property(A("_NET_SUPPORTING_WM_CHECK"), Xatom.WINDOW, 32, [check.id])
root.change_property(A("_NET_SUPPORTING_WM_CHECK"), Xatom.WINDOW, 32, [check.id])
root.change_property(A("_NET_SUPPORTED"), Xatom.ATOM, 32, [A("_NET_ACTIVE_WINDOW")])
root.change_attributes(event_mask=X.SubstructureNotifyMask)
d.sync()
print("ready", flush=True)
while True:
    ev = d.next_event()
    if ev.type == X.ClientMessage and ev.client_type == A("_NET_ACTIVE_WINDOW"):
        ev.window.set_input_focus(X.RevertToParent, X.CurrentTime)
        root.change_property(A("_NET_ACTIVE_WINDOW"), Xatom.WINDOW, 32, [ev.window.id])
        d.sync()
        print(f"activate {ev.window.id} source {ev.data[1][0]}", flush=True)
"""


def test_refocus_through_an_ewmh_window_manager(desk: DesktopSession) -> None:
    first = desk.open_text_window(title="first")
    second = desk.open_text_window(title="second")
    out = desk.root / "wm.out"
    desk.popen([sys.executable, "-c", _MINI_EWMH_WM], name="mini-wm", stdout=out)
    deadline = time.monotonic() + 10
    while "ready" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    focus = X11FocusTracker()
    try:
        target = WindowInfo(id=first.window_id, title="first", app_class="", is_terminal=False)
        assert desk.focused_window_id() == second.window_id
        assert focus.refocus(target)
        assert f"activate {first.window_id} source 2" in out.read_text()  # asked the WM
        assert desk.focused_window_id() == first.window_id
        info = focus.focused_window()  # read from _NET_ACTIVE_WINDOW now
        assert info is not None and (info.id, info.title) == (first.window_id, "first")
    finally:
        focus.close()


# --- Selection ----------------------------------------------------------------------------------


def test_select_backends_picks_x11_and_logs(
    desk: DesktopSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="nanodictate.platform"):
        backends = select_backends()
    try:
        assert backends.name == "x11"
        assert isinstance(backends.hotkeys, X11HotkeyBackend)
        assert backends.hotkeys.availability() == (True, "")
        assert backends.keyboard.availability() == (True, "")
        assert backends.focus.availability() == (True, "")
        chosen = [r.getMessage() for r in caplog.records if "platform backends" in r.getMessage()]
        assert chosen == ["platform backends: x11 (hotkeys: x11, keyboard: x11-xtest, focus: x11)"]
    finally:
        backends.close()


def test_select_backends_fallbacks(desk: DesktopSession, caplog: pytest.LogCaptureFixture) -> None:
    wayland_env = {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland",
                   "DISPLAY": desk.display, "PATH": "/nonexistent"}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="nanodictate.platform"):
        wayland = select_backends(environ=wayland_env, system="linux")
    assert wayland.name == "wayland"
    assert wayland.hotkeys.availability() == (False, WAYLAND_HOTKEY_REASON)
    with pytest.raises(HotkeysUnavailableError, match="compositor settings"):
        wayland.hotkeys.register("ptt", Hotkey.parse("F9"))
    assert wayland.keyboard.name == "copy-only"  # no wtype/ydotool on PATH
    with pytest.raises(KeyboardOutputUnavailableError, match="clipboard"):
        wayland.keyboard.send_paste(terminal=False)
    assert any(WAYLAND_HOTKEY_REASON in r.getMessage() for r in caplog.records)

    dead = select_backends(environ={"DISPLAY": ":4999"}, system="linux")
    assert dead.name == "unavailable"
    assert any("X11 backends not used" in note for note in dead.notes)
    assert select_backends(environ={}, system="linux").hotkeys.availability()[0] is False
    assert select_backends(environ={}, system="darwin").name == "macos"


# --- The harness itself -------------------------------------------------------------------------


def test_desktop_harness_full_session(tmp_path: Path) -> None:
    """Tray host, virtual mic with prompt capture start, speech into the mic, clipboard image,
    and a close that leaves nothing behind."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    with DesktopSession(watchdog_s=60) as session:
        print("\ndesktop session start-up: "
              + ", ".join(f"{k} {v:.3f} s" for k, v in session.timings.items()))  # fmt: skip
        assert session.tray_owner() != 0
        assert session.capture_start_delay() <= 0.25
        wav = session.speak_to_wav("testing one two three", tmp_path / "speech.wav")
        player = session.play_speech(wav, wait=False)
        recorded = session.record_mic(1.5)
        assert player is not None and player.wait(timeout=10) == 0
        samples = memoryview(recorded).cast("h")
        assert len(samples) > 16000 and max(abs(s) for s in samples) > 3000  # speech, not silence

        png = tmp_path / "pixel.png"
        session.run(["convert", "-size", "4x4", "xc:red", str(png)], capture=False)
        session.set_clipboard_image(png)
        assert "image/png" in session.clipboard_targets()
        shot = session.screenshot(tmp_path / "screen.png").read_bytes()
        assert shot[:8] == b"\x89PNG\r\n\x1a\n"
        assert (int.from_bytes(shot[16:20], "big"), int.from_bytes(shot[20:24], "big")) == (
            1280,
            800,
        )
        marker, display_number, root = session.marker, session.display_number, session.root
        assert session.leftover_pids()  # Xvfb, trayer, pulseaudio, pacat, xclip's child…
    from desktop.harness import pids_with_marker

    assert pids_with_marker(marker) == []
    assert not Path(f"/tmp/.X{display_number}-lock").exists()
    assert not root.exists()


# --- The other platforms' modules (not run for real in CI) -----------------------------------


def test_wayland_keyboard_builds_the_right_commands(tmp_path: Path) -> None:
    """wtype/ydotool are not on this machine: a recording stand-in checks the command lines."""
    from nanodictate.platform.wayland import WaylandCommandKeyboard

    log = tmp_path / "calls.txt"
    tool = tmp_path / "tool"
    tool.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> {log}\nprintf "<%s>\\n" "$(cat)" >> {log}\n')
    tool.chmod(0o755)
    for name in ("wtype", "ydotool"):
        keyboard = WaylandCommandKeyboard(name, str(tool))
        keyboard.send_paste(terminal=False)
        keyboard.send_paste(terminal=True)
        keyboard.type_text("-n 你好")
    assert log.read_text().splitlines() == [
        "-M|ctrl|-k|v|-m|ctrl|<>",
        "-M|ctrl|-M|shift|-k|v|-m|shift|-m|ctrl|<>",
        "-|<-n 你好>",
        "key|29:1|47:1|47:0|29:0|<>",
        "key|29:1|42:1|47:1|47:0|42:0|29:0|<>",
        "type|--file|-|<-n 你好>",
    ]
    failing = WaylandCommandKeyboard("wtype", "/bin/false")
    with pytest.raises(KeyboardOutputUnavailableError, match="wtype could not send keys"):
        failing.send_paste(terminal=False)


def test_windows_module_imports_and_maps_keys_everywhere() -> None:
    from nanodictate.platform import windows

    assert windows.virtual_key("F9") == 0x78
    assert windows.virtual_key("a") == 0x41
    assert windows.virtual_key("space") == 0x20
    with pytest.raises(ValueError, match="not supported"):
        windows.virtual_key("XF86AudioPlay")
    backends = windows.create_backends()  # touches no DLL until used
    assert (backends.name, backends.hotkeys.name) == ("windows", "windows")


_ORPHANING_TEST_PROCESS = r"""
import sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from desktop.harness import DesktopSession
session = DesktopSession(tray=True, audio=False).start()
session.set_clipboard_text("orphan")      # leaves xclip's daemonised child behind
print(session.marker, session.display_number, session.root, flush=True)
time.sleep(60)                             # killed with SIGKILL before this ends
"""


def test_desktop_harness_cleans_up_after_a_killed_test_process_and_a_hung_test() -> None:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    from desktop.harness import pids_with_marker

    tests_dir = str(Path(__file__).parent)
    repo_dir = str(Path(__file__).parent.parent)
    victim = subprocess.Popen(
        [sys.executable, "-c", _ORPHANING_TEST_PROCESS, tests_dir, repo_dir],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert victim.stdout is not None
    marker, display_number, root = victim.stdout.readline().decode().split()
    victim.stdout.close()
    assert len(pids_with_marker(marker)) >= 3  # Xvfb, trayer, xclip's child
    victim.kill()  # no atexit, no teardown: only the reaper process can clean up now
    victim.wait()
    # Generous: under a loaded CI machine the reaper and Xvfb's shutdown can take seconds.
    deadline = time.monotonic() + 20
    while pids_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_with_marker(marker) == []
    assert not Path(f"/tmp/.X{display_number}-lock").exists()  # Xvfb got SIGTERM first
    while Path(root).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(root).exists()

    # A test that hangs: the watchdog stops the session's processes.
    with DesktopSession(tray=False, audio=False, watchdog_s=1.0) as session:
        assert session.leftover_pids()
        deadline = time.monotonic() + 20
        while not session.watchdog_fired and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session.watchdog_fired
        # The flag is raised as the watchdog starts killing: give the kill time to finish.
        while session.leftover_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session.leftover_pids() == []
