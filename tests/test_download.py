"""Model downloads through huggingface_hub and modelscope_hub, against a local fake of both hubs.

The libraries are pointed at tests/fake_hubs.py through their own endpoint settings; every
other host name is refused (see `_offline`), so nothing here reaches the internet.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub.constants
import modelscope_hub._download
import pytest
from fake_hubs import COMMIT, FakeHub, git_sha1, model_files, serve, sha256

from nanodictate.core.errors import DownloadError, ModelCorruptError
from nanodictate.core.models import progress
from nanodictate.core.models.download import (
    DownloadProgress,
    HubEndpoints,
    TerminalProgress,
    download_model,
    find_cached_copy,
    install_from_copy,
    terminal_progress,
)
from nanodictate.core.models.store import (
    FSMN_VAD,
    FUN_ASR_MLT_NANO,
    MANIFEST_NAME,
    model_folder,
    partial_folder,
    verify_model_folder,
)

# Bigger than several transfer chunks (see `_offline`), so transfers can be cut part-way.
CHECKPOINT_PAYLOAD = 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real hub, cache, token or telemetry; only 127.0.0.1 can be reached."""
    for name in (
        "NANODICTATE_HF_ENDPOINT",
        "NANODICTATE_MS_ENDPOINT",
        "HF_ENDPOINT",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "XDG_CACHE_HOME",
        "MODELSCOPE_ENDPOINT",
        "MODELSCOPE_DOMAIN",
        "MODELSCOPE_API_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "modelscope-cache"))
    monkeypatch.setenv("MODELSCOPE_HOME", str(tmp_path / "modelscope-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_UPDATE_CHECK", "1")
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    # ModelScope would ask {endpoint}/api/v1/repos/internalAccelerationInfo for a cloud region.
    monkeypatch.setenv("MODELSCOPE_DOWNLOAD_INTRA_CLOUD", "false")
    # The libraries read 10 MiB (HF) and 1 MiB (ModelScope) at a time; small test files need
    # smaller chunks to be cut, cancelled and reported part-way.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)
    monkeypatch.setattr(modelscope_hub._download, "DOWNLOAD_CHUNK_SIZE", CHUNK)

    real_getaddrinfo = socket.getaddrinfo

    def local_only(host: object, *args: object, **kwargs: object) -> object:
        if host not in ("127.0.0.1", "localhost", b"127.0.0.1"):
            raise OSError(f"test tried to reach {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


@pytest.fixture
def vad_hub() -> Iterator[FakeHub]:
    files = model_files(FSMN_VAD, CHECKPOINT_PAYLOAD)
    files["README.md"] = b"# FSMN-VAD\n"
    files["example/vad_example.wav"] = b"RIFF" + b"\0" * 5000
    yield from serve(FakeHub(FSMN_VAD, files))


@pytest.fixture
def asr_hub() -> Iterator[FakeHub]:
    files = model_files(FUN_ASR_MLT_NANO, 4096)
    files["Qwen3-0.6B/generation_config.json"] = b'{"do_sample": false}'
    files["images/funasr-v2.png"] = b"\x89PNG" + b"\0" * 1000
    hub = FakeHub(
        FUN_ASR_MLT_NANO, files, listed_only={"Qwen3-0.6B/model.safetensors": 1_500_000_000}
    )
    yield from serve(hub)


def assert_installed(hub: FakeHub, folder: Path, sources: set[str]) -> None:
    verify_model_folder(hub.spec, folder)
    for relative in hub.spec.required_files:
        assert (folder / relative).read_bytes() == hub.files[relative]
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    for relative in hub.spec.required_files:
        entry = manifest["files"][relative]
        assert entry["size"] == len(hub.files[relative])
        assert entry["sha256"] == sha256(hub.files[relative])
    assert {entry["source"] for entry in manifest["files"].values()} == sources
    assert not partial_folder(folder).exists()
    assert not list(folder.rglob("*.incomplete"))


def cancel_during(path: str, cancel: threading.Event) -> Callable[[DownloadProgress], None]:
    def report(update: DownloadProgress) -> None:
        if update.file == path and update.file_done > 0:
            cancel.set()

    return report


# --- the happy path -------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "hub_key"), [("huggingface", "hf"), ("modelscope", "ms")])
def test_full_download(vad_hub: FakeHub, tmp_path: Path, source: str, hub_key: str) -> None:
    updates: list[DownloadProgress] = []
    folder = download_model(
        FSMN_VAD, tmp_path, source=source, progress=updates.append, endpoints=vad_hub.endpoints
    )  # type: ignore[arg-type]

    assert folder == model_folder(FSMN_VAD, tmp_path)
    assert_installed(vad_hub, folder, {source})
    # Only what the app needs: no README, no example audio; all from the chosen hub.
    assert sorted(r.path for r in vad_hub.file_requests()) == sorted(FSMN_VAD.required_files)
    assert {r.hub for r in vad_hub.requests} == {hub_key}
    assert not (folder / "README.md").exists()
    if source == "huggingface":  # every file from the listed commit
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        assert {entry["revision"] for entry in manifest["files"].values()} == {COMMIT}

    total = sum(len(vad_hub.files[p]) for p in FSMN_VAD.required_files)
    assert updates and all(u.total == total for u in updates)
    dones = [u.done for u in updates]
    assert dones == sorted(dones)
    assert updates[-1].done == total
    assert updates[-1].file == "model.pt"
    assert updates[-1].file_done == updates[-1].file_total


@pytest.mark.parametrize("source", ["huggingface", "modelscope"])
def test_every_chunk_reported_when_unthrottled(
    vad_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    monkeypatch.setattr(progress, "_PROGRESS_INTERVAL_S", 0.0)
    updates: list[DownloadProgress] = []
    download_model(
        FSMN_VAD, tmp_path, source=source, progress=updates.append, endpoints=vad_hub.endpoints
    )  # type: ignore[arg-type]
    checkpoint = [u for u in updates if u.file == "model.pt"]
    assert len(checkpoint) >= 4
    assert [u.file_done for u in checkpoint] == sorted(u.file_done for u in checkpoint)
    assert checkpoint[-1].file_done == checkpoint[-1].file_total


def test_progress_is_throttled(
    vad_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "_PROGRESS_INTERVAL_S", 3600.0)
    updates: list[DownloadProgress] = []
    download_model(FSMN_VAD, tmp_path, progress=updates.append, endpoints=vad_hub.endpoints)
    # Within one interval only the first update and the final one get through.
    assert len(updates) == 2
    assert updates[-1].done == updates[-1].total


@pytest.mark.parametrize("source", ["huggingface", "modelscope"])
def test_extras_in_tokenizer_folder_but_no_stray_weights(
    asr_hub: FakeHub, tmp_path: Path, source: str
) -> None:
    folder = download_model(FUN_ASR_MLT_NANO, tmp_path, source=source, endpoints=asr_hub.endpoints)  # type: ignore[arg-type]
    assert_installed(asr_hub, folder, {source})
    assert (folder / "Qwen3-0.6B/generation_config.json").read_bytes() == b'{"do_sample": false}'
    requested = {r.path for r in asr_hub.file_requests()}
    assert "Qwen3-0.6B/model.safetensors" not in requested
    assert "images/funasr-v2.png" not in requested


def test_endpoints_from_environment(
    vad_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the app's own variable wins
    monkeypatch.setenv("NANODICTATE_HF_ENDPOINT", vad_hub.endpoints.huggingface)
    monkeypatch.setenv("NANODICTATE_MS_ENDPOINT", vad_hub.endpoints.modelscope)
    folder = download_model(FSMN_VAD, tmp_path, fallback=False)
    assert_installed(vad_hub, folder, {"huggingface"})


def test_hub_endpoint_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HubEndpoints.from_env() == HubEndpoints(
        "https://huggingface.co", "https://modelscope.cn"
    )
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example/")
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "www.modelscope.ai")
    assert HubEndpoints.from_env().for_hub("huggingface") == "https://hf-mirror.example"
    assert HubEndpoints.from_env().for_hub("modelscope") == "https://www.modelscope.ai"
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "https://ms-mirror.example/")
    assert HubEndpoints.from_env().for_hub("modelscope") == "https://ms-mirror.example"


@pytest.mark.parametrize(("source", "hub_key"), [("huggingface", "hf"), ("modelscope", "ms")])
def test_libraries_own_endpoint_and_token_settings(
    vad_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, hub_key: str
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", vad_hub.endpoints.huggingface)
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", vad_hub.endpoints.modelscope)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", "ms_secret")
    folder = download_model(FSMN_VAD, tmp_path, source=source, fallback=False)  # type: ignore[arg-type]

    assert_installed(vad_hub, folder, {source})
    token = "hf_secret" if source == "huggingface" else "ms_secret"
    listing = [r for r in vad_hub.requests if r.kind == "list"]
    assert [r.authorization for r in listing] == [f"Bearer {token}"]
    assert vad_hub.file_requests(hub_key, "am.mvn")[0].authorization == f"Bearer {token}"


def test_installed_model_needs_no_network(vad_hub: FakeHub, tmp_path: Path) -> None:
    download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)
    count = len(vad_hub.requests)
    download_model(
        FSMN_VAD, tmp_path, endpoints=HubEndpoints("http://127.0.0.1:9", "http://127.0.0.1:9")
    )
    assert len(vad_hub.requests) == count


def test_repair_reuses_files_matching_the_hub(vad_hub: FakeHub, tmp_path: Path) -> None:
    folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)
    (folder / "am.mvn").unlink()
    (folder / "stray.txt").write_text("left by the user")
    before = len(vad_hub.file_requests(path="model.pt"))

    download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)

    assert_installed(vad_hub, folder, {"huggingface"})
    assert len(vad_hub.file_requests(path="model.pt")) == before
    assert not (folder / "stray.txt").exists()
    assert not folder.with_name(folder.name + ".old").exists()


