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

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from desktop.app_driver import (
    REPLICA_TEXT,
    App,
    Dictation,
    make_speech_wav,
    pixels,
    wait_for_new_text,
)
from desktop.harness import DesktopSession, pids_with_marker
from nanodictate import settings as S

pytestmark = pytest.mark.desktop

PREVIOUS_TEXT = "the user's clipboard: naïve café ✓"
SPEECH = "Please write this sentence down."
NO_PASTE_WAIT_S = 2.0  # after the app is done, how long nothing may arrive in the window

# Tray menu, top level, as the keyboard walks it (the disabled status line is skipped).
MENU_LANGUAGE, MENU_PRECISION, MENU_UNLOAD_AFTER = 2, 3, 6  # 1 is "Speech model"

# The tray menu choices each mode's test makes: (language code, its label), precision.
CHOICES = {
    "push_to_talk": ("vi", "Tiếng Việt (Vietnamese)", "fp32"),
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

# ------------------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_speech_wav(tmp_path_factory.mktemp("speech"), SPEECH)


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
