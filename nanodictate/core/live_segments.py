"""Transcribing while the user speaks: which chunks of a running recording are settled.

At key-up the engine cuts the whole recording into chunks (`core.asr.chunks.plan_chunks`:
speech padded by 0.2 s, neighbours at most 1.0 s apart merged while the chunk stays under
20 s) and decodes each. Most of that work need not wait for key-up: a chunk is *settled* as
soon as no audio still to come can change where it starts or ends. Then it can be decoded
while the user goes on speaking, and at key-up only the tail after the last settled chunk
is left. The final text is `join_texts` of all chunks, exactly the text of the whole
recording transcribed at the end, because the cuts are the same.

The steps, read in order:
1. `plan_live` — given the speech the VAD found in the not-yet-transcribed region so far,
   which chunks are settled (the same cuts as `plan_chunks` on the whole recording would
   make) and which are still open.
2. `LiveStep` — what the engine answers for one pass over that region (settled chunks with
   their text, and optionally a guess at the open part for the live preview).
3. `LiveDictation` — one dictation's settled chunks in recording time; at key-up it joins them
   with the tail's transcription.
4. `LiveJobs` — the engine worker's side: the latest pass asked for (a newer one replaces it,
   they never queue up) and the dictation it belongs to.
5. `wants_live_text` and `DecodeRate` — whether re-decoding the open part for the preview is
   affordable on this machine.

Why a chunk is settled (positions in samples of the region):
- A VAD segment is *closed* when it ends at least `LOOKAHEAD_SECONDS` before the end of the
  audio received: FSMN-VAD ends a segment after 0.8 s of silence, so one that ends later may
  still grow. Only the closed segments at the start of the region count.
- A chunk made of closed speech is settled when the chunk after it starts with closed speech
  too (both are then fixed, and so is whether they merge), or when the silence after the last
  closed segment is already longer than any merge could bridge (the merge gap plus the
  padding on both sides, counted up to the lookahead horizon).
- A cut inside a long segment (split at the chunk limit) is never where a region ends: the
  split points move while that segment grows, so its pieces settle together once it closed.
The next pass starts its region at the end of the last settled chunk: that point lies in a
pause (or at a cut between two VAD segments), so the VAD sees the rest as it would in the
whole recording, and padding stops there exactly as it stops at the middle of the gap.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nanodictate.core.asr.chunks import join_texts, plan_chunks
from nanodictate.core.audio_input import SAMPLE_RATE
from nanodictate.core.errors import EngineCrashedError
from nanodictate.core.transcriber import EngineState, Segment, Transcription

log = logging.getLogger(__name__)

ChunkSpan = tuple[int, int]
"""[start, end) in samples at 16 kHz."""

# FSMN-VAD's max_end_silence_time is 800 ms; a little more so that a segment it reports as
# ended is really over and no speech starting now has gone unreported.
LOOKAHEAD_SECONDS = 1.0
# What `Engine.transcribe` passes to plan_chunks (its defaults for padding and merging).
MAX_CHUNK_SECONDS = 20.0
PAD_SECONDS = 0.2
MERGE_GAP_SECONDS = 1.0
# A region that grows past this without a pause (music, steady noise the VAD takes for
# speech) stops live passes for the dictation: each pass re-reads the whole region, and the
# key-up path transcribes it anyway.
MAX_OPEN_SECONDS = 90.0


@dataclass(frozen=True)
class LivePlan:
    settled: list[ChunkSpan]  # decode now: the whole-recording plan cuts here too
    open: list[ChunkSpan]  # may still change; only worth a guess for the preview


def plan_live(speech: Sequence[ChunkSpan], total: int) -> LivePlan:
    """Split the region's chunks into settled and open (see the module's explanation)."""
    segments = sorted((int(start), int(end)) for start, end in speech if end > start)
    chunks = plan_chunks(segments, total, max_chunk_seconds=MAX_CHUNK_SECONDS)
    horizon = total - round(LOOKAHEAD_SECONDS * SAMPLE_RATE)
    closed = 0
    while closed < len(segments) and segments[closed][1] <= horizon:
        closed += 1
    if closed == 0:
        return LivePlan([], chunks)
    last_closed_end = segments[closed - 1][1]
    segment_starts = {max(start, 0) for start, _ in segments}
    pad = round(PAD_SECONDS * SAMPLE_RATE)
    merge_gap = round(MERGE_GAP_SECONDS * SAMPLE_RATE)
    settled = 0
    for index, (_, end) in enumerate(chunks):
        if end > last_closed_end + pad:
            break  # it holds open speech
        following = chunks[index + 1] if index + 1 < len(chunks) else None
        if following is not None and following[0] < last_closed_end:
            # Closed speech follows, so whether the two merge is fixed. A cut inside a long
            # segment is no place for the next region to start: settle with the next piece.
            if _starts_a_segment(following[0], segment_starts, pad):
                settled = index + 1
            continue
        # Open speech follows, or none yet: speech still to come starts after the horizon.
        next_start = following[0] if following is not None else horizon - pad
        if next_start - end > merge_gap:
            settled = index + 1
        break
    return LivePlan(chunks[:settled], chunks[settled:])


def _starts_a_segment(chunk_start: int, segment_starts: set[int], pad: int) -> bool:
    # A chunk starts at a segment's start less its padding (less when the gap before it is
    # short, but never by more than `pad`).
    return any(0 <= segment - chunk_start <= pad for segment in segment_starts)


@dataclass(frozen=True)
class SettledChunk:
    start: int  # samples in the region passed to the engine
    end: int
    text: str


@dataclass(frozen=True)
class LiveStep:
    """The engine's answer to one pass: settled chunks decoded, perhaps a guess at the rest."""

    settled: tuple[SettledChunk, ...]
    open_text: str | None  # None: no guess was asked for (or there is no open speech)
    decoded_seconds: float  # audio seconds decoded in this pass
    decode_seconds: float  # wall time those decodes took