# --- interruptions --------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "hub_key"), [("huggingface", "hf"), ("modelscope", "ms")])
def test_dropped_connection_resumes_with_range(
    vad_hub: FakeHub, tmp_path: Path, source: str, hub_key: str
) -> None:
    vad_hub.cut_once[(hub_key, "model.pt")] = 300_000
    folder = download_model(FSMN_VAD, tmp_path, source=source, endpoints=vad_hub.endpoints)  # type: ignore[arg-type]

    assert_installed(vad_hub, folder, {source})
    [resumed] = [r for r in vad_hub.file_requests(path="model.pt") if r.range]
    # The library resumes from what it wrote: whole chunks of the 300,000 bytes received.
    start = int(resumed.range.removeprefix("bytes=").removesuffix("-"))  # type: ignore[union-attr]
    assert 0 < start <= 300_000
    assert resumed.status == 206


@pytest.mark.parametrize(("source", "hub_key"), [("huggingface", "hf"), ("modelscope", "ms")])
def test_cancelled_download_resumes_on_next_call(
    vad_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, hub_key: str
) -> None:
    monkeypatch.setattr(progress, "_PROGRESS_INTERVAL_S", 0.0)
    cancel = threading.Event()
    with pytest.raises(DownloadError, match="Download cancelled"):
        download_model(
            FSMN_VAD,
            tmp_path,
            source=source,  # type: ignore[arg-type]
            progress=cancel_during("model.pt", cancel),
            endpoints=vad_hub.endpoints,
            cancel=cancel,
        )
    folder = model_folder(FSMN_VAD, tmp_path)
    part = partial_folder(folder) / "model.pt.incomplete"
    assert not folder.exists()  # never a half model folder
    kept = part.stat().st_size
    assert 0 < kept < len(vad_hub.files["model.pt"])
    # Cancelling does not fall back to the other hub.
    assert {r.hub for r in vad_hub.requests} == {hub_key}

    updates: list[DownloadProgress] = []
    download_model(
        FSMN_VAD, tmp_path, source=source, progress=updates.append, endpoints=vad_hub.endpoints
    )  # type: ignore[arg-type]

    assert_installed(vad_hub, folder, {source})
    last = vad_hub.file_requests(path="model.pt")[-1]
    assert last.range == f"bytes={kept}-"
    assert last.status == 206
    # Files finished before the cancel are not fetched again.
    assert len(vad_hub.file_requests(path="am.mvn")) == 1
    # Progress counts the resumed bytes from the start.
    assert updates[0].done >= kept


