"""The tray app dictating through a team server, on a private desktop (see test_app_e2e.py for
the set-up). The server is a real `nanodictate serve` on loopback with its own Ray node and
the replica (remote_support.py), started once for the module; the app is set to "A server".

- Through the server: the replica's text lands in the window exactly, and no local engine
  process is started.
- The server stops (SIGTERM, as systemd stops it): it exits with 0 and every process of it
  ends. The next dictation fails with a
  notification in the words of `core.messages`, nothing is pasted, and the recording stays
  on disk to be offered again; the history keeps the first text.
- With "Use this computer when the server is unreachable", the server down: the text comes
  from this computer's engine, and the user is told so once, not at every dictation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.app_driver import (
    REPLICA_TEXT,
    App,
    Dictation,
    end_cleanly,
    engine_processes,
    history_texts,
    kept_recordings,
    make_speech_wav,
    notifications,
)
from desktop.harness import DesktopSession
from desktop.remote_support import TeamServer
from nanodictate import settings as S
from nanodictate.core import messages
from nanodictate.core.remote_transcriber import ServerUnreachableError
from nanodictate.ui.notifications import REPEAT_AFTER_S

pytestmark = pytest.mark.desktop

SPEECH = "Please write this sentence down."
NO_PASTE_WAIT_S = 2.0  # after the failure, how long nothing may arrive in the window


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_speech_wav(tmp_path_factory.mktemp("speech"), SPEECH)


@pytest.fixture(scope="module")
def team_server(
    models_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TeamServer]:
    server = TeamServer(models_root, tmp_path_factory.mktemp("team-server"))
    try:
        yield server.start()
    finally:
        leftovers = server.stop()
        assert leftovers == [], f"processes of the server left running: {leftovers}"


def server_settings(server: TeamServer, *, fallback: bool = False) -> dict[S.Setting[Any], Any]:
    return {
        S.HOTKEY_MODE: "toggle",
        S.TRANSCRIPTION_ENGINE: "server",
        S.SERVER_URL: server.url,
        S.SERVER_TOKEN: server.token,
        S.SERVER_FALLBACK_LOCAL: fallback,
    }


def test_dictation_through_the_server_and_when_it_stops_nothing_is_lost(
    desktop: DesktopSession,
    team_server: TeamServer,
    models_root: Path,
    speech_wav: Path,
    tmp_path: Path,
) -> None:
    desk = desktop
    app = App(desk, tmp_path / "app", server_settings(team_server), models_root)
    window = desk.open_text_window()
    window.focus()
    dictate = Dictation(desk, "toggle")

    since = app.mark()
    dictate.run(speech_wav)
    window.wait_for_text(REPLICA_TEXT, 60)
    record = app.wait_record(lambda r: r["event"] == "dictation", 15, "the report", since=since)
    assert record["ok"] is True
    assert engine_processes(app) == []  # the server transcribed it, not this computer

    # Its admin stops the server: Ray and every worker of it end with it.
    assert team_server.stop() == []
    assert team_server.exit_code == 0, team_server.log_tail()

    window.clear()
    window.focus()
    since = app.mark()
    dictate.run(speech_wav)
    failed = app.wait_record(lambda r: r["event"] == "failed", 60, "the failure", since=since)
    unreachable = ServerUnreachableError(
        messages.server_unreachable(team_server.url, "[Errno 111] Connection refused")
    )
    told = messages.transcription_failed(unreachable, recording_kept=True)
    assert notifications(app)[-1] == f"Transcription failed: {told}"
    time.sleep(NO_PASTE_WAIT_S)
    assert window.text() == ""
    assert engine_processes(app) == []  # no fallback unless the user chose it
    [kept] = kept_recordings(app)  # offered again at the next start
    assert kept.stat().st_size > 16000 * 2 * failed["audio_seconds"] * 0.9  # 16-bit, 16 kHz
    assert history_texts(app) == [REPLICA_TEXT]
    end_cleanly(desk, app)
    assert kept_recordings(app) == [kept]


def test_server_down_with_fallback_transcribes_here_and_tells_once(
    desktop: DesktopSession,
    team_server: TeamServer,
    models_root: Path,
    speech_wav: Path,
    tmp_path: Path,
) -> None:
    desk = desktop
    assert team_server.stop() == []  # already, when the test above ran first
    app = App(
        desk,
        tmp_path / "app",
        server_settings(team_server, fallback=True),
        models_root,
    )
    window = desk.open_text_window()
    dictate = Dictation(desk, "toggle")
    landed = 0.0
    for attempt in range(2):
        if attempt:
            # The notifier drops a repeat of the same message within REPEAT_AFTER_S: wait it
            # out, so only FallbackTranscriber can keep a second notice from showing.
            time.sleep(max(0.0, landed + REPEAT_AFTER_S + 0.5 - time.monotonic()))
        window.clear()
        window.focus()
        since = app.mark()
        dictate.run(speech_wav)
        window.wait_for_text(REPLICA_TEXT, 120)
        landed = time.monotonic()
        record = app.wait_record(lambda r: r["event"] == "dictation", 15, "the report", since=since)
        assert record["ok"] is True

    assert len(engine_processes(app)) == 1  # this computer's engine transcribed both
    assert history_texts(app) == [REPLICA_TEXT] * 2
    title, message = messages.server_fallback_local(team_server.url)
    told = notifications(app)
    assert told.count(f"{title}: {message}") == 1, told
    assert not [line for line in told if line.startswith("Transcription failed")]
    end_cleanly(desk, app)
    assert kept_recordings(app) == []
