"""The engine through the real funasr.AutoModel path, on the tiny deterministic replica
and the real FSMN-VAD model, with speech made by espeak-ng."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests_support import GIB, SimulatedMemory

from nanodictate.core.asr.engine import Engine, ModelSize, join_texts, plan_placement
from nanodictate.core.asr.model_load import ModelLoader
from nanodictate.core.errors import (
    AudioInputError,
    EngineStateError,
    ModelCorruptError,
    ModelMissingError,
    OutOfMemoryError,
)
from nanodictate.core.transcriber import DeviceChoice, EngineState, Precision
from nanodictate.testing.replica import DETERMINISTIC_TEXT
from nanodictate.testing.speech import make_long_recording, speech, speech_with_silence


def _engine(models_root: Path, cache_dir: Path, **options: object) -> Engine:
    return Engine(
        models_root / "Fun-ASR-MLT-Nano-2512",
        vad_dir=models_root / "fsmn-vad",
        cache_dir=cache_dir,
        threads=2,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def engine(models_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = _engine(models_root, tmp_path_factory.mktemp("int8-cache"))
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def hello() -> np.ndarray:
    return speech_with_silence(
        "hello world, this is a dictation test", before=1.0, after=2.0
    ).samples


def _count_llm_calls(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    decoder = engine._loaded.decoder  # type: ignore[union-attr]
    calls: list[int] = []
    original = decoder.generate

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(decoder, "generate", counting)
    return calls


@pytest.mark.parametrize("precision", ["int8", "fp32", "bf16"])
def test_speech_gives_the_replica_text(engine: Engine, hello: np.ndarray, precision: str) -> None:
    report = engine.load(precision, "cpu")
    assert report.precision == Precision(precision) and report.device == "cpu"
    assert report.compute_dtype == ("bf16" if precision == "bf16" else "fp32")
    assert report.compute_note is None
    result = engine.transcribe(hello, 16000, language="en")
    assert result.text == DETERMINISTIC_TEXT
    assert result.speech_found and len(result.segments) == 1
    # leading and trailing silence trimmed by the VAD (1 s before, 2 s after: the VAD needs
    # more than ≈1.4 s of quiet to close a segment)
    assert result.segments[0].start > 0.5
    assert result.segments[0].end < result.audio_seconds - 0.5


def test_silence_gives_empty_text_without_calling_the_llm(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.load("int8", "cpu")
    calls = _count_llm_calls(engine, monkeypatch)
    for quiet in (
        np.zeros(3 * 16000, np.float32),
        make_long_recording([], [], lead=2.0, background=0.002).samples,
    ):
        result = engine.transcribe(quiet, 16000, language="en")
        assert result.text == "" and not result.speech_found
    assert calls == []


def test_two_minute_recording_is_split_at_pauses(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.load("int8", "cpu")
    calls = _count_llm_calls(engine, monkeypatch)
    sentences = [
        speech(f"Sentence number {n} of a long dictation, with a few more words to say.")
        for n in range(1, 21)
    ]
    recording = make_long_recording(sentences, [1.5] * 19, lead=1.0, tail=1.0)
    assert recording.seconds > 110
    result = engine.transcribe(recording.samples, 16000, language="en")
    assert len(result.segments) >= 6
    assert all(segment.end - segment.start <= 20.0 for segment in result.segments)
    assert len(calls) == len(result.segments)
    assert result.text == " ".join([DETERMINISTIC_TEXT] * len(result.segments))


def test_the_output_head_computes_logits_for_the_last_position_only(
    engine: Engine, hello: np.ndarray
) -> None:
    """The decode loop runs the 151,936-row head on one position, also in the prefill, not
    on the hundreds of the prompt and audio (as transformers' logits_to_keep=1 did)."""
    engine.load("int8", "cpu")
    llm = engine._loaded.automodel.model.llm  # type: ignore[union-attr]
    first_layer = llm.model.layers[0].self_attn.qkv_proj
    head_rows: list[int] = []
    layer_rows: list[int] = []
    hooks = [
        llm.lm_head.register_forward_pre_hook(lambda _m, args: head_rows.append(args[0].shape[-2])),
        first_layer.register_forward_pre_hook(
            lambda _m, args: layer_rows.append(args[0].shape[-2])
        ),
    ]
    try:
        assert engine.transcribe(hello, 16000).text == DETERMINISTIC_TEXT
    finally:
        for hook in hooks:
            hook.remove()
    assert layer_rows[0] > 20  # the prefill: prompt and audio positions together (46 here)
    assert len(head_rows) == len(layer_rows) and set(head_rows) == {1}, (head_rows, layer_rows)


def test_int8_holds_less_than_fp32_and_quantizes_the_tied_embedding(engine: Engine) -> None:
    from nanodictate.core.asr.int8 import DynamicInt8Linear, Int8Embedding

    engine.load("fp32", "cpu")
    fp32_bytes = engine.memory_report().model_cpu_bytes
    engine.load("int8", "cpu")
    int8_bytes = engine.memory_report().model_cpu_bytes
    assert int8_bytes < 0.5 * fp32_bytes
    model = engine._loaded.automodel.model  # type: ignore[union-attr]
    assert isinstance(model.llm.get_input_embeddings(), Int8Embedding)
    assert isinstance(model.llm.lm_head, DynamicInt8Linear)
    assert not any(isinstance(m, __import__("torch").nn.Linear) for m in model.modules())


def test_second_int8_load_comes_from_the_cache(
    models_root: Path, tmp_path: Path, hello: np.ndarray
) -> None:
    engine = _engine(models_root, tmp_path)
    first = engine.load("int8", "cpu")
    engine.unload()
    second = engine.load("int8", "cpu")
    assert (first.from_cache, second.from_cache) == (False, True)
    assert engine.transcribe(hello, 16000).text == DETERMINISTIC_TEXT
    engine.unload()
    assert len(list(tmp_path.glob("*-int8-*.pt"))) == 1


def test_unload_cycles_return_memory(models_root: Path, tmp_path: Path, hello: np.ndarray) -> None:
    engine = _engine(models_root, tmp_path)
    engine.load("fp32", "cpu")
    engine.transcribe(hello, 16000)
    engine.unload()  # the first cycle imports funasr and warms allocators
    baseline = engine.memory_report().process_rss
    for _ in range(3):
        engine.load("fp32", "cpu")
        engine.transcribe(hello, 16000)
        assert engine.state is EngineState.READY
        engine.unload()
        assert engine.state is EngineState.UNLOADED
        assert engine.memory_report().model_cpu_bytes == 0
        assert engine.memory_report().process_rss - baseline < 100 * 2**20


def test_hotwords_language_and_itn_reach_the_prompt(
    engine: Engine, hello: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.load("int8", "cpu")
    model = engine._loaded.automodel.model  # type: ignore[union-attr]
    prompts: list[str] = []
    original = model.get_prompt

    def recording_prompt(*args: object, **kwargs: object) -> str:
        prompts.append(original(*args, **kwargs))
        return prompts[-1]

    monkeypatch.setattr(model, "get_prompt", recording_prompt)
    engine.transcribe(
        hello, 16000, language="ja", hotwords=["Kubernetes", " nanodictate "], itn=False
    )
    assert "热词列表：[Kubernetes, nanodictate]" in prompts[0]
    assert "语音转写成日文，不进行文本规整" in prompts[0]


def test_funasr_is_tamed(
    engine: Engine, hello: np.ndarray, capfd: pytest.CaptureFixture[str]
) -> None:
    import torch

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    engine.unload()
    engine.load("int8", "cpu")
    engine.transcribe(hello, 16000)
    assert capfd.readouterr().out == ""
    assert root.handlers == handlers and root.level == level
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros(0, np.float32), "empty"),
        (np.full(16000, np.nan, np.float32), "damaged"),
    ],
)
def test_bad_audio_gives_a_clear_error(engine: Engine, bad: np.ndarray, message: str) -> None:
    engine.load("int8", "cpu")
    with pytest.raises(AudioInputError, match=message):
        engine.transcribe(bad, 16000)


