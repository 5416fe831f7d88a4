"""Model folders: where they live, and how a broken one is reported to the user."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nanodictate.core.errors import ModelCorruptError, ModelMissingError
from nanodictate.core.models.store import (
    FSMN_VAD,
    FUN_ASR_MLT_NANO,
    FUN_ASR_NANO,
    MANIFEST_NAME,
    MODELS,
    SPEECH_MODELS,
    ModelSpec,
    default_models_dir,
    describe_models,
    folder_problem,
    human_size,
    model_folder,
    partial_folder,
    spec_for,
    verify_model_folder,
)


def checkpoint_bytes(payload_size: int = 4096) -> bytes:
    """A zip laid out like torch.save's (archive/data.pkl, archive/data/0, ...)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/byteorder", b"little")
        archive.writestr("archive/data/0", bytes(range(256)) * (payload_size // 256))
        archive.writestr("archive/version", b"3\n")
    return buffer.getvalue()


def model_files(spec: ModelSpec, payload_size: int = 4096) -> dict[str, bytes]:
    """The contents of a folder that passes verification for `spec`."""
    configuration = {
        "framework": "pytorch",
        "file_path_metas": {"init_param": "model.pt", "config": "config.yaml"},
    }
    files = {
        "configuration.json": json.dumps(configuration).encode(),
        "config.yaml": f"model: {spec.expected_model_class}\nmodel_conf:\n  x: 1\n".encode(),
        "model.pt": checkpoint_bytes(payload_size),
    }
    for path in spec.required_files:
        files.setdefault(path, f"content of {path}\n".encode())
    return files


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return folder


def write_manifest(folder: Path, sizes: dict[str, int]) -> None:
    files = {
        path: {"size": size, "sha256": None, "source": "huggingface"}
        for path, size in sizes.items()
    }
    (folder / MANIFEST_NAME).write_text(json.dumps({"format": 1, "files": files}))


@pytest.fixture
def vad_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "fsmn-vad", model_files(FSMN_VAD))


@pytest.fixture
def asr_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "Fun-ASR-MLT-Nano-2512", model_files(FUN_ASR_MLT_NANO))


# --- names and places ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("fun-asr-mlt-nano", FUN_ASR_MLT_NANO),
        ("Fun-ASR-MLT-Nano-2512", FUN_ASR_MLT_NANO),
        ("FUN-ASR-MLT-NANO", FUN_ASR_MLT_NANO),
        ("  fun-asr-mlt-nano-2512 ", FUN_ASR_MLT_NANO),
        ("fun-asr-nano", FUN_ASR_NANO),
        ("Fun-ASR-Nano-2512", FUN_ASR_NANO),
        ("fsmn-vad", FSMN_VAD),
        ("FSMN-VAD", FSMN_VAD),
    ],
)
def test_spec_for_accepts_cli_and_display_names(alias: str, expected: ModelSpec) -> None:
    assert spec_for(alias) is expected


def test_spec_for_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="whisper") as info:
        spec_for("whisper")
    assert "fun-asr-mlt-nano" in str(info.value)
    assert "fsmn-vad" in str(info.value)


def test_models_registry() -> None:
    assert set(MODELS) == {"fun-asr-mlt-nano", "fun-asr-nano", "fsmn-vad"}
    assert SPEECH_MODELS == (FUN_ASR_MLT_NANO, FUN_ASR_NANO)
    assert FUN_ASR_NANO.huggingface_repo == "FunAudioLLM/Fun-ASR-Nano-2512"
    assert FUN_ASR_NANO.modelscope_repo == "FunAudioLLM/Fun-ASR-Nano-2512"
    assert FUN_ASR_NANO.required_files == FUN_ASR_MLT_NANO.required_files  # same layout
    assert FUN_ASR_NANO.folder_name != FUN_ASR_MLT_NANO.folder_name
    assert FUN_ASR_MLT_NANO.expected_model_class == "FunASRNano"
    assert FSMN_VAD.expected_model_class == "FsmnVADStreaming"
    assert "Qwen3-0.6B/tokenizer.json" in FUN_ASR_MLT_NANO.required_files
    assert FSMN_VAD.modelscope_repo == "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch"


def test_models_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NANODICTATE_MODELS_DIR", str(tmp_path / "elsewhere"))
    assert default_models_dir() == tmp_path / "elsewhere"
    assert model_folder(FUN_ASR_MLT_NANO) == tmp_path / "elsewhere" / "Fun-ASR-MLT-Nano-2512"
    assert model_folder(FSMN_VAD, tmp_path) == tmp_path / "fsmn-vad"
    assert partial_folder(tmp_path / "fsmn-vad") == tmp_path / "fsmn-vad.partial"


def test_default_models_dir_is_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NANODICTATE_MODELS_DIR", raising=False)
    folder = default_models_dir()
    assert folder.name == "models"
    assert "nanodictate" in folder.parts


# --- verification -------------------------------------------------------------------------


