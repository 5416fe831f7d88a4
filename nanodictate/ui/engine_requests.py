"""What the GUI and the engine's worker (`ui.worker`) say to each other.

The requests go into the worker's queue, in order; the answers come back as the payloads of
its signals. Plain frozen data, no Qt: any thread may build and read them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nanodictate.core.transcriber import LoadReport, Transcription

# ------------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class LoadRequest:
    precision: str
    device: str


@dataclass(frozen=True)
class TranscribeRequest:
    job_id: int
    audio: np.ndarray[Any, Any]
    sample_rate: int
    language: str
    precision: str
    device: str
    hotwords: tuple[str, ...] = ()
    itn: bool = True
    submitted: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class UnloadRequest:
    reason: str = "asked"
    # The engine itself goes too, so the next request builds a new one from the settings
    # (another speech model's folder).
    rebuild: bool = False


@dataclass(frozen=True)
class IdlePolicy:
    minutes: int  # 0 = right after each use, <0 = never
    two_tier: bool


Request = LoadRequest | TranscribeRequest | UnloadRequest | IdlePolicy


class QueueFull(RuntimeError):
    pass


# ------------------------------------------------------------------------------ answers


@dataclass(frozen=True)
class TranscribeDone:
    job_id: int
    result: Transcription
    load_report: LoadReport | None  # when this job had to load the model
    seconds: float  # request submitted → text ready


@dataclass(frozen=True)
class Failure:
    job_id: int | None  # None for a load that was not part of a dictation
    error: BaseException
