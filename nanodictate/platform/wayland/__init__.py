"""Wayland: no global key grabs for apps; keystrokes through wtype or ydotool if installed.

- Hotkeys: a Wayland client cannot grab keys or see keys sent to other windows. The user binds
  `nanodictate toggle` (or `start`/`stop`) to a key in the compositor; the running app gets the
  command over its local socket. Where the session bus has the xdg-desktop-portal
  GlobalShortcuts interface, hotkeys go through it instead (`portal.PortalHotkeys`: the desktop
  binds the key and reports press and release).
- Keyboard output: `wtype` (virtual-keyboard protocol: wlroots compositors, not GNOME) or
  `ydotool` (uinput: needs the ydotoold daemon and access to /dev/uinput). Neither can observe
  the keyboard, so `wait_until_keys_released` can only wait a short grace period.
  `wtype` types any Unicode text (it uploads its own keymap); `ydotool type` assumes a US
  layout, so non-ASCII text fails — paste is the default.
- Focus: Wayland does not tell apps which window has focus.

Not run in CI (the CI machine has no Wayland compositor); kept small on purpose.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence

from nanodictate.core.ports import KeyboardOutputUnavailableError
from nanodictate.platform.base import HotkeyBackend, PlatformBackends
from nanodictate.platform.unavailable import (
    CopyOnlyKeyboardOutput,
    NoFocusTracker,
    UnavailableHotkeys,
)

log = logging.getLogger(__name__)

__all__ = ["WAYLAND_HOTKEY_REASON", "WaylandCommandKeyboard", "create_backends"]

WAYLAND_HOTKEY_REASON = (
    "Wayland does not let apps grab keys: bind `nanodictate toggle` (or start/stop) "
    "to a key in your compositor settings"
)
WAYLAND_FOCUS_REASON = "Wayland does not tell apps which window has focus"
WAYLAND_COPY_ONLY_REASON = (
    "Neither wtype nor ydotool is installed, so the text is copied to the clipboard; "
    "paste it with Ctrl+V (install wtype or ydotool to paste automatically)"
)

# Linux input event codes (linux/input-event-codes.h), for ydotool.
_KEY_LEFTCTRL = 29
_KEY_LEFTSHIFT = 42
_KEY_V = 47
_RELEASE_GRACE_S = 0.15
_COMMAND_TIMEOUT_S = 10.0


class WaylandCommandKeyboard:
    """`KeyboardOutput` through the `wtype` or `ydotool` command."""

    def __init__(self, tool: str, executable: str) -> None:
        if tool not in ("wtype", "ydotool"):
            raise ValueError(f"unknown keystroke tool {tool!r}")
        self.name = tool
        self._exe = executable

    def availability(self) -> tuple[bool, str]:
        return True, ""

    def wait_until_keys_released(self, timeout: float) -> bool:
        # The keyboard cannot be observed on Wayland: wait a short grace period, bounded.
        time.sleep(min(max(timeout, 0.0), _RELEASE_GRACE_S))
        return True

    def send_paste(self, *, terminal: bool) -> None:
        if self.name == "wtype":
            mods = ["ctrl", "shift"] if terminal else ["ctrl"]
            args = [a for m in mods for a in ("-M", m)] + ["-k", "v"]
            args += [a for m in reversed(mods) for a in ("-m", m)]
        else:
            codes = [_KEY_LEFTCTRL, _KEY_LEFTSHIFT] if terminal else [_KEY_LEFTCTRL]
            args = ["key", *(f"{c}:1" for c in codes), f"{_KEY_V}:1", f"{_KEY_V}:0"]
            args += [f"{c}:0" for c in reversed(codes)]
        self._run(args)

    def type_text(self, text: str) -> None:
        if text:
            # The text goes through stdin, so nothing in it is read as an option.
            args = ["-"] if self.name == "wtype" else ["type", "--file", "-"]
            self._run(args, stdin=text.encode("utf-8"))

    def _run(self, args: Sequence[str], stdin: bytes = b"") -> None:
        try:
            result = subprocess.run(
                [self._exe, *args],
                input=stdin,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=_COMMAND_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KeyboardOutputUnavailableError(f"{self.name} failed: {exc}") from exc
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip().splitlines()
            raise KeyboardOutputUnavailableError(
                f"{self.name} could not send keys ({detail[-1] if detail else result.returncode})"
            )


def _portal_hotkeys(environ: Mapping[str, str]) -> HotkeyBackend | None:
    """The GlobalShortcuts portal backend when the session bus offers it; logs the choice."""
    from nanodictate.platform.wayland import portal

    address = portal.session_bus_address(environ)
    version, reason = portal.probe_global_shortcuts(address)
    if version is None or address is None:
        log.info("Wayland hotkeys: desktop portal GlobalShortcuts not used: %s", reason)
        return None
    log.info("Wayland hotkeys: desktop portal GlobalShortcuts (version %d)", version)
    return portal.PortalHotkeys(address, version=version)


def create_backends(environ: Mapping[str, str] | None = None) -> PlatformBackends:
    """Wayland backends; hotkeys through the GlobalShortcuts portal when `environ`'s session
    bus has it (no probe when `environ` is None), else the unavailable-hotkeys fallback."""
    portal_hotkeys = _portal_hotkeys(environ) if environ is not None else None
    notes = [] if portal_hotkeys is not None else [WAYLAND_HOTKEY_REASON]
    keyboard: WaylandCommandKeyboard | CopyOnlyKeyboardOutput
    for tool in ("wtype", "ydotool"):
        exe = shutil.which(tool)
        if exe:
            keyboard = WaylandCommandKeyboard(tool, exe)
            break
    else:
        keyboard = CopyOnlyKeyboardOutput(WAYLAND_COPY_ONLY_REASON)
        notes.append(WAYLAND_COPY_ONLY_REASON)
    return PlatformBackends(
        hotkeys=portal_hotkeys or UnavailableHotkeys(WAYLAND_HOTKEY_REASON, name="wayland"),
        keyboard=keyboard,
        focus=NoFocusTracker(WAYLAND_FOCUS_REASON, name="wayland"),
        name="wayland",
        notes=tuple(notes),
    )
