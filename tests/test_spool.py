"""Recordings kept on disk until their text is safe: private files, atomic writes, orphans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests_support import fill_disk

from nanodictate.core.spool import RecordingSpool
from nanodictate.testing.speech import speech_with_silence


def test_kept_recording_is_private_and_reads_back(tmp_path: Path) -> None:
    spool = RecordingSpool(tmp_path / "spool")
    samples = speech_with_silence("keep me safe", before=0.2, after=0.2).samples
    entry = spool.keep(samples, language="ja")
    assert entry.audio_path.stat().st_mode & 0o777 == 0o600
    assert entry.meta_path.stat().st_mode & 0o777 == 0o600
    assert spool.folder.stat().st_mode & 0o777 == 0o700
    back = RecordingSpool.read(entry)
    assert back.dtype == np.float32 and len(back) == len(samples)
    assert np.max(np.abs(back - samples)) <= 1.5 / 32767  # 16-bit PCM
    assert json.loads(entry.meta_path.read_text())["language"] == "ja"
    assert entry.seconds == len(samples) / 16000


def test_orphans_are_listed_oldest_first_and_release_removes_them(tmp_path: Path) -> None:
    first = RecordingSpool(tmp_path).keep(np.zeros(1600, np.float32), language="en")
    second = RecordingSpool(tmp_path).keep(np.ones(800, np.float32) * 0.5, language="zh")
    # The next start of the app sees both.
    spool = RecordingSpool(tmp_path)
    orphans = spool.orphans()
    assert [o.audio_path for o in orphans] == [first.audio_path, second.audio_path]
    assert [o.language for o in orphans] == ["en", "zh"]
    spool.release(orphans[0])
    assert [o.audio_path for o in spool.orphans()] == [second.audio_path]
    assert not first.audio_path.exists() and not first.meta_path.exists()


def test_leftovers_of_a_dying_write_are_cleared_and_a_wav_without_meta_is_kept(
    tmp_path: Path,
) -> None:
    spool = RecordingSpool(tmp_path)
    entry = spool.keep(np.zeros(160, np.float32), language="ko")
    entry.meta_path.unlink()  # written before a crash, say, or removed by hand
    (tmp_path / "half.part").write_bytes(b"RIFF")
    (tmp_path / "lonely.json").write_text("{}")
    orphans = spool.orphans()
    assert [o.audio_path for o in orphans] == [entry.audio_path]
    assert orphans[0].language == "en"  # the default when nothing says otherwise
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry.audio_path.name]


def test_a_full_disk_refuses_the_recording_and_leaves_nothing_behind(tiny_disk: Path) -> None:
    spool = RecordingSpool(tiny_disk / "spool")
    fill_disk(tiny_disk)
    with pytest.raises(OSError):
        spool.keep(np.zeros(160_000, np.float32), language="en")
    assert list(spool.folder.iterdir()) == []