@dataclass
class LiveDictation:
    """One dictation's settled chunks, in the recording's own time."""

    job_id: int
    boundary: int = 0  # samples: the next pass starts here; key-up transcribes from here
    segments: list[Segment] = field(default_factory=list)

    def accept(self, step: LiveStep, region_start: int) -> list[Segment]:
        """Take a pass over the region that began at `region_start`; the new segments."""
        if region_start != self.boundary:
            return []  # an older region: its chunks were taken already
        new = [
            Segment(
                (region_start + chunk.start) / SAMPLE_RATE,
                (region_start + chunk.end) / SAMPLE_RATE,
                chunk.text,
            )
            for chunk in step.settled
        ]
        if step.settled:
            self.boundary = region_start + step.settled[-1].end
        self.segments.extend(new)
        return new

    def complete(self, tail: Transcription, audio_seconds: float) -> Transcription:
        """The settled chunks and the tail (transcribed from `boundary`) as one result."""
        offset = self.boundary / SAMPLE_RATE
        segments = [
            *self.segments,
            *(Segment(s.start + offset, s.end + offset, s.text) for s in tail.segments),
        ]
        timings = {**tail.timings, "settled_while_speaking": float(len(self.segments))}
        return Transcription(
            join_texts([segment.text for segment in segments]),
            tail.language,
            audio_seconds,
            tuple(segments),
            timings,
        )


@dataclass(frozen=True)
class LivePass:
    """Asked for by the controller every ≈0.5 s while recording: the audio from `offset`
    (a sample index of the recording) to now, and how to transcribe it."""

    job_id: int
    audio: np.ndarray[Any, Any]
    offset: int
    language: str
    hotwords: tuple[str, ...] = ()
    itn: bool = True
    live_text: str = "off"  # the LIVE_TEXT setting: auto / on / off


@dataclass(frozen=True)
class LiveUpdate:
    """What one pass changed, for the controller (preview, paste at each pause)."""

    job_id: int
    new_segments: tuple[Segment, ...]
    open_text: str | None


