"""The seam between dictation and speech recognition: what any transcriber offers.

The tray app's engine worker drives one `Transcriber` and knows nothing else of it. Today there
are two: `core.engine.Engine` (Fun-ASR-MLT-Nano in this process, for the CLI and benchmarks)
and `core.engine_process.EngineProcess` (the same engine in a child process, for the app). A
remote server and live transcription will be more; each declares what it can do in
`Capabilities`, so callers ask instead of guessing from a class name.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class Precision(enum.StrEnum):
    INT8 = "int8"
    BF16 = "bf16"
    FP32 = "fp32"


class DeviceChoice(enum.StrEnum):
    AUTO = "auto"
    CUDA = "cuda"
    CPU = "cpu"


class EngineState(enum.StrEnum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    READY = "ready"
    OFFLOADED = "offloaded"  # weights parked in RAM, ready to go back to the GPU quickly


@dataclass(frozen=True)
class Capabilities:
    can_offload: bool  # `offload` parks a GPU model in RAM (the first idle tier)
    partial_text: bool  # can give text of a segment still being spoken
    remote: bool  # runs on another machine: no local memory, the network can fail
    unload_frees_process: bool  # `unload` ends a process: every byte goes back


@dataclass(frozen=True)
class LoadReport:
    precision: Precision
    device: str
    seconds: float
    from_cache: bool
    fallback_reason: str | None
    # The LLM's activations, "bf16" or "fp32"; with a note when a GPU without bf16 made it fp32.
    compute_dtype: str = "fp32"
    compute_note: str | None = None


@dataclass(frozen=True)
class MemoryReport:
    process_rss: int
    model_cpu_bytes: int
    model_gpu_bytes: int
    cuda_allocated: int = 0
    cuda_reserved: int = 0


@dataclass(frozen=True)
class Segment:
    start: float  # seconds in the input
    end: float
    text: str


@dataclass(frozen=True)
class Transcription:
    text: str
    language: str
    audio_seconds: float
    segments: tuple[Segment, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def speech_found(self) -> bool:
        return bool(self.segments)


Audio = np.ndarray[Any, Any] | str | os.PathLike[str]


class Transcriber(Protocol):
    """Load, transcribe, unload; driven from one thread at a time."""

    on_state_change: Callable[[EngineState], None] | None

    @property
    def state(self) -> EngineState: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def load(
        self,
        precision: Precision | str = Precision.INT8,
        device: DeviceChoice | str = DeviceChoice.AUTO,
    ) -> LoadReport: ...

    def transcribe(
        self,
        audio: Audio,
        sample_rate: int | None = None,
        *,
        language: str = "en",
        hotwords: Sequence[str] = (),
        itn: bool = True,
    ) -> Transcription: ...

    def unload(self) -> None: ...

    def offload(self) -> bool: ...

    def memory_report(self) -> MemoryReport: ...
