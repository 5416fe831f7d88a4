"""Wayland hotkeys through the xdg-desktop-portal GlobalShortcuts interface (D-Bus, jeepney).

A Wayland app cannot grab keys itself; the desktop can bind a shortcut *for* it and report
every press (`Activated`) and release (`Deactivated`). The flow, all on the backend's thread
with one blocking jeepney connection:

1. `CreateSession({handle_token, session_handle_token})` → the session handle arrives in the
   `org.freedesktop.portal.Request.Response` signal (we subscribe before calling).
2. `BindShortcuts(session, [(id, {description, preferred_trigger})], "", {handle_token})` →
   `Response` with `results["shortcuts"]`, the subset the desktop (often the user, in a
   dialog) accepted. `response != 0` means refused/cancelled: `HotkeysUnavailableError`.
3. `Activated`/`Deactivated(session, id, timestamp, options)` → `on_event(id, True/False)`.

The desktop decides the actual key: our `Hotkey` is only sent as `preferred_trigger`, in the
XDG shortcuts-spec format ("CTRL+ALT+space"); the user may pick another one in the dialog or
in the desktop's settings later.

Re-binding: the spec allows one `BindShortcuts` per session, so every change of the set binds
the *full* set in a fresh session (the old one is closed first). `register` does that at once
(synchronously, so a refusal raises); `unregister` stops delivering that id's events at once
and rebinds after a short grace period, so `unregister all + register all` (settings changed)
costs one rebind, not one per call. Each rebind may show the desktop's dialog again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from nanodictate.core.hotkeys import Hotkey
from nanodictate.platform.base import HotkeyEventCallback, HotkeysUnavailableError

log = logging.getLogger(__name__)

__all__ = [
    "GLOBAL_SHORTCUTS_INTERFACE",
    "PORTAL_BUS_NAME",
    "PORTAL_PATH",
    "PortalHotkeys",
    "hotkey_to_trigger",
    "probe_global_shortcuts",
    "session_bus_address",
]

PORTAL_BUS_NAME = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
GLOBAL_SHORTCUTS_INTERFACE = "org.freedesktop.portal.GlobalShortcuts"
REQUEST_INTERFACE = "org.freedesktop.portal.Request"
SESSION_INTERFACE = "org.freedesktop.portal.Session"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"

#: Shortcuts-spec modifier names, in the order they are written.
_TRIGGER_MODIFIERS = (("ctrl", "CTRL"), ("alt", "ALT"), ("shift", "SHIFT"), ("super", "LOGO"))

_DESCRIPTIONS = {
    "dictate": "Dictate (hold to talk)",
    "toggle": "Start/stop dictation",
    "cancel": "Cancel the dictation",
    "cancel:held": "Cancel the dictation (while the hotkey is held)",
}

_POLL_S = 0.1
_UNREGISTER_GRACE_S = 0.3
_CALL_TIMEOUT_S = 5.0


def session_bus_address(environ: Mapping[str, str]) -> str | None:
    """Session bus address in `environ`: $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus."""
    address = environ.get("DBUS_SESSION_BUS_ADDRESS", "").strip()
    if address:
        return address
    runtime = environ.get("XDG_RUNTIME_DIR", "").strip()
    if runtime and os.path.exists(os.path.join(runtime, "bus")):
        return f"unix:path={os.path.join(runtime, 'bus')}"
    return None


def hotkey_to_trigger(hotkey: Hotkey) -> str:
    """`Hotkey` → XDG shortcuts-spec trigger, e.g. ctrl+alt+space → "CTRL+ALT+space".

    The key is kept as its X keysym name, which is what xkbcommon (and the spec) use.
    """
    parts = [label for name, label in _TRIGGER_MODIFIERS if name in hotkey.modifiers]
    return "+".join([*parts, hotkey.key])


def _describe(hotkey_id: str) -> str:
    if hotkey_id in _DESCRIPTIONS:
        return _DESCRIPTIONS[hotkey_id]
    if hotkey_id.startswith("language:"):
        return f"Dictate in {hotkey_id.split(':', 1)[1]} (hold to talk)"
    return f"Nanodictate: {hotkey_id}"


def _unwrap(msg: Any) -> tuple[Any, ...]:
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
        (variant,) = _unwrap(reply)
        return int(variant[1]), ""
    except HotkeysUnavailableError as exc:
        return None, f"the desktop portal has no GlobalShortcuts interface ({exc})"
    except TimeoutError:
        return None, "the desktop portal did not answer"
    except Exception as exc:
        return None, f"the desktop portal could not be asked ({exc})"
    finally:
        conn.close()


def _variant_str(value: Any) -> str:
    # jeepney gives a variant as (signature, value); session_handle is "s" on old portals.
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[1])
    return str(value)


class PortalHotkeys:
    """`HotkeyBackend` over org.freedesktop.portal.GlobalShortcuts (see the module docstring)."""

    name = "portal"
    temporary_grabs = False

    def __init__(
        self,
        address: str,
        *,
        version: int | None = None,
        bind_timeout: float = 120.0,
    ) -> None:
        self._address = address
        self.version = version
        self._probed = version is not None
        self._failure = ""
        self._bind_timeout = bind_timeout
        self._lock = threading.Lock()
        self._wanted: dict[str, Hotkey] = {}  # what the app asked for
        self._bound: dict[str, Hotkey] = {}  # what the current session has bound
        #: id → the desktop's description of the key it chose ("Ctrl+Alt+Space").
        self.trigger_descriptions: dict[str, str] = {}
        self._pressed: set[str] = set()
        self._rebind_due: float | None = None
        self._commands: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._session: str | None = None
        self._on_event: HotkeyEventCallback | None = None
        self._responses: deque[Any] = deque()
        self._shortcut_signals: deque[Any] = deque()

    # ------------------------------------------------------------------ protocol

    def availability(self) -> tuple[bool, str]:
        if self._failure:
            return False, self._failure
        if not self._probed:
            self.version, reason = probe_global_shortcuts(self._address)
            self._probed = True
            if self.version is None:
                self._failure = f"Global hotkeys through the desktop portal: {reason}"
        if self._failure:
            return False, self._failure
        return True, ""

    def start(self, on_event: HotkeyEventCallback) -> None:
        if self._thread is not None:
            raise RuntimeError("PortalHotkeys.start() can be called once; make a new one")
        self._on_event = on_event
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="nanodictate-portal-hotkeys", daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout=_CALL_TIMEOUT_S + 1)
        except Exception as exc:
            self._failure = f"Global hotkeys through the desktop portal: {exc}"
            self.stop()
            raise HotkeysUnavailableError(self._failure) from exc

    def register(self, hotkey_id: str, hotkey: Hotkey) -> None:
        with self._lock:
            if self._bound.get(hotkey_id) == hotkey:
                # Still bound in the session (an unregister not yet applied): nothing to ask.
                self._wanted[hotkey_id] = hotkey
                if self._wanted == self._bound:
                    self._rebind_due = None
                return
            previous = self._wanted.get(hotkey_id)
            self._wanted[hotkey_id] = hotkey
        try:
            bound = self._call(self._rebind)
        except BaseException:
            with self._lock:
                if previous is None:
                    self._wanted.pop(hotkey_id, None)
                else:
                    self._wanted[hotkey_id] = previous
            raise
        if hotkey_id not in bound:
            with self._lock:
                self._wanted.pop(hotkey_id, None)
            raise HotkeysUnavailableError(
                f"The desktop did not bind the hotkey {hotkey} ({_describe(hotkey_id)}); "
                "allow it in the desktop's shortcut dialog or settings"
            )

    def unregister(self, hotkey_id: str) -> None:
        with self._lock:
            if self._wanted.pop(hotkey_id, None) is None:
                return
            self._pressed.discard(hotkey_id)
            self._rebind_due = time.monotonic() + _UNREGISTER_GRACE_S

    def stop(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    # ------------------------------------------------------------------ caller side

    def _call(self, func: Callable[[], Any]) -> Any:
        thread = self._thread
        if self._failure and thread is not None and not thread.is_alive():
            raise HotkeysUnavailableError(self._failure)
        if thread is None or not thread.is_alive() or self._stopping.is_set():
            raise HotkeysUnavailableError(
                "The portal hotkey backend is not running (start() it first)"
            )
        if thread is threading.current_thread():
            return func()
        future: Future[Any] = Future()
        self._commands.put((func, future))
        try:
            return future.result(timeout=self._bind_timeout + 2 * _CALL_TIMEOUT_S)
        except TimeoutError as exc:
            raise HotkeysUnavailableError("The desktop portal did not answer in time") from exc

    # ------------------------------------------------------------------ backend thread

    def _run(self, ready: Future[None]) -> None:
        try:
            self._connect()
        except Exception as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            while not self._stopping.is_set():
                self._run_commands()
                self._maybe_rebind_after_unregister()
                self._pump(_POLL_S)
        except Exception as exc:  # the bus went away
            if not self._stopping.is_set():
                self._failure = f"Lost the connection to the desktop portal ({exc})"
                log.warning("%s", self._failure)
        finally:
            self._close_session()
            self._fail_pending()
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def _connect(self) -> None:
        from jeepney import MatchRule
        from jeepney.io.blocking import open_dbus_connection

        conn = open_dbus_connection(bus=self._address, auth_timeout=_CALL_TIMEOUT_S)
        self._conn = conn
        sender = conn.unique_name.lstrip(":").replace(".", "_")
        self._request_prefix = f"{PORTAL_PATH}/request/{sender}"

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
            _unwrap(conn.send_and_get_reply(_add_match(rule), timeout=_CALL_TIMEOUT_S))
        responses, shortcuts = rules(None)
        conn.filter(responses, queue=self._responses)
        conn.filter(shortcuts, queue=self._shortcut_signals)

    def _run_commands(self) -> None:
        while True:
            try:
                func, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(func())
            except BaseException as exc:
                future.set_exception(exc)

    def _fail_pending(self) -> None:
        while True:
            try:
                _func, future = self._commands.get_nowait()
            except queue.Empty:
                return
            future.set_exception(HotkeysUnavailableError("The portal hotkey backend stopped"))

    def _maybe_rebind_after_unregister(self) -> None:
        with self._lock:
            due = self._rebind_due
        if due is None or time.monotonic() < due:
            return
        try:
            self._rebind()
        except HotkeysUnavailableError as exc:
            log.warning("Rebinding the portal hotkeys after an unregister failed: %s", exc)

    def _pump(self, timeout: float) -> None:
        """Receive one message (or time out) and deliver the shortcut signals it produced."""
        with contextlib.suppress(TimeoutError):
            self._conn.recv_messages(timeout=timeout)
        self._deliver_shortcut_signals()

    def _deliver_shortcut_signals(self) -> None:
        while self._shortcut_signals:
            msg = self._shortcut_signals.popleft()
            member = msg.header.fields.get(3)  # HeaderFields.member
            if member not in ("Activated", "Deactivated") or len(msg.body) < 2:
                continue
            session, shortcut_id = str(msg.body[0]), str(msg.body[1])
            pressed = member == "Activated"
            with self._lock:
                if session != self._session or shortcut_id not in self._wanted:
                    continue
                # One press and one release per real key press, whatever the desktop repeats.
                if pressed == (shortcut_id in self._pressed):
                    continue
                if pressed:
                    self._pressed.add(shortcut_id)
                else:
                    self._pressed.discard(shortcut_id)
            callback = self._on_event
            if callback is not None:
                try:
                    callback(shortcut_id, pressed)
                except Exception:
                    log.exception("hotkey callback failed for %s", shortcut_id)

    def _request(self, method: str, signature: str, body: tuple[Any, ...], token: str,
                 timeout: float) -> dict[str, Any]:  # fmt: skip
        """Call a portal method that answers through a Request object; return its results."""
        from jeepney import DBusAddress, new_method_call

        expected = f"{self._request_prefix}/{token}"
        target = DBusAddress(
            PORTAL_PATH, bus_name=PORTAL_BUS_NAME, interface=GLOBAL_SHORTCUTS_INTERFACE
        )
        msg = new_method_call(target, method, signature, body)
        reply = self._conn.send_and_get_reply(msg, timeout=_CALL_TIMEOUT_S)
        (handle,) = _unwrap(reply)
        paths = {expected, str(handle)}
        deadline = time.monotonic() + timeout
        while True:
            while self._responses:
                response = self._responses.popleft()
                if str(response.header.fields.get(1)) in paths:  # HeaderFields.path
                    code, results = response.body
                    if code != 0:
                        raise HotkeysUnavailableError(_refusal(method, int(code)))
                    return dict(results)
            if self._stopping.is_set():
                raise HotkeysUnavailableError("The portal hotkey backend stopped")
            left = deadline - time.monotonic()
            if left <= 0:
                raise HotkeysUnavailableError(
                    f"The desktop portal did not answer {method} in {timeout:.0f} s"
                )
            self._pump(min(left, _POLL_S))

    def _rebind(self) -> set[str]:
        """Bind the full wanted set in a fresh session; return the ids the desktop bound."""
        with self._lock:
            wanted = dict(self._wanted)
            self._rebind_due = None
        self._close_session()
        if not wanted:
            return set()
        token = _token()
        results = self._request(
            "CreateSession",
            "a{sv}",
            ({"handle_token": ("s", token), "session_handle_token": ("s", _token())},),
            token,
            _CALL_TIMEOUT_S,
        )
        session = _variant_str(results.get("session_handle", ""))
        if not session:
            raise HotkeysUnavailableError("The desktop portal created no shortcut session")
        with self._lock:
            self._session = session
        token = _token()
        shortcuts = [
            (
                hotkey_id,
                {
                    "description": ("s", _describe(hotkey_id)),
                    "preferred_trigger": ("s", hotkey_to_trigger(hotkey)),
                },
            )
            for hotkey_id, hotkey in sorted(wanted.items())
        ]
        try:
            results = self._request(
                "BindShortcuts",
                "oa(sa{sv})sa{sv}",
                (session, shortcuts, "", {"handle_token": ("s", token)}),
                token,
                self._bind_timeout,
            )
        except HotkeysUnavailableError:
            self._close_session()
            raise
        bound_list = results.get("shortcuts", ("a(sa{sv})", []))[1]
        bound: set[str] = set()
        descriptions: dict[str, str] = {}
        for shortcut_id, props in bound_list:
            bound.add(str(shortcut_id))
            trigger = props.get("trigger_description")
            if trigger is not None:
                descriptions[str(shortcut_id)] = _variant_str(trigger)
        with self._lock:
            self._bound = {k: v for k, v in wanted.items() if k in bound}
            self.trigger_descriptions = descriptions
        log.info(
            "portal bound shortcuts: %s",
            ", ".join(f"{k}={descriptions.get(k, '?')}" for k in sorted(bound)) or "none",
        )
        return bound

    def _close_session(self) -> None:
        with self._lock:
            session, self._session = self._session, None
            self._bound = {}
            self._pressed.clear()
        if session is None or self._conn is None:
            return
        from jeepney import DBusAddress, new_method_call

        target = DBusAddress(session, bus_name=PORTAL_BUS_NAME, interface=SESSION_INTERFACE)
        try:
            self._conn.send(new_method_call(target, "Close"))
        except Exception:
            log.debug("closing portal session %s failed", session, exc_info=True)


def _refusal(method: str, code: int) -> str:
    if method == "BindShortcuts":
        if code == 1:
            return (
                "The desktop's shortcut dialog was cancelled, so no global hotkey is bound; "
                "bind `nanodictate toggle` in the desktop settings or try again"
            )
        return (
            "The desktop refused to bind the global hotkeys (portal response "
            f"{code}); bind `nanodictate toggle` to a key in the desktop settings instead"
        )
    return f"The desktop portal refused {method} (response {code})"


def _token() -> str:
    return "nanodictate_" + uuid.uuid4().hex


def _add_match(rule: Any) -> Any:
    from jeepney.bus_messages import message_bus

    return message_bus.AddMatch(rule)
