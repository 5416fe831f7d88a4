"""Model downloads against a local fake of the Hugging Face and ModelScope HTTP APIs."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nanodictate.core import download
from nanodictate.core.download import (
    DownloadProgress,
    HubEndpoints,
    TerminalProgress,
    download_model,
    terminal_progress,
)
from nanodictate.core.errors import DownloadError
from nanodictate.core.model_store import (
    FSMN_VAD,
    FUN_ASR_MLT_NANO,
    MANIFEST_NAME,
    ModelSpec,
    model_folder,
    partial_folder,
    verify_model_folder,
)


def model_files(spec: ModelSpec, payload_size: int) -> dict[str, bytes]:
    """Files that make a valid folder for `spec`, with a torch-like zip as model.pt."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/data/0", bytes(range(256)) * (payload_size // 256))
        archive.writestr("archive/version", b"3\n")
    configuration = {"file_path_metas": {"init_param": "model.pt", "config": "config.yaml"}}
    files = {
        "configuration.json": json.dumps(configuration).encode(),
        "config.yaml": f"model: {spec.expected_model_class}\n".encode(),
        "model.pt": buffer.getvalue(),
    }
    for path in spec.required_files:
        files.setdefault(path, f"content of {path}\n".encode())
    return files


# Bigger than one read chunk (256 KiB), so transfers can be cut and cancelled part-way.
CHECKPOINT_PAYLOAD = 1024 * 1024


@dataclass
class Request:
    hub: str  # "hf" or "ms"
    kind: str  # "list" or "file"
    path: str
    range: str | None
    status: int = 0


@dataclass
class FakeHub:
    """Both hubs serving one repository, with switches for the failures under test."""

    spec: ModelSpec
    files: dict[str, bytes]
    # Listed but never requested by a correct client (it must skip them).
    listed_only: dict[str, int] = field(default_factory=dict)
    base_url: str = ""
    requests: list[Request] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)  # hub -> HTTP status for every request
    fail_after_cut: set[tuple[str, str]] = field(default_factory=set)  # 503 once cut
    cut_once: dict[tuple[str, str], int] = field(default_factory=dict)  # (hub, path) -> bytes
    ignore_range: bool = False
    corrupt: dict[tuple[str, str], bytes] = field(default_factory=dict)
    listing_page_size: int = 3
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoints(self) -> HubEndpoints:
        return HubEndpoints(huggingface=f"{self.base_url}/hf", modelscope=f"{self.base_url}/ms")

    def file_requests(self, hub: str | None = None, path: str | None = None) -> list[Request]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r.kind == "file"
                and r.status != 302  # a redirect is not a transfer
                and (hub is None or r.hub == hub)
                and (path is None or r.path == path)
            ]

    def hf_entries(self) -> list[dict[str, object]]:
        entries: list[dict[str, object]] = [{"type": "directory", "path": "example", "oid": "0"}]
        for path, data in self.files.items():
            entry: dict[str, object] = {"type": "file", "path": path, "size": len(data), "oid": "a"}
            if path == "model.pt":
                # Only large (LFS) files carry a sha256 on Hugging Face.
                entry["lfs"] = {"oid": sha256(data), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        for path, size in self.listed_only.items():
            entries.append({"type": "file", "path": path, "size": size, "oid": "b"})
        return entries

    def ms_listing(self) -> dict[str, object]:
        files: list[dict[str, object]] = [{"Path": "example", "Type": "tree", "Size": 0}]
        for path, data in self.files.items():
            files.append(
                {
                    "Name": path.rsplit("/", 1)[-1],
                    "Path": path,
                    "Type": "blob",
                    "Size": len(data),
                    "Sha256": sha256(data),
                }
            )
        for path, size in self.listed_only.items():
            files.append({"Path": path, "Type": "blob", "Size": size, "Sha256": ""})
        return {"Code": 200, "Success": True, "Message": "success", "Data": {"Files": files}}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            hf_repo, ms_repo = hub.spec.huggingface_repo, hub.spec.modelscope_repo
            route: tuple[str, str, str] | None = None
            if url.path == f"/hf/api/models/{hf_repo}/tree/main":
                assert query.get("recursive") == ["true"]
                route = ("hf", "list", "")
            elif url.path.startswith(f"/hf/{hf_repo}/resolve/main/"):
                relative = urllib.parse.unquote(
                    url.path.removeprefix(f"/hf/{hf_repo}/resolve/main/")
                )
                route = ("hf", "file", relative)
            elif url.path.startswith("/hf-cdn/"):
                route = ("hf", "file", urllib.parse.unquote(url.path.removeprefix("/hf-cdn/")))
            elif url.path == f"/ms/api/v1/models/{ms_repo}/repo/files":
                assert query.get("Revision") == ["master"]
                assert query.get("Recursive") == ["True"]
                route = ("ms", "list", "")
            elif url.path == f"/ms/api/v1/models/{ms_repo}/repo":
                assert query.get("Revision") == ["master"]
                route = ("ms", "file", query["FilePath"][0])
            if route is None:
                self.send_error(404)
                return

            which, kind, relative = route
            record = Request(which, kind, relative, self.headers.get("Range"))
            with hub.lock:
                hub.requests.append(record)
                was_cut = (which, relative) not in hub.cut_once and any(
                    r.hub == which and r.path == relative for r in hub.requests[:-1]
                )
            status = hub.fail.get(which)
            if status is None and was_cut and (which, relative) in hub.fail_after_cut:
                status = 503
            if status is not None:
                record.status = status
                self.send_error(status)
                return
            if kind == "list":
                self.send_listing(which, query)
            elif which == "hf" and relative == "model.pt" and not url.path.startswith("/hf-cdn/"):
                # Large files on Hugging Face redirect to a CDN; the Range header must follow.
                record.status = 302
                self.send_response(302)
                self.send_header("Location", f"/hf-cdn/{relative}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_file(which, relative, record)

        def send_listing(self, which: str, query: dict[str, list[str]]) -> None:
            if which == "hf":
                entries = hub.hf_entries()
                start = int(query.get("cursor", ["0"])[0])
                page = entries[start : start + hub.listing_page_size]
                body = json.dumps(page).encode()
                following = start + hub.listing_page_size
                self.send_response(200)
                if following < len(entries):
                    next_url = f"{self.path.split('&cursor=')[0]}&cursor={following}"
                    self.send_header("Link", f'<{next_url}>; rel="next"')
            else:
                body = json.dumps(hub.ms_listing()).encode()
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def send_file(self, which: str, relative: str, record: Request) -> None:
            data = hub.corrupt.get((which, relative), hub.files.get(relative))
            if data is None:
                record.status = 404
                self.send_error(404)
                return
            start = 0
            range_header = self.headers.get("Range")
            if range_header and not hub.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    record.status = 416
                    self.send_error(416)
                    return
                record.status = 206
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                record.status = 200
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with hub.lock:
                cut = hub.cut_once.pop((which, relative), None)
            if cut is not None:
                # Headers promised the whole body; the connection closes after `cut` bytes.
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


def serve(hub: FakeHub) -> Iterator[FakeHub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(hub))
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-hub", daemon=True
    )
    thread.start()
    hub.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


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
        FUN_ASR_MLT_NANO,
        files,
        listed_only={"Qwen3-0.6B/model.safetensors": 1_500_000_000},
    )
    yield from serve(hub)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NANODICTATE_HF_ENDPOINT", "HF_ENDPOINT", "NANODICTATE_MS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


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
    assert not list(folder.rglob("*.part"))


