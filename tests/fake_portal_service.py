"""A FAKE xdg-desktop-portal for tests/test_platform_portal.py (no desktop runs in CI).

    python tests/fake_portal_service.py BUS_ADDRESS

Owns org.freedesktop.portal.Desktop on the given bus and answers, at
/org/freedesktop/portal/desktop, what `nanodictate.platform.wayland.portal` uses: the
GlobalShortcuts `version` property, CreateSession and BindShortcuts (each answered by a
Request.Response signal, like the real portal), Session.Close. Like the spec says, a session
may bind only once.

Test-only control interface `org.nanodictate.test.FakePortal` at the same path:
- `Emit(s member, s shortcut_id)`: emit GlobalShortcuts.Activated/Deactivated on the newest
  session.
- `SetBindResponse(u code)`: the response code the next BindShortcuts answers (0 = accept).
- `Calls() -> s`: JSON list of what was called, for assertions.

Prints "ready" on stdout once the name is owned.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from jeepney import DBusAddress, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection
from jeepney.low_level import HeaderFields

PORTAL = "/org/freedesktop/portal/desktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
CONTROL = "org.nanodictate.test.FakePortal"


def main(address: str) -> None:
    conn = open_dbus_connection(bus=address)
    conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.portal.Desktop", 4))
    print("ready", flush=True)
    calls: list[Any] = []
    bind_response = 0
    bound_sessions: set[str] = set()
    sessions: list[str] = []

    def request_path(sender: str, token: str) -> str:
        return f"{PORTAL}/request/{sender.lstrip(':').replace('.', '_')}/{token}"

    while True:
        msg = conn.receive()
        if msg.header.message_type != MessageType.method_call:
            continue
        fields = msg.header.fields
        iface, member = fields.get(HeaderFields.interface), fields.get(HeaderFields.member)
        path, sender = fields.get(HeaderFields.path), fields.get(HeaderFields.sender)
        after: list[Any] = []
        if member == "Get" and iface == "org.freedesktop.DBus.Properties":
            if tuple(msg.body) == (SHORTCUTS, "version"):
                reply = new_method_return(msg, "v", (("u", 1),))
            else:
                reply = new_error(msg, "org.freedesktop.DBus.Error.UnknownProperty")
        elif iface == SHORTCUTS and member == "CreateSession":
            (options,) = msg.body
            calls.append(["CreateSession"])
            token = options["handle_token"][1]
            request = request_path(sender, token)
            session = f"{PORTAL}/session/{sender.lstrip(':').replace('.', '_')}/"
            session += options["session_handle_token"][1]
            sessions.append(session)
            reply = new_method_return(msg, "o", (request,))
            results = {"session_handle": ("s", session)}
            after.append((request, 0, results))
        elif iface == SHORTCUTS and member == "BindShortcuts":
            session, shortcuts, _parent, options = msg.body
            calls.append(
                [
                    "BindShortcuts",
                    session,
                    [[sid, {k: v[1] for k, v in p.items()}] for sid, p in shortcuts],
                ]
            )
            if session in bound_sessions:
                reply = new_error(msg, "org.freedesktop.portal.Error.Failed", "s", ("bound once",))
            else:
                bound_sessions.add(session)
                request = request_path(sender, options["handle_token"][1])
                reply = new_method_return(msg, "o", (request,))
                out = [
                    (sid, {"description": p["description"],
                           "trigger_description": ("s", p["preferred_trigger"][1])})
                    for sid, p in shortcuts
                ]  # fmt: skip
                code, bind_response = bind_response, 0
                after.append(
                    (request, code, {"shortcuts": ("a(sa{sv})", out if code == 0 else [])})
                )
        elif member == "Close" and iface == "org.freedesktop.portal.Session":
            calls.append(["Close", path])
            reply = new_method_return(msg)
        elif iface == CONTROL and member == "Emit":
            signal_member, shortcut_id = msg.body
            target = DBusAddress(PORTAL, interface=SHORTCUTS)
            after.append(
                new_signal(target, signal_member, "osta{sv}", (sessions[-1], shortcut_id, 1, {}))
            )
            reply = new_method_return(msg)
        elif iface == CONTROL and member == "SetBindResponse":
            (bind_response,) = msg.body
            reply = new_method_return(msg)
        elif iface == CONTROL and member == "Calls":
            reply = new_method_return(msg, "s", (json.dumps(calls),))
        else:
            reply = new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod")
        conn.send(reply)
        for item in after:
            if isinstance(item, tuple):
                request, code, results = item
                target = DBusAddress(request, interface="org.freedesktop.portal.Request")
                item = new_signal(target, "Response", "ua{sv}", (code, results))
            conn.send(item)


if __name__ == "__main__":
    main(sys.argv[1])
