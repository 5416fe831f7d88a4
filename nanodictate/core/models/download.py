"""Downloading a model: one hub, then the other, into a partial folder that survives a cancel.

`download_model` is the entry point for the CLI and the tray. It tries the chosen hub, then the
other one (hubs.py: Hugging Face through huggingface_hub, ModelScope through modelscope_hub),
and turns what went wrong into one DownloadError the user can act on.

Files go one at a time into ``<folder>.partial/`` (unfinished ones as ``<path>.incomplete``,
shared by both hubs); ``.nanodictate-partial.json`` there records, per file, which hub sent it,
the hash that hub lists and whether it finished, so an interrupted download resumes on the next
call, from the other hub too when both list the same sha256. Before fetching, the free space is
checked. Each file is checked against the hash its own hub lists, then a manifest is written,
the folder verified, and swapped in by renames (staging.py): the model folder is never
half-written.

Cancel takes effect inside the libraries' progress hooks and between files (progress.py).

This module also re-exports the public names of its siblings, so callers import everything
about getting a model from here: `DownloadProgress` and `terminal_progress` (progress.py),
`HubEndpoints` (hubs.py), `find_cached_copy` / `install_from_copy` (cache_copy.py), which reuse
a copy already in the user's Hugging Face or ModelScope cache.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nanodictate.core.errors import DownloadError
from nanodictate.core.models.cache_copy import find_cached_copy, install_from_copy
from nanodictate.core.models.hubs import (
    DEFAULT_HF_ENDPOINT,
    DEFAULT_MS_ENDPOINT,
    INCOMPLETE,
    TITLES,
    HubClient,
    HubEndpoints,
    HubFailure,
    HubName,
    Remote,
    git_sha1_of,
    select_files,
    sha256_of,
)
from nanodictate.core.models.progress import (
    Cancelled,
    DownloadProgress,
    Meter,
    TerminalProgress,
    terminal_progress,
)
from nanodictate.core.models.staging import (
    DISK_FULL,
    check_free_space,
    install,
    link_or_copy,
    on_disk,
    raise_disk_error,
    write_json,
)
from nanodictate.core.models.store import ModelSpec, folder_problem, model_folder, partial_folder

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

_STATE_NAME = ".nanodictate-partial.json"


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
    failures: list[tuple[HubName, HubFailure]] = []
    for index, hub in enumerate(hubs):
        try:
            _Attempt(spec, folder, hub, hosts.for_hub(hub), progress, cancel).run()
        except Cancelled:
            raise DownloadError("Download cancelled") from None
        except HubFailure as failure:
            failures.append((hub, failure))
            if index + 1 < len(hubs):
                logger.warning(
                    "Downloading %s from %s failed (%s); trying %s",
                    spec.display_name,
                    TITLES[hub],
                    failure,
                    TITLES[hubs[index + 1]],
                )
            continue
        logger.info("Downloaded %s from %s into %s", spec.display_name, TITLES[hub], folder)
        return folder
    if len(failures) == 1:
        hub, reason = failures[0]
        what = f"Could not download {spec.display_name} from {TITLES[hub]}: {reason}."
    else:
        reasons = " ".join(f"{TITLES[hub]}: {why}." for hub, why in failures)
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
        self.hub, self.title = hub, TITLES[hub]
        self.client = HubClient(spec, hub, host)
        self.meter = Meter(progress, cancel)
        self.state: dict[str, dict[str, object]] = {}

    def run(self) -> None:
        self.meter.check()
        listing = self._library_call(self.client.list_files, None)
        wanted = select_files(self.spec, listing, self.client.repo)
        self.meter.total = sum(remote.size for remote in wanted)
        on_disk(lambda: self.partial.mkdir(parents=True, exist_ok=True), self.partial, self.spec)
        self.state = _load_state(self.partial / _STATE_NAME)
        pending: list[Remote] = []
        for remote in wanted:
            if self._finished(remote) or self._reuse_installed(remote):
                self.meter.done += remote.size
            else:
                self.meter.done += self._resumable_bytes(remote)
                pending.append(remote)
        check_free_space(self.spec, self.partial, self.meter.total - self.meter.done)
        # Small files first: a hub that cannot serve the repository fails in seconds.
        for remote in sorted(pending, key=lambda item: item.size):
            self.meter.check()
            self._fetch(remote)
        install(self.spec, self.partial, self.folder, self._manifest(wanted))
        last = max(wanted, key=lambda item: item.size)
        self.meter.start(last.path, last.size, 0)
        self.meter.emit(last.size, force=True)

    def _library_call(self, action: Callable[[], Any], path: str | None) -> Any:
        """Run a library call, turning its failures into HubFailure (or a disk DownloadError)."""
        try:
            return action()
        except (Cancelled, DownloadError):
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                raise_disk_error(exc, self.partial, self.spec)
            raise self.client.failure(exc, path) from exc

    # --- the partial folder -----------------------------------------------------------------

    def _fetch(self, remote: Remote) -> None:
        part = self.partial / (remote.path + INCOMPLETE)
        target = self.partial / remote.path
        self._record(remote, done=False, sha256=None)
        on_disk(lambda: part.parent.mkdir(parents=True, exist_ok=True), part, self.spec)
        for fresh in (False, True):
            offset = part.stat().st_size if part.exists() else 0
            self.meter.start(remote.path, remote.size, offset)
            self._library_call(
                lambda: self.client.transfer(remote, part, self.partial, self.meter), remote.path
            )
            digest = sha256_of(target)
            if remote.matches(target, digest) is not False:
                break
            on_disk(lambda: target.unlink(missing_ok=True), target, self.spec)
            self.meter.done -= remote.size
            # A resumed part may hold another file version's first half: start it over once.
            if offset == 0 or fresh:
                raise HubFailure(
                    f"{remote.path} from {self.title} does not match its published checksum"
                )
            logger.warning("%s failed its checksum; downloading it afresh", remote.path)
        self.meter.file_finished(remote.size)
        self._record(remote, done=True, sha256=digest)

    def _finished(self, remote: Remote) -> bool:
        """Whether an earlier attempt finished this very file in the partial folder."""
        entry, target = self.state.get(remote.path), self.partial / remote.path
        if entry is None or not entry.get("done") or not target.is_file():
            return False
        if target.stat().st_size != remote.size:
            return False
        if remote.sha256 is not None:
            return entry.get("actual_sha256") == remote.sha256
        if remote.git_sha1 is not None:
            return git_sha1_of(target) == remote.git_sha1
        return entry.get("source") == self.hub

    def _reuse_installed(self, remote: Remote) -> bool:
        """Take a file from the installed folder when it matches this hub's own hash."""
        source, target = self.folder / remote.path, self.partial / remote.path
        if not source.is_file() or source.stat().st_size != remote.size:
            return False
        if remote.sha256 is None and remote.git_sha1 is None:
            return False
        digest = sha256_of(source)
        if not remote.matches(source, digest):
            return False
        on_disk(lambda: link_or_copy(source, target), target, self.spec)
        self._record(remote, done=True, sha256=digest)
        logger.info("Reusing the installed %s, which matches %s", remote.path, self.title)
        return True

    def _resumable_bytes(self, remote: Remote) -> int:
        """Size of a usable partial file; one started for other content is deleted."""
        part = self.partial / (remote.path + INCOMPLETE)
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
        on_disk(lambda: part.unlink(missing_ok=True), part, self.spec)
        return 0

    def _record(self, remote: Remote, *, done: bool, sha256: str | None) -> None:
        self.state[remote.path] = {
            "size": remote.size,
            "sha256": remote.sha256,  # as listed by `source`
            "source": self.hub,
            "revision": self.client.revision,
            "done": done,
            "actual_sha256": sha256,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json(self.partial / _STATE_NAME, {"files": self.state}, self.spec)

    def _manifest(self, wanted: list[Remote]) -> dict[str, object]:
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
