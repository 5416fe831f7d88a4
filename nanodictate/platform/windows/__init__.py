"""Windows backends through ctypes (user32), no extra dependency.

NOT RUN IN CI: the CI machine is Linux. This module imports on every OS (nothing touches
user32 until a backend is used) and is type-checked, but its behaviour is only as tested as a
Windows user makes it. Kept small on purpose.

- Hotkeys: `RegisterHotKey` reports only key-down, so push-to-talk needs a low-level keyboard
  hook (`WH_KEYBOARD_LL`) on a thread with a message loop. The hook sees every key press and
  release; a matching hotkey is reported and swallowed (the focused app does not get it), key
  repeat (repeated WM_KEYDOWN) is ignored while the key is down. To detect a conflict,
  `register` also calls `RegisterHotKey` for the same combination and keeps it:
  ERROR_HOTKEY_ALREADY_REGISTERED means another program holds it (→ HotkeyTakenError). A
  program with its own low-level hook cannot be detected.
- Keyboard output: `SendInput` (`keyboard.py`): paste, typing and Backspace.
- Focus: `GetForegroundWindow` / `SetForegroundWindow` (Windows may refuse the latter unless
  our process got the last input event — it did, through the hotkey hook). The owner's
  process name comes from `GetWindowThreadProcessId` + `QueryFullProcessImageNameW`, which
  limited query rights allow for elevated programs too. Store apps' windows belong to
  ApplicationFrameHost.exe, so their process name is "applicationframehost".
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from ctypes import wintypes
from typing import Any

from nanodictate.core.hotkeys import Hotkey
from nanodictate.core.ports import WindowInfo, normal_process_name
from nanodictate.platform.base import (
    HotkeyEventCallback,
    HotkeysUnavailableError,
    HotkeyTakenError,
    PlatformBackends,
)
from nanodictate.platform.windows._win32 import dll as _dll
from nanodictate.platform.windows._win32 import last_error as _last_error
from nanodictate.platform.windows.keyboard import WindowsKeyboardOutput

log = logging.getLogger(__name__)

__all__ = [
    "WindowsFocusTracker",
    "WindowsHotkeyBackend",
    "WindowsKeyboardOutput",
    "create_backends",
    "virtual_key",
]

_WH_KEYBOARD_LL = 13
_WM_KEYDOWN, _WM_KEYUP, _WM_SYSKEYDOWN, _WM_SYSKEYUP = 0x0100, 0x0101, 0x0104, 0x0105
_WM_QUIT, _WM_APP = 0x0012, 0x8000
_MOD_ALT, _MOD_CONTROL, _MOD_SHIFT, _MOD_WIN, _MOD_NOREPEAT = 0x1, 0x2, 0x4, 0x8, 0x4000
_ERROR_HOTKEY_ALREADY_REGISTERED = 1409
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_MODIFIER_VKS = {
    "shift": (0x10, 0xA0, 0xA1),
    "ctrl": (0x11, 0xA2, 0xA3),
    "alt": (0x12, 0xA4, 0xA5),
    "super": (0x5B, 0x5C),
}
_MOD_FLAGS = {"ctrl": _MOD_CONTROL, "shift": _MOD_SHIFT, "alt": _MOD_ALT, "super": _MOD_WIN}
_NAMED_VKS = {
    "space": 0x20, "Escape": 0x1B, "Return": 0x0D, "Tab": 0x09, "BackSpace": 0x08,
    "Delete": 0x2E, "Insert": 0x2D, "Home": 0x24, "End": 0x23, "Prior": 0x21, "Next": 0x22,
    "Left": 0x25, "Up": 0x26, "Right": 0x27, "Down": 0x28, "Pause": 0x13, "Scroll_Lock": 0x91,
    "Caps_Lock": 0x14, "Print": 0x2C, "Menu": 0x5D, "plus": 0xBB, "minus": 0xBD,
    "comma": 0xBC, "period": 0xBE,
}  # fmt: skip
_TERMINAL_CLASSES = frozenset({"consolewindowclass", "cascadia_hosting_window_class", "mintty"})


def virtual_key(key: str) -> int:
    """Hotkey key name (X keysym style) → Windows virtual-key code; ValueError if unknown."""
    if len(key) == 1 and (key.isalpha() or key.isdigit()):
        return ord(key.upper())
    if key[:1] == "F" and key[1:].isdigit() and 1 <= int(key[1:]) <= 24:
        return 0x70 + int(key[1:]) - 1
    if key in _NAMED_VKS:
        return _NAMED_VKS[key]
    raise ValueError(f"The key {key!r} is not supported for hotkeys on Windows")


class _KBDLLHOOKSTRUCT(ctypes.Structure):
    _fields_ = [
        ("vkCode", ctypes.c_uint32),
        ("scanCode", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("time", ctypes.c_uint32),
        ("dwExtraInfo", ctypes.c_size_t),
    ]


class WindowsHotkeyBackend:
    """`HotkeyBackend` with a WH_KEYBOARD_LL hook (press and release) on its own thread."""

    name = "windows"
    temporary_grabs = True

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._thread_id = 0
        self._ready = threading.Event()
        self._on_event: HotkeyEventCallback | None = None
        self._hotkeys: dict[str, tuple[Hotkey, int, frozenset[str], int]] = {}
        self._down: dict[int, str] = {}
        self._mods_down: set[int] = set()
        self._calls: list[tuple[Callable[[], None], threading.Event, list[BaseException]]] = []
        self._lock = threading.Lock()
        self._hook_ref: Any = None  # keep the ctypes callback alive
        self._next_atom = 0xB000

    def availability(self) -> tuple[bool, str]:
        try:
            _dll("user32")
        except (AttributeError, OSError) as exc:
            return False, f"user32.dll is not available: {exc}"
        return True, ""

    def start(self, on_event: HotkeyEventCallback) -> None:
        self._on_event = on_event
        self._thread = threading.Thread(
            target=self._run, name="nanodictate-win-hotkeys", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(5.0):
            raise HotkeysUnavailableError("The keyboard hook did not start.")

    def register(self, hotkey_id: str, hotkey: Hotkey) -> None:
        vk = virtual_key(hotkey.key)
        self._call(lambda: self._register(hotkey_id, hotkey, vk))

    def unregister(self, hotkey_id: str) -> None:
        self._call(lambda: self._unregister(hotkey_id))

    def stop(self) -> None:
        if self._thread is None:
            return
        _dll("user32").PostThreadMessageW(self._thread_id, _WM_QUIT, 0, 0)
        self._thread.join(5.0)
        self._thread = None

    # --- thread -----------------------------------------------------------------------------

    def _call(self, function: Callable[[], None]) -> None:
        if self._thread is None:
            raise HotkeysUnavailableError("The hotkey backend is not running.")
        done = threading.Event()
        errors: list[BaseException] = []
        with self._lock:
            self._calls.append((function, done, errors))
        _dll("user32").PostThreadMessageW(self._thread_id, _WM_APP, 0, 0)
        if not done.wait(5.0):
            raise HotkeysUnavailableError("The hotkey thread did not answer.")
        if errors:
            raise errors[0]

    def _run(self) -> None:
        user32, kernel32 = _dll("user32"), _dll("kernel32")
        self._thread_id = int(kernel32.GetCurrentThreadId())
        proc_type = getattr(ctypes, "WINFUNCTYPE")(  # noqa: B009
            ctypes.c_ssize_t, ctypes.c_int, wintypes.WPARAM, wintypes.LPARAM
        )
        user32.CallNextHookEx.argtypes = [
            wintypes.HHOOK,
            ctypes.c_int,
            wintypes.WPARAM,
            wintypes.LPARAM,
        ]
        user32.CallNextHookEx.restype = ctypes.c_ssize_t

        def hook(code: int, wparam: int, lparam: int) -> int:
            if code >= 0:
                info = ctypes.cast(lparam, ctypes.POINTER(_KBDLLHOOKSTRUCT)).contents
                if self._on_key(int(info.vkCode), wparam in (_WM_KEYDOWN, _WM_SYSKEYDOWN)):
                    return 1  # swallow the hotkey
            return int(user32.CallNextHookEx(None, code, wparam, lparam))

        self._hook_ref = proc_type(hook)
        handle = user32.SetWindowsHookExW(
            _WH_KEYBOARD_LL, self._hook_ref, kernel32.GetModuleHandleW(None), 0
        )
        msg = wintypes.MSG()
        user32.PeekMessageW(ctypes.byref(msg), None, 0, 0, 0)  # create the message queue
        self._ready.set()
        if not handle:
            log.error("SetWindowsHookExW failed (error %d)", _last_error())
            return
        try:
            while user32.GetMessageW(ctypes.byref(msg), None, 0, 0) > 0:
                if msg.message == _WM_APP:
                    with self._lock:
                        calls, self._calls = self._calls, []
                    for function, done, errors in calls:
                        try:
                            function()
                        except BaseException as exc:
                            errors.append(exc)
                        done.set()
        finally:
            for hotkey_id in list(self._hotkeys):
                self._unregister(hotkey_id)
            user32.UnhookWindowsHookEx(handle)

    def _register(self, hotkey_id: str, hotkey: Hotkey, vk: int) -> None:
        self._unregister(hotkey_id)
        flags = _MOD_NOREPEAT
        for name in hotkey.modifiers:
            flags |= _MOD_FLAGS[name]
        atom = self._next_atom
        self._next_atom += 1
        if not _dll("user32").RegisterHotKey(None, atom, flags, vk):
            if _last_error() == _ERROR_HOTKEY_ALREADY_REGISTERED:
                raise HotkeyTakenError(hotkey)
            raise HotkeysUnavailableError(f"Windows refused the hotkey {hotkey}.")
        self._hotkeys[hotkey_id] = (hotkey, vk, hotkey.modifiers, atom)

    def _unregister(self, hotkey_id: str) -> None:
        entry = self._hotkeys.pop(hotkey_id, None)
        if entry is not None:
            _dll("user32").UnregisterHotKey(None, entry[3])

    def _on_key(self, vk: int, pressed: bool) -> bool:
        if any(vk in vks for vks in _MODIFIER_VKS.values()):
            (self._mods_down.add if pressed else self._mods_down.discard)(vk)
            return False
        if not pressed:
            hotkey_id = self._down.pop(vk, None)
            if hotkey_id is None:
                return False
            self._emit(hotkey_id, False)
            return True
        if vk in self._down:
            return True  # key repeat while held
        held = frozenset(
            name for name, vks in _MODIFIER_VKS.items() if self._mods_down.intersection(vks)
        )
        for hotkey_id, (_, hotkey_vk, modifiers, _) in self._hotkeys.items():
            if hotkey_vk == vk and modifiers == held:
                self._down[vk] = hotkey_id
                self._emit(hotkey_id, True)
                return True
        return False

    def _emit(self, hotkey_id: str, pressed: bool) -> None:
        if self._on_event is not None:
            try:
                self._on_event(hotkey_id, pressed)
            except Exception:
                log.exception("hotkey callback failed")


class WindowsFocusTracker:
    """`FocusTracker` with GetForegroundWindow / SetForegroundWindow."""

    name = "windows"

    def availability(self) -> tuple[bool, str]:
        return True, ""

    def focused_window(self) -> WindowInfo | None:
        user32 = _dll("user32")
        hwnd = user32.GetForegroundWindow()
        if not hwnd:
            return None
        title = ctypes.create_unicode_buffer(512)
        user32.GetWindowTextW(hwnd, title, 512)
        klass = ctypes.create_unicode_buffer(256)
        user32.GetClassNameW(hwnd, klass, 256)
        return WindowInfo(
            id=int(hwnd),
            title=title.value,
            app_class=klass.value,
            is_terminal=klass.value.lower() in _TERMINAL_CLASSES,
            process_name=_process_name(hwnd),
        )

    def refocus(self, window: WindowInfo) -> bool:
        user32 = _dll("user32")
        user32.SetForegroundWindow(window.id)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            if int(user32.GetForegroundWindow() or 0) == window.id:
                return True
            time.sleep(0.01)
        return False


def _process_name(hwnd: int) -> str:
    """The normal name of the program that owns window `hwnd`; "" when Windows will not say
    (a protected system process)."""
    user32, kernel32 = _dll("user32"), _dll("kernel32")
    pid = wintypes.DWORD()
    user32.GetWindowThreadProcessId(hwnd, ctypes.byref(pid))
    if not pid.value:
        return ""
    kernel32.OpenProcess.restype = wintypes.HANDLE  # the default int would cut it on 64-bit
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid.value)
    if not handle:
        return ""
    try:
        path = ctypes.create_unicode_buffer(1024)
        size = wintypes.DWORD(len(path))
        if not kernel32.QueryFullProcessImageNameW(handle, 0, path, ctypes.byref(size)):
            return ""
        return normal_process_name(path.value)
    finally:
        kernel32.CloseHandle(handle)


def create_backends() -> PlatformBackends:
    return PlatformBackends(
        hotkeys=WindowsHotkeyBackend(),
        keyboard=WindowsKeyboardOutput(),
        focus=WindowsFocusTracker(),
        name="windows",
    )
