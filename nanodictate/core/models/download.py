"""Downloading a model through the Hugging Face and ModelScope client libraries.

- Hugging Face (`huggingface_hub`): `HfApi.model_info(files_metadata=True)` lists the files of
  the current commit (size, LFS sha256, git blob id); each file is fetched from
  `hf_hub_url(repo, path, revision=<that commit>)` with the library's `http_get`, which follows
  the CDN redirect, sends the token and resumes with a Range request. `hf_hub_download` is not
  used: since huggingface_hub 2.x it writes to a per-process temporary file that it deletes on
  any failure, so a cancelled 2 GB download would start over from zero.
- ModelScope (`modelscope_hub`, which `modelscope.snapshot_download` delegates to):
  `HubApi.list_repo_files` lists (size, sha256), `HubApi.download_repo(file_list=[one file],
  local_dir=<staging>)` fetches one file, resuming its own ``<path>.incomplete`` and checking the
  sha256 the hub lists.

Endpoints and tokens are the libraries' own: HF_ENDPOINT and HF_TOKEN (or `hf auth login`),
MODELSCOPE_ENDPOINT (or the older MODELSCOPE_DOMAIN) and MODELSCOPE_API_TOKEN (or
`modelscope login`); NANODICTATE_HF_ENDPOINT / NANODICTATE_MS_ENDPOINT override the endpoints.

Which files: the spec's required files, plus the other files under 100 MB in the sub-folders
those live in (Qwen3-0.6B/ may hold generation_config.json), never stray weights or examples.
Files go one at a time into ``<folder>.partial/`` (unfinished ones as ``<path>.incomplete``,
shared by both hubs), each is checked against the hash its own hub lists (a hash from one hub is
never checked against the other's file: the hubs may serve different model.pt files), then a
manifest is written, the folder verified, and swapped in by renames: the model folder is never
half-written.

Cancel: neither library can be cancelled. A progress hook of each (`tqdm_class` of `http_get`, a
ModelScope ProgressCallback) raises `_Cancelled` once the event is set; like
asyncio.CancelledError it derives from BaseException, so the libraries' `except Exception`
retry loops let it through. The event is also checked between files.

`find_cached_copy` / `install_from_copy` reuse a copy already in the user's Hugging Face or
ModelScope cache (hard links when possible), checked like a download.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, NoReturn

from nanodictate import __version__
from nanodictate.core.errors import DownloadError, ModelCorruptError
from nanodictate.core.models.store import (
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
    "find_cached_copy",
    "install_from_copy",
    "terminal_progress",
]

logger = logging.getLogger(__name__)

HubName = Literal["huggingface", "modelscope"]
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_MS_ENDPOINT = "https://modelscope.cn"

_TITLES: dict[HubName, str] = {"huggingface": "Hugging Face", "modelscope": "ModelScope"}
_STATE_NAME = ".nanodictate-partial.json"
_INCOMPLETE = ".incomplete"  # ModelScope's suffix for a partial file; used for both hubs
_PROGRESS_INTERVAL_S = 0.1
_EXTRA_FILE_LIMIT_BYTES = 100 * 1024 * 1024
_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


@dataclass(frozen=True)
class HubEndpoints:
    huggingface: str = DEFAULT_HF_ENDPOINT
    modelscope: str = DEFAULT_MS_ENDPOINT

    @classmethod
    def from_env(cls) -> HubEndpoints:
        env = os.environ.get
        hf = env("NANODICTATE_HF_ENDPOINT") or env("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT
        ms = (
            env("NANODICTATE_MS_ENDPOINT")
            or env("MODELSCOPE_ENDPOINT")
            or env("MODELSCOPE_DOMAIN")
            or DEFAULT_MS_ENDPOINT
        ).strip()
        return cls(hf, ms if "://" in ms else f"https://{ms}")

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
class _Remote:
    path: str
    size: int
    sha256: str | None  # what the hub lists (HF: LFS files only)
    git_sha1: str | None = None  # HF's blob id of a non-LFS file

    def matches(self, file: Path, sha256: str) -> bool | None:
        """Whether `file` (of that sha256) has the hash this hub lists; None if it lists none."""
        if self.sha256:
            return sha256 == self.sha256
        return None if self.git_sha1 is None else _git_sha1_of(file) == self.git_sha1


class _HubFailure(Exception):
    """This hub cannot deliver the model right now; the other one might."""


class _Cancelled(BaseException):
    """Raised from a library's progress hook to stop it; not an Exception, so not retried."""


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

    A folder that already verifies is returned without network access unless `force`. An
    interrupted download (cancel, network loss) resumes on the next call, from the other hub
    too when both list the same sha256. Raises DownloadError, after trying the other hub when
    `fallback`; a cancelled download raises DownloadError("Download cancelled").
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
            _Attempt(spec, folder, hub, hosts.for_hub(hub), progress, cancel).run()
        except _Cancelled:
            raise DownloadError("Download cancelled") from None
        except _HubFailure as failure:
            failures.append((hub, failure))
            if index + 1 < len(hubs):
                logger.warning(
                    "Downloading %s from %s failed (%s); trying %s",
                    spec.display_name,
                    _TITLES[hub],
                    failure,
                    _TITLES[hubs[index + 1]],
                )
            continue
        logger.info("Downloaded %s from %s into %s", spec.display_name, _TITLES[hub], folder)
        return folder
    if len(failures) == 1:
        hub, reason = failures[0]
        what = f"Could not download {spec.display_name} from {_TITLES[hub]}: {reason}."
    else:
        reasons = " ".join(f"{_TITLES[hub]}: {why}." for hub, why in failures)
        what = f"Could not download {spec.display_name}. {reasons}"
    raise DownloadError(
        f"{what} Check your internet connection and run `{spec.download_command}` again; "
        "it resumes where it stopped."
    ) from failures[-1][1]


