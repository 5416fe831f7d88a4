"""Speech detection with the real FSMN-VAD model, and the chunk planner built on it."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from nanodictate.core.asr.vad import Segment, SpeechDetector, plan_chunks
from nanodictate.core.audio_input import SAMPLE_RATE
from nanodictate.core.errors import EngineStateError, ModelCorruptError, ModelMissingError
from nanodictate.testing import speech as sp

SECOND = SAMPLE_RATE

# Ten parts of two sentences each (≈11 s apiece at 135 words per minute): with the pauses
# between them, a recording of about two minutes.
SENTENCES = [
    "Good morning everyone, and thank you for joining this meeting about the new release. "
    "We have a lot to cover, so let us begin right away.",
    "First, the installer now works on every supported system without any manual steps. "
    "Nobody has to edit a configuration file by hand any more.",
    "Second, we fixed the problem where long recordings were sometimes dropped halfway. "
    "Ten minutes of dictation now arrive in one piece.",
    "Third, the settings window remembers its size and position between sessions. "
    "It also opens on the screen where it was closed.",
    "The team also measured memory use and found that idle memory fell by half. "
    "The model now leaves the graphics card when nobody is speaking.",
    "Several users asked for a faster way to switch languages from the tray menu. "
    "That request came up in almost every interview we held.",
    "We added that menu, and it now shows each language in its own script. "
    "Japanese appears in Japanese, and Greek appears in Greek.",
    "Next week we will test the paste feature in terminals and in remote desktops. "
    "Those two cases caused most of the complaints last month.",
    "Please send any problems you find to the tracker, with the log file attached. "
    "A short recording of the problem helps even more.",
    "That is everything for today, thank you all, and have a pleasant afternoon. "
    "The next meeting is on Thursday at ten.",
]


def seconds(segments: list[Segment]) -> list[tuple[float, float]]:
    return [(round(a / SECOND, 2), round(b / SECOND, 2)) for a, b in segments]


def covered(chunks: list[Segment], start: int, end: int) -> bool:
    """Whether every sample of [start, end) lies in some chunk."""
    mask = np.zeros(end - start, dtype=bool)
    for a, b in chunks:
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            mask[lo - start : hi - start] = True
    return bool(mask.all())


# --- the model on real audio -----------------------------------------------------------------


def test_silence_and_room_noise_have_no_speech(speech_detector: SpeechDetector) -> None:
    assert speech_detector.speech_segments(sp.silence(10.0)) == []
    # Even loud white noise (RMS 0.05, -26 dBFS) is not speech to FSMN-VAD.
    for level in (0.003, 0.05):
        assert speech_detector.speech_segments(sp.noise(10.0, level)) == []
    assert speech_detector.speech_segments(np.zeros(0, dtype=np.float32)) == []


def test_speech_between_silences_is_found_and_silence_trimmed(
    speech_detector: SpeechDetector, espeak: str
) -> None:
    recording = sp.speech_with_silence(
        "The quick brown fox jumps over the lazy dog. Then it runs away.", before=2.0, after=2.0
    )
    [(voice_start, voice_end)] = recording.speech
    total = len(recording.samples)

    segments = speech_detector.speech_segments(recording.samples)

    assert segments, "no speech found"
    assert covered(segments, voice_start, voice_end), seconds(segments)
    assert segments[0][0] >= 1.5 * SECOND, seconds(segments)
    assert segments[-1][1] <= total - 1.5 * SECOND, seconds(segments)


def test_speech_running_to_the_very_end_gets_a_closed_segment(
    speech_detector: SpeechDetector, espeak: str
) -> None:
    voice = sp.speech("Speech that starts right away and runs to the very end")
    start, end = sp.voiced_span(voice)
    voice = voice[start:end]  # no silence at either edge

    segments = speech_detector.speech_segments(voice)

    assert segments[0][0] <= 0.05 * SECOND, seconds(segments)
    assert len(voice) - 0.1 * SECOND <= segments[-1][1] <= len(voice), seconds(segments)
    # Each call starts from a fresh state: silence right after speech is still silence.
    assert speech_detector.speech_segments(sp.silence(3.0)) == []


def test_speech_in_background_noise_is_found(speech_detector: SpeechDetector, espeak: str) -> None:
    recording = sp.make_long_recording(
        [sp.speech("Hello there, how are you doing today?")], [], lead=2, tail=2, background=0.02
    )
    [(voice_start, voice_end)] = recording.speech
    segments = speech_detector.speech_segments(recording.samples)
    assert covered(segments, voice_start, voice_end), seconds(segments)
    assert segments[0][0] >= 1.5 * SECOND


@pytest.fixture(scope="module")
def two_minutes(espeak: str) -> sp.Recording:
    parts = [sp.speech(text, speed=135) for text in SENTENCES]
    # Pauses under ≈1.3 s do not end an FSMN-VAD segment, so some parts merge into segments
    # longer than a chunk, which the planner must split.
    pauses = [float(p) for p in np.random.default_rng(7).uniform(1.0, 2.0, len(parts) - 1)]
    return sp.make_long_recording(parts, pauses, lead=1.0, tail=1.0)


def test_two_minute_recording_is_planned_into_short_chunks_covering_every_sentence(
    speech_detector: SpeechDetector, two_minutes: sp.Recording
) -> None:
    audio = two_minutes.samples
    assert 110 < two_minutes.seconds < 140

    started = time.perf_counter()
    segments = speech_detector.speech_segments(audio)
    elapsed = time.perf_counter() - started
    chunks = plan_chunks(segments, len(audio), audio=audio)

    print(f"VAD on {two_minutes.seconds:.0f} s: {elapsed * 1000:.0f} ms; chunks {seconds(chunks)}")
    assert len(chunks) >= 5, seconds(chunks)
    assert all(end - start <= 20 * SECOND for start, end in chunks)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(chunks))
    for start, end in two_minutes.speech:
        assert covered(chunks, start, end), (start / SECOND, end / SECOND, seconds(chunks))
    for before, after in itertools.pairwise(chunks):
        if before[1] == after[0]:  # a segment longer than a chunk was cut here: in a pause
            window = audio[after[0] - SECOND // 20 : after[0] + SECOND // 20]
            assert float(np.sqrt(np.mean(window**2))) < 0.005, after[0] / SECOND
    # The silence before the first and after the last sentence is left out.
    assert chunks[0][0] >= 0.5 * SECOND
    assert chunks[-1][1] <= len(audio) - 0.5 * SECOND
    # Generous bound for a slow CI machine; typically ≈0.5 s.
    assert elapsed < 10.0


def test_a_long_paragraph_is_cut_in_its_pauses(
    speech_detector: SpeechDetector, espeak: str
) -> None:
    paragraph = sp.speech(" ".join(SENTENCES[:3]))  # ≈30 s with no pause a VAD would split at
    segments = speech_detector.speech_segments(paragraph)
    chunks = plan_chunks(segments, len(paragraph), audio=paragraph)

    assert len(chunks) >= 2, seconds(chunks)
    assert all(end - start <= 20 * SECOND for start, end in chunks)
    start, end = sp.voiced_span(paragraph)
    assert covered(chunks, start, end)
    for cut_start, _ in chunks[1:]:
        # Cut where espeak pauses between phrases, not in the middle of a word.
        window = paragraph[cut_start - SECOND // 20 : cut_start + SECOND // 20]
        assert float(np.sqrt(np.mean(window**2))) < 0.005, cut_start / SECOND


# --- the detector's life cycle ---------------------------------------------------------------


def test_load_unload_and_state_errors(vad_model_dir: Path) -> None:
    detector = SpeechDetector(vad_model_dir)
    assert not detector.is_loaded
    with pytest.raises(EngineStateError):
        detector.speech_segments(sp.silence(1.0))
    detector.load()
    detector.load()  # idempotent
    assert detector.is_loaded
    with pytest.raises(ValueError, match="mono"):
        detector.speech_segments(np.zeros((100, 2), dtype=np.float32))
    detector.unload()
    assert not detector.is_loaded
    with pytest.raises(EngineStateError):
        detector.speech_segments(sp.silence(1.0))


def test_vad_leaves_torch_thread_count_alone(speech_detector: SpeechDetector) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        speech_detector.speech_segments(sp.noise(1.0, 0.01))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_missing_model_is_reported(tmp_path: Path, vad_model_dir: Path) -> None:
    with pytest.raises(ModelMissingError, match="is missing"):
        SpeechDetector(tmp_path / "absent").load()
    partial = tmp_path / "partial"
    shutil.copytree(vad_model_dir, partial)
    (partial / "am.mvn").unlink()
    with pytest.raises(ModelMissingError, match=r"am\.mvn"):
        SpeechDetector(partial).load()


@pytest.mark.parametrize("damage", ["truncated", "wrong-weights"])
def test_corrupt_model_is_reported(tmp_path: Path, vad_model_dir: Path, damage: str) -> None:
    import torch

    broken = tmp_path / "broken"
    shutil.copytree(vad_model_dir, broken)
    weights = broken / "model.pt"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        # Loadable, but funasr would skip every tensor and keep random weights.
        torch.save({"unrelated.weight": torch.zeros(3)}, weights)
    detector = SpeechDetector(broken)
    with pytest.raises(ModelCorruptError, match="model"):
        detector.load()
    assert not detector.is_loaded


def test_first_load_in_a_fresh_process_leaves_logging_and_stdout_alone(
    vad_model_dir: Path,
) -> None:
    # `import funasr` configures the root logger and prints notices; only a fresh process
    # shows whether the first load undoes that.
    code = f"""
