"""The transcription history: an SQLite file only the user can read.

Every transcription is written here *before* it is pasted, so text whose paste fails (or
whose clipboard gets overwritten) is never lost. Dictated text is private: the file is
created with mode 0600 before SQLite writes a byte (SQLite gives its journal the same mode),
its folder is 0700, and the text never goes to the log. The audio of recent entries, when the
user keeps it, is in `core.history_audio`, beside the file; it goes when its entry goes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from nanodictate.core.history_audio import AUDIO_FOLDER_NAME, HistoryAudio

log = logging.getLogger(__name__)

DATA_DIR_ENV = "NANODICTATE_DATA_DIR"
HISTORY_FILE_NAME = "history.sqlite3"
DEFAULT_MAX_ENTRIES = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transcriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,          -- Unix time
    text TEXT NOT NULL,
    language TEXT NOT NULL,
    audio_seconds REAL NOT NULL,
    latency_seconds REAL NOT NULL   -- key release to text ready
)
"""


@dataclass(frozen=True)
class Entry:
    id: int
    created: float
    text: str
    language: str
    audio_seconds: float
    latency_seconds: float


def default_history_path() -> Path:
    """``$NANODICTATE_DATA_DIR/history.sqlite3``, else in the user data folder."""
    override = os.environ.get(DATA_DIR_ENV)
    base = (
        Path(override).expanduser()
        if override
        else Path(platformdirs.user_data_dir("nanodictate", appauthor=False))
    )
    return base / HISTORY_FILE_NAME


def _create_private_file(path: Path) -> None:
    """Create the file (and folder) readable by the user only, if it does not exist yet."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL: the mode applies only when we create the file; an existing file keeps
        # its mode unless it is too open, which is fixed below.
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("History file %s was readable by others; making it private", path)
            os.chmod(path, 0o600)
        return
    os.close(descriptor)
    # The umask cannot widen 0600, but a filesystem might ignore the mode: set it explicitly.
    os.chmod(path, 0o600)


class History:
    """Recent transcriptions, newest first, trimmed to ``max_entries``."""

    def __init__(self, path: Path | None = None, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.path = default_history_path() if path is None else path
        self.max_entries = max_entries
        _create_private_file(self.path)
        # check_same_thread=False: the app writes from the GUI thread only, but tests and
        # the CLI may open it elsewhere; all access is serialised by the caller.
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute(_SCHEMA)
        self._db.commit()
        self.audio = HistoryAudio(self.path.parent / AUDIO_FOLDER_NAME)
        # Recordings whose entries went while the app was not running (or whose history
        # file was deleted by hand: the new file's ids start again at 1).
        self._drop_orphan_audio()

    def add(
        self,
        text: str,
        *,
        language: str,
        audio_seconds: float,
        latency_seconds: float,
        created: float | None = None,
    ) -> int:
        """Store one transcription (committed to disk when this returns); its id."""
        when = time.time() if created is None else created
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO transcriptions (created, text, language, audio_seconds, "
                "latency_seconds) VALUES (?, ?, ?, ?, ?)",
                (when, text, language, audio_seconds, latency_seconds),
            )
            self._trim()
        self._drop_orphan_audio()
        entry_id = cursor.lastrowid
        assert entry_id is not None
        return entry_id

    def _trim(self) -> None:
        if self.max_entries < 0:
            return
        self._db.execute(
            "DELETE FROM transcriptions WHERE id NOT IN "
            "(SELECT id FROM transcriptions ORDER BY id DESC LIMIT ?)",
            (self.max_entries,),
        )

    def set_max_entries(self, max_entries: int) -> None:
        self.max_entries = max_entries
        with self._db:
            self._trim()
        self._drop_orphan_audio()

    def _drop_orphan_audio(self) -> None:
        if not self.audio.entry_ids():  # the usual case: no file to compare with
            return
        rows = self._db.execute("SELECT id FROM transcriptions").fetchall()
        self.audio.keep_only({entry_id for (entry_id,) in rows})

    def recent(self, n: int = 10) -> list[Entry]:
        rows = self._db.execute(
            "SELECT id, created, text, language, audio_seconds, latency_seconds "
            "FROM transcriptions ORDER BY id DESC LIMIT ?",
            (n,),
        ).fetchall()
        return [Entry(*row) for row in rows]

    def __len__(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM transcriptions").fetchone()
        return int(count)

    def clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM transcriptions")
        # Deleted rows can linger in free pages; VACUUM rewrites the file without them.
        self._db.execute("VACUUM")
        self.audio.clear()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