class _Attempt:
    """One attempt at downloading a model from one hub into the partial folder."""

    def __init__(
        self,
        spec: ModelSpec,
        folder: Path,
        hub: HubName,
        host: str,
        progress: Callable[[DownloadProgress], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        self.spec, self.folder, self.partial = spec, folder, partial_folder(folder)
        self.hub, self.host, self.title = hub, host, _TITLES[hub]
        self.repo = spec.huggingface_repo if hub == "huggingface" else spec.modelscope_repo
        self.revision = "main" if hub == "huggingface" else "master"
        self.meter = _Meter(progress, cancel)
        self.state: dict[str, dict[str, object]] = {}

    def run(self) -> None:
        self.meter.check()
        wanted = _select(self.spec, self._library_call(self._list, None), self.repo)
        self.meter.total = sum(remote.size for remote in wanted)
        _local(lambda: self.partial.mkdir(parents=True, exist_ok=True), self.partial, self.spec)
        self.state = _load_state(self.partial / _STATE_NAME)
        pending: list[_Remote] = []
        for remote in wanted:
            if self._finished(remote) or self._reuse_installed(remote):
                self.meter.done += remote.size
            else:
                self.meter.done += self._resumable_bytes(remote)
                pending.append(remote)
        _check_free_space(self.spec, self.partial, self.meter.total - self.meter.done)
        # Small files first: a hub that cannot serve the repository fails in seconds.
        for remote in sorted(pending, key=lambda item: item.size):
            self.meter.check()
            self._fetch(remote)
        _install(self.spec, self.partial, self.folder, self._manifest(wanted))
        last = max(wanted, key=lambda item: item.size)
        self.meter.start(last.path, last.size, 0)
        self.meter.emit(last.size, force=True)

    # --- listing and transfer, through the libraries ----------------------------------------

    def _list(self) -> list[_Remote]:
        if self.hub == "huggingface":
            from huggingface_hub import HfApi

            api = HfApi(endpoint=self.host, library_name="nanodictate", library_version=__version__)
            info = api.model_info(self.repo, revision=self.revision, files_metadata=True)
            self.revision = info.sha or self.revision  # every file from this one commit
            return [
                _Remote(
                    s.rfilename,
                    s.size if s.size is not None else -1,
                    _sha(s.lfs and s.lfs.sha256),
                    None if s.lfs else s.blob_id,
                )
                for s in info.siblings or []
            ]
        return [
            _Remote(f.path, f.size, _sha(f.sha256))
            for f in self._modelscope().list_repo_files(self.repo, "model", revision=self.revision)
            if not f.is_dir
        ]

    def _transfer(self, remote: _Remote, part: Path) -> None:
        offset = part.stat().st_size if part.exists() else 0
        if self.hub == "huggingface":
            from huggingface_hub import hf_hub_url
            from huggingface_hub.file_download import http_get
            from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

            url = hf_hub_url(self.repo, remote.path, revision=self.revision, endpoint=self.host)
            headers = build_hf_headers(library_name="nanodictate", library_version=__version__)
            with part.open("r+b" if offset else "wb") as sink:
                sink.seek(offset)
                # http_get builds its bar as tqdm_class(total=..., initial=offset, ...).
                http_get(
                    url,
                    sink,
                    resume_size=offset,
                    headers=headers,
                    expected_size=remote.size,
                    tqdm_class=self.meter.bar_class(),
                )
            os.replace(part, self.partial / remote.path)
        else:
            entry = {"Path": remote.path, "Size": remote.size, "Sha256": remote.sha256}
            self._modelscope().download_repo(
                self.repo,
                "model",
                revision=self.revision,
                local_dir=self.partial,
                file_list=[entry],
                max_workers=1,
                progress_callbacks=[self.meter.callback_class()],
            )

    def _modelscope(self) -> Any:
        from modelscope_hub import HubApi
        from modelscope_hub.config import HubConfig

        if not os.environ.get("MODELSCOPE_LOG_LEVEL"):  # it logs every file at INFO
            logging.getLogger("modelscope_hub").setLevel(logging.WARNING)
        # A fresh config reads MODELSCOPE_API_TOKEN, MODELSCOPE_CACHE and the stored login now.
        return HubApi(HubConfig(endpoint=self.host), user_agent={"nanodictate": __version__})

    def _library_call(self, action: Callable[[], Any], path: str | None) -> Any:
        """Run a library call, turning its failures into _HubFailure (or a disk DownloadError)."""
        try:
            return action()
        except (_Cancelled, DownloadError):
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
                _raise_local(exc, self.partial, self.spec)
            failed = getattr(exc, "failed_files", None)  # ModelScope's FileDownloadError
            cause = next(iter(failed.values())) if isinstance(failed, dict) and failed else exc
            raise _HubFailure(_reason(cause, self.title, self.host, self.repo, path)) from exc

    # --- the partial folder -----------------------------------------------------------------

    def _fetch(self, remote: _Remote) -> None:
        part = self.partial / (remote.path + _INCOMPLETE)
        target = self.partial / remote.path
        self._record(remote, done=False, sha256=None)
        _local(lambda: part.parent.mkdir(parents=True, exist_ok=True), part, self.spec)
        for fresh in (False, True):
            offset = part.stat().st_size if part.exists() else 0
            self.meter.start(remote.path, remote.size, offset)
            self._library_call(lambda: self._transfer(remote, part), remote.path)
            digest = _sha256_of(target)
            if remote.matches(target, digest) is not False:
                break
            _local(lambda: target.unlink(missing_ok=True), target, self.spec)
            self.meter.done -= remote.size
            # A resumed part may hold another file version's first half: start it over once.
            if offset == 0 or fresh:
                raise _HubFailure(
                    f"{remote.path} from {self.title} does not match its published checksum"
                )
            logger.warning("%s failed its checksum; downloading it afresh", remote.path)
        self.meter.file_finished(remote.size)
        self._record(remote, done=True, sha256=digest)

    def _finished(self, remote: _Remote) -> bool:
        """Whether an earlier attempt finished this very file in the partial folder."""
        entry, target = self.state.get(remote.path), self.partial / remote.path
        if entry is None or not entry.get("done") or not target.is_file():
            return False
        if target.stat().st_size != remote.size:
            return False
        if remote.sha256 is not None:
            return entry.get("actual_sha256") == remote.sha256
        if remote.git_sha1 is not None:
            return _git_sha1_of(target) == remote.git_sha1
        return entry.get("source") == self.hub

    def _reuse_installed(self, remote: _Remote) -> bool:
        """Take a file from the installed folder when it matches this hub's own hash."""
        source, target = self.folder / remote.path, self.partial / remote.path
        if not source.is_file() or source.stat().st_size != remote.size:
            return False
        if remote.sha256 is None and remote.git_sha1 is None:
            return False
        digest = _sha256_of(source)
        if not remote.matches(source, digest):
            return False
        _local(lambda: _link_or_copy(source, target), target, self.spec)
        self._record(remote, done=True, sha256=digest)
        logger.info("Reusing the installed %s, which matches %s", remote.path, self.title)
        return True

    def _resumable_bytes(self, remote: _Remote) -> int:
        """Size of a usable partial file; one started for other content is deleted."""
        part = self.partial / (remote.path + _INCOMPLETE)
        if not part.exists():
            return 0
        entry, size = self.state.get(remote.path, {}), part.stat().st_size
        same = entry.get("size") == remote.size and (
            entry.get("sha256") == remote.sha256
            if remote.sha256 and entry.get("sha256")
            else entry.get("source") == self.hub
        )
        if same and size <= remote.size:
            return size
        _local(lambda: part.unlink(missing_ok=True), part, self.spec)
        return 0

    def _record(self, remote: _Remote, *, done: bool, sha256: str | None) -> None:
        self.state[remote.path] = {
            "size": remote.size,
            "sha256": remote.sha256,  # as listed by `source`
            "source": self.hub,
            "revision": self.revision,
            "done": done,
            "actual_sha256": sha256,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_json(self.partial / _STATE_NAME, {"files": self.state}, self.spec)

    def _manifest(self, wanted: list[_Remote]) -> dict[str, object]:
        files: dict[str, object] = {}
        for remote in wanted:
            entry = self.state[remote.path]
            files[remote.path] = {
                "size": remote.size,
                "sha256": entry.get("actual_sha256"),
                "source": entry.get("source"),
                "revision": entry.get("revision"),
                "time": entry.get("time"),
            }
        return files


def _select(spec: ModelSpec, listing: list[_Remote], repo: str) -> list[_Remote]:
    """The required files, plus small files in their sub-folders; nothing else."""
    by_path = {remote.path: remote for remote in listing}
    missing = [path for path in spec.required_files if path not in by_path]
    if missing:
        raise _HubFailure(
            f"its copy of {repo} lacks {', '.join(missing)} (the repository may have changed)"
        )
    if any(remote.size < 0 for remote in listing):
        raise _HubFailure("it sent a file list without file sizes")
    folders = {path.rsplit("/", 1)[0] for path in spec.required_files if "/" in path}
    extras = [
        remote
        for remote in listing
        if remote.path not in spec.required_files
        and remote.path.rpartition("/")[0] in folders
        and remote.size < _EXTRA_FILE_LIMIT_BYTES
        and is_safe_relative_path(remote.path)
    ]
    return [by_path[path] for path in spec.required_files] + extras


def _install(spec: ModelSpec, staging: Path, folder: Path, files: dict[str, object]) -> None:
    """Write the manifest, drop leftovers, verify `staging`, then swap it in by renames."""
    manifest = {"format": 1, "model": spec.name, "files": files}
    _write_json(staging / MANIFEST_NAME, manifest, spec)
    keep = set(files) | {MANIFEST_NAME}

    def remove_strays() -> None:  # earlier attempts' parts, another hub's extras
        for path in sorted(staging.rglob("*"), reverse=True):
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            elif not path.is_dir() and path.relative_to(staging).as_posix() not in keep:
                path.unlink()

    _local(remove_strays, staging, spec)
    problem = folder_problem(spec, staging)
    if problem is not None:
        raise _HubFailure(f"the files it sent do not form a usable model: {problem}")
    old = folder.with_name(folder.name + ".old")

    def swap() -> None:
        if old.exists():
            shutil.rmtree(old)
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)

    _local(swap, folder, spec)
    shutil.rmtree(old, ignore_errors=True)
    verify_model_folder(spec, folder)


# --- copies already in the hub libraries' caches ---------------------------------------------


def find_cached_copy(spec: ModelSpec) -> Path | None:
    """A complete copy of `spec` in the user's Hugging Face or ModelScope cache, or None.

    Looks where the libraries put snapshots (HF_HUB_CACHE, HF_HOME, MODELSCOPE_CACHE honoured),
    newest Hugging Face snapshot first. Only cheap checks run here; `install_from_copy` checks
    the content.
    """
    return next((path for path in _cache_candidates(spec) if not folder_problem(spec, path)), None)


def _cache_candidates(spec: ModelSpec) -> Iterator[Path]:
    env = os.environ.get
    hf_home = env("HF_HOME") or os.path.join(env("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    hf_cache = env("HF_HUB_CACHE") or env("HUGGINGFACE_HUB_CACHE") or os.path.join(hf_home, "hub")
    repo_dir = Path(hf_cache).expanduser() / ("models--" + spec.huggingface_repo.replace("/", "--"))
    try:
        head = (repo_dir / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        head = ""
    snapshots = sorted((repo_dir / "snapshots").glob("*"), key=lambda p: (p.name != head, p.name))
    yield from snapshots
    owner, _, name = spec.modelscope_repo.partition("/")
    base = Path(env("MODELSCOPE_CACHE") or "~/.cache/modelscope").expanduser()
    yield from sorted((base / "models" / f"{owner}--{name}" / "snapshots").glob("*"))
    legacy = name.replace(".", "___")  # how modelscope before 1.38 spelled the folder
    for parent in ("models", "hub/models", "hub", "."):
        yield base / parent / owner / legacy


def install_from_copy(
    spec: ModelSpec,
    source: Path,
    models_dir: Path | None = None,
    *,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Install the copy of `spec` in `source` (e.g. from `find_cached_copy`) as its model folder.

    Files are hard-linked when `source` is on the same file system, copied otherwise; each file
    stored in a Hugging Face cache is checked against the content hash that names its blob.
    Raises ModelCorruptError for a damaged copy, DownloadError for disk problems or a cancel.
    """
    folder = model_folder(spec, models_dir)

    def refuse(reason: str) -> NoReturn:
        raise ModelCorruptError(
            f"The copy of {spec.display_name} in {source} cannot be used: {reason}. "
            f"Download the model instead with `{spec.download_command}`."
        )

    problem = folder_problem(spec, source)
    if problem is not None:
        refuse(problem)
    local = [
        _Remote(path.relative_to(source).as_posix(), path.stat().st_size, None)
        for path in sorted(source.rglob("*"))
        if path.is_file() and ".cache" not in path.relative_to(source).parts
    ]
    try:
        wanted = _select(spec, local, str(source))
    except _HubFailure as failure:
        refuse(str(failure))
    staging = folder.with_name(folder.name + ".copying")
    _local(lambda: shutil.rmtree(staging, ignore_errors=True), staging, spec)
    _local(lambda: staging.mkdir(parents=True), staging, spec)
    meter = _Meter(progress, cancel)
    meter.total = sum(remote.size for remote in wanted)
    if os.stat(source).st_dev != os.stat(staging).st_dev:
        _check_free_space(spec, staging, meter.total)
    files: dict[str, object] = {}
    try:
        for remote in wanted:
            meter.check()
            origin = (source / remote.path).resolve()
            target = staging / remote.path
            meter.start(remote.path, remote.size, 0)
            _local(lambda: _link_or_copy(origin, target), target, spec)  # noqa: B023
            digest = _sha256_of(target)
            named = origin.name.lower() if origin.parent.name == "blobs" else ""
            if (len(named) == 64 and named != digest) or (
                len(named) == 40 and named != _git_sha1_of(target)
            ):
                refuse(f"{remote.path} does not match the checksum its cache recorded")
            meter.file_finished(remote.size)
            meter.emit(remote.size, force=remote is wanted[-1])
            files[remote.path] = {"size": remote.size, "sha256": digest, "source": str(source)}
        _install(spec, staging, folder, files)
    except _Cancelled:
        raise DownloadError("Copy cancelled") from None
    except _HubFailure as failure:
        refuse(str(failure).removeprefix("the files it sent do not form a usable model: "))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(partial_folder(folder), ignore_errors=True)  # an abandoned download's parts
    logger.info("Installed %s from %s into %s", spec.display_name, source, folder)
    return folder


# --- helpers ---------------------------------------------------------------------------------


class _Meter:
    """Turns the libraries' byte counts into DownloadProgress; raises _Cancelled on cancel."""

    def __init__(
        self, callback: Callable[[DownloadProgress], None] | None, cancel: threading.Event | None
    ) -> None:
        self.callback, self.cancel = callback, cancel
        self.done = self.total = 0  # whole model
        self.file, self.file_total, self.file_done, self.base = "", 0, 0, 0
        self.last_emit = float("-inf")

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled

    def start(self, path: str, size: int, offset: int) -> None:
        self.file, self.file_total, self.file_done = path, size, offset
        self.base = self.done - offset  # `done` already counts a resumed part

    def advance(self, count: int) -> None:
        self.check()
        self.file_done += count
        self.done = self.base + self.file_done
        self.emit(self.file_done)

    def file_finished(self, size: int) -> None:
        self.done = self.base + size

    def emit(self, file_done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.callback is None or (not force and now - self.last_emit < _PROGRESS_INTERVAL_S):
            return
        self.last_emit = now
        self.callback(
            DownloadProgress(self.file, file_done, self.file_total, self.done, self.total)
        )

    def bar_class(self) -> Any:
        """A stand-in for huggingface_hub's `tqdm_class`: built per file, counts from `initial`."""
        meter = self

        class Bar:
            def __init__(self, *, initial: int = 0, **_: object) -> None:
                meter.file_done = initial

            def update(self, count: float | None = 1) -> None:
                meter.advance(int(count or 0))

            def close(self) -> None:
                pass

            def __enter__(self) -> Bar:
                return self

            def __exit__(self, *_: object) -> None:
                pass

        return Bar

    def callback_class(self) -> Any:
        """A ModelScope ProgressCallback class; its first update includes the resumed bytes."""
        from modelscope_hub import ProgressCallback

        meter = self

        class Callback(ProgressCallback):
            def __init__(self, filename: str, file_size: int) -> None:
                super().__init__(filename, file_size)
                meter.file_done = 0

            def update(self, size: int) -> None:
                meter.advance(size)

        return Callback


def _reason(exc: BaseException, title: str, host: str, repo: str, path: str | None) -> str:
    """Why a library call failed, in words for the user."""
    what = f"the file {path}" if path else f"the repository {repo}"
    response = getattr(exc, "response", None)
    code = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    if isinstance(code, int) and code >= 400:
        if code == 404:
            return f"{title} has no {what} (404 Not Found)"
        if code in (401, 403):
            return f"{title} refused access to {what} ({code}); check your token"
        if code == 429:
            return f"{title} is limiting requests (429 Too Many Requests); wait a while"
        if code >= 500:
            return f"{title} had a server error ({code})"
        return f"{title} answered {code} for {what}"
    if "checksum" in str(exc).lower() or "hash mismatch" in str(exc).lower():
        return f"{path} from {title} does not match its published checksum"
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    text = " ".join(f"{type(item).__name__} {item}" for item in chain).lower()
    netloc = urllib.parse.urlsplit(host).netloc or host
    if any(isinstance(item, ConnectionRefusedError) for item in chain) or "refused" in text:
        return f"{netloc} refused the connection"
    if "timeout" in text or "timed out" in text:
        return f"{netloc} did not answer in time"
    if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
        return f"cannot find {netloc} (no internet connection?)"
    return f"the transfer from {netloc} failed ({type(exc).__name__}: {str(exc)[:200]})"


def _check_free_space(spec: ModelSpec, folder: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise DownloadError(
            f"There is not enough free disk space in {folder.parent} for "
            f"{spec.display_name}: it needs {human_size(needed)} more and {human_size(free)} "
            f"is free. Free some space, then run `{spec.download_command}` again."
        )


def _local(action: Callable[[], object], path: Path, spec: ModelSpec) -> None:
    """Run a disk operation, turning its OSError into a DownloadError for the user."""
    try:
        action()
    except OSError as exc:
        _raise_local(exc, path, spec)


def _raise_local(exc: OSError, path: Path, spec: ModelSpec) -> NoReturn:
    # Disk problems are not the hub's fault: the other hub would not help.
    if exc.errno in _DISK_FULL:
        raise DownloadError(
            f"The disk holding {path.parent} is full. Free some space, then run "
            f"`{spec.download_command}` again; it resumes where it stopped."
        ) from exc
    raise DownloadError(
        f"Could not write {path}: {exc.strerror or exc}. Check that the folder is writable, "
        "then try again."
    ) from exc


def _load_state(path: Path) -> dict[str, dict[str, object]]:
    """What earlier attempts knew about the files in the partial folder."""
    try:
        data: object = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(name): dict(entry) for name, entry in files.items() if isinstance(entry, dict)}


def _write_json(path: Path, data: object, spec: ModelSpec) -> None:
    temporary = path.with_name(path.name + ".tmp")

    def write() -> None:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)

    _local(write, path, spec)


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _sha(value: object) -> str | None:
    valid = isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value) is not None
    return value.lower() if valid and isinstance(value, str) else None


def _hash_file(path: Path, digest: Any, prefix: bytes = b"") -> str:
    digest.update(prefix)
    with path.open("rb") as stream:
        while block := stream.read(1024 * 1024):
            digest.update(block)
    return str(digest.hexdigest())


def _sha256_of(path: Path) -> str:
    return _hash_file(path, hashlib.sha256())


def _git_sha1_of(path: Path) -> str:
    """Git's blob id: what Hugging Face lists (and names cache blobs) for non-LFS files."""
    header = f"blob {path.stat().st_size}\0".encode()
    return _hash_file(path, hashlib.sha1(usedforsecurity=False), header)


# --- terminal progress ------------------------------------------------------------------------


class TerminalProgress:
    """A tqdm bar on a terminal; on a pipe, one plain line (tqdm's format) every 10%."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())
        self.bar: Any = None
        self.started = 0.0
        self.start_done = 0
        self.next_decile = 0

    def __call__(self, update: DownloadProgress) -> None:
        from tqdm import tqdm

        name = update.file.rsplit("/", 1)[-1][:28]
        finished = update.total > 0 and update.done >= update.total
        if self.interactive:
            if self.bar is None:
                # Resumed bytes count as `initial`, so they do not inflate the speed.
                self.bar = tqdm(
                    total=update.total,
                    initial=update.done,
                    file=self.stream,
                    unit="B",
                    unit_scale=True,
                    dynamic_ncols=True,
                    leave=True,
                )
            self.bar.total = update.total
            self.bar.set_postfix_str(name, refresh=False)
            self.bar.update(update.done - self.bar.n)
            if finished:
                self.finish()
            return
        now = time.monotonic()
        if not self.started:
            self.started, self.start_done = now, update.done
        percent = int(update.fraction * 100)
        if finished or percent >= self.next_decile:
            line = tqdm.format_meter(
                update.done,
                update.total,
                now - self.started,
                unit="B",
                unit_scale=True,
                initial=self.start_done,
                postfix=name,
            )
            self.stream.write(line + "\n")
            self.stream.flush()
            self.next_decile = percent // 10 * 10 + 10

    def finish(self) -> None:
        """End the progress line (call it when a download stops early too)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def terminal_progress(stream: IO[str] | None = None) -> TerminalProgress:
    """A progress callback for the CLI that draws one updating bar on `stream` (stderr)."""
    return TerminalProgress(sys.stderr if stream is None else stream)