class LiveJobs:
    """The engine worker's bookkeeping: one waiting pass at most, one dictation's chunks.

    `offer` and `finish` may be called from any thread; the rest from the worker's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: LivePass | None = None
        self._finished_up_to = 0  # job ids at or below this get no more passes
        self._current: LiveDictation | None = None
        self.decode_rate = DecodeRate()
        self.device: str | None = None  # where the model runs, once loaded: "cpu" / "cuda"

    def offer(self, request: LivePass) -> None:
        """Replace the waiting pass (a busy worker skips the stale audio)."""
        with self._lock:
            if request.job_id > self._finished_up_to:
                self._waiting = request

    def finish(self, job_id: int) -> None:
        """The dictation ended (key-up or cancel): its waiting pass is dropped."""
        with self._lock:
            self._finished_up_to = max(self._finished_up_to, job_id)
            if self._waiting is not None and self._waiting.job_id <= job_id:
                self._waiting = None

    def take(self) -> LivePass | None:
        with self._lock:
            request, self._waiting = self._waiting, None
            if request is not None and request.job_id <= self._finished_up_to:
                return None
            return request

    def run_pass(self, engine: Any, request: LivePass) -> LiveUpdate | None:
        """One pass on the engine's thread; None when nothing changed. Only on a loaded
        model: while it loads nothing is done early, and a failure only leaves more for
        key-up. A crash of the engine's process is raised: the worker tells the user."""
        capabilities = getattr(engine, "capabilities", None)
        ready = engine.state in (EngineState.READY, EngineState.OFFLOADED)
        live = ready and capabilities is not None and capabilities.partial_text
        region = self.region(request) if live else None
        if region is None:
            return None
        dictation, audio = region
        region_start = dictation.boundary
        guess = wants_live_text(request.live_text, self.device, self.decode_rate.factor)
        started = time.perf_counter()
        try:
            step: LiveStep = engine.transcribe_settled(
                audio,
                language=request.language,
                hotwords=request.hotwords,
                itn=request.itn,
                guess_open=guess,
            )
        except EngineCrashedError:
            raise
        except Exception:
            log.warning("A pass while the user speaks failed; key-up does its work", exc_info=True)
            return None
        self.decode_rate.add(step.decoded_seconds, step.decode_seconds)
        new = dictation.accept(step, region_start)
        # Once a pause (INFO, as the app's log shows a dictation's steps), else DEBUG.
        log.log(
            logging.INFO if new else logging.DEBUG,
            "Pass over %.1f s of audio: %d chunk(s) settled; %.1f s decoded%s, %.2f s in all",
            len(audio) / SAMPLE_RATE,
            len(new),
            step.decoded_seconds,
            " (with a guess)" if guess else "",
            time.perf_counter() - started,
        )
        if not new and step.open_text is None:
            return None
        return LiveUpdate(request.job_id, tuple(new), step.open_text)

    def region(self, request: LivePass) -> tuple[LiveDictation, np.ndarray[Any, Any]] | None:
        """The dictation and the part of the request's audio not yet settled; None when
        there is nothing to do (a pass over a region already settled, or too long a one)."""
        current = self._current
        if current is None or current.job_id != request.job_id:
            current = self._current = LiveDictation(request.job_id, boundary=request.offset)
        skip = current.boundary - request.offset
        if skip < 0:
            return None
        audio = request.audio[skip:]
        seconds = len(audio) / SAMPLE_RATE
        if seconds <= LOOKAHEAD_SECONDS or seconds > MAX_OPEN_SECONDS:
            return None
        return current, audio

    def take_dictation(self, job_id: int) -> LiveDictation | None:
        """At key-up: the dictation's settled chunks (then forgotten), if any were made."""
        self.finish(job_id)
        current, self._current = self._current, None
        if current is None or current.job_id != job_id or not current.segments:
            return None
        return current


class DecodeRate:
    """Real-time factors (decode wall time ÷ audio seconds) of the last few decodes."""

    def __init__(self, keep: int = 8) -> None:
        self._factors: deque[float] = deque(maxlen=keep)

    def add(self, audio_seconds: float, decode_seconds: float) -> None:
        if audio_seconds >= 0.5:  # shorter ones are dominated by fixed costs
            self._factors.append(decode_seconds / audio_seconds)

    @property
    def factor(self) -> float | None:
        return statistics.median(self._factors) if self._factors else None


# The live preview re-decodes the open part, typically one sentence (≈5–8 s), every
# ≈0.5–0.7 s. On a real-time factor of 0.1 a 7 s sentence takes 0.7 s: the preview keeps
# pace, and a pass in flight at key-up delays the final text by at most that much. Slower,
# the passes would pile work in front of the settled chunks and the key-up tail.
LIVE_TEXT_MAX_FACTOR = 0.1


def wants_live_text(setting: str, device: str | None, rate: float | None) -> bool:
    """LIVE_TEXT: "on" / "off" as said; "auto" on a GPU, and on a CPU once the measured rate
    (`DecodeRate.factor`) shows it keeps up (`LIVE_TEXT_MAX_FACTOR`)."""
    if setting == "on":
        return True
    if setting != "auto":
        return False
    if device == "cuda":
        return True
    return rate is not None and rate <= LIVE_TEXT_MAX_FACTOR


def transcribe_rest(
    engine: Any,
    dictation: LiveDictation | None,
    audio: np.ndarray[Any, Any],
    sample_rate: int,
    **options: Any,
) -> Transcription:
    """At key-up: the whole recording, or, when chunks were settled while the user spoke,
    only the tail after them, joined with theirs."""
    if dictation is None or sample_rate != SAMPLE_RATE or dictation.boundary >= len(audio):
        result: Transcription = engine.transcribe(audio, sample_rate, **options)
        return result
    tail = engine.transcribe(audio[dictation.boundary :], sample_rate, **options)
    return dictation.complete(tail, len(audio) / SAMPLE_RATE)
