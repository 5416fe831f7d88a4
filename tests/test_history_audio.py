"""The kept audio of history entries: private FLAC files, trimmed to their cap, gone with
their entries."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from nanodictate.core.history import History
from nanodictate.core.history_audio import HistoryAudio


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tone(seconds: float, seed: int = 0) -> np.ndarray:
    # Noise, not silence: FLAC would shrink silence to nothing and the cap would never bite.
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


def _add(history: History, text: str = "words") -> int:
    return history.add(text, language="en", audio_seconds=1.0, latency_seconds=0.1)


def test_audio_is_private_flac_and_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.umask", lambda _mask: 0)
    store = HistoryAudio(tmp_path / "data" / "history-audio")
    samples = _tone(1.0)
    path = store.save(7, samples)
    assert path.name == "7.flac" and path.read_bytes()[:4] == b"fLaC"
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    back = store.read(7)
    assert back.dtype == np.float32 and len(back) == len(samples)
    assert np.max(np.abs(back - samples)) < 1e-3  # 16-bit: exact to one step
    assert store.has(7) and not store.has(8)
    assert list(path.parent.iterdir()) == [path]  # no partial file left behind


def test_the_oldest_recordings_go_first_past_the_cap(tmp_path: Path) -> None:
    store = HistoryAudio(tmp_path / "audio")
    for entry_id in (1, 2, 3):
        store.save(entry_id, _tone(1.0, entry_id))
    one_file = store.path_of(3).stat().st_size
    store.set_cap_bytes(int(2.5 * one_file))
    assert store.entry_ids() == [2, 3]
    store.save(4, _tone(1.0, 4))
    assert store.entry_ids() == [3, 4] and store.size_bytes() <= store.cap_bytes


def test_audio_goes_with_its_history_entries(tmp_path: Path) -> None:
    history = History(tmp_path / "history.sqlite3", max_entries=2)
    first, second = _add(history), _add(history)
    history.audio.save(first, _tone(0.5))
    history.audio.save(second, _tone(0.5))
    third = _add(history)  # the first entry is trimmed, and its audio with it
    assert history.audio.entry_ids() == [second]
    history.audio.save(third, _tone(0.5))
    history.set_max_entries(1)
    assert history.audio.entry_ids() == [third]
    history.clear()
    assert history.audio.entry_ids() == []
    history.close()


def test_audio_of_a_deleted_history_file_is_dropped_at_open(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    history = History(path)
    history.audio.save(_add(history), _tone(0.5))
    history.close()
    path.unlink()  # by hand: the new file's ids start at 1 again
    reopened = History(path)
    assert reopened.audio.entry_ids() == []
    reopened.close()