# --- the happy path -------------------------------------------------------------------------


def test_full_download(vad_hub: FakeHub, tmp_path: Path) -> None:
    updates: list[DownloadProgress] = []
    folder = download_model(
        FSMN_VAD, tmp_path, progress=updates.append, endpoints=vad_hub.endpoints
    )

    assert folder == model_folder(FSMN_VAD, tmp_path)
    assert_installed(vad_hub, folder, {"huggingface"})
    # Only what the app needs: no README, no example audio.
    assert sorted(r.path for r in vad_hub.file_requests()) == sorted(FSMN_VAD.required_files)
    assert not (folder / "README.md").exists()
    assert not vad_hub.file_requests(hub="ms")

    total = sum(len(vad_hub.files[p]) for p in FSMN_VAD.required_files)
    assert updates
    assert all(u.total == total for u in updates)
    dones = [u.done for u in updates]
    assert dones == sorted(dones)
    assert updates[-1].done == total
    assert updates[-1].file_done == updates[-1].file_total


def test_every_chunk_reported_when_unthrottled(
    vad_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "_PROGRESS_INTERVAL_S", 0.0)
    updates: list[DownloadProgress] = []
    download_model(FSMN_VAD, tmp_path, progress=updates.append, endpoints=vad_hub.endpoints)
    checkpoint = [u for u in updates if u.file == "model.pt"]
    assert len(checkpoint) >= 4
    assert [u.file_done for u in checkpoint] == sorted(u.file_done for u in checkpoint)
    assert checkpoint[-1].file_done == checkpoint[-1].file_total


