"""The audio of recent dictations, kept beside the history so they can be re-transcribed.

Off unless the user turns it on (the "Keep the audio" setting). Each recording is a FLAC file
named by its history entry's id (`<id>.flac`: the history's ids are never reused), readable by
the user only (0600) in a folder only the user can enter (0700). The store holds at most
`cap_bytes`: the oldest recordings go first. A recording whose history entry goes goes with it
(`History` calls `keep_only` after each trim and `clear` when the history is cleared).
soundfile is imported only when a recording is written or read: the tray starts without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nanodictate.core.audio_input import SAMPLE_RATE

log = logging.getLogger(__name__)

AUDIO_FOLDER_NAME = "history-audio"
DEFAULT_CAP_BYTES = 200 * 1024 * 1024
_SUFFIX = ".flac"


class HistoryAudio:
    def __init__(self, folder: Path, *, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        self.folder = folder
        self.cap_bytes = cap_bytes

    def path_of(self, entry_id: int) -> Path:
        return self.folder / f"{entry_id}{_SUFFIX}"

    def has(self, entry_id: int) -> bool:
        return self.path_of(entry_id).is_file()

    def save(self, entry_id: int, samples: npt.NDArray[np.float32]) -> Path:
        """Write the recording of entry `entry_id` (atomically, private from its first byte),
        then trim the store to its cap. Raises OSError when the disk refuses it."""
        import soundfile

        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)  # an existing folder made too open by hand
        path = self.path_of(entry_id)
        partial = path.with_suffix(".partial")
        descriptor = os.open(partial, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                soundfile.write(
                    file, np.asarray(samples, np.float32), SAMPLE_RATE, "PCM_16", format="FLAC"
                )
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        self.trim()
        return path

    def read(self, entry_id: int) -> npt.NDArray[np.float32]:
        """The recording as mono float32 at 16 kHz. Raises OSError when it is gone."""
        import soundfile

        try:
            samples, _rate = soundfile.read(self.path_of(entry_id), dtype="float32")
        except soundfile.LibsndfileError as error:
            raise OSError(f"Cannot read the recording: {error}") from error
        return np.asarray(samples, np.float32)

    def entry_ids(self) -> list[int]:
        """The entries with a recording, oldest first."""
        if not self.folder.is_dir():
            return []
        ids = (path.stem for path in self.folder.glob(f"*{_SUFFIX}"))
        return sorted(int(stem) for stem in ids if stem.isdigit())

    def size_bytes(self) -> int:
        return sum(self._size(entry_id) for entry_id in self.entry_ids())

    def trim(self) -> None:
        """Delete the oldest recordings until the store fits its cap."""
        ids = self.entry_ids()
        sizes = {entry_id: self._size(entry_id) for entry_id in ids}
        total = sum(sizes.values())
        for entry_id in ids:
            if total <= self.cap_bytes:
                break
            self._delete(entry_id)
            total -= sizes[entry_id]

    def set_cap_bytes(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self.trim()

    def keep_only(self, entry_ids: set[int]) -> None:
        """Delete the recordings of entries no longer in the history."""
        for entry_id in self.entry_ids():
            if entry_id not in entry_ids:
                self._delete(entry_id)

    def clear(self) -> None:
        for entry_id in self.entry_ids():
            self._delete(entry_id)
        for partial in self.folder.glob("*.partial") if self.folder.is_dir() else ():
            with contextlib.suppress(OSError):
                partial.unlink()

    def _size(self, entry_id: int) -> int:
        try:
            return self.path_of(entry_id).stat().st_size
        except OSError:
            return 0

    def _delete(self, entry_id: int) -> None:
        try:
            self.path_of(entry_id).unlink(missing_ok=True)
        except OSError as error:
            log.warning("Cannot delete the recording of history entry %d: %s", entry_id, error)
