"""OS integration behind three small protocols, chosen once at start-up: the hotkey backend
(`base`) and the core's keyboard and focus ports (`nanodictate.core.ports`).

    backends = select_backends()          # logs the choice and any fallback reason once
    backends.hotkeys.start(on_event)      # on_event(hotkey_id, pressed) on the backend thread
    backends.hotkeys.register("dictate", Hotkey.parse("ctrl+alt+space"))  # core.hotkeys
    ...
    backends.close()

The OS modules are imported only when chosen, so python-xlib is needed on X11 only.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from nanodictate.platform.base import (
    HotkeyBackend,
    HotkeysUnavailableError,
    HotkeyTakenError,
    PlatformBackends,
)

__all__ = [
    "HotkeyBackend",
    "HotkeyTakenError",
    "HotkeysUnavailableError",
    "PlatformBackends",
    "select_backends",
]

log = logging.getLogger(__name__)

#: Set to "x11", "wayland" or "unavailable" to force a backend (diagnostics, tests).
OVERRIDE_ENV = "NANODICTATE_PLATFORM"


def _is_wayland_session(env: Mapping[str, str]) -> bool:
    return bool(env.get("WAYLAND_DISPLAY")) and env.get("XDG_SESSION_TYPE", "").lower() == (
        "wayland"
    )


def _try_x11(display: str) -> tuple[PlatformBackends | None, str]:
    try:
        from nanodictate.platform import x11
    except ImportError as exc:  # python-xlib missing
        return None, f"X11 support needs python-xlib ({exc})"
    ok, reason = x11.server_answers(display)
    if not ok:
        return None, f"the X server does not answer: {reason}"
    return x11.create_backends(display), ""


def _select(env: Mapping[str, str], system: str) -> PlatformBackends:
    if system == "win32":
        from nanodictate.platform import windows

        return windows.create_backends()
    if system == "darwin":
        from nanodictate.platform import macos

        return macos.create_backends()

    from nanodictate.platform import unavailable, wayland

    forced = env.get(OVERRIDE_ENV, "").strip().lower()
    display = env.get("DISPLAY", "")
    notes: list[str] = []
    if forced == "wayland":
        return wayland.create_backends(env)
    if forced not in ("", "x11", "unavailable"):
        notes.append(f"${OVERRIDE_ENV}={forced!r} is not a backend (x11, wayland, unavailable)")

    if forced != "unavailable" and (forced == "x11" or (display and not _is_wayland_session(env))):
        backends, reason = _try_x11(display)
        if backends is not None:
            return backends
        notes.append(f"X11 backends not used: {reason}")

    if forced != "unavailable" and (
        env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE", "").lower() == "wayland"
    ):
        chosen = wayland.create_backends(env)
        return PlatformBackends(
            chosen.hotkeys, chosen.keyboard, chosen.focus, chosen.name, (*notes, *chosen.notes)
        )

    reason = (
        "No display server found ($DISPLAY and $WAYLAND_DISPLAY are not set)"
        if not display and not env.get("WAYLAND_DISPLAY")
        else "No usable display server"
    )
    if forced == "unavailable":
        reason = f"Hotkeys and paste are turned off (${OVERRIDE_ENV}=unavailable)"
    notes.append(reason)
    return PlatformBackends(
        hotkeys=unavailable.UnavailableHotkeys(reason),
        keyboard=unavailable.CopyOnlyKeyboardOutput(reason),
        focus=unavailable.NoFocusTracker(reason),
        name="unavailable",
        notes=tuple(notes),
    )


def select_backends(
    *, environ: Mapping[str, str] | None = None, system: str | None = None
) -> PlatformBackends:
    """Pick the backends for this session and log the choice (and any fallback reason) once.

    Linux/BSD: X11 when $DISPLAY is set, the X server answers and this is not a Wayland
    session (WAYLAND_DISPLAY set and XDG_SESSION_TYPE=wayland); else Wayland (hotkeys through
    the desktop portal's GlobalShortcuts when the session bus has it, else none;
    wtype/ydotool or copy-only output); else "unavailable". Windows and macOS get their own
    modules. `environ` and `system` default to os.environ and sys.platform (tests pass them).
    """
    env = os.environ if environ is None else environ
    backends = _select(env, sys.platform if system is None else system)
    log.info(
        "platform backends: %s (hotkeys: %s, keyboard: %s, focus: %s)",
        backends.name,
        backends.hotkeys.name,
        backends.keyboard.name,
        backends.focus.name,
    )
    for note in backends.notes:
        log.warning("platform: %s", note)
    return backends
