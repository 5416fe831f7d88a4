"""D-Bus plumbing for the xdg-desktop-portal's GlobalShortcuts interface (jeepney).

What is about the bus rather than about hotkeys: the portal's names, finding the session bus,
asking whether GlobalShortcuts is there, and `GlobalShortcutsConnection`, the one blocking
connection the backend's thread uses (signal subscriptions, Request/Response calls, session
Close). `portal.py` builds the hotkey backend (`PortalHotkeys`) on top. jeepney is imported
inside the functions, so this module imports without it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from nanodictate.platform.base import HotkeysUnavailableError

PORTAL_BUS_NAME = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
GLOBAL_SHORTCUTS_INTERFACE = "org.freedesktop.portal.GlobalShortcuts"
REQUEST_INTERFACE = "org.freedesktop.portal.Request"
SESSION_INTERFACE = "org.freedesktop.portal.Session"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"

#: How long a plain method call (not a dialog the user answers) may take.
CALL_TIMEOUT_S = 5.0


def session_bus_address(environ: Mapping[str, str]) -> str | None:
    """Session bus address in `environ`: $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus."""
    address = environ.get("DBUS_SESSION_BUS_ADDRESS", "").strip()
    if address:
        return address
    runtime = environ.get("XDG_RUNTIME_DIR", "").strip()
    if runtime and os.path.exists(os.path.join(runtime, "bus")):
        return f"unix:path={os.path.join(runtime, 'bus')}"
    return None


def unwrap(msg: Any) -> tuple[Any, ...]:
    """The body of a method reply; an error reply raises `HotkeysUnavailableError`."""
    from jeepney import MessageType

    if msg.header.message_type == MessageType.error:
        name = msg.header.fields.get(4, "D-Bus error")  # HeaderFields.error_name
        detail = msg.body[0] if msg.body else ""
        raise HotkeysUnavailableError(f"The desktop portal answered {name}: {detail}".strip())
    return tuple(msg.body)


def probe_global_shortcuts(address: str | None, timeout: float = 2.0) -> tuple[int | None, str]:
    """(version, "") when the session bus has the portal's GlobalShortcuts; else (None, reason)."""
    if not address:
        return None, "no D-Bus session bus ($DBUS_SESSION_BUS_ADDRESS is not set)"
    try:
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection
    except ImportError as exc:
        return None, f"the desktop portal needs the jeepney package ({exc})"
    try:
        conn = open_dbus_connection(bus=address, auth_timeout=timeout)
    except Exception as exc:
        return None, f"cannot connect to the D-Bus session bus ({exc})"
    try:
        target = DBusAddress(PORTAL_PATH, bus_name=PORTAL_BUS_NAME, interface=PROPERTIES_INTERFACE)
        msg = new_method_call(target, "Get", "ss", (GLOBAL_SHORTCUTS_INTERFACE, "version"))
        reply = conn.send_and_get_reply(msg, timeout=timeout)
        (variant,) = unwrap(reply)
        return int(variant[1]), ""
    except HotkeysUnavailableError as exc:
        return None, f"the desktop portal has no GlobalShortcuts interface ({exc})"
    except TimeoutError:
        return None, "the desktop portal did not answer"
    except Exception as exc:
        return None, f"the desktop portal could not be asked ({exc})"
    finally:
        conn.close()


def variant_str(value: Any) -> str:
    """A variant's value as text."""
    # jeepney gives a variant as (signature, value); session_handle is "s" on old portals.
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[1])
    return str(value)


def request_token() -> str:
    """A fresh handle_token / session_handle_token (unique per call)."""
    return "nanodictate_" + uuid.uuid4().hex


def add_match(rule: Any) -> Any:
    """The bus's AddMatch call for a jeepney `MatchRule`."""
    from jeepney.bus_messages import message_bus

    return message_bus.AddMatch(rule)


