"""The text steps in the real app on a private desktop (see test_app_e2e.py for the set-up): a
spoken "new line" lands as a line break in a real Qt text window, and auto-submit presses a
real Enter there after the paste; "delete that" takes the previous dictation back out of the
window with real Backspaces; two windows of different classes get their own per-app profile.

The replica always says REPLICA_TEXT, so a replacement rule (itself one of the text steps)
makes it end with the command: "… replica." → "… replica new line."."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.app_driver import (
    REPLICA_TEXT,
    App,
    Dictation,
    end_cleanly,
    history_texts,
    make_speech_wav,
)
from desktop.harness import DesktopSession
from nanodictate import settings as S
from nanodictate.core.profiles import PROFILES_FILE_NAME
from nanodictate.ui.settings_store import IniFileStore

pytestmark = pytest.mark.desktop

SPEECH = "Please write this sentence down."
ENDS_WITH_NEW_LINE = r"/replica\.$/ => replica new line."
LINE = REPLICA_TEXT.removesuffix(".") + "\n"  # the model's full stop went with the command


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_speech_wav(tmp_path_factory.mktemp("speech"), SPEECH)


def test_spoken_new_line_lands_as_a_line_break_and_auto_submit_presses_enter(
    desktop: DesktopSession, models_root: Path, speech_wav: Path, tmp_path: Path
) -> None:
    # Written before the app starts, as App writes its settings (a Setting with a list default
    # is no dictionary key).
    config = tmp_path / "app" / "config" / S.SETTINGS_FILE_NAME
    S.Settings(config, open_store=IniFileStore).set(S.REPLACEMENTS, [ENDS_WITH_NEW_LINE])
    settings = {S.HOTKEY_MODE: "toggle", S.AUTO_SUBMIT: True}
    app = App(desktop, tmp_path / "app", settings, models_root)
    window = desktop.open_text_window()
    window.focus()
    Dictation(desktop, "toggle").run(speech_wav)
    # The command's line break, then the Enter of auto-submit (a new line in a text box).
    window.wait_for_text(LINE + "\n", 120)
    assert history_texts(app) == [LINE]  # the text as pasted; Enter is no text
    end_cleanly(desktop, app)


def test_spoken_delete_that_takes_the_previous_dictation_back(
    desktop: DesktopSession, models_root: Path, speech_wav: Path, tmp_path: Path
) -> None:
    app = App(desktop, tmp_path / "app", {S.HOTKEY_MODE: "toggle"}, models_root)
    window = desktop.open_text_window()
    window.focus()
    Dictation(desktop, "toggle").run(speech_wav)
    window.wait_for_text(REPLICA_TEXT, 120)
    # The replica cannot say "delete that": a profile (the file is read again when it changes)
    # turns whatever it says in this window into the command.
    (app.config_dir / PROFILES_FILE_NAME).write_text(
        '[[profile]]\nname = "Say delete"\ntitles = ["*"]\n'
        'replacements = ["/^.*$/ => delete that"]\n',
        encoding="utf-8",
    )
    Dictation(desktop, "toggle").run(speech_wav)
    window.wait_for_text("", 60)
    assert history_texts(app) == [REPLICA_TEXT]  # the command is no text of its own
    end_cleanly(desktop, app)


def test_two_windows_of_different_classes_get_their_own_profile(
    desktop: DesktopSession, models_root: Path, speech_wav: Path, tmp_path: Path
) -> None:
    app = App(desktop, tmp_path / "app", {S.HOTKEY_MODE: "toggle"}, models_root)
    (app.config_dir / PROFILES_FILE_NAME).write_text(
        '[[profile]]\nname = "Shell"\napps = ["shellish"]\n'
        "lowercase_start = true\ndrop_final_period = true\n",
        encoding="utf-8",
    )
    notes = desktop.open_text_window(title="notes", wm_class=("notes", "Notes"))
    shell = desktop.open_text_window(title="shell", wm_class=("shellish", "Shellish"))
    notes.focus()
    Dictation(desktop, "toggle").run(speech_wav)
    notes.wait_for_text(REPLICA_TEXT, 120)  # no profile: as transcribed
    shell.focus()
    Dictation(desktop, "toggle").run(speech_wav)
    shell.wait_for_text("this is the nanodictate replica", 60)  # the "Shell" profile's text
    assert notes.text() == REPLICA_TEXT
    end_cleanly(desktop, app)
