"""The Windows backends on Linux: user32/kernel32 are replaced by a stand-in that answers the
calls the backends make (ctypes.WinDLL does not exist here), so these tests check what the
backends ask Windows for and what they make of the answers — not that Windows agrees."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from nanodictate.core.ports import WindowInfo
from nanodictate.core.profiles import EXAMPLE_PROFILES, parse_profiles, profile_for
from nanodictate.core.text_output import BackspaceKeyboard, PasteMethod, TextOutput
from nanodictate.platform.windows import WindowsFocusTracker, WindowsKeyboardOutput

KEYUP = 0x0002
VK_BACK = 0x08
TERMINAL_EXE = r"C:\Program Files\WindowsApps\Microsoft.WindowsTerminal_1.21\WindowsTerminal.exe"
NOTEPAD_EXE = r"C:\Windows\System32\NOTEPAD.EXE"


class FakeWindows:
    """Top-level windows (hwnd → title, class, owner pid), processes (pid → image path) and
    every SendInput call as (type, vk, scan, flags) tuples."""

    def __init__(self) -> None:
        self.windows: dict[int, tuple[str, str, int]] = {}
        self.images: dict[int, str] = {}
        self.foreground = 0
        self.inputs: list[list[tuple[int, int, int, int]]] = []
        self.input_sizes: set[int] = set()
        self.open_handles: set[int] = set()
        # One namespace for both DLLs: plain functions take `restype`/`argtypes` like ctypes'.
        self.dll = SimpleNamespace(**{name: self._function(name) for name in _CALLS})

    def _function(self, name: str) -> Callable[..., Any]:
        method = getattr(self, "_" + name)

        def call(*args: Any) -> Any:
            return method(*args)

        return call

    def _GetForegroundWindow(self) -> int:
        return self.foreground

    def _SetForegroundWindow(self, hwnd: int) -> int:
        self.foreground = hwnd if hwnd in self.windows else self.foreground
        return int(hwnd in self.windows)

    def _GetWindowTextW(self, hwnd: int, buffer: Any, size: int) -> int:
        buffer.value = self.windows[hwnd][0][: size - 1]
        return len(buffer.value)

    def _GetClassNameW(self, hwnd: int, buffer: Any, size: int) -> int:
        buffer.value = self.windows[hwnd][1][: size - 1]
        return len(buffer.value)

    def _GetWindowThreadProcessId(self, hwnd: int, pid: Any) -> int:
        pid._obj.value = self.windows[hwnd][2]  # ctypes.byref(DWORD): _obj is the DWORD
        return 7  # the thread id, unused

    def _OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        assert access == 0x1000  # PROCESS_QUERY_LIMITED_INFORMATION: enough, even elevated
        if pid not in self.images:
            return 0  # a protected process: access denied
        handle = 0x7FFF_0000_0000 + pid  # a handle past 32 bits, as 64-bit Windows may give
        self.open_handles.add(handle)
        return handle

    def _QueryFullProcessImageNameW(self, handle: int, flags: int, buffer: Any, size: Any) -> int:
        path = self.images[handle - 0x7FFF_0000_0000]
        buffer.value, size._obj.value = path, len(path)
        return 1

    def _CloseHandle(self, handle: int) -> int:
        self.open_handles.remove(handle)
        return 1

    def _GetAsyncKeyState(self, vk: int) -> int:
        return 0  # no key held

    def _SendInput(self, count: int, inputs: Any, size: int) -> int:
        self.input_sizes.add(size)
        self.inputs.append(
            [(item.type, item.ki.wVk, item.ki.wScan, item.ki.dwFlags) for item in inputs][:count]
        )
        return count


_CALLS = [name[1:] for name in vars(FakeWindows) if name[1:2].isupper()]


@pytest.fixture
def fake_windows(monkeypatch: pytest.MonkeyPatch) -> FakeWindows:
    fake = FakeWindows()
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error: fake.dll, raising=False)
    monkeypatch.setattr(ctypes, "get_last_error", lambda: 0, raising=False)
    fake.windows = {
        0x10: ("notes.txt - Notepad", "Notepad", 1200),
        0x20: ("PowerShell", "CASCADIA_HOSTING_WINDOW_CLASS", 3400),
        0x30: ("Task Manager", "TaskManagerWindow", 4),
    }
    fake.images = {1200: NOTEPAD_EXE, 3400: TERMINAL_EXE}  # pid 4 (System) cannot be opened
    return fake


def test_focused_window_carries_the_process_name_simulated_windows(
    fake_windows: FakeWindows,
) -> None:
    focus = WindowsFocusTracker()
    fake_windows.foreground = 0x20
    terminal = focus.focused_window()
    assert terminal == WindowInfo(
        0x20, "PowerShell", "CASCADIA_HOSTING_WINDOW_CLASS", is_terminal=True,
        process_name="windowsterminal",
    )  # fmt: skip
    fake_windows.foreground = 0x10
    notepad = focus.focused_window()
    assert notepad is not None and (notepad.process_name, notepad.is_terminal) == ("notepad", False)
    fake_windows.foreground = 0x30
    protected = focus.focused_window()
    assert protected is not None and protected.title == "Task Manager"
    assert protected.process_name == ""  # Windows would not say: unknown, not an error
    assert fake_windows.open_handles == set()  # every process handle closed again
    fake_windows.foreground = 0
    assert focus.focused_window() is None

    terminal_profile = parse_profiles(EXAMPLE_PROFILES.replace("enabled = false", "enabled = true"))
    by_process = WindowInfo(0x20, "PowerShell", "SomeOtherClass", False, process_name="mintty")
    assert getattr(profile_for(by_process, terminal_profile.profiles), "name", None) == "Terminal"


def test_backspaces_are_vk_back_presses_in_one_sendinput_simulated_windows(
    fake_windows: FakeWindows,
) -> None:
    keyboard = WindowsKeyboardOutput()
    assert isinstance(keyboard, BackspaceKeyboard)  # so the text output may use it
    keyboard.send_backspaces(3)
    assert fake_windows.inputs == [[(1, VK_BACK, 0, 0), (1, VK_BACK, 0, KEYUP)] * 3]
    keyboard.send_backspaces(0)
    assert len(fake_windows.inputs) == 1  # nothing to send: no call
    if sys.maxsize > 2**32:
        assert fake_windows.input_sizes == {40}  # sizeof(INPUT) on 64-bit Windows


class MemoryClipboard:
    """A clipboard that holds text; typing never reads it."""

    def __init__(self) -> None:
        self.text: str | None = None

    def snapshot(self) -> object:
        return self.text

    def put_text(self, text: str) -> None:
        self.text = text

    def read_text(self) -> str | None:
        return self.text

    def arm_read_detection(self) -> None:
        pass

    def was_read(self) -> bool | None:
        return None

    def restore(self, snapshot: object) -> None:
        self.text = snapshot if isinstance(snapshot, str) else None


def test_delete_that_takes_back_the_last_dictation_simulated_windows(
    fake_windows: FakeWindows,
) -> None:
    focus = WindowsFocusTracker()
    output = TextOutput(MemoryClipboard(), WindowsKeyboardOutput(), focus)
    fake_windows.foreground = 0x10
    notepad = focus.focused_window()
    assert output.deliver("Grüße, 世界", PasteMethod.TYPE, notepad).ok
    typed = len(fake_windows.inputs[-1]) // 2
    assert output.erase_last(notepad) is None  # done
    assert fake_windows.inputs[-1] == [(1, VK_BACK, 0, 0), (1, VK_BACK, 0, KEYUP)] * typed
    assert typed == len("Grüße, 世界")

    fake_windows.foreground = 0x20
    terminal = focus.focused_window()
    assert output.deliver("ls", PasteMethod.TYPE, terminal).ok
    sent = len(fake_windows.inputs)
    assert output.erase_last(terminal) == "Text pasted into a terminal is not taken back."
    assert len(fake_windows.inputs) == sent  # refused: no key sent