def test_progress_is_throttled(
    vad_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "_PROGRESS_INTERVAL_S", 3600.0)
    updates: list[DownloadProgress] = []
    download_model(FSMN_VAD, tmp_path, progress=updates.append, endpoints=vad_hub.endpoints)
    # Within one interval only the first update and the final one get through.
    assert len(updates) == 2
    assert updates[-1].done == updates[-1].total


def test_extras_in_tokenizer_folder_but_no_stray_weights(asr_hub: FakeHub, tmp_path: Path) -> None:
    folder = download_model(FUN_ASR_MLT_NANO, tmp_path, endpoints=asr_hub.endpoints)
    assert_installed(asr_hub, folder, {"huggingface"})
    assert (folder / "Qwen3-0.6B/generation_config.json").read_bytes() == b'{"do_sample": false}'
    requested = {r.path for r in asr_hub.file_requests()}
    assert "Qwen3-0.6B/model.safetensors" not in requested
    assert "images/funasr-v2.png" not in requested


def test_modelscope_as_first_choice(vad_hub: FakeHub, tmp_path: Path) -> None:
    folder = download_model(FSMN_VAD, tmp_path, source="modelscope", endpoints=vad_hub.endpoints)
    assert_installed(vad_hub, folder, {"modelscope"})
    assert not vad_hub.file_requests(hub="hf")


def test_endpoints_from_environment(
    vad_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the app's own variable wins
    monkeypatch.setenv("NANODICTATE_HF_ENDPOINT", vad_hub.endpoints.huggingface)
    monkeypatch.setenv("NANODICTATE_MS_ENDPOINT", vad_hub.endpoints.modelscope)
    folder = download_model(FSMN_VAD, tmp_path, fallback=False)
    assert_installed(vad_hub, folder, {"huggingface"})


def test_hf_endpoint_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example/")
    assert HubEndpoints.from_env().for_hub("huggingface") == "https://hf-mirror.example"
    assert HubEndpoints.from_env().for_hub("modelscope") == "https://modelscope.cn"


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


def test_dropped_connection_resumes_with_range(vad_hub: FakeHub, tmp_path: Path) -> None:
    vad_hub.cut_once[("hf", "model.pt")] = 300_000
    folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)

    assert_installed(vad_hub, folder, {"huggingface"})
    ranges = [r.range for r in vad_hub.file_requests(path="model.pt") if r.range]
    assert ranges == ["bytes=300000-"]


def test_cancelled_download_resumes_on_next_call(
    vad_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "_PROGRESS_INTERVAL_S", 0.0)
    cancel = threading.Event()

    def cancel_during_checkpoint(update: DownloadProgress) -> None:
        if update.file == "model.pt" and update.file_done > 0:
            cancel.set()

    with pytest.raises(DownloadError, match="Download cancelled"):
        download_model(
            FSMN_VAD,
            tmp_path,
            progress=cancel_during_checkpoint,
            endpoints=vad_hub.endpoints,
            cancel=cancel,
        )
    folder = model_folder(FSMN_VAD, tmp_path)
    part = partial_folder(folder) / "model.pt.part"
    assert not folder.exists()
    kept = part.stat().st_size
    assert 0 < kept < len(vad_hub.files["model.pt"])
    # Cancelling must not fall back to the other hub.
    assert not vad_hub.file_requests(hub="ms")

    updates: list[DownloadProgress] = []
    download_model(FSMN_VAD, tmp_path, progress=updates.append, endpoints=vad_hub.endpoints)

    assert_installed(vad_hub, folder, {"huggingface"})
    last = vad_hub.file_requests(path="model.pt")[-1]
    assert last.range == f"bytes={kept}-"
    assert last.status == 206
    # Files finished before the cancel are not fetched again.
    assert len(vad_hub.file_requests(path="am.mvn")) == 1
    # Progress counts the resumed bytes from the start.
    assert updates[0].done >= kept


