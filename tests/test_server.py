"""The team server end to end: a local Ray cluster, the deployment, plain HTTP.

Ray starts once for the module (≈20 s with the replica's load); every test talks to the
same server over loopback, as a client on the network would.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.serve", reason="the server extra is not installed")

from nanodictate.core.remote_transcriber import (
    RemoteTranscriber,
    ServerRefusedError,
    multipart,
    wav_bytes,
)
from nanodictate.testing.replica import DETERMINISTIC_TEXT

TOKEN = "team-token-0123456789abcdef"
MAX_AUDIO_MINUTES = 12.0
MAX_UPLOAD_BYTES = 24 * 2**20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, body: bytes, content_type: str, token: str | None = TOKEN) -> tuple[int, Any]:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request("POST", "/v1/audio/transcriptions", body, headers)
            response = connection.getresponse()
            raw = response.read().decode()
        finally:
            connection.close()
        kind = response.getheader("content-type") or ""
        return response.status, json.loads(raw) if "json" in kind else raw

    def transcribe(
        self, samples: np.ndarray[Any, Any], fields: list[tuple[str, str]], **kwargs: Any
    ) -> tuple[int, Any]:
        body, content_type = multipart(fields, wav_bytes(samples))
        return self.post(body, content_type, **kwargs)


@pytest.fixture(scope="module")
def server(models_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import ray
    from ray import serve

    from nanodictate.server.config import ServerConfig
    from nanodictate.server.deployment import build_application

    folder = tmp_path_factory.mktemp("server")
    tokens = folder / "tokens"
    tokens.write_text(f"# the team\n{TOKEN}  # alice\nshort\n")
    config = ServerConfig(
        model_dir=models_root / "Fun-ASR-MLT-Nano-2512",
        vad_dir=models_root / "fsmn-vad",
        cache_dir=folder / "cache",
        token_file=tokens,
        device="cpu",
        max_batch_size=4,
        batch_wait_s=0.3,  # long enough for concurrent test clients to share a batch
        max_upload_bytes=MAX_UPLOAD_BYTES,
        max_audio_seconds=MAX_AUDIO_MINUTES * 60,
        max_hotwords=5,
        threads=1,
    )
    found = Server(_free_port(), _free_port())
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _metrics_export_port=found.metrics_port,
        log_to_driver=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": found.port})
        serve.run(build_application(config), name="nanodictate", route_prefix="/")
        yield found
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def hello() -> np.ndarray[Any, Any]:
    from nanodictate.testing.speech import speech

    return speech("hello team, this goes through the server")


def test_health_says_model_and_auth(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/health")
    answer = json.loads(connection.getresponse().read())
    assert answer["status"] == "ok"
    assert answer["auth"] is True
    assert (answer["precision"], answer["device"]) == ("int8", "cpu")


def test_transcription_json_text_and_verbose(server: Server, hello: Any) -> None:
    status, answer = server.transcribe(hello, [("model", "fun-asr-mlt-nano")])
    assert (status, answer) == (200, {"text": DETERMINISTIC_TEXT})
    status, answer = server.transcribe(hello, [("response_format", "text")])
    assert (status, answer.strip()) == (200, DETERMINISTIC_TEXT)
    status, answer = server.transcribe(
        hello,
        [("response_format", "verbose_json"), ("language", "ja"), ("hotwords", "Kubernetes")],
    )
    assert status == 200
    assert answer["language"] == "ja"
    assert answer["text"] == DETERMINISTIC_TEXT
    assert answer["segments"][0]["text"] == DETERMINISTIC_TEXT
    assert answer["nanodictate"]["precision"] == "int8"


def test_silence_gives_empty_text(server: Server) -> None:
    status, answer = server.transcribe(np.zeros(16000, np.float32), [])
    assert (status, answer) == (200, {"text": ""})


def test_auth_refused_without_or_with_a_wrong_token(server: Server, hello: Any) -> None:
    for token in (None, "wrong-token-0123456789", "short"):
        status, answer = server.transcribe(hello, [], token=token)
        assert status == 401, token
        assert "bearer token" in answer["error"]["message"].lower()


def test_limits_and_bad_fields_get_clear_4xx(server: Server, hello: Any) -> None:
    status, answer = server.transcribe(hello, [("language", "de")])
    assert status == 400 and "Unknown language 'de'" in answer["error"]["message"]
    status, answer = server.transcribe(hello, [("hotwords", ",".join("abcdef"))])
    assert status == 400 and "At most 5 hotwords" in answer["error"]["message"]
    status, answer = server.transcribe(hello, [("response_format", "srt")])
    assert status == 400 and "response_format" in answer["error"]["message"]
    status, answer = server.post(b"not a form", "application/octet-stream")
    assert status == 415
    too_big = b"x" * (MAX_UPLOAD_BYTES + 1)
    body, content_type = multipart([], too_big)
    status, answer = server.post(body, content_type)
    assert status == 413 and "limit of 24 MB" in answer["error"]["message"]
    # 13 minutes at 8 kHz fits the upload limit but not the length limit.
    long_8k = _wav(np.zeros(13 * 60 * 8000, np.int16), rate=8000)
    status, answer = server.post(*multipart([], long_8k))
    assert status == 413 and "at most 12 min" in answer["error"]["message"]


def test_malformed_file_is_refused_and_server_keeps_serving(server: Server, hello: Any) -> None:
    body, content_type = multipart([], b"RIFF\x00\x00\x00\x00WAVEgarbage" + bytes(range(256)))
    status, answer = server.post(body, content_type)
    assert status == 400 and "not audio" in answer["error"]["message"]
    assert server.transcribe(hello, [])[0] == 200


def test_client_that_disconnects_mid_upload(server: Server, hello: Any) -> None:
    head = (
        "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(head.encode() + b"--b\r\n" + b"\x00" * 200_000)
    time.sleep(0.5)
    assert server.transcribe(hello, []) == (200, {"text": DETERMINISTIC_TEXT})


def test_ten_minute_upload(server: Server, hello: Any) -> None:
    samples = np.zeros(10 * 60 * 16000, np.float32)
    samples[16000 : 16000 + len(hello)] = hello
    status, answer = server.transcribe(samples, [("response_format", "verbose_json")])
    assert status == 200
    assert answer["duration"] == pytest.approx(600, abs=0.01)
    assert answer["text"] == DETERMINISTIC_TEXT


def test_concurrent_requests_share_a_batch(server: Server, hello: Any) -> None:
    fields = [("response_format", "verbose_json")]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: server.transcribe(hello, fields), range(4)))
    assert all(status == 200 for status, _ in answers)
    assert all(answer["text"] == DETERMINISTIC_TEXT for _, answer in answers)
    sizes = [answer["nanodictate"]["timings"].get("batch_size", 1) for _, answer in answers]
    assert max(sizes) > 1, sizes


def test_remote_transcriber_against_the_server(server: Server, hello: Any) -> None:
    remote = RemoteTranscriber(server.url, TOKEN)
    assert remote.load().device == "server"
    result = remote.transcribe(hello, 16000, language="ko", hotwords=["Ray"], itn=False)
    assert (result.text, result.language) == (DETERMINISTIC_TEXT, "ko")
    assert result.speech_found
    with pytest.raises(ServerRefusedError, match="refused the token"):
        RemoteTranscriber(server.url, "wrong-token-0123456789").transcribe(hello, 16000)


def test_prometheus_metrics(server: Server) -> None:
    from urllib.request import urlopen

    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        with urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as response:
            text = response.read().decode()
        if "nanodictate_batch_size" in text and "ray_serve_num_http_requests" in text:
            break
        time.sleep(2)
    assert "nanodictate_batch_size" in text
    assert "ray_serve_num_http_requests" in text


def _wav(pcm: np.ndarray[Any, Any], rate: int) -> bytes:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()
