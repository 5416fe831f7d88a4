"""A local HTTP server standing in for Hugging Face and ModelScope, for the download tests.

It answers the requests the real client libraries make (read from their source):

- huggingface_hub: ``GET /api/models/{repo}/revision/{rev}?blobs=True`` (`HfApi.model_info`
  with files_metadata: ``sha`` and ``siblings`` with size, blobId and lfs.sha256), then
  ``GET /{repo}/resolve/{commit}/{path}`` (`hf_hub_url` + `http_get`): large files redirect to a
  CDN path, headers carry X-Repo-Commit, ETag and X-Linked-Size, and ``Range: bytes=N-`` is
  answered with 206 and Content-Range.
- modelscope_hub: ``GET /api/v1/models/{repo}/repo/files?Revision=master&Recursive=True``
  (`HubApi.list_repo_files`: Path, Size, Sha256, Type) and
  ``GET /api/v1/models/{repo}/repo?Revision=master&FilePath={path}`` for the bytes.

Hugging Face lives under /hf and ModelScope under /ms of one server, so each library is
pointed at it through its own endpoint setting.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nanodictate.core.models.download import HubEndpoints
from nanodictate.core.models.store import ModelSpec

COMMIT = "0123456789abcdef0123456789abcdef01234567"


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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class Request:
    hub: str  # "hf" or "ms"
    kind: str  # "list" or "file"
    path: str
    range: str | None
    authorization: str | None
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
    fail_after_cut: set[tuple[str, str]] = field(default_factory=set)  # 404 once cut
    cut_once: dict[tuple[str, str], int] = field(default_factory=dict)  # (hub, path) -> bytes
    ignore_range: bool = False
    corrupt: dict[tuple[str, str], bytes] = field(default_factory=dict)  # served, not listed
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

    def hf_info(self) -> dict[str, object]:
        siblings: list[dict[str, object]] = []
        for path, data in self.files.items():
            sibling: dict[str, object] = {"rfilename": path, "size": len(data)}
            if path == "model.pt":  # only large (LFS) files carry a sha256 on Hugging Face
                sibling["blobId"] = git_sha1(b"version https://git-lfs pointer")
                sibling["lfs"] = {"sha256": sha256(data), "size": len(data), "pointerSize": 134}
            else:
                sibling["blobId"] = git_sha1(data)
            siblings.append(sibling)
        for path, size in self.listed_only.items():
            siblings.append({"rfilename": path, "size": size, "blobId": "b" * 40})
        return {"id": self.spec.huggingface_repo, "sha": COMMIT, "siblings": siblings}

    def ms_listing(self) -> dict[str, object]:
        files: list[dict[str, object]] = [{"Path": "example", "Type": "tree", "Size": 0}]
        for path, data in self.files.items():
            name = path.rsplit("/", 1)[-1]
            files.append(
                {
                    "Name": name,
                    "Path": path,
                    "Type": "blob",
                    "Size": len(data),
                    "Sha256": sha256(data),
                }
            )
        for path, size in self.listed_only.items():
            files.append({"Path": path, "Type": "blob", "Size": size, "Sha256": ""})
        return {"Code": 200, "Success": True, "Message": "success", "Data": {"Files": files}}


def make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self.send_error(405)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            hf_repo, ms_repo = hub.spec.huggingface_repo, hub.spec.modelscope_repo
            resolve = f"/hf/{hf_repo}/resolve/{COMMIT}/"
            route: tuple[str, str, str] | None = None
            if url.path == f"/hf/api/models/{hf_repo}/revision/main":
                assert [v.lower() for v in query.get("blobs", [])] == ["true"], query
                route = ("hf", "list", "")
            elif url.path.startswith(resolve):
                route = ("hf", "file", urllib.parse.unquote(url.path.removeprefix(resolve)))
            elif url.path.startswith("/hf-cdn/"):
                route = ("hf", "file", urllib.parse.unquote(url.path.removeprefix("/hf-cdn/")))
            elif url.path == f"/ms/api/v1/models/{ms_repo}/repo/files":
                assert query.get("Revision") == ["master"], query
                route = ("ms", "list", "")
            elif url.path == f"/ms/api/v1/models/{ms_repo}/repo":
                assert query.get("Revision") == ["master"], query
                route = ("ms", "file", query["FilePath"][0])
            if route is None:
                self.send_error(404)
                return

            which, kind, relative = route
            auth = self.headers.get("Authorization")
            record = Request(which, kind, relative, self.headers.get("Range"), auth)
            with hub.lock:
                hub.requests.append(record)
                was_cut = (which, relative) not in hub.cut_once and any(
                    r.hub == which and r.path == relative and r.status != 302
                    for r in hub.requests[:-1]
                )
            status = hub.fail.get(which)
            if status is None and was_cut and (which, relative) in hub.fail_after_cut:
                status = 404
            if status is not None:
                record.status = status
                self.send_error(status)
                return
            if kind == "list":
                listing = hub.hf_info() if which == "hf" else hub.ms_listing()
                self.send_body(200, json.dumps(listing).encode(), "application/json")
            elif which == "hf" and relative == "model.pt" and url.path.startswith("/hf/"):
                # Large files on Hugging Face redirect to a CDN; the Range header must follow.
                record.status = 302
                data = hub.files[relative]
                self.send_response(302)
                self.send_header("Location", f"/hf-cdn/{relative}")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Linked-Etag", f'"{sha256(data)}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_file(which, relative, record)

        def send_body(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
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
            self.send_header("ETag", f'"{git_sha1(data)}"')
            self.send_header("X-Repo-Commit", COMMIT)
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
    server.daemon_threads = True
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
