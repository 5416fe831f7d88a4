"""Downloading a model from Hugging Face or ModelScope, resumably, with progress.

Plain `urllib.request` rather than the huggingface_hub or modelscope clients: those keep their
own caches (a second copy of 2 GB), phone home and check for updates, and hide the resume and
progress details this module needs to control exactly.

Hub endpoints (the ones the official clients use: huggingface_hub's `list_repo_tree` and
`hf_hub_url`, modelscope's `list_repo_files` and `get_file_download_url`):

- Hugging Face listing: ``GET {hf}/api/models/{repo}/tree/main?recursive=true`` answers a JSON
  list of ``{"type": "file"|"directory", "path", "size", "lfs": {"oid": <sha256>, "size"}}``
  (``lfs`` only for large files). Pages hold at most 1000 entries and link the next one with a
  ``Link: <url>; rel="next"`` header, which is followed.
- Hugging Face file: ``GET {hf}/{repo}/resolve/main/{path}``; large files redirect to a CDN,
  and urllib keeps the Range header across the redirect.
- ModelScope listing: ``GET {ms}/api/v1/models/{repo}/repo/files?Revision=master&Recursive=True``
  answers ``{"Code": 200, "Success": true, "Data": {"Files": [{"Path", "Size",
  "Type": "blob"|"tree", "Sha256"}]}}`` (not paginated; capped at 3000 entries, far more than
  these repositories hold).
- ModelScope file: ``GET {ms}/api/v1/models/{repo}/repo?Revision=master&FilePath={path}``.

Hosts default to https://huggingface.co and https://modelscope.cn; `HubEndpoints` or the
environment variables NANODICTATE_HF_ENDPOINT (else HF_ENDPOINT) and NANODICTATE_MS_ENDPOINT
replace them, for mirrors and for tests.

Which files: the spec's required files, plus the other files in the sub-folders those live in
(Qwen3-0.6B/ may hold generation_config.json or special-token files that transformers reads
when it finds them) if each is under 100 MB, so stray weights are never pulled. Everything
else in the repositories (README images, example audio, ONNX exports) is skipped.

On disk: files arrive in ``<folder>.partial/<path>.part``, resumed with ``Range: bytes=N-``
(a server answering 200 instead of 206 restarts that file). Each finished file is checked
against the listed size and sha256, then renamed to ``<folder>.partial/<path>``. When all are
there, a manifest (`MANIFEST_NAME`) is written, the folder is verified, and it replaces the
model folder in two renames, so the model folder is never half-written.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, NoReturn

from nanodictate import __version__
from nanodictate.core.errors import DownloadError
from nanodictate.core.model_store import (
    MANIFEST_NAME,
    ModelSpec,
    folder_problem,
    human_size,
    is_safe_relative_path,
    model_folder,
    partial_folder,
    verify_model_folder,
)

__all__ = [
    "DEFAULT_HF_ENDPOINT",
    "DEFAULT_MS_ENDPOINT",
    "DownloadProgress",
    "HubEndpoints",
    "HubName",
    "TerminalProgress",
    "download_model",
    "terminal_progress",
]

logger = logging.getLogger(__name__)

HubName = Literal["huggingface", "modelscope"]

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_MS_ENDPOINT = "https://modelscope.cn"

REQUEST_TIMEOUT_S = 30.0

_HUB_TITLES: dict[HubName, str] = {"huggingface": "Hugging Face", "modelscope": "ModelScope"}
_STATE_NAME = ".nanodictate-partial.json"
_USER_AGENT = f"nanodictate/{__version__}"
_CHUNK_BYTES = 256 * 1024
_PROGRESS_INTERVAL_S = 0.1
# A connection that dropped after delivering data is resumed on the spot this many times
# before the hub is given up on; one that fails without delivering anything is not retried.
_MAX_RESUMES = 5
_EXTRA_FILE_LIMIT_BYTES = 100 * 1024 * 1024
_MAX_LISTING_BYTES = 32 * 1024 * 1024
_MAX_LISTING_PAGES = 100


@dataclass(frozen=True)
class HubEndpoints:
    huggingface: str = DEFAULT_HF_ENDPOINT
    modelscope: str = DEFAULT_MS_ENDPOINT

    @classmethod
    def from_env(cls) -> HubEndpoints:
        hf = (
            os.environ.get("NANODICTATE_HF_ENDPOINT")
            or os.environ.get("HF_ENDPOINT")
            or DEFAULT_HF_ENDPOINT
        )
        ms = os.environ.get("NANODICTATE_MS_ENDPOINT") or DEFAULT_MS_ENDPOINT
        return cls(huggingface=hf, modelscope=ms)

    def for_hub(self, hub: HubName) -> str:
        return (self.huggingface if hub == "huggingface" else self.modelscope).rstrip("/")


@dataclass(frozen=True)
class DownloadProgress:
    file: str  # the path inside the model folder being transferred
    file_done: int
    file_total: int
    done: int  # bytes of the whole model on disk so far, resumed parts included
    total: int

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


@dataclass(frozen=True)
class _RemoteFile:
    path: str
    size: int
    sha256: str | None


class _HubFailure(Exception):
    """This hub cannot deliver the model right now; another hub might."""


class _Interrupted(_HubFailure):
    """A transfer stopped part-way; worth resuming at once if it delivered anything."""

    def __init__(self, reason: str, *, progressed: bool) -> None:
        super().__init__(reason)
        self.progressed = progressed


def download_model(
    spec: ModelSpec,
    models_dir: Path | None = None,
    *,
    source: HubName = "huggingface",
    fallback: bool = True,
    progress: Callable[[DownloadProgress], None] | None = None,
    endpoints: HubEndpoints | None = None,
    cancel: threading.Event | None = None,
    force: bool = False,
) -> Path:
    """Download `spec` into its model folder and return the folder.

    A folder that already verifies is returned without any network access unless `force`.
    Interrupted downloads (cancel, network loss, a closed laptop) resume where they stopped on
    the next call, even from the other hub. Raises DownloadError (after trying the other hub
    when `fallback`); a cancelled download raises DownloadError("Download cancelled").
    """
    folder = model_folder(spec, models_dir)
    if not force and folder_problem(spec, folder) is None:
        logger.info("%s is already installed in %s", spec.display_name, folder)
        return folder

    hosts = endpoints if endpoints is not None else HubEndpoints.from_env()
    other: HubName = "modelscope" if source == "huggingface" else "huggingface"
    hubs: list[HubName] = [source, other] if fallback else [source]
    failures: list[tuple[HubName, _HubFailure]] = []
    for index, hub in enumerate(hubs):
        try:
            _Download(spec, folder, hub, hosts, progress, cancel).run()
        except _HubFailure as failure:
            failures.append((hub, failure))
            if index + 1 < len(hubs):
                logger.warning(
                    "Downloading %s from %s failed (%s); trying %s",
                    spec.display_name,
                    _HUB_TITLES[hub],
                    failure,
                    _HUB_TITLES[hubs[index + 1]],
                )
            continue
        logger.info("Downloaded %s from %s into %s", spec.display_name, _HUB_TITLES[hub], folder)
        return folder

    if len(failures) == 1:
        only_hub, reason = failures[0]
        what = f"Could not download {spec.display_name} from {_HUB_TITLES[only_hub]}: {reason}."
    else:
        reasons = " ".join(f"{_HUB_TITLES[name]}: {why}." for name, why in failures)
        what = f"Could not download {spec.display_name}. {reasons}"
    raise DownloadError(
        f"{what} Check your internet connection and run `{spec.download_command}` again; "
        "it resumes where it stopped."
    ) from failures[-1][1]


class _Download:
    """One attempt at downloading a model from one hub."""

    def __init__(
        self,
        spec: ModelSpec,
        folder: Path,
        hub: HubName,
        hosts: HubEndpoints,
        progress: Callable[[DownloadProgress], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        self.spec = spec
        self.folder = folder
        self.partial = partial_folder(folder)
        self.hub = hub
        self.title = _HUB_TITLES[hub]
        self.host = hosts.for_hub(hub)
        self.repo = spec.huggingface_repo if hub == "huggingface" else spec.modelscope_repo
        self.cancel = cancel
        self.callback = progress
        self.state: dict[str, dict[str, object]] = {}
        self.done = 0
        self.total = 0
        self.last_emit = float("-inf")

    # --- the steps ------------------------------------------------------------------------

    def run(self) -> None:
        self._check_cancel()
        wanted = self._select(self._list_files())
        self.total = sum(remote.size for remote in wanted)
        self._local(lambda: self.partial.mkdir(parents=True, exist_ok=True), self.partial)
        self.state = self._load_state()

        pending: list[_RemoteFile] = []
        for remote in wanted:
            if self._already_done(remote) or self._reuse_installed(remote):
                self.done += remote.size
            else:
                self.done += self._resumable_bytes(remote)
                pending.append(remote)
        self._check_free_space(self.total - self.done)

        # Small files first: a hub that cannot serve the repository fails in seconds, not
        # after the 2 GB checkpoint.
        pending.sort(key=lambda item: item.size)
        for remote in pending:
            self._check_cancel()
            self._fetch(remote)
        self._install(wanted)
        last = pending[-1] if pending else wanted[-1]
        self._emit(last.path, last.size, last.size, force=True)

    def _list_files(self) -> list[_RemoteFile]:
        if self.hub == "huggingface":
            return self._list_huggingface()
        return self._list_modelscope()

    def _list_huggingface(self) -> list[_RemoteFile]:
        url: str | None = f"{self.host}/api/models/{self.repo}/tree/main?recursive=true"
        files: list[_RemoteFile] = []
        pages = 0
        while url is not None and pages < _MAX_LISTING_PAGES:
            pages += 1
            data, link = self._get_json(url)
            if not isinstance(data, list):
                raise _HubFailure(f"{self.title} sent a file list in an unexpected format")
            for entry in data:
                if not isinstance(entry, dict) or entry.get("type") != "file":
                    continue
                lfs = entry.get("lfs")
                sha = lfs.get("oid") if isinstance(lfs, dict) else None
                files.append(self._remote(entry.get("path"), entry.get("size"), sha))
            url = _next_link(link, url)
        return files

    def _list_modelscope(self) -> list[_RemoteFile]:
        query = urllib.parse.urlencode({"Revision": "master", "Recursive": "True"})
        data, _ = self._get_json(f"{self.host}/api/v1/models/{self.repo}/repo/files?{query}")
        if isinstance(data, dict) and data.get("Success") is False:
            message = data.get("Message") or "no reason given"
            raise _HubFailure(f"{self.title} refused to list {self.repo}: {message}")
        body = data.get("Data") if isinstance(data, dict) else None
        entries = body.get("Files") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise _HubFailure(f"{self.title} sent a file list in an unexpected format")
        return [
            self._remote(entry.get("Path"), entry.get("Size"), entry.get("Sha256"))
            for entry in entries
            if isinstance(entry, dict) and entry.get("Type", "blob") == "blob"
        ]

    def _remote(self, path: object, size: object, sha: object) -> _RemoteFile:
        if not isinstance(path, str) or not isinstance(size, int) or size < 0:
            raise _HubFailure(f"{self.title} sent a file list in an unexpected format")
        valid_sha = isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha) is not None
        return _RemoteFile(path, size, sha.lower() if valid_sha and isinstance(sha, str) else None)

    def _select(self, listing: list[_RemoteFile]) -> list[_RemoteFile]:
        by_path = {remote.path: remote for remote in listing}
        required = self.spec.required_files
        missing = [path for path in required if path not in by_path]
        if missing:
            raise _HubFailure(
                f"its copy of {self.repo} lacks {', '.join(missing)} "
                "(the repository may have changed)"
            )
        folders = {path.rsplit("/", 1)[0] for path in required if "/" in path}
        extras = [
            remote
            for remote in listing
            if remote.path not in required
            and "/" in remote.path
            and remote.path.rsplit("/", 1)[0] in folders
            and remote.size < _EXTRA_FILE_LIMIT_BYTES
            and is_safe_relative_path(remote.path)
        ]
        return [by_path[path] for path in required] + extras

    def _already_done(self, remote: _RemoteFile) -> bool:
        """Whether an earlier attempt finished this very file in the partial folder."""
        entry = self.state.get(remote.path)
        target = self.partial / remote.path
        if entry is None or not entry.get("done"):
            return False
        hashed_alike = remote.sha256 is not None and entry.get("actual_sha256") == remote.sha256
        if not hashed_alike and not self._same_file(entry, remote):
            return False
        try:
            return target.stat().st_size == remote.size
        except OSError:
            return False

    def _reuse_installed(self, remote: _RemoteFile) -> bool:
        """Take a file from the installed folder when it matches the hub's sha256.

        Re-downloading 2 GB because a tokenizer file went missing would be a poor repair.
        """
        source = self.folder / remote.path
        if remote.sha256 is None or not source.is_file() or source.stat().st_size != remote.size:
            return False
        if _sha256_of(source) != remote.sha256:
            return False
        target = self.partial / remote.path

        def link() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)

        self._local(link, target)
        self._record(remote, done=True, sha256=remote.sha256)
        logger.info("Reusing the installed %s, which matches %s", remote.path, self.title)
        return True

    def _resumable_bytes(self, remote: _RemoteFile) -> int:
        """Size of a usable .part for this file; a stale one (other file version) is deleted."""
        part = self._part_path(remote)
        if not part.exists():
            return 0
        entry = self.state.get(remote.path)
        size = part.stat().st_size
        if entry is not None and self._same_file(entry, remote) and size <= remote.size:
            return size
        self._local(lambda: part.unlink(missing_ok=True), part)
        return 0

    def _same_file(self, entry: dict[str, object], remote: _RemoteFile) -> bool:
        """Whether a partial file was started for the same content as `remote`.

        Two hubs serve identical bytes when the sha256 agree; without a sha256 only the same
        hub's same-sized file is trusted.
        """
        if entry.get("size") != remote.size:
            return False
        if remote.sha256 is not None and entry.get("sha256") is not None:
            return entry.get("sha256") == remote.sha256
        return entry.get("source") == self.hub

    def _check_free_space(self, needed: int) -> None:
        try:
            free = shutil.disk_usage(self.partial).free
        except OSError:
            return
        if free < needed:
            raise DownloadError(
                f"There is not enough free disk space in {self.partial.parent} to download "
                f"{self.spec.display_name}: it needs {human_size(needed)} more and "
                f"{human_size(free)} is free. Free some space, then run "
                f"`{self.spec.download_command}` again."
            )

    def _fetch(self, remote: _RemoteFile) -> None:
        part = self._part_path(remote)
        self._record(remote, done=False, sha256=None)
        self._local(lambda: part.parent.mkdir(parents=True, exist_ok=True), part)
        resumes = 0
        restarted_after_mismatch = False
        while True:
            offset = part.stat().st_size if part.exists() else 0
            try:
                if remote.size == 0:
                    self._local(part.touch, part)
                elif offset < remote.size:
                    self._transfer(remote, part, offset)
            except _Interrupted as interruption:
                if not interruption.progressed or resumes >= _MAX_RESUMES:
                    raise
                resumes += 1
                logger.info("Resuming %s after: %s", remote.path, interruption)
                continue

            digest = _sha256_of(part)
            if remote.sha256 is not None and digest != remote.sha256:
                self._local(lambda: part.unlink(missing_ok=True), part)
                self.done -= remote.size
                # A resumed part may hold another file version's first half; one fresh
                # download tells that apart from a hub serving bad data.
                if offset > 0 and not restarted_after_mismatch:
                    restarted_after_mismatch = True
                    logger.warning("%s failed its checksum; downloading it afresh", remote.path)
                    continue
                raise _HubFailure(
                    f"{remote.path} from {self.title} does not match its published checksum"
                )
            break

        target = self.partial / remote.path
        self._local(lambda: os.replace(part, target), target)
        self._record(remote, done=True, sha256=digest)

    def _transfer(self, remote: _RemoteFile, part: Path, offset: int) -> None:
        """Append the rest of `remote` to `part`, from byte `offset`."""
        headers = {"User-Agent": _USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(self._file_url(remote.path), headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                # The hub no longer agrees about the part's size: start the file over.
                self._local(lambda: part.unlink(missing_ok=True), part)
                self.done -= offset
                raise _Interrupted(
                    f"{remote.path}: range not satisfiable", progressed=True
                ) from exc
            raise _HubFailure(self._http_reason(exc, remote.path)) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _HubFailure(self._network_reason(exc)) from exc

        with response:
            status = response.status
            if offset and status == 206:
                start = _content_range_start(response.headers.get("Content-Range"))
                if start != offset:
                    self._local(lambda: part.unlink(missing_ok=True), part)
                    self.done -= offset
                    raise _Interrupted(f"{remote.path}: unexpected range", progressed=True)
            elif status == 200:
                if offset:
                    logger.info(
                        "%s ignored the resume request; restarting %s", self.title, remote.path
                    )
                    self.done -= offset
                    offset = 0
            else:
                raise _HubFailure(f"{self.title} answered {status} for {remote.path}")

            remaining = remote.size - offset
            received = 0
            try:
                sink = part.open("ab" if offset else "wb")
            except OSError as exc:
                self._raise_local(exc, part)
            with sink:
                while True:
                    self._check_cancel()
                    try:
                        chunk = response.read(min(_CHUNK_BYTES, remaining - received + 1))
                    except (OSError, http.client.HTTPException) as exc:
                        # Bytes inside an IncompleteRead are dropped, but they show the
                        # connection was delivering, so a resume is worth it.
                        partial_read = isinstance(exc, http.client.IncompleteRead) and bool(
                            exc.partial
                        )
                        raise _Interrupted(
                            self._network_reason(exc), progressed=received > 0 or partial_read
                        ) from exc
                    if not chunk:
                        break
                    if received + len(chunk) > remaining:
                        raise _HubFailure(
                            f"{self.title} sent more data for {remote.path} than it listed"
                        )
                    try:
                        sink.write(chunk)
                    except OSError as exc:
                        self._raise_local(exc, part)
                    received += len(chunk)
                    self.done += len(chunk)
                    self._emit(remote.path, offset + received, remote.size)
        if received < remaining:
            raise _Interrupted(
                f"the connection to {self.title} closed in the middle of {remote.path}",
                progressed=received > 0,
            )

    def _install(self, wanted: list[_RemoteFile]) -> None:
        manifest = {
            "format": 1,
            "model": self.spec.name,
            "files": {
                remote.path: {
                    "size": remote.size,
                    "sha256": self.state[remote.path].get("actual_sha256"),
                    "source": self.state[remote.path].get("source"),
                    "time": self.state[remote.path].get("time"),
                }
                for remote in wanted
            },
        }
        self._write_json(self.partial / MANIFEST_NAME, manifest)
        self._local(lambda: (self.partial / _STATE_NAME).unlink(missing_ok=True), self.partial)
        self._local(lambda: self._remove_strays({remote.path for remote in wanted}), self.partial)

        problem = folder_problem(self.spec, self.partial)
        if problem is not None:
            raise _HubFailure(f"the files it sent do not form a usable model: {problem}")

        old = self.folder.with_name(self.folder.name + ".old")

        def swap() -> None:
            if old.exists():
                shutil.rmtree(old)
            if self.folder.exists():
                self.folder.rename(old)
            self.partial.rename(self.folder)

        self._local(swap, self.folder)
        shutil.rmtree(old, ignore_errors=True)
        verify_model_folder(self.spec, self.folder)

    def _remove_strays(self, keep: set[str]) -> None:
        """Delete leftovers of earlier attempts (another hub's extras, abandoned parts)."""
        keep = keep | {MANIFEST_NAME}
        for path in sorted(self.partial.rglob("*"), reverse=True):
            relative = path.relative_to(self.partial).as_posix()
            if path.is_dir():
                if not any(path.iterdir()):
                    path.rmdir()
            elif relative not in keep:
                path.unlink()

    # --- helpers --------------------------------------------------------------------------

    def _file_url(self, path: str) -> str:
        if self.hub == "huggingface":
            return f"{self.host}/{self.repo}/resolve/main/{urllib.parse.quote(path)}"
        query = urllib.parse.urlencode({"Revision": "master", "FilePath": path})
        return f"{self.host}/api/v1/models/{self.repo}/repo?{query}"

    def _get_json(self, url: str) -> tuple[object, str | None]:
        request = urllib.request.Request(
            url, headers={"User-Agent": _USER_AGENT, "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                raw = response.read(_MAX_LISTING_BYTES)
                link = response.headers.get("Link")
        except urllib.error.HTTPError as exc:
            exc.close()
            raise _HubFailure(self._http_reason(exc, None)) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _HubFailure(self._network_reason(exc)) from exc
        try:
            return json.loads(raw), link
        except ValueError as exc:
            raise _HubFailure(f"{self.title} sent a file list that is not valid JSON") from exc

    def _http_reason(self, exc: urllib.error.HTTPError, path: str | None) -> str:
        what = f"the file {path}" if path else f"the repository {self.repo}"
        code = exc.code
        if code == 404:
            return f"{self.title} has no {what} (404 Not Found)"
        if code in (401, 403):
            return f"{self.title} refused access to {what} ({code})"
        if code == 429:
            return f"{self.title} is limiting requests (429 Too Many Requests); wait a while"
        if code >= 500:
            return f"{self.title} had a server error ({code} {exc.reason})"
        return f"{self.title} answered {code} {exc.reason} for {what}"

    def _network_reason(self, exc: BaseException) -> str:
        host = urllib.parse.urlsplit(self.host).netloc or self.host
        if isinstance(exc, urllib.error.URLError):
            exc = exc.reason if isinstance(exc.reason, BaseException) else exc
        if isinstance(exc, TimeoutError):
            return f"{host} did not answer within {REQUEST_TIMEOUT_S:.0f} s"
        if isinstance(exc, socket.gaierror):
            return f"cannot find {host} (no internet connection?)"
        if isinstance(exc, ConnectionRefusedError):
            return f"{host} refused the connection"
        if isinstance(exc, ConnectionError | http.client.HTTPException):
            return f"the connection to {host} broke"
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"cannot reach {host} ({detail})"

    def _part_path(self, remote: _RemoteFile) -> Path:
        return self.partial / (remote.path + ".part")

    def _record(self, remote: _RemoteFile, *, done: bool, sha256: str | None) -> None:
        self.state[remote.path] = {
            "size": remote.size,
            "sha256": remote.sha256,
            "source": self.hub,
            "done": done,
            "actual_sha256": sha256,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._write_json(self.partial / _STATE_NAME, {"files": self.state})

    def _load_state(self) -> dict[str, dict[str, object]]:
        """What earlier attempts knew about the files in the partial folder."""
        try:
            data: object = json.loads((self.partial / _STATE_NAME).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return {}
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict):
            return {}
        return {str(path): dict(entry) for path, entry in files.items() if isinstance(entry, dict)}

    def _write_json(self, path: Path, data: object) -> None:
        temporary = path.with_name(path.name + ".tmp")

        def write() -> None:
            temporary.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(temporary, path)

        self._local(write, path)

    def _local(self, action: Callable[[], object], path: Path) -> None:
        """Run a disk operation, turning its OSError into a DownloadError for the user."""
        try:
            action()
        except OSError as exc:
            self._raise_local(exc, path)

    def _raise_local(self, exc: OSError, path: Path) -> NoReturn:
        # Disk problems are not the hub's fault: trying the other hub would not help.
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise DownloadError(
                f"The disk holding {self.partial.parent} is full. Free some space, then run "
                f"`{self.spec.download_command}` again; it resumes where it stopped."
            ) from exc
        raise DownloadError(
            f"Could not write {path}: {exc.strerror or exc}. Check that the folder is "
            "writable, then run the download again."
        ) from exc

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadError("Download cancelled")

    def _emit(self, path: str, file_done: int, file_total: int, *, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self.last_emit < _PROGRESS_INTERVAL_S:
            return
        self.last_emit = now
        self.callback(DownloadProgress(path, file_done, file_total, self.done, self.total))


def _next_link(header: str | None, current: str) -> str | None:
    """The rel="next" URL of an RFC 8288 Link header, resolved against the current URL."""
    if not header:
        return None
    for part in header.split(","):
        match = re.match(r"\s*<([^>]*)>\s*;(.*)", part)
        if match and re.search(r'rel\s*=\s*"?next"?', match.group(2)):
            return urllib.parse.urljoin(current, str(match.group(1)))
    return None


def _content_range_start(header: str | None) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-", header or "")
    return int(match.group(1)) if match else None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


# --- terminal progress ----------------------------------------------------------------------


class TerminalProgress:
    """One self-updating progress line for a terminal; plain lines every 10% otherwise."""

    def __init__(self, stream: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())
        self.started: float | None = None
        self.start_done = 0
        self.width = 0
        self.open_line = False
        self.next_decile = 0

    def __call__(self, update: DownloadProgress) -> None:
        now = self.clock()
        if self.started is None:
            # Resumed bytes were not transferred now, so they must not inflate the speed.
            self.started = now
            self.start_done = update.done
        elapsed = now - self.started
        rate = (update.done - self.start_done) / elapsed if elapsed > 0.5 else 0.0
        finished = update.total > 0 and update.done >= update.total
        line = self._format(update, rate)
        if self.interactive:
            padding = " " * max(0, self.width - len(line))
            self.stream.write("\r" + line + padding)
            self.width = len(line)
            self.open_line = True
            if finished:
                self.finish()
        else:
            percent = int(update.fraction * 100)
            if finished or percent >= self.next_decile:
                self.stream.write(line + "\n")
                self.next_decile = percent // 10 * 10 + 10
        self.stream.flush()

    def finish(self) -> None:
        """End the progress line (call it when a download stops early too)."""
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False

    @staticmethod
    def _format(update: DownloadProgress, rate: float) -> str:
        mb = 1024 * 1024
        filled = int(update.fraction * 20)
        bar = "#" * filled + "-" * (20 - filled)
        text = (
            f"[{bar}] {update.fraction * 100:5.1f}%  "
            f"{update.done / mb:,.1f}/{update.total / mb:,.1f} MB"
        )
        if rate > 0:
            text += f"  {rate / mb:.1f} MB/s"
            remaining = (update.total - update.done) / rate
            if remaining >= 1 and update.done < update.total:
                minutes, seconds = divmod(int(remaining), 60)
                text += f"  {minutes}:{seconds:02d} left"
        name = update.file.rsplit("/", 1)[-1]
        if name:
            text += f"  {name[:28]}"
        return text


def terminal_progress(stream: IO[str] | None = None) -> TerminalProgress:
    """A progress callback for the CLI that draws one updating line on `stream` (stderr)."""
    return TerminalProgress(sys.stderr if stream is None else stream)