def test_clipped_and_stereo_int_audio_work(engine: Engine, hello: np.ndarray) -> None:
    engine.load("int8", "cpu")
    loud = np.clip(hello * 50, -1.0, 1.0) * 3.0  # clipped and beyond full scale
    assert engine.transcribe(loud, 16000).text == DETERMINISTIC_TEXT
    stereo = (np.stack([hello, hello], axis=1) * 32767).astype(np.int16)
    assert engine.transcribe(stereo, 16000).text == DETERMINISTIC_TEXT


def test_transcribe_before_load_is_a_clear_error(
    models_root: Path, tmp_path: Path, hello: np.ndarray
) -> None:
    with pytest.raises(EngineStateError, match="not loaded"):
        _engine(models_root, tmp_path).transcribe(hello, 16000)


# ------------------------------------------------------------------ damaged model folders


def _copy_replica(models_root: Path, tmp_path: Path) -> Path:
    import shutil

    folder = tmp_path / "Fun-ASR-MLT-Nano-2512"
    shutil.copytree(models_root / "Fun-ASR-MLT-Nano-2512", folder)
    return folder


def _load_fails(folder: Path, tmp_path: Path, models_root: Path) -> str:
    engine = Engine(
        folder, vad_dir=models_root / "fsmn-vad", cache_dir=tmp_path / "cache", threads=2
    )
    with pytest.raises((ModelMissingError, ModelCorruptError)) as caught:
        engine.load("int8", "cpu")
    assert engine.state is EngineState.UNLOADED
    return str(caught.value)


