"""Keyboard output on Windows: `SendInput` through ctypes (user32).

Ctrl+V pastes everywhere, consoles included (Windows 10+), so `terminal` changes nothing
here. `type_text` sends KEYEVENTF_UNICODE events, which carry any character independent of
the layout; `send_backspaces` sends VK_BACK ("delete that"). Windows of elevated (admin)
programs refuse input from a normal process (UIPI): run the app elevated to paste there.
"""

from __future__ import annotations

import ctypes
import logging
import time

from nanodictate.platform.windows._win32 import dll, last_error

log = logging.getLogger(__name__)

__all__ = ["WindowsKeyboardOutput"]

_INPUT_KEYBOARD = 1
_KEYEVENTF_KEYUP, _KEYEVENTF_UNICODE = 0x0002, 0x0004
_VK_BACK, _VK_CONTROL, _VK_V = 0x08, 0x11, 0x56


class _KEYBDINPUT(ctypes.Structure):
    _fields_ = [
        ("wVk", ctypes.c_uint16),
        ("wScan", ctypes.c_uint16),
        ("dwFlags", ctypes.c_uint32),
        ("time", ctypes.c_uint32),
        ("dwExtraInfo", ctypes.c_size_t),
    ]


class _INPUT(ctypes.Structure):
    class _U(ctypes.Union):
        # MOUSEINPUT is the largest member; pad to its size so cbSize is right.
        _fields_ = [("ki", _KEYBDINPUT), ("_pad", ctypes.c_byte * 32)]

    _anonymous_ = ("u",)
    _fields_ = [("type", ctypes.c_uint32), ("u", _U)]


class WindowsKeyboardOutput:
    """`KeyboardOutput` with SendInput."""

    name = "windows-sendinput"

    def availability(self) -> tuple[bool, str]:
        return True, ""

    def wait_until_keys_released(self, timeout: float) -> bool:
        user32 = dll("user32")
        deadline = time.monotonic() + max(0.0, timeout)
        keys = [vk for vk in range(0x08, 0xFF) if vk not in (0x01, 0x02, 0x04, 0x05, 0x06)]
        while True:
            if not any(user32.GetAsyncKeyState(vk) & 0x8000 for vk in keys):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def send_paste(self, *, terminal: bool) -> None:
        # Consoles and Windows Terminal paste on Ctrl+V: `terminal` needs nothing else here.
        self._send(
            [
                (_VK_CONTROL, 0, 0),
                (_VK_V, 0, 0),
                (_VK_V, 0, _KEYEVENTF_KEYUP),
                (_VK_CONTROL, 0, _KEYEVENTF_KEYUP),
            ]
        )

    def send_backspaces(self, count: int) -> None:
        """Backspace ``count`` times: "delete that" takes back the previous dictation. One
        SendInput call, so the user's own keys cannot land between the presses."""
        self._send([(_VK_BACK, 0, 0), (_VK_BACK, 0, _KEYEVENTF_KEYUP)] * count)

    def type_text(self, text: str) -> None:
        events: list[tuple[int, int, int]] = []
        data = text.replace("\n", "\r").encode("utf-16-le")
        for i in range(0, len(data), 2):
            unit = int.from_bytes(data[i : i + 2], "little")
            events += [
                (0, unit, _KEYEVENTF_UNICODE),
                (0, unit, _KEYEVENTF_UNICODE | _KEYEVENTF_KEYUP),
            ]
        self._send(events)

    @staticmethod
    def _send(events: list[tuple[int, int, int]]) -> None:
        if not events:
            return
        array = (_INPUT * len(events))()
        for item, (vk, scan, flags) in zip(array, events, strict=True):
            item.type = _INPUT_KEYBOARD
            item.ki = _KEYBDINPUT(vk, scan, flags, 0, 0)
        sent = dll("user32").SendInput(len(events), array, ctypes.sizeof(_INPUT))
        if sent != len(events):
            log.warning(
                "SendInput sent %d of %d events (error %d; elevated window?)",
                sent,
                len(events),
                last_error(),
            )