def test_cancel_keeps_the_installed_folder_whole(vad_hub: FakeHub, tmp_path: Path) -> None:
    folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # The hub now serves a new checkpoint; its download is cancelled part-way.
    vad_hub.files["model.pt"] = model_files(FSMN_VAD, CHECKPOINT_PAYLOAD + 512)["model.pt"]
    cancel = threading.Event()
    with pytest.raises(DownloadError, match="Download cancelled"):
        download_model(
            FSMN_VAD,
            tmp_path,
            progress=cancel_during("model.pt", cancel),
            endpoints=vad_hub.endpoints,
            cancel=cancel,
            force=True,
        )
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    verify_model_folder(FSMN_VAD, folder)


def test_server_ignoring_range_restarts_the_file(vad_hub: FakeHub, tmp_path: Path) -> None:
    vad_hub.ignore_range = True
    vad_hub.cut_once[("hf", "model.pt")] = 300_000
    folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)

    assert_installed(vad_hub, folder, {"huggingface"})
    resumed = [r for r in vad_hub.file_requests(path="model.pt") if r.range]
    assert len(resumed) == 1 and resumed[0].status == 200


def test_partial_file_from_one_hub_is_resumed_on_the_other(
    vad_hub: FakeHub, tmp_path: Path
) -> None:
    # Hugging Face drops model.pt part-way and then fails it; both hubs list the same sha256.
    vad_hub.cut_once[("hf", "model.pt")] = 300_000
    vad_hub.fail_after_cut.add(("hf", "model.pt"))
    folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)

    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["files"]["model.pt"]["source"] == "modelscope"
    assert_installed(vad_hub, folder, {"huggingface", "modelscope"})
    [from_modelscope] = vad_hub.file_requests(hub="ms", path="model.pt")
    assert from_modelscope.range is not None and from_modelscope.range != "bytes=0-"
    assert from_modelscope.status == 206
    # Small files finished on Hugging Face match ModelScope's own sha256: not fetched again.
    assert [r.path for r in vad_hub.file_requests(hub="ms")] == ["model.pt"]


