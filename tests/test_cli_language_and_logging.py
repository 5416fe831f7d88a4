"""What users see on the terminal: the CLI's message for a language the model lacks, and
logging that keeps funasr's root-logger chatter out while our own warnings still show."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nanodictate.cli import unknown_language_message
from nanodictate.core.languages import LANGUAGES
from nanodictate.log_setup import configure_logging

FUNASR_FILE = "/venv/lib/python3.11/site-packages/funasr/download/download_model_from_hub.py"


def test_cli_names_a_missing_language_and_lists_the_31(tmp_path: Path) -> None:
    import soundfile

    wav = tmp_path / "talk.wav"
    soundfile.write(wav, np.zeros(1600, np.float32), 16000)
    done = subprocess.run(
        [sys.executable, "-m", "nanodictate", "transcribe", str(wav), "--language", "de"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NANODICTATE_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert done.returncode == 2
    codes = " ".join(language.code for language in LANGUAGES)
    assert codes.startswith("zh en yue ja ko") and len(LANGUAGES) == 31
    assert done.stderr == (
        f"nanodictate: German (de) is not one of the model's 31 languages: {codes}. "
        "Fun-ASR-MLT-Nano has no German, French, Spanish, Italian or Russian.\n"
    )
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize(
    ("code", "start"),
    [
        ("fr", "French (fr) is not"),
        ("ES", "Spanish (ES) is not"),
        ("it", "Italian (it) is not"),
        ("ru", "Russian (ru) is not"),
        ("de-AT", "German (de-AT) is not"),
        ("xx", "'xx' is not"),
    ],
)
def test_unknown_language_messages(code: str, start: str) -> None:
    message = unknown_language_message(code)
    assert message.startswith(start + " one of the model's 31 languages: zh en yue ")
    assert " nl " in message and " de " not in message


@pytest.fixture
def logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, filters = list(root.handlers), root.level, list(root.filters)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    root.filters[:] = filters


def _funasr_root_record(level: int, message: str) -> logging.LogRecord:
    """A record as funasr makes it: `logging.warning(...)` on the root logger, in its file."""
    return logging.LogRecord("root", level, FUNASR_FILE, 102, message, None, None)


def _stderr_after(
    verbosity: int, emit: list[tuple[str, int, str]], monkeypatch: pytest.MonkeyPatch
) -> str:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging(verbosity)
    root = logging.getLogger()
    for source, level, message in emit:
        if source == "funasr":
            root.handle(_funasr_root_record(level, message))
        else:
            logging.getLogger(source).log(level, message)
    return stderr.getvalue()


@pytest.mark.usefixtures("logging_restored")
def test_language_labels_name_each_language_in_english_too() -> None:
    """A desktop without the script's fonts draws "ไทย" as boxes; the English name stays."""
    labels = {language.code: language.label for language in LANGUAGES}
    assert labels["th"] == "ไทย (Thai)" and labels["zh"] == "中文 (Chinese)"
    assert labels["en"] == "English" and labels["fil"] == "Filipino"
    assert all(language.english_name in language.label for language in LANGUAGES)


def test_funasr_root_warnings_stay_off_stderr_and_ours_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emit = [
        ("funasr", logging.WARNING, "trust_remote_code: False"),
        ("funasr", logging.INFO, "Building VAD model."),
        ("nanodictate.core.asr.engine", logging.WARNING, "our warning"),
        ("funasr", logging.ERROR, "Loading wav failed!"),
    ]
    for verbosity in (0, 1):
        lines = _stderr_after(verbosity, emit, monkeypatch).splitlines()
        assert [line.split(" ", 1)[1] for line in lines] == [
            "WARNING nanodictate.core.asr.engine: our warning",
            "ERROR root: Loading wav failed!",
        ]
    # -vv (DEBUG) is for developers: funasr's warnings show there.
    assert "trust_remote_code: False" in _stderr_after(2, emit, monkeypatch)


@pytest.mark.usefixtures("logging_restored")
def test_inside_quiet_funasr_warnings_go_to_our_debug_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nanodictate.core.asr.funasr_runtime import quiet

    log_file = tmp_path / "app.log"
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging(2, log_file)  # DEBUG everywhere: what reaches a developer
    root = logging.getLogger()
    with quiet():
        root.handle(_funasr_root_record(logging.WARNING, "trust_remote_code: False"))
        root.handle(_funasr_root_record(logging.INFO, "Building VAD model."))
        logging.getLogger("nanodictate.core.asr.vad").warning("our warning")
    text = stderr.getvalue()
    assert "DEBUG nanodictate.core.asr.funasr_runtime: funasr warned " in text
    assert "(download_model_from_hub.py:102): trust_remote_code: False" in text
    assert "WARNING nanodictate.core.asr.vad: our warning" in text
    assert " root: " not in text and "Building VAD model" not in text
    # The app's log file at its default level (INFO) holds our warning and nothing of funasr's.
    configure_logging(0, log_file)
    with quiet():
        root.handle(_funasr_root_record(logging.WARNING, "trust_remote_code: False again"))
    logging.shutdown()
    assert "again" not in log_file.read_text(encoding="utf-8")


def test_cli_transcribe_tells_an_unreachable_server_in_one_line(tmp_path: Path) -> None:
    import socket

    import soundfile

    wav = tmp_path / "talk.wav"
    soundfile.write(wav, np.zeros(1600, np.float32), 16000)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    done = subprocess.run(
        [sys.executable, "-m", "nanodictate", "transcribe", str(wav), "--server", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"nanodictate: {wav}: The transcription server {url} cannot")
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_cli_serve_refuses_no_auth_off_localhost() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nanodictate", "serve", "--no-auth", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--no-auth is only allowed on localhost" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_refuses_a_language_the_chosen_model_lacks(tmp_path: Path) -> None:
    import soundfile

    wav = tmp_path / "talk.wav"
    soundfile.write(wav, np.zeros(1600, np.float32), 16000)
    command = [sys.executable, "-m", "nanodictate", "transcribe", str(wav), "--language", "ko"]
    done = subprocess.run(
        [*command, "--model", "fun-asr-nano"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NANODICTATE_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "nanodictate: Korean (ko) is not one of Fun-ASR-Nano-2512's 3 languages: zh en ja. "
        "Fun-ASR-MLT-Nano-2512 (--model fun-asr-mlt-nano) knows it.\n"
    )