def test_missing_configuration_json(models_root: Path, tmp_path: Path) -> None:
    folder = _copy_replica(models_root, tmp_path)
    (folder / "configuration.json").unlink()
    assert "configuration.json" in _load_fails(folder, tmp_path, models_root)


def test_truncated_checkpoint(models_root: Path, tmp_path: Path) -> None:
    folder = _copy_replica(models_root, tmp_path)
    data = (folder / "model.pt").read_bytes()
    (folder / "model.pt").write_bytes(data[: len(data) // 2])
    assert "model.pt" in _load_fails(folder, tmp_path, models_root)


def test_wrong_config_never_gives_random_weights(models_root: Path, tmp_path: Path) -> None:
    import yaml

    folder = _copy_replica(models_root, tmp_path)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["audio_encoder_conf"]["num_blocks"] += 1  # a layer the checkpoint does not have
    (folder / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    message = _load_fails(folder, tmp_path, models_root)
    assert "does not match its config.yaml" in message and "missing" in message


def test_checkpoint_with_missing_weights(models_root: Path, tmp_path: Path) -> None:
    import torch

    folder = _copy_replica(models_root, tmp_path)
    saved = torch.load(folder / "model.pt", weights_only=True)
    state = saved["state_dict"]  # the release wraps its weights
    dropped = [key for key in state if key.startswith("audio_adaptor.")]
    for key in dropped:
        del state[key]
    torch.save(saved, folder / "model.pt")
    message = _load_fails(folder, tmp_path, models_root)
    assert f"{len(dropped)} of" in message and "audio_adaptor." in message


# ------------------------------------------------------------------ placement (no model)


REAL_SIZE = ModelSize(audio=233_700_000, llm=596_000_000)  # Fun-ASR-MLT-Nano-2512


def test_placement_keeps_the_request_when_it_fits_simulated_memory() -> None:
    placement = plan_placement(
        Precision.BF16, DeviceChoice.AUTO, REAL_SIZE, SimulatedMemory(16 * GIB, 8 * GIB)
    )
    assert (placement.precision, placement.device, placement.fallback_reason) == (
        Precision.BF16,
        "cuda",
        None,
    )


def test_placement_falls_back_to_int8_then_cpu_simulated_gpu() -> None:
    to_int8 = plan_placement(
        Precision.FP32, DeviceChoice.AUTO, REAL_SIZE, SimulatedMemory(16 * GIB, int(2.0 * GIB))
    )
    assert (to_int8.precision, to_int8.device) == (Precision.INT8, "cuda")
    assert "FP32 on the GPU needs" in (to_int8.fallback_reason or "")
    to_cpu = plan_placement(
        Precision.BF16, DeviceChoice.AUTO, REAL_SIZE, SimulatedMemory(16 * GIB, int(0.5 * GIB))
    )
    assert (to_cpu.precision, to_cpu.device) == (Precision.INT8, "cpu")
    no_gpu = plan_placement(
        Precision.INT8, DeviceChoice.CUDA, REAL_SIZE, SimulatedMemory(16 * GIB, None)
    )
    assert no_gpu.device == "cpu" and "no CUDA GPU" in (no_gpu.fallback_reason or "")


def test_placement_refuses_clearly_when_nothing_fits_simulated_memory() -> None:
    with pytest.raises(OutOfMemoryError, match="Close other programs"):
        plan_placement(
            Precision.FP32, DeviceChoice.CPU, REAL_SIZE, SimulatedMemory(int(0.8 * GIB), None)
        )


def test_load_reports_the_fallback_simulated_memory(models_root: Path, tmp_path: Path) -> None:
    # room for INT8 and its headroom, not for FP32 (the tiny replica has ≈0.2 M parameters)
    ram = (600 << 20) + 400_000
    engine = _engine(models_root, tmp_path, memory_probe=SimulatedMemory(ram, None))
    report = engine.load("fp32", "cpu")
    assert report.precision is Precision.INT8 and "not enough" not in (
        report.fallback_reason or "x"
    )
    assert "FP32 on the RAM needs" in (report.fallback_reason or "")
    # the next dictation asks for FP32 again: no reload, the fallback stands
    again = engine.load("fp32", "cpu")
    assert again.seconds == 0.0 and again.precision is Precision.INT8
    engine.unload()


def test_join_texts() -> None:
    assert join_texts(["Hello.", "World."]) == "Hello. World."
    assert join_texts(["你好", "世界"]) == "你好世界"
    assert join_texts(["", " a ", ""]) == "a"


# ------------------------------------------------------------------ process-level


def test_importing_nanodictate_leaves_torch_out() -> None:
    code = (
        "import sys, nanodictate, nanodictate.core.asr.engine, nanodictate.cli;"
        "nanodictate.cli.build_parser();"
        "heavy = [m for m in ('torch', 'funasr', 'librosa', 'transformers') if m in sys.modules];"
        "print(heavy)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"


def _nanodictate(*arguments: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, with its own INT8 cache folder."""
    environment = {**os.environ, "NANODICTATE_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "nanodictate", *arguments],
        capture_output=True,
        text=True,
        timeout=240,
        env=environment,
    )


def test_cli_transcribes_to_json(models_root: Path, tmp_path: Path) -> None:
    from nanodictate.testing.speech import speak

    wav = speak("good morning, nanodictate", tmp_path / "morning.wav")
    done = _nanodictate(
        "transcribe", str(wav), "--model-dir", str(models_root), "--json",
        "--language", "en", "--hotword", "nanodictate", "--device", "cpu",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["text"] == DETERMINISTIC_TEXT
    assert output["precision"] == "int8" and output["memory"]["model_cpu_bytes"] > 0
    assert "Traceback" not in done.stderr


def test_cli_reports_a_missing_model_without_traceback(tmp_path: Path) -> None:
    import soundfile

    wav = tmp_path / "x.wav"
    soundfile.write(wav, np.zeros(16000, np.float32), 16000)
    done = _nanodictate(
        "transcribe", str(wav), "--model-dir", str(tmp_path / "none"), tmp_path=tmp_path
    )
    assert done.returncode == 1
    assert "nanodictate models download" in done.stderr and "Traceback" not in done.stderr


def test_a_stale_int8_cache_is_rebuilt(
    models_root: Path, tmp_path: Path, hello: np.ndarray
) -> None:
    import torch

    engine = _engine(models_root, tmp_path)
    engine.load("int8", "cpu")
    engine.unload()
    (cache_path,) = tmp_path.glob("*-int8-*.pt")
    cache = torch.load(cache_path, weights_only=True)
    del cache["tensors"][next(k for k in cache["tensors"] if k.endswith(".weight_int8"))]
    torch.save(cache, cache_path)
    report = engine.load("int8", "cpu")
    assert report.from_cache is False
    assert engine.transcribe(hello, 16000).text == DETERMINISTIC_TEXT
    engine.unload()


def test_cli_stderr_has_no_funasr_root_logger_lines(models_root: Path, tmp_path: Path) -> None:
    # funasr logs "trust_remote_code: False" (and more) through the root logger on every model
    # load; none of it may reach a user's terminal, at the default level or with -v.
    from nanodictate.testing.speech import speak

    wav = speak("good morning", tmp_path / "morning.wav")
    for verbosity in ([], ["-v"]):
        done = _nanodictate(
            *verbosity, "transcribe", str(wav), "--model-dir", str(models_root),
            "--language", "en", "--device", "cpu",
            tmp_path=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == DETERMINISTIC_TEXT
        assert "trust_remote_code" not in done.stderr
        root_lines = [line for line in done.stderr.splitlines() if " root: " in line]
        assert root_lines == []
        if verbosity:  # -v shows our own INFO lines: logging to stderr still works
            assert " INFO nanodictate." in done.stderr
        else:
            assert done.stderr == ""


@pytest.mark.parametrize(
    ("oom_on", "expected"),
    [
        ({("bf16", "cuda")}, ("int8", "cuda")),
        ({("bf16", "cuda"), ("int8", "cuda")}, ("int8", "cpu")),
    ],
)
def test_gpu_out_of_memory_while_loading_falls_back_simulated_gpu(
    models_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    oom_on: set[tuple[str, str]],
    expected: tuple[str, str],
) -> None:
    """Another program takes the GPU's memory while BF16 loads (the plan saw it free): INT8 on
    the GPU is tried next, then INT8 on the CPU. No GPU here: building on "cuda" raises
    torch's OOM for the placements in ``oom_on``."""
    import torch

    engine = _engine(models_root, tmp_path, memory_probe=SimulatedMemory(16 * GIB, 8 * GIB))
    monkeypatch.setattr(ModelLoader, "_gpu_bf16", staticmethod(lambda device: True))
    tried: list[tuple[str, str]] = []
    build = ModelLoader._build

    def building(loader: ModelLoader, placement: Any, checkpoint: Path) -> Any:
        tried.append((placement.precision.value, placement.device))
        if tried[-1] in oom_on:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return build(loader, dataclasses.replace(placement, device="cpu"), checkpoint)

    monkeypatch.setattr(ModelLoader, "_build", building)
    report = engine.load("bf16", "auto")
    assert tried == [("bf16", "cuda"), *sorted(oom_on - {("bf16", "cuda")}), expected]
    assert (report.precision.value, report.device) == expected
    assert "ran out of memory while loading BF16" in (report.fallback_reason or "")
    engine.unload()