import json, logging, sys
import numpy as np
from pathlib import Path
from nanodictate.core.asr.vad import SpeechDetector
root = logging.getLogger()
detector = SpeechDetector(Path({str(vad_model_dir)!r}))
detector.load()
segments = detector.speech_segments(np.zeros(16000, dtype=np.float32))
print(json.dumps({{"handlers": len(root.handlers), "level": root.level, "segments": segments}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert json.loads(result.stdout) == {"handlers": 0, "level": 30, "segments": []}
    assert result.stderr.strip() == ""


# --- plan_chunks -----------------------------------------------------------------------------


def test_no_segments_no_chunks() -> None:
    assert plan_chunks([], 10 * SECOND) == []
    assert plan_chunks([(5 * SECOND, 6 * SECOND)], 0) == []


def test_one_segment_is_padded_and_clamped() -> None:
    assert plan_chunks([(SECOND, 2 * SECOND)], 10 * SECOND, pad_seconds=0.2) == [
        (int(0.8 * SECOND), int(2.2 * SECOND))
    ]
    assert plan_chunks([(100, 2 * SECOND)], int(2.1 * SECOND)) == [(0, int(2.1 * SECOND))]


def test_close_segments_merge_distant_ones_do_not() -> None:
    segments = [(1 * SECOND, 3 * SECOND), (3 * SECOND + SECOND // 2, 5 * SECOND)]
    assert plan_chunks(segments, 60 * SECOND, pad_seconds=0.0, merge_gap_seconds=1.0) == [
        (1 * SECOND, 5 * SECOND)
    ]
    far = [(1 * SECOND, 3 * SECOND), (10 * SECOND, 12 * SECOND)]
    assert plan_chunks(far, 60 * SECOND, pad_seconds=0.0, merge_gap_seconds=1.0) == far


def test_merging_stops_at_the_chunk_limit() -> None:
    # Six 4-second segments half a second apart: merged into chunks of at most 10 s.
    segments = [(i * 9 * SECOND // 2, i * 9 * SECOND // 2 + 4 * SECOND) for i in range(6)]
    chunks = plan_chunks(segments, 30 * SECOND, max_chunk_seconds=10.0, pad_seconds=0.0)
    assert chunks == [(0, 8 * SECOND + SECOND // 2), (9 * SECOND, 17 * SECOND + SECOND // 2),
                      (18 * SECOND, 26 * SECOND + SECOND // 2)]  # fmt: skip


def test_padding_stops_halfway_to_a_neighbour_it_cannot_merge_with() -> None:
    segments = [(0, 15 * SECOND), (15 * SECOND + 1000, 30 * SECOND)]
    chunks = plan_chunks(segments, 30 * SECOND, max_chunk_seconds=20.0, pad_seconds=0.2)
    assert chunks[0] == (0, 15 * SECOND + 500)
    assert chunks[1] == (15 * SECOND + 500, 30 * SECOND)


def test_a_long_segment_is_split_into_near_equal_pieces() -> None:
    chunks = plan_chunks([(0, 50 * SECOND)], 50 * SECOND, pad_seconds=0.0)
    lengths = [(b - a) / SECOND for a, b in chunks]
    assert chunks[0][0] == 0 and chunks[-1][1] == 50 * SECOND
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
    assert max(lengths) <= 20.0 and max(lengths) - min(lengths) < 0.01, lengths


def test_a_long_segment_is_cut_at_the_quietest_moment_nearby() -> None:
    audio = sp.noise(21.0, 0.2, seed=3)
    quiet = int(11.5 * SECOND)
    audio[quiet - 800 : quiet + 800] *= 0.01  # a 100 ms breath, 1 s after the middle
    chunks = plan_chunks([(0, len(audio))], len(audio), audio=audio, pad_seconds=0.0)
    assert len(chunks) == 2
    assert abs(chunks[0][1] - quiet) <= 10, chunks[0][1] - quiet
    # Too far (over 2 s) from the middle to move the cut there: cut near the middle instead.
    far = sp.noise(21.0, 0.2, seed=3)
    far[int(16 * SECOND) - 800 : int(16 * SECOND) + 800] = 0.0
    chunks = plan_chunks([(0, len(far))], len(far), audio=far, pad_seconds=0.0)
    assert abs(chunks[0][1] - len(far) // 2) <= 2 * SECOND


def test_messy_segments_are_cleaned_up() -> None:
    segments = [(9 * SECOND, 12 * SECOND), (-SECOND, SECOND), (2 * SECOND, 4 * SECOND),
                (3 * SECOND, 5 * SECOND), (20 * SECOND, 25 * SECOND), (7, 7)]  # fmt: skip
    chunks = plan_chunks(segments, 10 * SECOND, pad_seconds=0.0, merge_gap_seconds=0.0)
    assert chunks == [(0, SECOND), (2 * SECOND, 5 * SECOND), (9 * SECOND, 10 * SECOND)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_chunk_seconds": 0.0},
        {"max_chunk_seconds": float("inf")},
        {"pad_seconds": -1.0},
        {"merge_gap_seconds": -0.1},
        {"audio": np.zeros(5, dtype=np.float32)},
    ],
)
def test_invalid_arguments_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        plan_chunks([(0, 10)], 100, **kwargs)  # type: ignore[arg-type]


def random_case(
    rng: np.random.Generator, sample_rate: int
) -> tuple[list[Segment], int, float, float, float]:
    total = int(rng.integers(0, 600 * sample_rate))
    segments: list[Segment] = []
    for _ in range(int(rng.integers(0, 30))):
        start = int(rng.integers(-sample_rate, total + sample_rate))
        # Mostly speech-like lengths, sometimes far longer than a chunk.
        length = int(rng.exponential(5 * sample_rate if rng.random() < 0.8 else 60 * sample_rate))
        segments.append((start, start + length))
    max_chunk = float(rng.choice([0.5, 1.0, 5.0, 15.0, 20.0, 30.0]))
    pad = float(rng.choice([0.0, 0.05, 0.2, 1.0]))
    merge_gap = float(rng.choice([0.0, 0.3, 1.0, 3.0]))
    return segments, total, max_chunk, pad, merge_gap


@pytest.mark.parametrize("seed", range(40))
def test_plan_chunks_properties(seed: int) -> None:
    # A low rate keeps each case's audio and masks small; the planner works in samples, so
    # its logic is the same at 16 kHz.
    rate = 100
    rng = np.random.default_rng(seed)
    for case in range(10):
        segments, total, max_chunk, pad, merge_gap = random_case(rng, rate)
        audio: npt.NDArray[np.float32] | None = None
        if case % 2:
            audio = rng.standard_normal(total).astype(np.float32)
        chunks = plan_chunks(
            segments,
            total,
            audio=audio,
            max_chunk_seconds=max_chunk,
            pad_seconds=pad,
            merge_gap_seconds=merge_gap,
            sample_rate=rate,
        )
        context = (seed, case, segments, total, max_chunk, pad, merge_gap, chunks)
        speech = np.zeros(total, dtype=bool)
        near_speech = np.zeros(total, dtype=bool)
        reach = round(pad * rate)
        for start, end in segments:
            speech[max(start, 0) : max(min(end, total), 0)] = True
            near_speech[max(start - reach, 0) : max(min(end + reach, total), 0)] = True
        in_chunks = np.zeros(total, dtype=bool)
        for index, (start, end) in enumerate(chunks):
            assert 0 <= start < end <= total, context
            assert end - start <= int(max_chunk * rate), context
            if index:
                assert chunks[index - 1][1] <= start, context
            assert speech[start:end].any(), context  # no chunk of pure silence
            in_chunks[start:end] = True
        assert not (speech & ~in_chunks).any(), context  # every speech sample is covered
        if merge_gap == 0.0:
            # Without merging across gaps nothing beyond the padding is kept.
            assert not (in_chunks & ~near_speech).any(), context


def test_plan_chunks_at_16k_without_audio() -> None:
    rng = np.random.default_rng(99)
    for _ in range(200):
        segments, total, max_chunk, pad, merge_gap = random_case(rng, SAMPLE_RATE)
        chunks = plan_chunks(
            segments, total, max_chunk_seconds=max_chunk, pad_seconds=pad,
            merge_gap_seconds=merge_gap,
        )  # fmt: skip
        limit = int(max_chunk * SAMPLE_RATE)
        assert all(0 <= a < b <= total and b - a <= limit for a, b in chunks)
        assert all(x[1] <= y[0] for x, y in itertools.pairwise(chunks))
        for start, end in segments:
            start, end = max(start, 0), min(end, total)
            if end > start:
                assert covered(chunks, start, end)