class GlobalShortcutsConnection:
    """A blocking jeepney connection to the portal, used only from the backend's thread.

    Received messages are sorted by the subscriptions into two queues: `Request.Response`
    signals (taken by `take_response`) and GlobalShortcuts signals (`shortcut_events`).
    """

    def __init__(self, address: str) -> None:
        from jeepney.io.blocking import open_dbus_connection

        self._conn = open_dbus_connection(bus=address, auth_timeout=CALL_TIMEOUT_S)
        sender = self._conn.unique_name.lstrip(":").replace(".", "_")
        self._request_prefix = f"{PORTAL_PATH}/request/{sender}"
        self._responses: deque[Any] = deque()
        self._shortcut_signals: deque[Any] = deque()

    def subscribe(self) -> None:
        """Ask the bus for the portal's Response and GlobalShortcuts signals."""
        from jeepney import MatchRule

        # Subscribed once, before any call: a Response can follow the method reply at once.
        # The bus matches `sender` against the portal's well-known name; the local filters
        # see its unique name, so they leave `sender` out.
        def rules(sender: str | None) -> tuple[Any, Any]:
            responses = MatchRule(
                type="signal", sender=sender, interface=REQUEST_INTERFACE, member="Response",
                path_namespace=self._request_prefix,
            )  # fmt: skip
            shortcuts = MatchRule(
                type="signal", sender=sender, interface=GLOBAL_SHORTCUTS_INTERFACE, path=PORTAL_PATH
            )
            return responses, shortcuts

        for rule in rules(PORTAL_BUS_NAME):
            unwrap(self._conn.send_and_get_reply(add_match(rule), timeout=CALL_TIMEOUT_S))
        responses, shortcuts = rules(None)
        self._conn.filter(responses, queue=self._responses)
        self._conn.filter(shortcuts, queue=self._shortcut_signals)

    def receive(self, timeout: float) -> None:
        """Receive one message (or time out) into the queues."""
        with contextlib.suppress(TimeoutError):
            self._conn.recv_messages(timeout=timeout)

    def shortcut_events(self) -> Iterator[tuple[str, str, bool]]:
        """(session, shortcut id, pressed) for each Activated/Deactivated received so far."""
        while self._shortcut_signals:
            msg = self._shortcut_signals.popleft()
            member = msg.header.fields.get(3)  # HeaderFields.member
            if member not in ("Activated", "Deactivated") or len(msg.body) < 2:
                continue
            yield str(msg.body[0]), str(msg.body[1]), member == "Activated"

    def call_request(
        self, method: str, signature: str, body: tuple[Any, ...], token: str
    ) -> set[str]:
        """Call a GlobalShortcuts method that answers through a Request object; return the
        object paths its `Response` may come from (the one we expect and the one returned)."""
        from jeepney import DBusAddress, new_method_call

        expected = f"{self._request_prefix}/{token}"
        target = DBusAddress(
            PORTAL_PATH, bus_name=PORTAL_BUS_NAME, interface=GLOBAL_SHORTCUTS_INTERFACE
        )
        msg = new_method_call(target, method, signature, body)
        reply = self._conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT_S)
        (handle,) = unwrap(reply)
        return {expected, str(handle)}

    def take_response(self, paths: set[str]) -> tuple[Any, Any] | None:
        """(response code, results) of the first queued Response from `paths`, else None;
        the other queued Responses are dropped."""
        while self._responses:
            response = self._responses.popleft()
            if str(response.header.fields.get(1)) in paths:  # HeaderFields.path
                code, results = response.body
                return code, results
        return None

    def close_session(self, session: str) -> None:
        """Send Session.Close for `session` (no reply awaited)."""
        from jeepney import DBusAddress, new_method_call

        target = DBusAddress(session, bus_name=PORTAL_BUS_NAME, interface=SESSION_INTERFACE)
        self._conn.send(new_method_call(target, "Close"))

    def close(self) -> None:
        self._conn.close()
