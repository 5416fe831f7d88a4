"""Recordings kept on disk from key-up until their text is safe in the history.

If anything between key-up and the history goes wrong — the engine crashes twice, the model
cannot load, the app itself is killed or the machine loses power — the recording is still on
disk, and the next start offers to transcribe it. Each recording is a 16 kHz 16-bit mono WAV
(any player opens it) with a small JSON file beside it for the language and the time; both
are readable by the user only (0600) in a folder only the user can enter (0700).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from nanodictate.core.audio_input import SAMPLE_RATE

log = logging.getLogger(__name__)

SPOOL_FOLDER_NAME = "recordings-in-progress"
_BLOCK_SAMPLES = 10 * SAMPLE_RATE  # written ten seconds at a time


@dataclass(frozen=True)
class SpooledRecording:
    audio_path: Path
    language: str
    created: float  # Unix time of key-up
    seconds: float

    @property
    def meta_path(self) -> Path:
        return self.audio_path.with_suffix(".json")


def default_spool_dir() -> Path:
    """Beside the history, in the user data folder (or ``$NANODICTATE_DATA_DIR``)."""
    from nanodictate.core.history import default_history_path

    return default_history_path().parent / SPOOL_FOLDER_NAME


class RecordingSpool:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_spool_dir()

    def keep(self, samples: npt.NDArray[np.float32], *, language: str) -> SpooledRecording:
        """Write a recording to disk (atomically: a crash never leaves half a file behind
        under the final name). Raises OSError when the disk refuses it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.folder.chmod(0o700)
        created = time.time()
        name = time.strftime("%Y%m%d-%H%M%S", time.localtime(created))
        audio_path = self.folder / f"{name}-{uuid.uuid4().hex[:8]}.wav"
        entry = SpooledRecording(audio_path, language, created, len(samples) / SAMPLE_RATE)
        partial = audio_path.with_suffix(".part")
        try:
            with _private_file(partial) as stream, wave.open(stream, "wb") as writer:
                writer.setnchannels(1)
                writer.setsampwidth(2)
                writer.setframerate(SAMPLE_RATE)
                # In blocks: converting ten minutes at once made three 38 MB copies.
                for start in range(0, len(samples), _BLOCK_SAMPLES):
                    block = samples[start : start + _BLOCK_SAMPLES]
                    writer.writeframes((np.clip(block, -1.0, 1.0) * 32767).astype("<i2").tobytes())
            meta = {"language": language, "created": created, "seconds": entry.seconds}
            with _private_file(entry.meta_path) as stream:
                stream.write(json.dumps(meta).encode())
            os.replace(partial, audio_path)
        except BaseException:
            for leftover in (partial, entry.meta_path):
                leftover.unlink(missing_ok=True)
            raise
        return entry

    def release(self, entry: SpooledRecording) -> None:
        """The text is safe: the recording goes."""
        for path in (entry.audio_path, entry.meta_path):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                log.warning("Cannot remove the kept recording %s", path, exc_info=True)

    def orphans(self) -> list[SpooledRecording]:
        """Recordings left by an earlier run, oldest first (not by this run: call at start)."""
        if not self.folder.is_dir():
            return []
        found: list[SpooledRecording] = []
        for audio_path in sorted(self.folder.glob("*.wav")):
            meta: dict[str, object] = {}
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads(audio_path.with_suffix(".json").read_text(encoding="utf-8"))
            language = meta.get("language")
            created = meta.get("created")
            seconds = meta.get("seconds")
            found.append(
                SpooledRecording(
                    audio_path,
                    language if isinstance(language, str) else "en",
                    float(created) if isinstance(created, int | float) else _mtime(audio_path),
                    float(seconds) if isinstance(seconds, int | float) else 0.0,
                )
            )
        # What a run left while it died writing is of no use: half a WAV, or its JSON alone.
        for leftover in self.folder.glob("*.part"):
            leftover.unlink(missing_ok=True)
        for meta_path in self.folder.glob("*.json"):
            if not meta_path.with_suffix(".wav").exists():
                meta_path.unlink(missing_ok=True)
        return sorted(found, key=lambda entry: entry.created)

    @staticmethod
    def read(entry: SpooledRecording) -> npt.NDArray[np.float32]:
        with wave.open(str(entry.audio_path), "rb") as reader:
            frames = reader.readframes(reader.getnframes())
        return (np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32767).astype(np.float32)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


@contextlib.contextmanager
def _private_file(path: Path) -> Iterator[BinaryIO]:
    """A new file that only the user can read, from its first byte on."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())
