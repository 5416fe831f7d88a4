"""Where models live on disk, and whether a model folder is usable.

The engine loads a model folder with funasr, which fails late and cryptically on a broken
folder (a truncated model.pt surfaces as a pickle error minutes into loading, a missing
configuration.json makes it try to reach a hub). So the folder is checked here first, cheaply
(no torch: the checkpoint is only opened as a zip archive), and every problem is reported as a
message the user can act on.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from nanodictate.core.errors import ModelCorruptError, ModelMissingError, NanodictateError

__all__ = [
    "FSMN_VAD",
    "FUN_ASR_MLT_NANO",
    "FUN_ASR_NANO",
    "MANIFEST_NAME",
    "MODELS",
    "MODELS_DIR_ENV",
    "SPEECH_MODELS",
    "ModelSpec",
    "ModelStatus",
    "default_models_dir",
    "describe_models",
    "folder_problem",
    "folder_size",
    "human_size",
    "is_safe_relative_path",
    "model_folder",
    "partial_folder",
    "spec_for",
    "verify_model_folder",
]

MODELS_DIR_ENV = "NANODICTATE_MODELS_DIR"
CACHE_DIR_ENV = "NANODICTATE_CACHE_DIR"

# Written by nanodictate.core.models.download after every file passed its size and sha256 checks, so
# a later size mismatch means the file changed on disk after the download.
MANIFEST_NAME = ".nanodictate-manifest.json"


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what the user types on the command line
    display_name: str
    folder_name: str
    huggingface_repo: str
    modelscope_repo: str
    required_files: tuple[str, ...]  # relative paths, "/"-separated
    expected_model_class: str  # the `model:` entry of config.yaml
    approx_download_bytes: int

    @property
    def download_command(self) -> str:
        return f"nanodictate models download {self.name}"


FUN_ASR_MLT_NANO = ModelSpec(
    name="fun-asr-mlt-nano",
    display_name="Fun-ASR-MLT-Nano-2512",
    folder_name="Fun-ASR-MLT-Nano-2512",
    huggingface_repo="FunAudioLLM/Fun-ASR-MLT-Nano-2512",
    modelscope_repo="FunAudioLLM/Fun-ASR-MLT-Nano-2512",
    required_files=(
        "configuration.json",
        "config.yaml",
        "model.pt",
        "multilingual.tiktoken",
        # The LLM is built from this config and its tokenizer loaded from these files; the
        # weights themselves are inside model.pt.
        "Qwen3-0.6B/config.json",
        "Qwen3-0.6B/tokenizer.json",
        "Qwen3-0.6B/tokenizer_config.json",
        "Qwen3-0.6B/vocab.json",
        "Qwen3-0.6B/merges.txt",
    ),
    expected_model_class="FunASRNano",
    # The release: model.pt 1,971,162,898 bytes (ModelScope), multilingual.tiktoken 907 kB,
    # the Qwen3-0.6B tokenizer files about 16 MB: about 1.99 GB in all.
    approx_download_bytes=1_988_000_000,
)

# Chinese (with 7 dialects and 26 regional accents), English and Japanese: the same layout and
# code path as MLT-Nano. Its config.yaml declares the CTC branch as MLT-Nano's does, and the
# ModelScope checkpoint also holds the CTC tensors (86 more, which the engine leaves unused);
# the two hubs serve different model.pt files, so neither hub's sizes are checked against the
# other's (MODEL-NOTES, funasr issue 3496).
FUN_ASR_NANO = ModelSpec(
    name="fun-asr-nano",
    display_name="Fun-ASR-Nano-2512",
    folder_name="Fun-ASR-Nano-2512",
    huggingface_repo="FunAudioLLM/Fun-ASR-Nano-2512",
    modelscope_repo="FunAudioLLM/Fun-ASR-Nano-2512",
    required_files=FUN_ASR_MLT_NANO.required_files,
    expected_model_class="FunASRNano",
    # As MLT-Nano's (same tensors); the CTC tensors add about 2 % where a hub has them.
    approx_download_bytes=2_030_000_000,
)

# The speech models a user chooses between (the `model` setting); the VAD serves both.
SPEECH_MODELS: tuple[ModelSpec, ...] = (FUN_ASR_MLT_NANO, FUN_ASR_NANO)

FSMN_VAD = ModelSpec(
    name="fsmn-vad",
    display_name="FSMN-VAD",
    folder_name="fsmn-vad",
    huggingface_repo="funasr/fsmn-vad",
    modelscope_repo="iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
    required_files=("configuration.json", "config.yaml", "model.pt", "am.mvn"),
    expected_model_class="FsmnVADStreaming",
    approx_download_bytes=1_740_000,
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (*SPEECH_MODELS, FSMN_VAD)}


def spec_for(name: str) -> ModelSpec:
    """The model called `name` (CLI name, display name or folder name; any case)."""
    wanted = name.strip().casefold()
    for spec in MODELS.values():
        if wanted in (
            spec.name.casefold(),
            spec.display_name.casefold(),
            spec.folder_name.casefold(),
        ):
            return spec
    valid = ", ".join(MODELS)
    raise ValueError(f"Unknown model {name!r}. Valid names: {valid}.")


def default_models_dir() -> Path:
    """The folder holding one sub-folder per model.

    `NANODICTATE_MODELS_DIR` overrides it, so tests and users with a small home partition can
    put the 2 GB elsewhere.
    """
    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("nanodictate", appauthor=False)) / "models"


def default_cache_dir() -> Path:
    """Where the quantized INT8 weights are cached (`NANODICTATE_CACHE_DIR` overrides it).

    A cache, not data: deleting it costs one slower load, which rebuilds it.
    """
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("nanodictate", appauthor=False)) / "int8"


def model_folder(spec: ModelSpec, models_dir: Path | None = None) -> Path:
    base = default_models_dir() if models_dir is None else models_dir
    return base / spec.folder_name


def partial_folder(folder: Path) -> Path:
    """Where an unfinished download of `folder` is kept until it is complete."""
    return folder.with_name(folder.name + ".partial")


# --- verification -----------------------------------------------------------------------------


class _Problem(Exception):
    """What is wrong with a folder, in a short phrase (the user-facing error adds the remedy)."""

    def __init__(self, kind: type[NanodictateError], reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _corrupt(reason: str) -> _Problem:
    return _Problem(ModelCorruptError, reason)


def verify_model_folder(spec: ModelSpec, folder: Path) -> None:
    """Raise ModelMissingError or ModelCorruptError unless `folder` holds a usable `spec`.

    Cheap enough for every start: it reads the small config files, sizes and the zip
    directory at the end of model.pt, but never hashes or unpickles the 2 GB checkpoint.
    A checkpoint damaged in the middle with its size intact is therefore not detected here;
    the download's sha256 check covers that case.
    """
    try:
        _check_folder(spec, folder)
    except _Problem as problem:
        if not folder.is_dir():
            message = (
                f"{spec.display_name} is not installed: {folder} does not exist. "
                f"Run `{spec.download_command}` to download it "
                f"(about {human_size(spec.approx_download_bytes)})."
            )
        elif problem.kind is ModelMissingError:
            message = (
                f"{spec.display_name} is incomplete: {problem.reason}. "
                f"Run `{spec.download_command}` to download it."
            )
        else:
            message = (
                f"The {spec.display_name} model in {folder} is damaged: {problem.reason}. "
                f"Run `{spec.download_command}` to download it again."
            )
        raise problem.kind(message) from problem.__cause__


def folder_problem(spec: ModelSpec, folder: Path) -> str | None:
    """What keeps `folder` from being a usable `spec`, in a short phrase; None if nothing."""
    try:
        _check_folder(spec, folder)
    except _Problem as problem:
        return problem.reason
    return None


def _check_folder(spec: ModelSpec, folder: Path) -> None:
    if not folder.is_dir():
        raise _Problem(ModelMissingError, f"the folder {folder} does not exist")

    manifest = _read_manifest(folder)
    expected = list(spec.required_files)
    expected += [path for path in manifest if path not in spec.required_files]

    missing = [path for path in expected if not (folder / path).is_file()]
    if missing:
        raise _Problem(
            ModelMissingError,
            f"the folder {folder} lacks {_join(missing)}",
        )

    empty = [path for path in expected if (folder / path).stat().st_size == 0]
    if empty:
        raise _corrupt(f"{_join(empty)} {'is' if len(empty) == 1 else 'are'} empty")

    for path, size in manifest.items():
        actual = (folder / path).stat().st_size
        if actual != size:
            raise _corrupt(
                f"{path} is {human_size(actual)} but the download had {human_size(size)} "
                "(the file was truncated or changed)"
            )

    _check_configuration_json(folder / "configuration.json")
    _check_config_yaml(folder / "config.yaml", spec.expected_model_class)
    _check_checkpoint(folder / "model.pt")


def _read_manifest(folder: Path) -> dict[str, int]:
    """File sizes recorded by the download, or {} for a folder the user assembled."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data: object = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _corrupt(f"its download record {MANIFEST_NAME} is unreadable") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise _corrupt(f"its download record {MANIFEST_NAME} is not in the expected format")
    sizes: dict[str, int] = {}
    for name, entry in files.items():
        size = entry.get("size") if isinstance(entry, dict) else None
        valid = isinstance(name, str) and is_safe_relative_path(name)
        if not valid or not isinstance(size, int) or isinstance(size, bool):
            raise _corrupt(f"its download record {MANIFEST_NAME} is not in the expected format")
        sizes[name] = size
    return sizes