# --- the hubs serve different checkpoints ---------------------------------------------------


@dataclass
class SplitHub(FakeHub):
    """ModelScope lists and serves its own model.pt, as the real hubs may (funasr issue 3496:
    for Fun-ASR-Nano their checkpoints differ); every other file is the same on both."""

    ms_checkpoint: bytes = b""

    def ms_listing(self) -> dict[str, object]:
        listing = super().ms_listing()
        for entry in listing["Data"]["Files"]:  # type: ignore[index]
            if entry.get("Path") == "model.pt":
                entry.update(Size=len(self.ms_checkpoint), Sha256=sha256(self.ms_checkpoint))
        return listing


def other_checkpoint(like: bytes) -> bytes:
    """A valid checkpoint of the same size as `like` but other content: only hashes differ."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/data/0", bytes(range(255, -1, -1)) * (CHECKPOINT_PAYLOAD // 256))
        archive.writestr("archive/version", b"3\n")
    data = buffer.getvalue()
    assert len(data) == len(like) and data != like
    return data


@pytest.fixture
def split_hub() -> Iterator[SplitHub]:
    files = model_files(FUN_ASR_MLT_NANO, CHECKPOINT_PAYLOAD)
    hub = SplitHub(FUN_ASR_MLT_NANO, files, ms_checkpoint=other_checkpoint(files["model.pt"]))
    hub.corrupt[("ms", "model.pt")] = hub.ms_checkpoint  # served by ModelScope, and listed
    yield from serve(hub)


def test_a_partial_checkpoint_is_not_resumed_on_a_hub_serving_another(
    split_hub: SplitHub, tmp_path: Path
) -> None:
    # Hugging Face drops model.pt part-way, then fails it; ModelScope lists another model.pt
    # of the same size. Its bytes must not complete Hugging Face's half.
    split_hub.cut_once[("hf", "model.pt")] = 300_000
    split_hub.fail_after_cut.add(("hf", "model.pt"))
    folder = download_model(FUN_ASR_MLT_NANO, tmp_path, endpoints=split_hub.endpoints)

    verify_model_folder(FUN_ASR_MLT_NANO, folder)
    assert (folder / "model.pt").read_bytes() == split_hub.ms_checkpoint
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["files"]["model.pt"]["source"] == "modelscope"
    assert manifest["files"]["model.pt"]["sha256"] == sha256(split_hub.ms_checkpoint)
    [from_modelscope] = split_hub.file_requests(hub="ms", path="model.pt")
    assert from_modelscope.range in (None, "bytes=0-")  # started over
    # The small files finished on Hugging Face match ModelScope's hashes: kept.
    assert [r.path for r in split_hub.file_requests(hub="ms")] == ["model.pt"]


@pytest.mark.parametrize("first", ["huggingface", "modelscope"])
def test_each_hubs_checkpoint_is_checked_against_its_own_hash(
    split_hub: SplitHub, tmp_path: Path, first: str
) -> None:
    second = "modelscope" if first == "huggingface" else "huggingface"
    checkpoints = {
        "huggingface": split_hub.files["model.pt"],
        "modelscope": split_hub.ms_checkpoint,
    }
    folder = download_model(
        FUN_ASR_MLT_NANO, tmp_path, source=first, fallback=False, endpoints=split_hub.endpoints
    )  # type: ignore[arg-type]
    assert (folder / "model.pt").read_bytes() == checkpoints[first]

    # Repairing from the other hub: the installed model.pt does not match that hub's hash, so
    # it is fetched again; the other hub's file passes its own hub's check.
    before = len(split_hub.file_requests())
    download_model(
        FUN_ASR_MLT_NANO,
        tmp_path,
        source=second,  # type: ignore[arg-type]
        fallback=False,
        endpoints=split_hub.endpoints,
        force=True,
    )
    verify_model_folder(FUN_ASR_MLT_NANO, folder)
    assert (folder / "model.pt").read_bytes() == checkpoints[second]
    assert [r.path for r in split_hub.file_requests()[before:]] == ["model.pt"]
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["files"]["model.pt"]["sha256"] == sha256(checkpoints[second])
    assert manifest["files"]["model.pt"]["source"] == second


# --- failures -------------------------------------------------------------------------------


def test_falls_back_to_modelscope(
    vad_hub: FakeHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vad_hub.fail["hf"] = 404
    with caplog.at_level(logging.WARNING, logger="nanodictate.core.models.download"):
        folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)

    assert_installed(vad_hub, folder, {"modelscope"})
    assert any("trying ModelScope" in record.getMessage() for record in caplog.records)


def test_falls_back_to_hugging_face(vad_hub: FakeHub, tmp_path: Path) -> None:
    vad_hub.fail["ms"] = 404
    folder = download_model(FSMN_VAD, tmp_path, source="modelscope", endpoints=vad_hub.endpoints)
    assert_installed(vad_hub, folder, {"huggingface"})


def test_no_fallback_when_disabled(vad_hub: FakeHub, tmp_path: Path) -> None:
    vad_hub.fail["hf"] = 500
    with pytest.raises(DownloadError, match="Hugging Face") as info:
        download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints, fallback=False)
    assert "ModelScope" not in str(info.value)
    assert not [r for r in vad_hub.requests if r.hub == "ms"]


def test_both_hubs_failing(vad_hub: FakeHub, tmp_path: Path) -> None:
    vad_hub.fail["hf"] = 500
    vad_hub.fail["ms"] = 404
    with pytest.raises(DownloadError) as info:
        download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)
    message = str(info.value)
    assert "Could not download FSMN-VAD" in message
    assert "Hugging Face" in message and "500" in message
    assert "ModelScope" in message and "404" in message
    assert "nanodictate models download fsmn-vad" in message
    assert "Traceback" not in message
    assert info.value.__cause__ is not None
    assert not model_folder(FSMN_VAD, tmp_path).exists()


def test_unreachable_hub(tmp_path: Path) -> None:
    nowhere = HubEndpoints("http://127.0.0.1:9", "http://127.0.0.1:9")
    with pytest.raises(DownloadError, match="refused the connection"):
        download_model(FSMN_VAD, tmp_path, endpoints=nowhere, fallback=False)


def test_checksum_mismatch_falls_back(vad_hub: FakeHub, tmp_path: Path) -> None:
    good = vad_hub.files["model.pt"]
    vad_hub.corrupt[("hf", "model.pt")] = good[:-1] + bytes([good[-1] ^ 0xFF])
    folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)

    assert_installed(vad_hub, folder, {"huggingface", "modelscope"})
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["files"]["model.pt"]["source"] == "modelscope"


def test_small_file_checked_against_its_git_blob_id(vad_hub: FakeHub, tmp_path: Path) -> None:
    vad_hub.corrupt[("hf", "am.mvn")] = b"X" * len(vad_hub.files["am.mvn"])
    with pytest.raises(DownloadError, match=r"am\.mvn from Hugging Face does not match"):
        download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints, fallback=False)
    assert git_sha1(vad_hub.files["am.mvn"]) != git_sha1(vad_hub.corrupt[("hf", "am.mvn")])


def test_hub_missing_a_required_file(vad_hub: FakeHub, tmp_path: Path) -> None:
    del vad_hub.files["am.mvn"]
    with pytest.raises(DownloadError, match=r"am\.mvn"):
        download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)


def test_not_enough_disk_space(
    vad_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Usage:
        total = used = 0
        free = 1000

    monkeypatch.setattr(shutil, "disk_usage", lambda _path: Usage())
    with pytest.raises(DownloadError, match="disk space") as info:
        download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)
    assert "1.0 kB is free" in str(info.value)
    # Another hub would not help.
    assert not vad_hub.file_requests()


# --- copies in the hub libraries' caches ----------------------------------------------------


def hf_cache_copy(root: Path, files: dict[str, bytes]) -> Path:
    """The layout huggingface_hub writes: blobs named by their hash, snapshots of symlinks."""
    repo = root / "hub" / "models--FunAudioLLM--Fun-ASR-MLT-Nano-2512"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    for relative, data in files.items():
        blob = repo / "blobs" / (sha256(data) if relative == "model.pt" else git_sha1(data))
        blob.write_bytes(data)
        link = snapshot / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def test_hugging_face_cache_copy_is_found_and_installed(tmp_path: Path) -> None:
    files = model_files(FUN_ASR_MLT_NANO, 4096)
    files["Qwen3-0.6B/generation_config.json"] = b"{}"
    snapshot = hf_cache_copy(tmp_path / "hf-home", files)
    assert find_cached_copy(FUN_ASR_MLT_NANO) == snapshot

    updates: list[DownloadProgress] = []
    folder = install_from_copy(
        FUN_ASR_MLT_NANO, snapshot, tmp_path / "models", progress=updates.append
    )

    assert folder == model_folder(FUN_ASR_MLT_NANO, tmp_path / "models")
    verify_model_folder(FUN_ASR_MLT_NANO, folder)
    for relative, data in files.items():
        assert (folder / relative).read_bytes() == data
        assert not (folder / relative).is_symlink()
    # Same file system: hard links to the cache's blobs, no second copy of the weights.
    assert (folder / "model.pt").stat().st_ino == (snapshot / "model.pt").resolve().stat().st_ino
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["files"]["model.pt"]["sha256"] == sha256(files["model.pt"])
    assert updates[-1].done == updates[-1].total == sum(len(d) for d in files.values())
    assert not folder.with_name(folder.name + ".copying").exists()


def test_modelscope_cache_copy_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Where funasr's demo (modelscope before 1.38) leaves it, with MODELSCOPE_CACHE unset.
    monkeypatch.delenv("MODELSCOPE_CACHE")
    copy = tmp_path / "home/.cache/modelscope/hub/models/FunAudioLLM/Fun-ASR-MLT-Nano-2512"
    for relative, data in model_files(FUN_ASR_MLT_NANO, 4096).items():
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (copy / relative).write_bytes(data)
    (copy / ".msc").write_bytes(b"modelscope's own bookkeeping")
    assert find_cached_copy(FUN_ASR_MLT_NANO) == copy

    folder = install_from_copy(FUN_ASR_MLT_NANO, copy, tmp_path / "models")
    verify_model_folder(FUN_ASR_MLT_NANO, folder)
    assert not (folder / ".msc").exists()


def test_incomplete_cache_copy_is_not_offered(tmp_path: Path) -> None:
    files = model_files(FUN_ASR_MLT_NANO, 4096)
    del files["Qwen3-0.6B/vocab.json"]
    hf_cache_copy(tmp_path / "hf-home", files)
    assert find_cached_copy(FUN_ASR_MLT_NANO) is None


def test_damaged_cache_copy_is_refused(tmp_path: Path) -> None:
    files = model_files(FUN_ASR_MLT_NANO, 4096)
    snapshot = hf_cache_copy(tmp_path / "hf-home", files)
    blob = (snapshot / "Qwen3-0.6B/merges.txt").resolve()
    blob.write_bytes(b"X" * blob.stat().st_size)  # same size, other content

    with pytest.raises(ModelCorruptError) as info:
        install_from_copy(FUN_ASR_MLT_NANO, snapshot, tmp_path / "models")
    message = str(info.value)
    assert str(snapshot) in message and "Qwen3-0.6B/merges.txt" in message
    assert "checksum" in message and "nanodictate models download fun-asr-mlt-nano" in message
    folder = model_folder(FUN_ASR_MLT_NANO, tmp_path / "models")
    assert not folder.exists() and not folder.with_name(folder.name + ".copying").exists()


def test_truncated_copy_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    for relative, data in model_files(FSMN_VAD, 4096).items():
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (copy / relative).write_bytes(data[:200] if relative == "model.pt" else data)
    with pytest.raises(ModelCorruptError, match=r"cannot be used: model\.pt is not a valid"):
        install_from_copy(FSMN_VAD, copy, tmp_path / "models")
    assert not model_folder(FSMN_VAD, tmp_path / "models").exists()


# --- terminal progress ----------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_draws_one_bar() -> None:
    stream = FakeTerminal()
    bar = TerminalProgress(stream)
    mb = 1_000_000
    for done in (0, 50 * mb, 100 * mb):
        bar(DownloadProgress("Qwen3-0.6B/model.pt", done, 100 * mb, done, 100 * mb))
    text = stream.getvalue()

    assert text.endswith("\n") and text.count("\n") == 1
    assert "100%" in text and "100M/100M" in text and "model.pt" in text
    bar.finish()
    assert stream.getvalue() == text


def test_terminal_progress_finish_ends_an_interrupted_line() -> None:
    stream = FakeTerminal()
    bar = terminal_progress(stream)
    bar(DownloadProgress("model.pt", 10, 100, 10, 100))
    assert not stream.getvalue().endswith("\n")
    bar.finish()
    assert stream.getvalue().endswith("\n")


def test_terminal_progress_on_a_pipe_prints_few_lines() -> None:
    stream = io.StringIO()
    bar = TerminalProgress(stream)
    for done in range(0, 1001, 10):
        bar(DownloadProgress("model.pt", done, 1000, done, 1000))
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 12
    assert "\r" not in stream.getvalue()
    assert "100%" in lines[-1]
