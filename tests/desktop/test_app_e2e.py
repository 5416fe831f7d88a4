"""The real app, end to end, on a private desktop: Xvfb + trayer (tray host) + PulseAudio with a
virtual microphone that espeak-ng speech is played into, xdotool for the keys and the mouse,
and a real Qt text window holding the focus. The app runs as `python -m nanodictate` (its own
process, its own settings, history and cache folders) with the tiny deterministic replica of
Fun-ASR-MLT-Nano — it transcribes any speech to exactly REPLICA_TEXT — and the real FSMN-VAD.

For push-to-talk and for toggle mode (one app launch each):
- the replica's text lands in the window exactly, and the clipboard the user had before (a
  text, then a PNG image) is back afterwards;
- a press with only silence pastes nothing and the app reports "no speech";
- Esc during a recording cancels it: nothing is pasted;
- language and precision chosen in the tray menu (right-clicked with xdotool, navigated with
  the keyboard) reach the settings file, the tooltip and the next dictation, which loads the
  model in the new precision; changing precision unloads a loaded model;
- with "Unload after: Immediately" (from the settings file for push-to-talk, from the tray menu
  for toggle) the model leaves memory after a dictation and the tray icon shows it.
And, for each mode, a hotkey another client already grabbed is reported and the app runs on.

Run with `-s` to see the timings (key-down → first audio frame, key-up → text in the window).
A screenshot of the tray with its menu open goes to the test's tmp_path and bench/out/.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from desktop.harness import (
    DesktopError,
    DesktopSession,
    TextWindow,
    WindowGeometry,
    pids_with_marker,
)
from nanodictate import settings as S

pytestmark = pytest.mark.desktop

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "bench" / "out"
REPLICA_TEXT = "This is the nanodictate replica."
HOTKEY = "ctrl+alt+space"  # the default dictation hotkey (xdotool syntax)
PREVIOUS_TEXT = "the user's clipboard: naïve café ✓"
SPEECH = "Please write this sentence down."
APP_CLASS = "nanodictate"  # WM_CLASS instance of the app's windows (tray icon, menus)
POINTER_REST = (4, 796)  # bottom-left corner: no window there
NO_PASTE_WAIT_S = 2.0  # after the app is done, how long nothing may arrive in the window

# Tray menu, top level, as the keyboard walks it (the disabled status line is skipped).
MENU_LANGUAGE, MENU_PRECISION, MENU_UNLOAD_AFTER = 1, 2, 5

# The tray menu choices each mode's test makes: (language code, its label), precision.
CHOICES = {
    "push_to_talk": ("vi", "Tiếng Việt", "fp32"),
    "toggle": ("id", "Bahasa Indonesia", "bf16"),
}

_GRABBER = r"""
import sys
from Xlib import X, XK, display
d = display.Display()
code = d.keysym_to_keycode(XK.string_to_keysym("space"))
d.screen().root.grab_key(code, X.ControlMask | X.Mod1Mask, True, X.GrabModeAsync,
                         X.GrabModeAsync)
