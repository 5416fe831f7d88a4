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

The D-Bus side (names, probe, subscriptions, Request/Response) is in `_portal_bus`, the
trigger/description/refusal wording in `_portal_text`; their public names are re-exported here.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from nanodictate.core.hotkeys import Hotkey
from nanodictate.platform.base import HotkeyEventCallback, HotkeysUnavailableError
from nanodictate.platform.wayland._portal_bus import (
    CALL_TIMEOUT_S,
    GLOBAL_SHORTCUTS_INTERFACE,
    PORTAL_BUS_NAME,
    PORTAL_PATH,
    GlobalShortcutsConnection,
    probe_global_shortcuts,
    request_token,
    session_bus_address,
    variant_str,
)
from nanodictate.platform.wayland._portal_text import (
    describe_hotkey,
    hotkey_to_trigger,
    refusal_message,
)

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

_POLL_S = 0.1
_UNREGISTER_GRACE_S = 0.3


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
        self._conn: GlobalShortcutsConnection | None = None
        self._session: str | None = None
        self._on_event: HotkeyEventCallback | None = None

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
            ready.result(timeout=CALL_TIMEOUT_S + 1)
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
                f"The desktop did not bind the hotkey {hotkey} ({describe_hotkey(hotkey_id)}); "
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
            return future.result(timeout=self._bind_timeout + 2 * CALL_TIMEOUT_S)
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
        conn = GlobalShortcutsConnection(self._address)
        self._conn = conn
        conn.subscribe()

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
        assert self._conn is not None
        self._conn.receive(timeout)
        self._deliver_shortcut_signals(self._conn)

    def _deliver_shortcut_signals(self, conn: GlobalShortcutsConnection) -> None:
        for session, shortcut_id, pressed in conn.shortcut_events():
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
        assert self._conn is not None
        paths = self._conn.call_request(method, signature, body, token)
        deadline = time.monotonic() + timeout
        while True:
            response = self._conn.take_response(paths)
            if response is not None:
                code, results = response
                if code != 0:
                    raise HotkeysUnavailableError(refusal_message(method, int(code)))
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
        token = request_token()
        results = self._request(
            "CreateSession",
            "a{sv}",
            ({"handle_token": ("s", token), "session_handle_token": ("s", request_token())},),
            token,
            CALL_TIMEOUT_S,
        )
        session = variant_str(results.get("session_handle", ""))
        if not session:
            raise HotkeysUnavailableError("The desktop portal created no shortcut session")
        with self._lock:
            self._session = session
        token = request_token()
        shortcuts = [
            (
                hotkey_id,
                {
                    "description": ("s", describe_hotkey(hotkey_id)),
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
                descriptions[str(shortcut_id)] = variant_str(trigger)
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
        try:
            self._conn.close_session(session)
        except Exception:
            log.debug("closing portal session %s failed", session, exc_info=True)
