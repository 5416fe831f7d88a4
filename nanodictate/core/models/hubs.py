"""The two hubs a model comes from, reached through their own client libraries.

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

Which files (`select_files`): the spec's required files, plus the other files under 100 MB in
the sub-folders those live in (Qwen3-0.6B/ may hold generation_config.json), never stray
weights or examples. Each file is checked against the hash its own hub lists (`Remote.matches`):
a hash from one hub is never checked against the other's file, as the hubs may serve different
model.pt files.

A hub that cannot deliver raises `HubFailure` with the reason in words for the user, so that
download.py can try the other hub. The libraries are imported only when a hub is contacted, so
importing this module stays light.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nanodictate import __version__
from nanodictate.core.models.progress import Meter
from nanodictate.core.models.store import ModelSpec, is_safe_relative_path

HubName = Literal["huggingface", "modelscope"]
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_MS_ENDPOINT = "https://modelscope.cn"

TITLES: dict[HubName, str] = {"huggingface": "Hugging Face", "modelscope": "ModelScope"}
INCOMPLETE = ".incomplete"  # ModelScope's suffix for a partial file; used for both hubs
_EXTRA_FILE_LIMIT_BYTES = 100 * 1024 * 1024


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
class Remote:
    path: str
    size: int
    sha256: str | None  # what the hub lists (HF: LFS files only)
    git_sha1: str | None = None  # HF's blob id of a non-LFS file

    def matches(self, file: Path, sha256: str) -> bool | None:
        """Whether `file` (of that sha256) has the hash this hub lists; None if it lists none."""
        if self.sha256:
            return sha256 == self.sha256
        return None if self.git_sha1 is None else git_sha1_of(file) == self.git_sha1


class HubFailure(Exception):
    """This hub cannot deliver the model right now; the other one might."""


class HubClient:
    """One hub's repository of a model: lists its files and fetches them one at a time."""

    def __init__(self, spec: ModelSpec, hub: HubName, host: str) -> None:
        self.hub, self.host, self.title = hub, host, TITLES[hub]
        self.repo = spec.huggingface_repo if hub == "huggingface" else spec.modelscope_repo
        self.revision = "main" if hub == "huggingface" else "master"

    def list_files(self) -> list[Remote]:
        if self.hub == "huggingface":
            from huggingface_hub import HfApi

            api = HfApi(endpoint=self.host, library_name="nanodictate", library_version=__version__)
            info = api.model_info(self.repo, revision=self.revision, files_metadata=True)
            self.revision = info.sha or self.revision  # every file from this one commit
            return [
                Remote(
                    s.rfilename,
                    s.size if s.size is not None else -1,
                    _sha(s.lfs and s.lfs.sha256),
                    None if s.lfs else s.blob_id,
                )
                for s in info.siblings or []
            ]
        return [
            Remote(f.path, f.size, _sha(f.sha256))
            for f in self._modelscope().list_repo_files(self.repo, "model", revision=self.revision)
            if not f.is_dir
        ]

    def transfer(self, remote: Remote, part: Path, partial: Path, meter: Meter) -> None:
        """Fetch `remote` into the folder `partial`, resuming its unfinished bytes in `part`."""
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
                    tqdm_class=_bar_class(meter),
                )
            os.replace(part, partial / remote.path)
        else:
            entry = {"Path": remote.path, "Size": remote.size, "Sha256": remote.sha256}
            self._modelscope().download_repo(
                self.repo,
                "model",
                revision=self.revision,
                local_dir=partial,
                file_list=[entry],
                max_workers=1,
                progress_callbacks=[_callback_class(meter)],
            )

    def failure(self, exc: Exception, path: str | None) -> HubFailure:
        """A library call's exception as a HubFailure whose message the user can act on."""
        failed = getattr(exc, "failed_files", None)  # ModelScope's FileDownloadError
        cause = next(iter(failed.values())) if isinstance(failed, dict) and failed else exc
        return HubFailure(_reason(cause, self.title, self.host, self.repo, path))

    def _modelscope(self) -> Any:
        from modelscope_hub import HubApi
        from modelscope_hub.config import HubConfig

        if not os.environ.get("MODELSCOPE_LOG_LEVEL"):  # it logs every file at INFO
            logging.getLogger("modelscope_hub").setLevel(logging.WARNING)
        # A fresh config reads MODELSCOPE_API_TOKEN, MODELSCOPE_CACHE and the stored login now.
        return HubApi(HubConfig(endpoint=self.host), user_agent={"nanodictate": __version__})


def select_files(spec: ModelSpec, listing: list[Remote], repo: str) -> list[Remote]:
    """The required files, plus small files in their sub-folders; nothing else."""
    by_path = {remote.path: remote for remote in listing}
    missing = [path for path in spec.required_files if path not in by_path]
    if missing:
        raise HubFailure(
            f"its copy of {repo} lacks {', '.join(missing)} (the repository may have changed)"
        )
    if any(remote.size < 0 for remote in listing):
        raise HubFailure("it sent a file list without file sizes")
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


# --- the libraries' progress hooks ------------------------------------------------------------


def _bar_class(meter: Meter) -> Any:
    """A stand-in for huggingface_hub's `tqdm_class`: built per file, counts from `initial`."""

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


def _callback_class(meter: Meter) -> Any:
    """A ModelScope ProgressCallback class; its first update includes the resumed bytes."""
    from modelscope_hub import ProgressCallback

    class Callback(ProgressCallback):
        def __init__(self, filename: str, file_size: int) -> None:
            super().__init__(filename, file_size)
            meter.file_done = 0

        def update(self, size: int) -> None:
            meter.advance(size)

    return Callback


# --- failures and hashes ----------------------------------------------------------------------


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


def _sha(value: object) -> str | None:
    valid = isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value) is not None
    return value.lower() if valid and isinstance(value, str) else None


def _hash_file(path: Path, digest: Any, prefix: bytes = b"") -> str:
    digest.update(prefix)
    with path.open("rb") as stream:
        while block := stream.read(1024 * 1024):
            digest.update(block)
    return str(digest.hexdigest())


def sha256_of(path: Path) -> str:
    return _hash_file(path, hashlib.sha256())


def git_sha1_of(path: Path) -> str:
    """Git's blob id: what Hugging Face lists (and names cache blobs) for non-LFS files."""
    header = f"blob {path.stat().st_size}\0".encode()
    return _hash_file(path, hashlib.sha1(usedforsecurity=False), header)