def test_complete_folders_pass(vad_folder: Path, asr_folder: Path) -> None:
    verify_model_folder(FSMN_VAD, vad_folder)
    verify_model_folder(FUN_ASR_MLT_NANO, asr_folder)


def test_real_torch_checkpoint_passes(vad_folder: Path) -> None:
    # A subprocess, so that torch never enters this test session's sys.modules.
    script = "import sys, torch; torch.save({'w': torch.zeros(3)}, sys.argv[1])"
    subprocess.run([sys.executable, "-c", script, str(vad_folder / "model.pt")], check=True)
    verify_model_folder(FSMN_VAD, vad_folder)


def test_missing_folder_names_folder_and_command(tmp_path: Path) -> None:
    folder = tmp_path / "fsmn-vad"
    with pytest.raises(ModelMissingError) as info:
        verify_model_folder(FSMN_VAD, folder)
    assert str(folder) in str(info.value)
    assert "nanodictate models download fsmn-vad" in str(info.value)


def test_missing_configuration_json(vad_folder: Path) -> None:
    (vad_folder / "configuration.json").unlink()
    with pytest.raises(ModelMissingError) as info:
        verify_model_folder(FSMN_VAD, vad_folder)
    message = str(info.value)
    assert "configuration.json" in message
    assert str(vad_folder) in message
    assert "nanodictate models download fsmn-vad" in message


def test_every_missing_file_is_named_in_one_message(asr_folder: Path) -> None:
    for relative in ("model.pt", "Qwen3-0.6B/vocab.json", "multilingual.tiktoken"):
        (asr_folder / relative).unlink()
    with pytest.raises(ModelMissingError) as info:
        verify_model_folder(FUN_ASR_MLT_NANO, asr_folder)
    message = str(info.value)
    for relative in ("model.pt", "Qwen3-0.6B/vocab.json", "multilingual.tiktoken"):
        assert relative in message
    assert "nanodictate models download fun-asr-mlt-nano" in message


def test_truncated_checkpoint(vad_folder: Path) -> None:
    checkpoint = vad_folder / "model.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelCorruptError) as info:
        verify_model_folder(FSMN_VAD, vad_folder)
    assert "model.pt" in str(info.value)
    assert isinstance(info.value.__cause__, zipfile.BadZipFile)


def test_zip_that_is_not_a_checkpoint(vad_folder: Path) -> None:
    with zipfile.ZipFile(vad_folder / "model.pt", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelCorruptError, match=r"model\.pt"):
        verify_model_folder(FSMN_VAD, vad_folder)


def test_wrong_model_class(vad_folder: Path) -> None:
    (vad_folder / "config.yaml").write_text("model: SomethingElse\n")
    with pytest.raises(ModelCorruptError) as info:
        verify_model_folder(FSMN_VAD, vad_folder)
    assert "SomethingElse" in str(info.value)
    assert "FsmnVADStreaming" in str(info.value)


def test_unparsable_config_yaml(vad_folder: Path) -> None:
    (vad_folder / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ModelCorruptError, match=r"config\.yaml") as info:
        verify_model_folder(FSMN_VAD, vad_folder)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"framework": "pytorch"}', "file_path_metas"),
        ('{"file_path_metas": {"config": "config.yaml"}}', "init_param"),
        ('{"file_path_metas": {"init_param": "model.pt"}}', "config"),
    ],
)
def test_bad_configuration_json(vad_folder: Path, content: str, fragment: str) -> None:
    (vad_folder / "configuration.json").write_text(content)
    with pytest.raises(ModelCorruptError) as info:
        verify_model_folder(FSMN_VAD, vad_folder)
    assert "configuration.json" in str(info.value)
    assert fragment in str(info.value)


def test_empty_file(vad_folder: Path) -> None:
    (vad_folder / "am.mvn").write_bytes(b"")
    with pytest.raises(ModelCorruptError, match=r"am\.mvn"):
        verify_model_folder(FSMN_VAD, vad_folder)


def test_manifest_size_mismatch(vad_folder: Path) -> None:
    sizes = {path: (vad_folder / path).stat().st_size for path in FSMN_VAD.required_files}
    write_manifest(vad_folder, sizes)
    verify_model_folder(FSMN_VAD, vad_folder)

    with (vad_folder / "am.mvn").open("ab") as stream:
        stream.write(b"extra")
    with pytest.raises(ModelCorruptError) as info:
        verify_model_folder(FSMN_VAD, vad_folder)
    assert "am.mvn" in str(info.value)
    assert "nanodictate models download fsmn-vad" in str(info.value)


def test_truncated_checkpoint_with_manifest_reports_size(vad_folder: Path) -> None:
    sizes = {path: (vad_folder / path).stat().st_size for path in FSMN_VAD.required_files}
    write_manifest(vad_folder, sizes)
    checkpoint = vad_folder / "model.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(ModelCorruptError, match=r"model\.pt is 100 bytes"):
        verify_model_folder(FSMN_VAD, vad_folder)


