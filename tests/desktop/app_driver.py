"""Driving the real app on a private desktop, as a user does: launch it, read its test report
and log, use its tray menu, dictate with the hotkey. Shared by the end-to-end, fault and soak
tests in this folder."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from desktop.harness import (
    DesktopError,
    DesktopSession,
    TextWindow,
    WindowGeometry,
    pids_with_marker,
)
from nanodictate import settings as S
from nanodictate.core.history import History
from nanodictate.ui.settings_store import IniFileStore

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "bench" / "out"
REPLICA_TEXT = "This is the nanodictate replica."
HOTKEY = "ctrl+alt+space"  # the default dictation hotkey (xdotool syntax)
APP_CLASS = "nanodictate"  # WM_CLASS instance of the app's windows (tray icon, menus)
POINTER_REST = (4, 796)  # bottom-left corner: no window there


def make_speech_wav(folder: Path, text: str, *, speed: int = 170) -> Path:
    """espeak-ng speech (22 kHz; paplay resamples it for the 16 kHz virtual mic)."""
    wav = folder / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en", "-s", str(speed), "-w", str(wav), "--", text],
        check=True,
        timeout=60,
    )
    return wav


def make_paused_speech_wav(
    folder: Path, sentences: list[str], pause_s: float, *, tail_s: float = 0.0, speed: int = 170
) -> tuple[Path, list[tuple[float, float]]]:
    """espeak-ng speech, one sentence after another with `pause_s` of silence between them
    and `tail_s` after the last: the WAV and each sentence's (start, end) in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    frames: list[bytes] = []
    spans: list[tuple[float, float]] = []
    rate, position = 0, 0
    for index, sentence in enumerate(sentences):
        part = folder / f"sentence-{index}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en", "-s", str(speed), "-w", str(part), "--", sentence],
            check=True,
            timeout=60,
        )
        with wave.open(str(part), "rb") as reader:
            rate = reader.getframerate()
            spoken = reader.readframes(reader.getnframes())
        silence = round((pause_s if index < len(sentences) - 1 else tail_s) * rate)
        frames += [spoken, b"\0\0" * silence]
        spans.append((position / rate, (position + len(spoken) // 2) / rate))
        position += len(spoken) // 2 + silence
    wav = folder / "paused-speech.wav"
    with wave.open(str(wav), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"".join(frames))
    return wav, spans


# --------------------------------------------------------------------------------- the app


class App:
    """`python -m nanodictate` in the desktop session, read through its test report and log."""

    def __init__(
        self,
        desk: DesktopSession,
        base: Path,
        settings: dict[S.Setting[Any], Any],
        models_root: Path,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.desk = desk
        self.base = base
        self.config_dir = base / "config"
        self.report = base / "report.jsonl"
        store = S.Settings(self.config_dir / S.SETTINGS_FILE_NAME, open_store=IniFileStore)
        for setting, value in settings.items():
            store.set(setting, value)
        store.sync()
        self.env = {
            "NANODICTATE_MODELS_DIR": str(models_root),
            "NANODICTATE_CACHE_DIR": str(base / "cache"),
            "NANODICTATE_CONFIG_DIR": str(self.config_dir),
            "NANODICTATE_DATA_DIR": str(base / "data"),
            "NANODICTATE_TEST_REPORT": str(self.report),
            **(env or {}),
        }
        self.process = desk.popen(
            [sys.executable, "-m", "nanodictate", "-v"], name="app", env=self.env, cwd=REPO
        )
        self.started = self.wait_record(lambda r: r["event"] == "started", 30, "the app to start")

    # --- what it says

    def records(self) -> list[dict[str, Any]]:
        try:
            text = self.report.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        # Whole lines only: the app may be writing the last one right now.
        return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]

    def mark(self) -> int:
        """A position in the report: `wait_record(..., since=mark)` looks only after it."""
        return len(self.records())

    def wait_record(
        self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str, *, since: int = 0
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the app exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            return next((r for r in self.records()[since:] if match(r)), None)

        try:
            return self.desk.wait_for(found, timeout, what, interval=0.02)
        except Exception as error:
            raise AssertionError(
                f"{error}\nreport: {self.records()[since:]}\nlog:\n{self.log_tail()}"
            ) from None

    def tray(self, since: int = 0) -> dict[str, Any]:
        """The latest tray record (state shown by the icon, tooltip) after `since`."""
        trays = [r for r in self.records()[since:] if r["event"] == "tray"]
        return trays[-1] if trays else {}

    def wait_tray_state(self, state: str, since: int, timeout: float = 15) -> dict[str, Any]:
        self.desk.wait_for(
            lambda: self.tray(since).get("state") == state, timeout, f"the tray to show {state!r}"
        )
        return self.tray(since)

    def log(self) -> str:
        return (self.desk.log_dir / "app.log").read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return self.desk.log_tail("app", lines)

    def settings(self) -> S.Settings:
        return S.Settings(self.config_dir / S.SETTINGS_FILE_NAME, open_store=IniFileStore)

    # --- the tray

    def icon(self) -> WindowGeometry:
        return self.desk.tray_icon(APP_CLASS)

    def icon_pixels(self, path: Path) -> bytes:
        self.desk.screenshot_window(self.icon(), path)
        return pixels(self.desk, path)

    def open_menu(self) -> list[WindowGeometry]:
        """Right-click the tray icon; the menu's window once it is up.

        Qt ignores a click that comes within moments of its last popup closing (as a human
        never clicks), so the click is repeated if no menu comes. The pointer then moves off
        the icon and the menu: no tooltip shows, no item is hovered while the keys walk it.
        """
        for attempt in range(3):
            self.desk.xdotool(
                "mousemove", *self.icon().center, "click", "3", "mousemove", *POINTER_REST
            )
            try:
                return self.desk.wait_for(self.menus, 1.5, "the tray menu to open")
            except DesktopError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def menus(self) -> list[WindowGeometry]:
        return [w for w in self.desk.windows(APP_CLASS) if w.top_level and w.width > 40]

    def choose(self, item: int, choice: int, *, screenshot: Path | None = None) -> None:
        """Open the menu and pick the `choice`-th entry (0 = first) of the submenu that is the
        `item`-th entry of the menu (1 = first enabled), with the keyboard."""
        self.open_menu()
        self.desk.xdotool("key", *["Down"] * item, "Right")
        self.desk.wait_for(lambda: len(self.menus()) >= 2, 5, "the submenu to open")
        if choice:
            self.desk.xdotool("key", *["Down"] * choice)
        if screenshot is not None:
            time.sleep(0.2)  # the highlight is drawn
            save_menu_screenshot(self.desk, self, screenshot)
        self.desk.xdotool("key", "Return")
        self.desk.wait_for(lambda: not self.menus(), 5, "the tray menu to close")
        time.sleep(0.3)  # as a user would pause: see open_menu

    # --- the end

    def quit(self) -> int:
        """SIGTERM, as a session logout does: the app must end cleanly."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=15)
        shutil.copyfile(self.desk.log_dir / "app.log", self.base / "app.log")  # kept
        return code


def pixels(desk: DesktopSession, png: Path) -> bytes:
    """The RGBA pixels of a PNG (not its bytes: PNG files carry time stamps)."""
    return desk.run(["convert", str(png), "rgba:-"], timeout=20).stdout


def save_menu_screenshot(desk: DesktopSession, app: App, path: Path) -> None:
    """The tray and its open menus, cropped from the screen, to `path` and to bench/out/."""
    full = desk.screenshot(path.with_name(path.stem + "-screen.png"))
    boxes = [app.icon(), *app.menus()]
    left = max(0, min(b.x for b in boxes) - 8)
    top = max(0, min(b.y for b in boxes) - 8)
    right = max(b.x + b.width for b in boxes) + 8
    bottom = max(b.y + b.height for b in boxes) + 8
    desk.run(
        [
            "convert",
            str(full),
            "-crop",
            f"{right - left}x{bottom - top}+{left}+{top}",
            "+repage",
            str(path),
        ],
        timeout=20,
        capture=False,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / "tray-menu.png")
    print(f"\ntray menu screenshot: {path} (copied to {ARTIFACTS / 'tray-menu.png'})")


# ------------------------------------------------------------------------------ dictating


class Dictation:
    """One dictation by hotkey, as a user does it in `mode`; times taken in this process."""

    def __init__(self, desk: DesktopSession, mode: str) -> None:
        self.desk = desk
        self.mode = mode
        self.key_up = 0.0  # monotonic time of the stopping key event (sent just after)

    def run(self, speech: Path | None, *, cancel: bool = False, quiet_s: float = 1.5) -> None:
        """Press, play `speech` into the mic (or wait `quiet_s` in silence), then release (or
        press again, in toggle mode) — or press Esc instead when `cancel`."""
        desk = self.desk
        if self.mode == "push_to_talk":
            desk.xdotool("keydown", HOTKEY)
        else:
            desk.xdotool("key", HOTKEY)
        try:
            if speech is not None:
                desk.play_speech(speech)
            else:
                time.sleep(quiet_s)
            if cancel:
                # Push-to-talk: Ctrl+Alt are still down, so this is Ctrl+Alt+Esc (the app grabs
                # the cancel key also with the hotkey's modifiers).
                desk.xdotool("key", "Escape")
        finally:
            self.key_up = time.monotonic()
            if self.mode == "push_to_talk":
                desk.xdotool("keyup", HOTKEY)
            elif not cancel:
                desk.xdotool("key", HOTKEY)


def wait_for_new_text(window: TextWindow, old: str, timeout: float) -> tuple[str, float]:
    """(the window's text once it changed from `old` and settled, when it first changed)."""
    deadline = time.monotonic() + timeout
    while window.text() == old:
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing arrived in the text window within {timeout:.0f} s")
        time.sleep(0.005)
    changed = time.monotonic()
    return window.wait_for_change(old, 5), changed


# ------------------------------------------------------------------------ checks and the end


def engine_processes(app: App) -> list[psutil.Process]:
    """The app's engine child processes (`python -m nanodictate.core.asr.engine_process`)."""
    children = psutil.Process(app.process.pid).children(recursive=True)
    return [c for c in children if "nanodictate.core.asr.engine_process" in " ".join(c.cmdline())]


def history_texts(app: App) -> list[str]:
    history = History(app.base / "data" / "history.sqlite3")
    try:
        return [entry.text for entry in history.recent(1000)]
    finally:
        history.close()


def kept_recordings(app: App) -> list[Path]:
    """The recordings the app keeps on disk until their text is safe (core.spool)."""
    return sorted((app.base / "data" / "recordings-in-progress").glob("*.wav"))


def notifications(app: App) -> list[str]:
    """What the app told the user, "title: message", in order (its log keeps every one)."""
    marker = "Notification: "
    return [line.split(marker, 1)[1] for line in app.log().splitlines() if marker in line]


def end_cleanly(desk: DesktopSession, app: App) -> None:
    """Quit as a logout does; no traceback in the log, no process of the session left."""
    assert app.quit() == 0, app.log_tail()
    assert "Traceback" not in app.log()
    marker = desk.marker
    desk.close()
    assert pids_with_marker(marker) == []
