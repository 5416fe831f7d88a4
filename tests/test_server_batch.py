"""Several requests in one batched decoder call: each keeps its own language, hotwords and
ITN in its prompt, silence stays silent, and the texts match the engine's own path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nanodictate.core.asr.engine import Engine
from nanodictate.server.batch_decode import BatchDecoder
from nanodictate.server.upload import TranscriptionJob
from nanodictate.testing.replica import DETERMINISTIC_TEXT


@pytest.fixture(scope="module")
def engine(models_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    loaded = Engine(
        models_root / "Fun-ASR-MLT-Nano-2512",
        vad_dir=models_root / "fsmn-vad",
        cache_dir=tmp_path_factory.mktemp("cache"),
        threads=1,
    )
    loaded.load("int8", "cpu")
    yield loaded
    loaded.unload()


def test_each_request_keeps_its_prompt(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from nanodictate.testing.speech import speech

    model = engine._loaded.automodel.model
    prompts: list[str] = []
    original = model.get_prompt

    def recording_prompt(*args: object, **kwargs: object) -> str:
        prompts.append(original(*args, **kwargs))
        return prompts[-1]

    monkeypatch.setattr(model, "get_prompt", recording_prompt)
    hello = speech("hello there")
    jobs = [
        TranscriptionJob(hello, "ja", ("Kubernetes", "nanodictate"), False),
        TranscriptionJob(np.zeros(16000, np.float32), "en", (), True),
        TranscriptionJob(hello, "ko", (), True),
    ]
    results = BatchDecoder(engine).transcribe(jobs)
    assert [getattr(r, "text", r) for r in results] == [DETERMINISTIC_TEXT, "", DETERMINISTIC_TEXT]
    assert [getattr(r, "language", r) for r in results] == ["ja", "en", "ko"]
    assert len(prompts) == 2  # silence never reaches the decoder
    assert "热词列表：[Kubernetes, nanodictate]" in prompts[0]
    assert "语音转写成日文，不进行文本规整" in prompts[0]
    assert prompts[1].endswith("语音转写成韩文：") and "热词" not in prompts[1]
