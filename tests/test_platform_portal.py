"""The GlobalShortcuts portal hotkey backend against a FAKE portal on a private D-Bus bus.

No desktop (GNOME/KDE) runs in CI, so `tests/fake_portal_service.py` stands in for
xdg-desktop-portal: it speaks the same D-Bus methods and signals. These tests check our side
of the protocol, not any real desktop's behaviour.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jeepney")

from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import open_dbus_connection

from nanodictate.core.hotkeys import Hotkey
from nanodictate.platform import select_backends
from nanodictate.platform.base import HotkeysUnavailableError
from nanodictate.platform.wayland.portal import (
    PORTAL_PATH,
    PortalHotkeys,
    hotkey_to_trigger,
    probe_global_shortcuts,
)

FAKE = Path(__file__).with_name("fake_portal_service.py")
CONTROL = DBusAddress(
    PORTAL_PATH,
    bus_name="org.freedesktop.portal.Desktop",
    interface="org.nanodictate.test.FakePortal",
)

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    """A private session bus with no service activation (so nothing real can answer)."""
    exe = shutil.which("dbus-daemon")
    if exe is None:
        pytest.skip("dbus-daemon is not installed")
    config = tmp_path / "bus.conf"
    config.write_text(_CONFIG.format(dir=tmp_path))
    daemon = subprocess.Popen(
        [exe, f"--config-file={config}", "--nofork", "--print-address"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().strip()
        assert address, "dbus-daemon printed no address"
        yield address
    finally:
        daemon.kill()
        daemon.wait(timeout=5)


@pytest.fixture
def fake_portal(bus: str) -> Iterator[str]:
    """The fake portal on `bus`; yields the bus address."""
    proc = subprocess.Popen(
        [sys.executable, str(FAKE), bus], stdout=subprocess.PIPE, text=True
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield bus
    finally:
        proc.kill()
        proc.wait(timeout=5)
    assert proc.poll() is not None


def _control(address: str, member: str, signature: str = "", body: tuple[Any, ...] = ()) -> Any:
    conn = open_dbus_connection(bus=address)
    try:
        reply = conn.send_and_get_reply(
            new_method_call(CONTROL, member, signature or None, body), timeout=5
        )
        return reply.body
    finally:
        conn.close()


def _calls(address: str) -> list[Any]:
    return list(json.loads(_control(address, "Calls")[0]))


def _started(address: str) -> tuple[PortalHotkeys, queue.Queue[tuple[str, bool]]]:
    events: queue.Queue[tuple[str, bool]] = queue.Queue()
    backend = PortalHotkeys(address, bind_timeout=5)
    backend.start(lambda hotkey_id, pressed: events.put((hotkey_id, pressed)))
    return backend, events


def test_trigger_format_follows_the_shortcuts_spec() -> None:
    assert hotkey_to_trigger(Hotkey.parse("ctrl+alt+space")) == "CTRL+ALT+space"
    assert hotkey_to_trigger(Hotkey.parse("super+shift+F9")) == "SHIFT+LOGO+F9"
    assert hotkey_to_trigger(Hotkey.parse("Ctrl+PageUp")) == "CTRL+Prior"
    assert hotkey_to_trigger(Hotkey.parse("a")) == "a"


def test_fake_portal_availability(fake_portal: str, bus: str) -> None:
    assert probe_global_shortcuts(fake_portal) == (1, "")
    assert PortalHotkeys(fake_portal).availability() == (True, "")


def test_no_portal_on_the_bus_is_unavailable_with_a_reason(bus: str) -> None:
    ok, reason = PortalHotkeys(bus).availability()
    assert ok is False
    assert "GlobalShortcuts" in reason
    version, why = probe_global_shortcuts(None)
    assert version is None and "session bus" in why


def test_fake_portal_press_and_release(fake_portal: str) -> None:
    backend, events = _started(fake_portal)
    try:
        backend.register("dictate", Hotkey.parse("ctrl+alt+space"))
        bind = [c for c in _calls(fake_portal) if c[0] == "BindShortcuts"]
        assert len(bind) == 1
        (shortcut_id, props), *_ = bind[0][2]
        assert shortcut_id == "dictate"
        assert props["preferred_trigger"] == "CTRL+ALT+space"
        assert props["description"]
        assert backend.trigger_descriptions == {"dictate": "CTRL+ALT+space"}

        _control(fake_portal, "Emit", "ss", ("Activated", "dictate"))
        _control(fake_portal, "Emit", "ss", ("Activated", "dictate"))  # a repeat: dropped
        _control(fake_portal, "Emit", "ss", ("Deactivated", "dictate"))
        _control(fake_portal, "Emit", "ss", ("Activated", "other"))  # not ours: dropped
        assert events.get(timeout=5) == ("dictate", True)
        assert events.get(timeout=5) == ("dictate", False)
        with pytest.raises(queue.Empty):
            events.get(timeout=0.3)
    finally:
        backend.stop()


def test_fake_portal_register_rebinds_the_full_set_in_a_new_session(fake_portal: str) -> None:
    backend, events = _started(fake_portal)
    try:
        backend.register("dictate", Hotkey.parse("ctrl+alt+space"))
        backend.register("toggle", Hotkey.parse("F9"))
        binds = [c for c in _calls(fake_portal) if c[0] == "BindShortcuts"]
        assert [sorted(s[0] for s in b[2]) for b in binds] == [["dictate"], ["dictate", "toggle"]]
        assert binds[0][1] != binds[1][1]  # one bind per session, as the spec says
        assert ["Close", binds[0][1]] in _calls(fake_portal)

        # unregister: events stop at once; the rebind without it follows shortly.
        backend.unregister("toggle")
        _control(fake_portal, "Emit", "ss", ("Activated", "toggle"))
        _control(fake_portal, "Emit", "ss", ("Activated", "dictate"))
        assert events.get(timeout=5) == ("dictate", True)
        for _ in range(50):
            binds = [c for c in _calls(fake_portal) if c[0] == "BindShortcuts"]
            if len(binds) == 3:
                break
            time.sleep(0.1)
        assert [s[0] for s in binds[-1][2]] == ["dictate"]
    finally:
        backend.stop()


def test_fake_portal_refused_bind_raises(fake_portal: str) -> None:
    backend, events = _started(fake_portal)
    try:
        _control(fake_portal, "SetBindResponse", "u", (2,))
        with pytest.raises(HotkeysUnavailableError, match="refused"):
            backend.register("dictate", Hotkey.parse("ctrl+alt+space"))
        # Nothing stays registered; a later accepted bind works.
        backend.register("dictate", Hotkey.parse("ctrl+alt+space"))
        _control(fake_portal, "Emit", "ss", ("Activated", "dictate"))
        assert events.get(timeout=5) == ("dictate", True)
    finally:
        backend.stop()


def test_select_backends_picks_the_fake_portal_on_wayland(fake_portal: str) -> None:
    env = {
        "WAYLAND_DISPLAY": "wayland-0",
        "XDG_SESSION_TYPE": "wayland",
        "DBUS_SESSION_BUS_ADDRESS": fake_portal,
        "PATH": "/nonexistent",
    }
    backends = select_backends(environ=env, system="linux")
    try:
        assert backends.name == "wayland"
        assert isinstance(backends.hotkeys, PortalHotkeys)
        assert backends.hotkeys.availability() == (True, "")
        assert not any("compositor settings" in note for note in backends.notes)
    finally:
        backends.close()


def test_select_backends_without_a_portal_keeps_the_fallback(bus: str) -> None:
    env = {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland",
           "DBUS_SESSION_BUS_ADDRESS": bus, "PATH": "/nonexistent"}  # fmt: skip
    backends = select_backends(environ=env, system="linux")
    assert not isinstance(backends.hotkeys, PortalHotkeys)
    ok, reason = backends.hotkeys.availability()
    assert ok is False and "compositor settings" in reason


def test_fake_portal_stop_ends_the_thread_and_closes_the_connection(fake_portal: str) -> None:
    before = threading.active_count()
    backend, _events = _started(fake_portal)
    backend.register("dictate", Hotkey.parse("ctrl+alt+space"))
    thread = backend._thread
    assert thread is not None and thread.is_alive()
    backend.stop()
    backend.stop()  # twice is fine
    assert not thread.is_alive()
    assert backend._conn is None
    assert threading.active_count() == before
    assert any(c[0] == "Close" for c in _calls(fake_portal))
    with pytest.raises(HotkeysUnavailableError):
        backend.register("toggle", Hotkey.parse("F9"))
