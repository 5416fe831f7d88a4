"""The tray's remote engine without a team server: the form it sends, an unreachable server,
and the fall back to this computer's engine, told once per outage. (Against a running server:
tests/test_server.py; in the real app: tests/desktop/test_app_remote.py.)"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nanodictate.core import messages
from nanodictate.core.asr.engine import Engine
from nanodictate.core.remote_transcriber import (
    FallbackTranscriber,
    RemoteTranscriber,
    ServerUnreachableError,
    multipart,
    wav_bytes,
)
from nanodictate.core.transcriber import EngineState
from nanodictate.server.config import ServerConfig
from nanodictate.server.upload import build_request, parse_form
from nanodictate.testing.replica import DETERMINISTIC_TEXT

SERVER_TEXT = "Said by the server."


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the probe is closed


def test_the_form_the_client_sends_is_what_the_server_reads(tmp_path: Path) -> None:
    samples = (np.sin(np.arange(16000) / 10) * 0.5).astype(np.float32)
    fields = [("language", "ja"), ("itn", "false"), ("hotwords", "Ray"), ("hotwords", "Serve")]
    body, content_type = multipart(fields, wav_bytes(samples))
    form, audio = parse_form(content_type, body)
    config = ServerConfig(model_dir=tmp_path, vad_dir=None, cache_dir=tmp_path, token_file=None)
    parsed = build_request(form, audio, config)
    assert (parsed.job.language, parsed.job.hotwords, parsed.job.itn) == (
        "ja",
        ("Ray", "Serve"),
        False,
    )
    assert parsed.response_format == "json"
    np.testing.assert_allclose(parsed.job.samples, samples, atol=1e-4)  # 16-bit PCM


def test_unreachable_server_is_told_in_words() -> None:
    remote = RemoteTranscriber(_closed_port_url(), "token", timeout_s=5)
    remote.load()
    assert remote.state is EngineState.READY
    with pytest.raises(ServerUnreachableError, match="cannot be reached") as caught:
        remote.transcribe(np.zeros(16000, np.float32), 16000)
    assert "Connection refused" in str(caught.value)


class StandInServer:
    """A real HTTP server on a fixed loopback port that answers every transcription with
    SERVER_TEXT, started and stopped at will: a team server that comes and goes."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._http: ThreadingHTTPServer | None = None

    def start(self) -> None:
        class Answer(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                body = json.dumps({"text": SERVER_TEXT, "language": "en"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", self.port), Answer)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


def test_fallback_transcribes_on_this_computer_and_tells_once_per_outage(
    models_root: Path, tmp_path: Path
) -> None:
    from nanodictate.testing.speech import speech

    made: list[Engine] = []

    def make_local() -> Any:
        made.append(
            Engine(
                models_root / "Fun-ASR-MLT-Nano-2512",
                vad_dir=models_root / "fsmn-vad",
                cache_dir=tmp_path / "cache",
                threads=1,
            )
        )
        return made[-1]

    server = StandInServer()  # not started: nothing listens on its port yet
    fallback = FallbackTranscriber(RemoteTranscriber(server.url, timeout_s=5), make_local)
    told: list[tuple[str, str]] = []
    fallback.on_fallback = lambda title, message: told.append((title, message))
    hello = speech("hello")

    def text() -> str:
        return fallback.transcribe(hello, 16000, language="en").text

    fallback.load("int8", "cpu")
    try:
        # The server is down: this computer transcribes, and says so once for the outage.
        assert [text(), text()] == [DETERMINISTIC_TEXT] * 2
        assert len(made) == 1 and made[0].state is EngineState.READY
        assert told == [messages.server_fallback_local(server.url)]
        # It answers again: its text, and no notice.
        server.start()
        assert text() == SERVER_TEXT
        assert len(told) == 1
        # A new outage is told again.
        server.stop()
        assert text() == DETERMINISTIC_TEXT
        assert len(told) == 2 and len(made) == 1
    finally:
        server.stop()
        fallback.unload()
    assert made[0].state is EngineState.UNLOADED
