"""Timing a model's calls from outside: each call of a method, each token a generator
streams, and a spoken utterance of a given length to time them on (`run.py`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def timed_calls(owner: Any, name: str, into: list[float]) -> Iterator[None]:
    """Time every call of ``owner.name`` (the encoder, the LLM's generate) into ``into``."""
    import torch

    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        result = original(*args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        into.append(time.perf_counter() - started)
        return result

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


class TokenClock:
    """A token streamer (``generate(streamer=…)``, or our decode loop's, which calls it the
    same way) that notes when each new token comes out.

    The first token ends the prefill (one forward over prompt and audio embeddings); the
    time between the first and the last token, over their count, is the decode rate.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.token_times: list[float] = []

    def put(self, value: Any) -> None:
        if value.numel() == 1:  # a step's new token; the prompt arrives first, empty
            self.token_times.append(time.perf_counter())

    def end(self) -> None:
        pass


@contextmanager
def token_clocks(generator: Any, into: list[TokenClock]) -> Iterator[None]:
    """A new `TokenClock` for every call of ``generator.generate`` (the LLM's, or the
    engine's decode loop: both take ``streamer=``)."""
    original = generator.generate

    def generate(*args: Any, **kwargs: Any) -> Any:
        into.append(TokenClock())
        return original(*args, streamer=into[-1], **kwargs)

    generator.generate = generate
    try:
        yield
    finally:
        generator.generate = original


def utterance(seconds: float, speech_dir: str | None = None) -> Any:
    """Speech (espeak-ng) of about ``seconds``, with 0.3 s of silence each side; read from
    ``speech_dir/speech-<seconds>s.wav`` where one was prepared (bench/gpu/prepare.py), for
    machines without espeak-ng."""
    import numpy as np

    from nanodictate.core.audio_input import prepare_audio
    from nanodictate.testing.speech import make_long_recording, speech

    if speech_dir is not None:
        return prepare_audio(Path(speech_dir) / f"speech-{seconds:.0f}s.wav")
    sentence = "the quick brown fox jumps over the lazy dog while we dictate a note"
    parts, total = [], 0.0
    while total < seconds - 0.6:
        part = speech(sentence)
        parts.append(part)
        total += len(part) / 16000
    recording = make_long_recording(parts, [0.2] * (len(parts) - 1), lead=0.3, tail=0.3)
    return np.ascontiguousarray(recording.samples[: int(seconds * 16000)])
