"""Speech chunks: where a recording is cut for the decoder, and how the texts are joined.

The LLM decoder loops or cuts off on segments longer than ≈15–30 s, so the speech the VAD
found is padded, merged across short pauses and split at the quietest moment near equal
lengths; each chunk is decoded on its own and the texts joined. Pure functions over sample
indices: no model, no torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from nanodictate.core.audio_input import SAMPLE_RATE

Segment = tuple[int, int]
"""[start, end) in samples at 16 kHz."""

# The quietest 100 ms decides where a segment longer than a chunk is cut: a breath or a pause
# between words, so that no word is cut in two where one can be avoided.
_QUIET_WINDOW_SECONDS = 0.1
# How far from the ideal (equal-length) cut point to look for that quiet spot.
_SPLIT_SEARCH_SECONDS = 2.0


def join_texts(texts: Sequence[str]) -> str:
    """Join chunk texts: no space between CJK characters, one space elsewhere."""
    joined = ""
    for text in (t.strip() for t in texts):
        if not text:
            continue
        if joined and not (_is_cjk(joined[-1]) and _is_cjk(text[0])):
            joined += " "
        joined += text
    return joined


def _is_cjk(character: str) -> bool:
    code = ord(character)
    return (
        0x3000 <= code <= 0x9FFF  # CJK punctuation, kana, unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
    )


def plan_chunks(
    segments: Sequence[Segment],
    total_samples: int,
    *,
    audio: npt.NDArray[np.float32] | None = None,
    max_chunk_seconds: float = 20.0,
    pad_seconds: float = 0.2,
    merge_gap_seconds: float = 1.0,
    sample_rate: int = SAMPLE_RATE,
) -> list[Segment]:
    """Turn speech segments into the [start, end) pieces of the recording to transcribe.

    1. Segments are clamped to [0, total_samples), sorted, and overlapping ones united.
    2. Each is padded by `pad_seconds` on both sides (the VAD cuts close to the voice and the
       model needs the onset of the first word), never past the audio or past the middle of
       the gap to its neighbour.
    3. A padded segment longer than `max_chunk_seconds` is split into near-equal pieces, each
       cut moved (by up to 2 s) to the quietest 100 ms nearby when `audio` is given.
    4. Neighbours at most `merge_gap_seconds` apart are joined while the result stays within
       `max_chunk_seconds`: fewer, longer pieces give the model more context per call, while
       long pauses are left out so the model never transcribes long silence.

    The result is ordered and non-overlapping, every piece lasts at most `max_chunk_seconds`,
    together the pieces cover every sample of every segment, and silence before the first and
    after the last segment (beyond the padding) is left out. No segments give [].
    """
    if max_chunk_seconds <= 0 or not math.isfinite(max_chunk_seconds):
        raise ValueError(f"max_chunk_seconds must be positive, got {max_chunk_seconds}")
    if pad_seconds < 0 or merge_gap_seconds < 0:
        raise ValueError("pad_seconds and merge_gap_seconds must not be negative")
    if audio is not None and len(audio) != total_samples:
        raise ValueError(f"audio has {len(audio)} samples but total_samples is {total_samples}")
    max_len = max(int(max_chunk_seconds * sample_rate), 1)
    pad = round(pad_seconds * sample_rate)
    merge_gap = round(merge_gap_seconds * sample_rate)

    speech = _union(segments, total_samples)
    padded = _pad(speech, pad, total_samples)
    pieces: list[Segment] = []
    for (start, end), (voice_start, voice_end) in zip(padded, speech, strict=True):
        if end - start <= max_len:
            pieces.append((start, end))
            continue
        for piece_start, piece_end in _split(start, end, max_len, audio, sample_rate):
            # With padding long compared with the chunk limit, a piece can be all padding;
            # silence alone must never reach the model (it hallucinates on it).
            if piece_start < voice_end and piece_end > voice_start:
                pieces.append((piece_start, piece_end))
    return _merge(pieces, max_len, merge_gap)


def _union(segments: Sequence[Segment], total: int) -> list[Segment]:
    clamped = sorted(
        (max(int(start), 0), min(int(end), total))
        for start, end in segments
        if min(int(end), total) > max(int(start), 0)
    )
    united: list[Segment] = []
    for start, end in clamped:
        if united and start <= united[-1][1]:
            united[-1] = (united[-1][0], max(united[-1][1], end))
        else:
            united.append((start, end))
    return united


def _pad(speech: list[Segment], pad: int, total: int) -> list[Segment]:
    padded: list[Segment] = []
    for index, (start, end) in enumerate(speech):
        # Padding stops at the middle of the gap, so padded neighbours never overlap and each
        # keeps its own speech whole.
        low = (speech[index - 1][1] + start) // 2 if index > 0 else 0
        high = (end + speech[index + 1][0]) // 2 if index + 1 < len(speech) else total
        padded.append((max(start - pad, low), min(end + pad, high)))
    return padded


def _split(
    start: int, end: int, max_len: int, audio: npt.NDArray[np.float32] | None, sample_rate: int
) -> list[Segment]:
    length = end - start
    search = round(_SPLIT_SEARCH_SECONDS * sample_rate)
    # Aim a little below max_len so each cut has room to move to a quiet spot; without the
    # slack, a segment of exactly 2 × max_len could only be cut at its exact middle.
    slack = min(search, max_len // 8)
    count = max(math.ceil(length / max(max_len - 2 * slack, 1)), 2)
    ideal = [start + (length * i) // count for i in range(count + 1)]
    longest = max(b - a for a, b in itertools.pairwise(ideal))
    # Each cut moves by at most `reach`, so a piece grows by at most 2 × reach: still within
    # max_len. The quarter-piece cap keeps consecutive cuts in order.
    reach = max(min(search, (max_len - longest) // 2, longest // 4), 0)
    cuts = [start]
    for point in ideal[1:-1]:
        cut = point
        if audio is not None and reach > 0:
            cut = _quietest_point(audio, point, reach, sample_rate)
        cuts.append(cut)
    cuts.append(end)
    return list(itertools.pairwise(cuts))


def _quietest_point(
    audio: npt.NDArray[np.float32], point: int, reach: int, sample_rate: int
) -> int:
    """The centre of the quietest window in [point - reach, point + reach]; nearest wins ties."""
    half = max(round(_QUIET_WINDOW_SECONDS * sample_rate) // 2, 1)
    low = max(point - reach, half)
    high = min(point + reach, len(audio) - half)
    if high <= low:
        return point
    region = audio[low - half : high + half].astype(np.float64)
    energy = np.concatenate(([0.0], np.cumsum(region * region)))
    window = energy[2 * half :] - energy[: -2 * half]  # window[k] is centred on low + k
    quietest = float(window.min())
    candidates = np.flatnonzero(window <= quietest + 1e-9) + low
    return int(candidates[np.argmin(np.abs(candidates - point))])


def _merge(pieces: list[Segment], max_len: int, merge_gap: int) -> list[Segment]:
    chunks: list[Segment] = []
    for start, end in pieces:
        if chunks:
            first, last = chunks[-1]
            if start - last <= merge_gap and end - first <= max_len:
                chunks[-1] = (first, end)
                continue
        chunks.append((start, end))
    return chunks