d.sync()
print("grabbed", flush=True)
sys.stdin.read()  # hold the grab until the harness closes our stdin or kills us
"""


# --------------------------------------------------------------------------------- the app


class App:
    """`python -m nanodictate` in the desktop session, read through its test report and log."""

    def __init__(
        self,
        desk: DesktopSession,
        base: Path,
        settings: dict[S.Setting[Any], Any],
        models_root: Path,
    ) -> None:
        self.desk = desk
        self.base = base
        self.config_dir = base / "config"
        self.report = base / "report.jsonl"
        store = S.Settings(self.config_dir / S.SETTINGS_FILE_NAME)
        for setting, value in settings.items():
            store.set(setting, value)
        store.sync()
        self.env = {
            "NANODICTATE_MODELS_DIR": str(models_root),
            "NANODICTATE_CACHE_DIR": str(base / "cache"),
            "NANODICTATE_CONFIG_DIR": str(self.config_dir),
            "NANODICTATE_DATA_DIR": str(base / "data"),
            "NANODICTATE_TEST_REPORT": str(self.report),
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
        return S.Settings(self.config_dir / S.SETTINGS_FILE_NAME)

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


# ------------------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """espeak-ng speech (22 kHz; paplay resamples it for the 16 kHz virtual mic)."""
    folder = tmp_path_factory.mktemp("speech")
    wav = folder / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en", "-s", "170", "-w", str(wav), "--", SPEECH], check=True, timeout=60
    )
    return wav


@pytest.mark.parametrize("mode", ["push_to_talk", "toggle"])
def test_dictation_end_to_end(
    desktop: DesktopSession, models_root: Path, speech_wav: Path, tmp_path: Path, mode: str
) -> None:
    desk = desktop
    language, language_label, precision = CHOICES[mode]
    ptt = mode == "push_to_talk"
    # Push-to-talk starts with "Unload after: Immediately" in its settings file; toggle starts
    # with "Never" (so a precision change finds the model loaded) and switches in the menu.
    app = App(
        desk,
        tmp_path / "app",
        {S.HOTKEY_MODE: mode, S.UNLOAD_AFTER_MINUTES: 0 if ptt else -1},
        models_root,
    )
    assert app.started["hotkey_problems"] == []
    assert app.started["tray_state"] == "unloaded"
    print(
        f"\n[{mode}] app started: tray icon {app.started['tray_ms']} ms, ready "
        f"{app.started['ready_ms']} ms, {app.started['rss_mb']} MB"
    )
    window = desk.open_text_window()
    unloaded_icon = app.icon_pixels(tmp_path / "icon-unloaded.png")
    dictate = Dictation(desk, mode)
    timings: list[tuple[str, dict[str, Any], float]] = []

    def dictation_lands(label: str) -> dict[str, Any]:
        """Dictate SPEECH; the window must then hold exactly REPLICA_TEXT."""
        window.clear()
        window.focus()
        since = app.mark()
        dictate.run(speech_wav)
        text, landed = wait_for_new_text(window, "", 60)
        assert text == REPLICA_TEXT
        record = app.wait_record(
            lambda r: r["event"] == "dictation", 15, "the dictation report", since=since
        )
        assert record["ok"] is True and record["method"] == "paste"
        timings.append((label, record, (landed - dictate.key_up) * 1000))
        return record

    # 1 + 2a. Text lands exactly; the text the user had on the clipboard is back.
    desk.set_clipboard_text(PREVIOUS_TEXT)
    since = app.mark()
    first = dictation_lands("1st (loads the model)")
    assert first["language"] == "en" and first["precision"] == "int8"
    desk.wait_for(
        lambda: desk.read_clipboard_text() == PREVIOUS_TEXT,
        5,
        "the previous clipboard text to come back",
    )
    assert "image/png" not in desk.clipboard_targets()
    assert app.log().count("Model loaded: int8 on cpu") == 1  # the key-down preload was used

    if ptt:
        # 7 (settings file). Unloaded right after the dictation; the icon says so again.
        tray = app.wait_tray_state("unloaded", since)
        assert "Model memory: none" in tray["tooltip"]
        assert "Idle: unloading the model" in app.log()
        desk.wait_for(
            lambda: app.icon_pixels(tmp_path / "icon-after.png") == unloaded_icon,
            5,
            "the tray icon to show the unloaded state",
        )
    else:
        tray = app.wait_tray_state("ready", since)
        assert "RAM" in tray["tooltip"] and "Precision: INT8" in tray["tooltip"]
        ready_icon = app.icon_pixels(tmp_path / "icon-ready.png")
        assert ready_icon != unloaded_icon

    # 6. Language and precision from the tray menu, clicked and keyed with xdotool.
    since = app.mark()
    language_index = [code for code, _label in S.LANGUAGE.choices].index(language)
    app.choose(MENU_LANGUAGE, language_index)
    precision_index = [value for value, _label in S.PRECISION.choices].index(precision)
    app.choose(MENU_PRECISION, precision_index, screenshot=tmp_path / "tray-menu.png")
    stored = app.settings()
    assert (stored.get(S.LANGUAGE), stored.get(S.PRECISION)) == (language, precision)
    tray = app.wait_tray_state("unloaded", since)  # toggle: the loaded model goes
    desk.wait_for(
        lambda: f"Precision: {precision.upper()}" in app.tray(since)["tooltip"],
        5,
        "the tooltip to show the new precision",
    )
    assert f"Language: {language_label}" in app.tray(since)["tooltip"]
    if not ptt:
        assert "Unloading the model (precision changed)" in app.log()
        desk.wait_for(
            lambda: app.icon_pixels(tmp_path / "icon-after.png") == unloaded_icon,
            5,
            "the tray icon to show the unloaded state",
        )

    # 1 + 2b. The next dictation uses them; an image the user had on the clipboard is back.
    image = tmp_path / "previous.png"
    desk.run(["convert", "-size", "48x24", "gradient:#d03000-#0040c0", str(image)], capture=False)
    desk.set_clipboard_image(image)
    second = dictation_lands(f"2nd ({precision}, loads the model again)")
    assert (second["language"], second["precision"]) == (language, precision)
    assert app.log().count(f"Model loaded: {precision} on cpu") == 1
    desk.wait_for(
        lambda: desk.read_clipboard("image/png") is not None, 5, "the previous image to come back"
    )
    restored = desk.read_clipboard("image/png")
    assert restored is not None
    if restored == image.read_bytes():
        print(f"[{mode}] the previous image is back byte for byte")
    else:  # Qt may re-encode it: then the pixels must match
        copy = tmp_path / "restored.png"
        copy.write_bytes(restored)
        assert pixels(desk, copy) == pixels(desk, image)
        print(f"[{mode}] the previous image is back (same pixels, re-encoded)")

    # 3. Silence: nothing is pasted, and the app says it heard no speech.
    window.clear()
    window.focus()
    since = app.mark()
    dictate.run(None)
    app.wait_record(lambda r: r["event"] == "no_speech", 30, "the no-speech report", since=since)
    assert "No speech in" in app.log()
    time.sleep(NO_PASTE_WAIT_S)
    assert window.text() == ""

    # 4. Esc cancels the recording in progress: nothing is pasted.
    since = app.mark()
    dictate.run(speech_wav, cancel=True)
    app.wait_record(lambda r: r["event"] == "cancelled", 10, "the cancel report", since=since)
    time.sleep(NO_PASTE_WAIT_S)
    assert window.text() == ""
    assert not [r for r in app.records()[since:] if r["event"] in ("dictation", "no_speech")]
    if ptt:
        # "Immediately": the model loaded at key-down goes when no transcription comes.
        app.wait_tray_state("unloaded", since)
    else:
        # 7 (tray menu). "Unload after: Immediately": the idle model goes at once.
        app.wait_tray_state("ready", since)
        since = app.mark()
        app.choose(MENU_UNLOAD_AFTER, 0)
        assert app.settings().get(S.UNLOAD_AFTER_MINUTES) == 0
        tray = app.wait_tray_state("unloaded", since)
        assert "Model memory: none" in tray["tooltip"]
        assert "Idle: unloading the model" in app.log()
        desk.wait_for(
            lambda: app.icon_pixels(tmp_path / "icon-after.png") == unloaded_icon,
            5,
            "the tray icon to show the unloaded state",
        )

    # 8. Timings. Toggle mode stops on the second press: "key-up" is that key event there.
    print(
        f"[{mode}] {'dictation':34} key-down→1st frame | key-up→text in window | "
        "key-up→pasted (app) | transcribe (app)"
    )
    for label, record, in_window_ms in timings:
        print(
            f"[{mode}] {label:34} {record['key_down_to_first_frame_ms']:15.1f} ms | "
            f"{in_window_ms:18.1f} ms | {record['key_up_to_pasted_ms']:16.1f} ms | "
            f"{record['transcribe_ms']:10.1f} ms"
        )
    for _label, record, in_window_ms in timings:
        assert record["key_down_to_first_frame_ms"] < 1000
        assert 0 < in_window_ms < 60_000

    # The app ends cleanly and the session leaves no process behind.
    assert app.quit() == 0, app.log_tail()
    assert "Traceback" not in app.log()
    marker = desk.marker
    desk.close()
    assert pids_with_marker(marker) == []


@pytest.mark.parametrize("mode", ["push_to_talk", "toggle"])
def test_hotkey_taken_by_another_client_is_reported(
    desktop: DesktopSession, models_root: Path, tmp_path: Path, mode: str
) -> None:
    desk = desktop
    grabber = desk.popen(
        [sys.executable, "-c", _GRABBER],
        name="grabber",
        stdin=subprocess.PIPE,
        stdout=tmp_path / "grabber.out",
    )
    desk.wait_for(
        lambda: "grabbed" in (tmp_path / "grabber.out").read_text() or grabber.poll() is not None,
        10,
        "the grabber",
    )
    assert grabber.poll() is None, desk.log_tail("grabber")

    app = App(desk, tmp_path / "app", {S.HOTKEY_MODE: mode}, models_root)
    problems = app.started["hotkey_problems"]
    assert len(problems) == 1
    assert "Ctrl+Alt+Space" in problems[0] and "already used by another program" in problems[0]
    assert "hotkey Ctrl+Alt+Space is grabbed by another client" in app.log()
    # It runs on: its icon is in the tray and it answers commands.
    time.sleep(0.5)
    assert app.process.poll() is None
    assert app.icon().width > 1
    answer = desk.run([sys.executable, "-m", "nanodictate", "cancel"], env=app.env, check=False)
    assert answer.returncode == 0, desk.log_tail("commands")
    assert app.quit() == 0, app.log_tail()
    assert "Traceback" not in app.log()
    marker = desk.marker
    desk.close()
    assert pids_with_marker(marker) == []
