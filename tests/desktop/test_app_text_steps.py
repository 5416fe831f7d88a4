"""The text steps in the real app on a private desktop (see test_app_e2e.py for the set-up): a
spoken "new line" lands as a line break in a real Qt text window, and auto-submit presses a
real Enter there after the paste.

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