def test_manifest_file_missing_from_folder(asr_folder: Path) -> None:
    extra = asr_folder / "Qwen3-0.6B" / "generation_config.json"
    extra.write_text("{}")
    write_manifest(asr_folder, {"Qwen3-0.6B/generation_config.json": 2})
    verify_model_folder(FUN_ASR_MLT_NANO, asr_folder)
    extra.unlink()
    with pytest.raises(ModelMissingError, match=r"generation_config\.json"):
        verify_model_folder(FUN_ASR_MLT_NANO, asr_folder)


def test_unreadable_manifest(vad_folder: Path) -> None:
    (vad_folder / MANIFEST_NAME).write_text("{oops")
    with pytest.raises(ModelCorruptError, match=re.escape(MANIFEST_NAME)):
        verify_model_folder(FSMN_VAD, vad_folder)


def test_manifest_cannot_point_outside_the_folder(vad_folder: Path) -> None:
    write_manifest(vad_folder, {"../elsewhere": 1})
    with pytest.raises(ModelCorruptError, match=re.escape(MANIFEST_NAME)):
        verify_model_folder(FSMN_VAD, vad_folder)


# --- listing ------------------------------------------------------------------------------


def test_describe_models_states(tmp_path: Path) -> None:
    statuses = {status.name: status for status in describe_models(tmp_path)}
    assert statuses["fun-asr-mlt-nano"].state == "missing"
    assert statuses["fun-asr-mlt-nano"].size_bytes == 0
    assert not statuses["fun-asr-mlt-nano"].installed

    vad = write_folder(tmp_path / "fsmn-vad", model_files(FSMN_VAD))
    asr = write_folder(tmp_path / "Fun-ASR-MLT-Nano-2512", model_files(FUN_ASR_MLT_NANO))
    (asr / "model.pt").write_bytes(b"not a zip")
    statuses = {status.name: status for status in describe_models(tmp_path)}

    assert statuses["fsmn-vad"].state == "installed"
    assert statuses["fsmn-vad"].installed
    assert statuses["fsmn-vad"].display_name == "FSMN-VAD"
    assert statuses["fsmn-vad"].folder == vad
    assert statuses["fsmn-vad"].size_bytes == sum(
        path.stat().st_size for path in vad.rglob("*") if path.is_file()
    )
    asr_state = statuses["fun-asr-mlt-nano"].state
    assert asr_state.startswith("incomplete/corrupt: ")
    assert "model.pt" in asr_state
    # A short reason for a table, not the whole advice.
    assert "nanodictate models download" not in asr_state


def test_each_speech_model_has_its_own_folder(tmp_path: Path) -> None:
    nano = write_folder(model_folder(FUN_ASR_NANO, tmp_path), model_files(FUN_ASR_NANO))
    verify_model_folder(FUN_ASR_NANO, nano)
    statuses = {status.name: status.state for status in describe_models(tmp_path)}
    assert statuses == {
        "fun-asr-mlt-nano": "missing",
        "fun-asr-nano": "installed",
        "fsmn-vad": "missing",
    }
    with pytest.raises(ModelMissingError, match="Fun-ASR-MLT-Nano-2512 is not installed"):
        verify_model_folder(FUN_ASR_MLT_NANO, model_folder(FUN_ASR_MLT_NANO, tmp_path))


def test_describe_models_reports_interrupted_download(tmp_path: Path) -> None:
    partial = tmp_path / "fsmn-vad.partial"
    partial.mkdir()
    (partial / "model.pt.part").write_bytes(b"x" * 100)
    status = next(s for s in describe_models(tmp_path) if s.name == "fsmn-vad")
    assert status.state.startswith("incomplete/corrupt: ")
    assert "interrupted" in status.state
    assert status.size_bytes == 100


def test_folder_problem_is_short(vad_folder: Path) -> None:
    assert folder_problem(FSMN_VAD, vad_folder) is None
    (vad_folder / "am.mvn").unlink()
    problem = folder_problem(FSMN_VAD, vad_folder)
    assert problem is not None
    assert "am.mvn" in problem


def test_importing_and_verifying_stays_light(vad_folder: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "import nanodictate.core.models.store as store\n"
        "import nanodictate.core.models.download\n"
        "store.verify_model_folder(store.FSMN_VAD, Path(sys.argv[1]))\n"
        "heavy = [m for m in ('torch', 'funasr', 'librosa', 'huggingface_hub', 'modelscope')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script, str(vad_folder)], check=True)


def test_sizes_are_decimal_and_the_release_is_about_1_99_gb() -> None:
    assert human_size(999) == "999 bytes"
    assert human_size(907_000) == "907.0 kB"
    assert human_size(16_000_000) == "16.0 MB"
    # model.pt 1,971,162,898 bytes + multilingual.tiktoken + the Qwen3 tokenizer files.
    assert FUN_ASR_MLT_NANO.approx_download_bytes > 1_971_162_898 + 907_000 + 15_000_000
    assert human_size(FUN_ASR_MLT_NANO.approx_download_bytes) == "1.99 GB"
    assert human_size(FSMN_VAD.approx_download_bytes) == "1.7 MB"