def _check_configuration_json(path: Path) -> None:
    try:
        data: object = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _corrupt("configuration.json is not valid JSON") from exc
    metas = data.get("file_path_metas") if isinstance(data, dict) else None
    if not isinstance(metas, dict):
        raise _corrupt("configuration.json has no file_path_metas section")
    absent = [key for key in ("init_param", "config") if key not in metas]
    if absent:
        raise _corrupt(f"configuration.json's file_path_metas lacks {_join(absent)}")


def _check_config_yaml(path: Path, expected_class: str) -> None:
    # Imported here: PyYAML is only needed when a folder is checked, not to import the core.
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with path.open(encoding="utf-8") as stream:
            data: object = yaml.load(stream, Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _corrupt("config.yaml is not valid YAML") from exc
    model_class = data.get("model") if isinstance(data, dict) else None
    if model_class is None:
        raise _corrupt("config.yaml has no `model:` entry")
    if model_class != expected_class:
        raise _corrupt(
            f"config.yaml describes a {model_class} model, not {expected_class} "
            "(a different model's files are in this folder)"
        )


def _check_checkpoint(path: Path) -> None:
    # torch.save writes a zip archive whose directory sits at the very end, so a truncated
    # download fails here without reading (or unpickling) the whole file.
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise _corrupt(
            "model.pt is not a valid PyTorch checkpoint (it is probably truncated)"
        ) from exc
    if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        raise _corrupt("model.pt is a zip archive but not a PyTorch checkpoint")


def is_safe_relative_path(relative: str) -> bool:
    """Whether a "/"-separated path from a hub or manifest stays inside the model folder."""
    parts = relative.split("/")
    return (
        bool(relative)
        and not relative.startswith("/")
        and "\\" not in relative
        and ":" not in relative
        and all(part not in ("", ".", "..") for part in parts)
    )


def _join(items: Iterable[str]) -> str:
    names = list(items)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def human_size(size: int) -> str:
    """A size in decimal units (1 GB = 10^9 bytes), as disks and the hubs' web pages show it."""
    if size < 1000:
        return f"{size} bytes"
    if size < 1000**2:
        return f"{size / 1000:.1f} kB"
    if size < 1000**3:
        return f"{size / 1000**2:.1f} MB"
    return f"{size / 1000**3:.2f} GB"


# --- listing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelStatus:
    name: str
    display_name: str
    folder: Path
    # "installed", "missing" or "incomplete/corrupt: <reason>"
    state: str
    size_bytes: int

    @property
    def installed(self) -> bool:
        return self.state == "installed"


def describe_models(
    models_dir: Path | None = None, specs: Mapping[str, ModelSpec] | None = None
) -> list[ModelStatus]:
    """One status per known model, for `nanodictate models list` and the settings window."""
    statuses: list[ModelStatus] = []
    for spec in (MODELS if specs is None else specs).values():
        folder = model_folder(spec, models_dir)
        partial = partial_folder(folder)
        if folder.is_dir():
            size = folder_size(folder)
            problem = folder_problem(spec, folder)
            state = "installed" if problem is None else f"incomplete/corrupt: {problem}"
        elif partial.is_dir():
            size = folder_size(partial)
            state = (
                "incomplete/corrupt: the download was interrupted; "
                f"`{spec.download_command}` resumes it"
            )
        else:
            size = 0
            state = "missing"
        statuses.append(ModelStatus(spec.name, spec.display_name, folder, state, size))
    return statuses


def folder_size(folder: Path) -> int:
    """Bytes used by the files under `folder` (0 if it cannot be read)."""
    total = 0
    try:
        for path in folder.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
            except OSError:
                continue
    except OSError:
        return total
    return total