def test_server_ignoring_range_restarts_the_file(vad_hub: FakeHub, tmp_path: Path) -> None:
    vad_hub.ignore_range = True
    vad_hub.cut_once[("hf", "model.pt")] = 300_000
    folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)

    assert_installed(vad_hub, folder, {"huggingface"})
    resumed = [r for r in vad_hub.file_requests(path="model.pt") if r.range]
    assert [r.range for r in resumed] == ["bytes=300000-"]
    assert resumed[0].status == 200


def test_partial_file_from_one_hub_is_resumed_on_the_other(
    vad_hub: FakeHub, tmp_path: Path
) -> None:
    # Hugging Face drops model.pt part-way and then keeps failing it.
    vad_hub.cut_once[("hf", "model.pt")] = 300_000
    vad_hub.fail_after_cut.add(("hf", "model.pt"))
    folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)

    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["files"]["model.pt"]["source"] == "modelscope"
    assert_installed(vad_hub, folder, {"huggingface", "modelscope"})
    [from_modelscope] = vad_hub.file_requests(hub="ms", path="model.pt")
    assert from_modelscope.range == "bytes=300000-"
    assert from_modelscope.status == 206
    # Small files finished on Hugging Face match ModelScope's sha256: not fetched again.
    assert [r.path for r in vad_hub.file_requests(hub="ms")] == ["model.pt"]


# --- failures -------------------------------------------------------------------------------


def test_falls_back_to_modelscope(
    vad_hub: FakeHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vad_hub.fail["hf"] = 500
    with caplog.at_level(logging.WARNING, logger="nanodictate.core.download"):
        folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)

    assert_installed(vad_hub, folder, {"modelscope"})
    assert any("trying ModelScope" in record.getMessage() for record in caplog.records)


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


def test_unreachable_hubs(tmp_path: Path) -> None:
    nowhere = HubEndpoints("http://127.0.0.1:9", "http://127.0.0.1:9")
    with pytest.raises(DownloadError, match="refused the connection"):
        download_model(FSMN_VAD, tmp_path, endpoints=nowhere)


def test_checksum_mismatch_falls_back(vad_hub: FakeHub, tmp_path: Path) -> None:
    good = vad_hub.files["model.pt"]
    vad_hub.corrupt[("hf", "model.pt")] = good[:-1] + bytes([good[-1] ^ 0xFF])
    folder = download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)

    assert_installed(vad_hub, folder, {"huggingface", "modelscope"})
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["files"]["model.pt"]["source"] == "modelscope"


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
    with pytest.raises(DownloadError, match="disk space"):
        download_model(FSMN_VAD, tmp_path, endpoints=vad_hub.endpoints)
    # Another hub would not help.
    assert not vad_hub.file_requests()


# --- terminal progress ----------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_draws_one_line() -> None:
    stream = FakeTerminal()
    now = [0.0]
    bar = TerminalProgress(stream, clock=lambda: now[0])
    mb = 1024 * 1024
    bar(DownloadProgress("model.pt", 0, 100 * mb, 0, 100 * mb))
    now[0] = 2.0
    bar(DownloadProgress("model.pt", 50 * mb, 100 * mb, 50 * mb, 100 * mb))
    now[0] = 4.0
    bar(DownloadProgress("model.pt", 100 * mb, 100 * mb, 100 * mb, 100 * mb))
    text = stream.getvalue()

    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") == 3
    assert " 50.0%" in text and "50.0/100.0 MB" in text and "25.0 MB/s" in text
    assert "100.0%" in text
    bar.finish()
    assert stream.getvalue() == text


def test_terminal_progress_finish_ends_an_interrupted_line() -> None:
    stream = FakeTerminal()
    bar = terminal_progress(stream)
    bar(DownloadProgress("model.pt", 10, 100, 10, 100))
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
    assert "100.0%" in lines[-1]
