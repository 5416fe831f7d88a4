"""Start at login: an XDG autostart entry on Linux (~/.config/autostart/nanodictate.desktop)."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from pathlib import Path

log = logging.getLogger(__name__)

DESKTOP_NAME = "nanodictate.desktop"


def autostart_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autostart" / DESKTOP_NAME


def _command() -> str:
    # This interpreter's own launcher first: an installed app's ~/.local/bin may not be on
    # the PATH at login, and another `nanodictate` on it may be an older checkout.
    beside = Path(sys.executable).with_name("nanodictate")
    installed = str(beside) if beside.is_file() else shutil.which("nanodictate")
    if installed:
        return shlex.quote(installed)
    return f"{shlex.quote(sys.executable)} -m nanodictate"


def desktop_entry() -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=nanodictate\n"
        "Comment=Local dictation: hold a hotkey, speak, release\n"
        f"Exec={_command()}\n"
        "Icon=audio-input-microphone\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def is_enabled() -> bool:
    return autostart_file().is_file()


def set_enabled(enabled: bool) -> bool:
    """Write or remove the entry; False where start at login is not supported here."""
    if not sys.platform.startswith("linux"):
        log.warning("Start at login is only implemented for Linux desktops")
        return False
    path = autostart_file()
    if enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(desktop_entry(), encoding="utf-8")
        log.info("Autostart entry written: %s", path)
    elif path.exists():
        path.unlink()
        log.info("Autostart entry removed: %s", path)
    return True
