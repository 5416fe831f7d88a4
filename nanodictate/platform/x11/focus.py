"""Which window has focus on X11, and giving it focus back.

- With a window manager that supports EWMH (_NET_SUPPORTING_WM_CHECK + _NET_ACTIVE_WINDOW in
  _NET_SUPPORTED), the active window is read from the root's _NET_ACTIVE_WINDOW and refocusing
  sends the WM a _NET_ACTIVE_WINDOW client message (a WM ignores plain XSetInputFocus or
  fights it).
- Without one (bare X servers, some kiosks, our CI), the input focus is read with
  XGetInputFocus and set with XSetInputFocus — `xdotool windowactivate` fails there.
- The focus may sit on a child window (Tk does that); the tracker walks up to the top-level
  client window, the one with WM_CLASS.
- The program that owns the window is found from its _NET_WM_PID, which only means something
  on the machine the client runs on: a window whose WM_CLIENT_MACHINE is another host (an
  `ssh -X` client), or that does not say, gets no process name (EWMH requires
  WM_CLIENT_MACHINE beside _NET_WM_PID).
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import psutil
from Xlib import X
from Xlib import error as xerror
from Xlib.protocol import event as xevent

from nanodictate.core.ports import WindowInfo, normal_process_name
from nanodictate.platform.x11._xlib import Display, X11ConnectionError
from nanodictate.platform.x11.keyboard import X11Connection
from nanodictate.platform.x11.terminals import is_terminal_class, pastes_primary_class

log = logging.getLogger(__name__)

_REFOCUS_TIMEOUT_S = 0.5
_MAX_TREE_DEPTH = 32


class X11FocusTracker:
    """`FocusTracker` for X11 (EWMH when a window manager supports it, else XSetInputFocus)."""

    name = "x11"

    def __init__(self, connection: X11Connection | None = None) -> None:
        self._connection = connection or X11Connection()

    def availability(self) -> tuple[bool, str]:
        ok, reason = self._connection.availability()
        return (True, "") if ok else (False, f"Cannot see the focused window: {reason}.")

    def close(self) -> None:
        self._connection.close()

    # --- FocusTracker ------------------------------------------------------------------------

    def focused_window(self) -> WindowInfo | None:
        try:
            with self._connection.use() as display:
                window = self._focused_client(display)
                return None if window is None else self._describe(display, window)
        except (xerror.XError, X11ConnectionError) as exc:
            log.debug("focused window unknown: %s", exc)
            return None

    def refocus(self, window: WindowInfo, *, timeout: float = _REFOCUS_TIMEOUT_S) -> bool:
        try:
            with self._connection.use() as display:
                target = display.create_resource_object("window", window.id)
                failed = xerror.CatchError()  # BadWindow (closed) or BadMatch (unmapped)
                if self._wm_active_window_supported(display):
                    self._send_active_window_message(display, target, failed)
                    how = "_NET_ACTIVE_WINDOW"
                else:
                    target.configure(stack_mode=X.Above, onerror=failed)
                    target.set_input_focus(X.RevertToParent, X.CurrentTime, onerror=failed)
                    how = "XSetInputFocus"
                display.sync()
                if failed.get_error() is not None:
                    raise failed.get_error()
        except (xerror.XError, X11ConnectionError) as exc:
            log.info("could not give focus back to window 0x%x: %s", window.id, exc)
            return False
        deadline = time.monotonic() + timeout
        while True:
            current = self.focused_window()
            if current is not None and current.id == window.id:
                log.debug("focus returned to 0x%x via %s", window.id, how)
                return True
            if time.monotonic() >= deadline:
                log.info("window 0x%x did not take focus via %s", window.id, how)
                return False
            time.sleep(0.01)

    # --- helpers -----------------------------------------------------------------------------

    def _focused_client(self, display: Display) -> Any | None:
        window: Any | None = None
        if self._wm_active_window_supported(display):
            active = self._window_property(display, display.screen().root, "_NET_ACTIVE_WINDOW")
            if active:
                window = display.create_resource_object("window", active)
        if window is None:
            focus = display.get_input_focus().focus
            if isinstance(focus, int) or focus.id in (X.NONE, X.PointerRoot):
                return None
            window = focus
        return self._client_window(display, window)

    def _client_window(self, display: Display, window: Any) -> Any | None:
        """The window itself or its nearest ancestor with WM_CLASS (the application window)."""
        wm_class = display.intern_atom("WM_CLASS")
        root_id = display.screen().root.id
        candidate = window
        for _ in range(_MAX_TREE_DEPTH):
            if candidate.id == root_id:
                break
            if candidate.get_full_property(wm_class, X.AnyPropertyType) is not None:
                return candidate
            parent = candidate.query_tree().parent
            if isinstance(parent, int) or parent.id in (X.NONE, root_id):
                break
            candidate = parent
        return None if window.id == root_id else window

    def _describe(self, display: Display, window: Any) -> WindowInfo:
        instance, app_class = "", ""
        raw_class = window.get_full_property(display.intern_atom("WM_CLASS"), X.AnyPropertyType)
        if raw_class is not None:
            parts = _as_bytes(raw_class.value).split(b"\0")
            instance = parts[0].decode("latin-1") if parts else ""
            app_class = parts[1].decode("latin-1") if len(parts) > 1 else ""
        return WindowInfo(
            id=int(window.id),
            title=self._title(display, window),
            app_class=app_class or instance,
            is_terminal=is_terminal_class((instance, app_class)),
            pastes_primary=pastes_primary_class((instance, app_class)),
            process_name=self._process_name(display, window),
        )

    def _process_name(self, display: Display, window: Any) -> str:
        pid = self._window_property(display, window, "_NET_WM_PID")
        machine = window.get_full_property(
            display.intern_atom("WM_CLIENT_MACHINE"), X.AnyPropertyType
        )
        if not pid or machine is None:
            return ""
        client_host = _as_bytes(machine.value).split(b"\0")[0].decode("latin-1")
        if not _same_host(client_host, socket.gethostname()):
            return ""
        try:
            # psutil reads the full name where /proc's is cut at 15 characters
            # ("gnome-terminal-server").
            return normal_process_name(psutil.Process(pid).name())
        except psutil.Error as error:  # gone already, or not ours to look at
            log.debug("no process name for pid %d: %s", pid, error)
            return ""

    @staticmethod
    def _title(display: Display, window: Any) -> str:
        utf8 = display.intern_atom("UTF8_STRING")
        for name in ("_NET_WM_NAME", "WM_NAME"):
            prop = window.get_full_property(display.intern_atom(name), X.AnyPropertyType)
            if prop is None or not prop.value:
                continue
            data = _as_bytes(prop.value)
            encoding = "utf-8" if prop.property_type == utf8 else "latin-1"
            return data.decode(encoding, errors="replace")
        return ""

    @staticmethod
    def _window_property(display: Display, window: Any, name: str) -> int:
        prop = window.get_full_property(display.intern_atom(name), X.AnyPropertyType)
        if prop is None or not len(prop.value):
            return 0
        return int(prop.value[0])

    def _wm_active_window_supported(self, display: Display) -> bool:
        root = display.screen().root
        try:
            check = self._window_property(display, root, "_NET_SUPPORTING_WM_CHECK")
            if not check:
                return False
            # The check window must exist and point to itself, else the WM is gone.
            check_window = display.create_resource_object("window", check)
            if self._window_property(display, check_window, "_NET_SUPPORTING_WM_CHECK") != check:
                return False
            supported = root.get_full_property(
                display.intern_atom("_NET_SUPPORTED"), X.AnyPropertyType
            )
        except xerror.XError:
            return False
        if supported is None:
            return False
        return display.intern_atom("_NET_ACTIVE_WINDOW") in list(supported.value)

    @staticmethod
    def _send_active_window_message(display: Display, target: Any, onerror: Any) -> None:
        root = display.screen().root
        message = xevent.ClientMessage(
            window=target,
            client_type=display.intern_atom("_NET_ACTIVE_WINDOW"),
            data=(32, [2, X.CurrentTime, 0, 0, 0]),  # source 2: a pager/tool acting for the user
        )
        mask = X.SubstructureRedirectMask | X.SubstructureNotifyMask
        root.send_event(message, event_mask=mask, onerror=onerror)


def _same_host(client_host: str, local_host: str) -> bool:
    """Whether WM_CLIENT_MACHINE names this machine; one side may give the fully qualified
    name and the other the short one ("laptop" / "laptop.example.org")."""
    client, local = client_host.strip().lower(), local_host.strip().lower()
    if not client or not local:
        return False
    return client == local or client.split(".")[0] == local.split(".")[0]


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1", errors="replace")
    return bytes(value)
