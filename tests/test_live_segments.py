"""Chunks settled while the user speaks: the rules on their own, then the real engine (tiny
replica, FSMN-VAD, espeak-ng speech) fed a recording as it grows, whose final text and cuts
must equal those of the whole recording transcribed at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nanodictate.core.asr import engine as engine_module
from nanodictate.core.asr.chunks import plan_chunks
from nanodictate.core.asr.engine import Engine
from nanodictate.core.live_segments import (
    MAX_CHUNK_SECONDS,
    DecodeRate,
    LiveJobs,
    LivePass,
    plan_live,
    transcribe_rest,
    wants_live_text,
)
from nanodictate.core.transcriber import Transcription
from nanodictate.testing.speech import make_long_recording, speech

RATE = 16000


def s(seconds: float) -> int:
    return round(seconds * RATE)


# ------------------------------------------------------------------------------ the rules


def test_the_chunk_limit_is_the_engines() -> None:
    assert MAX_CHUNK_SECONDS == engine_module.MAX_CHUNK_SECONDS


def test_a_pause_longer_than_any_merge_settles_the_chunk_before_it() -> None:
    speech_spans = [(s(1), s(3))]
    # 2 s of quiet after the speech, but the last 1 s is the lookahead: 1 s < 1.4 s.
    assert plan_live(speech_spans, s(5)).settled == []
    # 2.5 s of quiet past the lookahead: more than merge gap + padding on both sides.
    plan = plan_live(speech_spans, s(6.5))
    assert plan.settled == [(s(0.8), s(3.2))] and plan.open == []


def test_a_segment_still_being_spoken_settles_nothing() -> None:
    plan = plan_live([(s(1), s(4.5))], s(5))
    assert plan.settled == [] and plan.open == [(s(0.8), s(4.7))]


def test_short_pauses_merge_so_only_a_long_one_settles() -> None:
    spans = [(s(1), s(3)), (s(3.5), s(6)), (s(8), s(10))]
    # The first two merge (0.5 s apart); the third is 2 s away: a cut whatever comes next.
    plan = plan_live(spans, s(11.5))
    assert plan.settled == [(s(0.8), s(6.2))]
    assert plan.settled == plan_chunks(spans, s(11.5))[:1]
    # Speech that goes on right after the third segment could still merge with it.
    assert plan.open == [(s(7.8), s(10.2))]


def test_the_chunk_limit_settles_a_chunk_before_a_closed_segment() -> None:
    # 0.5 s pauses (merged) until 20 s would be exceeded; the next chunk starts at a segment.
    spans = [(s(t), s(t + 4.5)) for t in range(0, 30, 5)]
    whole = plan_chunks(spans, s(40))
    plan = plan_live(spans, s(40))
    assert plan.settled + plan.open == whole
    assert plan.settled == whole  # nothing follows the last one for longer than any merge
    # The fifth segment may still grow: conservative, nothing settles before it closes.
    assert plan_live(spans[:5], s(24.8)).settled == []
    assert plan_live(spans[:5], s(26)).settled == whole[:1]


def test_a_long_segment_still_growing_is_not_cut_early() -> None:
    plan = plan_live([(s(1), s(45))], s(45.2))
    assert plan.settled == []


def test_a_closed_long_segment_settles_with_all_its_pieces() -> None:
    spans = [(s(1), s(45))]
    plan = plan_live(spans, s(48))
    assert plan.settled == plan_chunks(spans, s(48)) and len(plan.settled) == 3


def test_live_jobs_keep_only_the_newest_pass_and_forget_finished_dictations() -> None:
    jobs = LiveJobs()
    audio = np.zeros(s(3), dtype=np.float32)
    jobs.offer(LivePass(1, audio, 0, "en"))
    jobs.offer(LivePass(1, audio[: s(2)], 0, "en"))
    taken = jobs.take()
    assert taken is not None and len(taken.audio) == s(2) and jobs.take() is None
    jobs.offer(LivePass(1, audio, 0, "en"))
    jobs.finish(1)  # key-up: the waiting pass is stale
    assert jobs.take() is None
    jobs.offer(LivePass(1, audio, 0, "en"))  # one sent just before key-up arrives late
    assert jobs.take() is None


def test_live_text_rule() -> None:
    assert wants_live_text("on", "cpu", None) and not wants_live_text("off", "cuda", 0.01)
    assert wants_live_text("auto", "cuda", None)
    assert not wants_live_text("auto", "cpu", None)  # nothing measured yet
    assert wants_live_text("auto", "cpu", 0.05) and not wants_live_text("auto", "cpu", 0.3)
    rate = DecodeRate()
    rate.add(0.2, 1.0)  # too short to count
    assert rate.factor is None
    rate.add(4.0, 0.4)
    rate.add(2.0, 0.4)
    rate.add(5.0, 0.1)
    assert rate.factor == pytest.approx(0.1)


# ------------------------------------------------------------------------------ the engine


@pytest.fixture(scope="module")
def engine(models_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine(
        models_root / "Fun-ASR-MLT-Nano-2512",
        vad_dir=models_root / "fsmn-vad",
        cache_dir=tmp_path_factory.mktemp("int8-cache"),
        threads=2,
    )
    engine.load("int8", "cpu")
    yield engine
    engine.unload()


def _live(engine: Engine, samples: np.ndarray, every: float = 0.5) -> tuple[Transcription, int]:
    """Feed the recording as the worker would while it grows; then finish at key-up."""
    jobs = LiveJobs()
    known = 0  # what the controller knows is settled
    passes = 0
    for now in range(s(every), len(samples), s(every)):
        jobs.offer(LivePass(7, samples[known:now], known, "en"))
        request = jobs.take()
        assert request is not None
        update = jobs.run_pass(engine, request)
        if update is not None:
            passes += 1
            known = round(update.new_segments[-1].end * RATE)
    dictation = jobs.take_dictation(7)
    return transcribe_rest(engine, dictation, samples, RATE, language="en"), passes


def test_final_text_equals_the_whole_recording_transcribed_at_the_end(engine: Engine) -> None:
    parts = [
        speech("the first sentence is short"),
        speech("then comes another one"),
        speech("a third follows after a short breath"),
        speech("and the last one ends the dictation"),
    ]
    recording = make_long_recording(parts, [1.8, 0.4, 2.2], lead=0.5, tail=1.0, background=0.002)
    whole = engine.transcribe(recording.samples, RATE, language="en")
    live, passes = _live(engine, recording.samples)
    assert passes > 0
    assert live.timings["settled_while_speaking"] >= 2  # done before key-up
    assert [(round(x.start, 3), round(x.end, 3)) for x in live.segments] == [
        (round(x.start, 3), round(x.end, 3)) for x in whole.segments
    ]
    assert live.text == whole.text and live.text


def test_no_speech_settles_nothing_and_gives_the_same_empty_text(engine: Engine) -> None:
    quiet = np.random.default_rng(0).normal(0, 0.002, s(6)).astype(np.float32)
    live, _ = _live(engine, quiet)
    assert live.text == engine.transcribe(quiet, RATE).text == ""
