"""Reusing a copy of a model already in the user's Hugging Face or ModelScope cache.

`find_cached_copy` looks where the hub libraries put their snapshots and does only cheap checks;
`install_from_copy` hard-links the files (copies them across file systems) into a staging
folder, checks each file stored in a Hugging Face cache against the hash that names its blob,
and installs the folder like a download (staging.py), so a damaged copy never becomes the model
folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

from nanodictate.core.errors import DownloadError, ModelCorruptError
from nanodictate.core.models.hubs import HubFailure, Remote, git_sha1_of, select_files, sha256_of
from nanodictate.core.models.progress import Cancelled, DownloadProgress, Meter
from nanodictate.core.models.staging import check_free_space, install, link_or_copy, on_disk
from nanodictate.core.models.store import ModelSpec, folder_problem, model_folder, partial_folder

logger = logging.getLogger(__name__)


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
        Remote(path.relative_to(source).as_posix(), path.stat().st_size, None)
        for path in sorted(source.rglob("*"))
        if path.is_file() and ".cache" not in path.relative_to(source).parts
    ]
    try:
        wanted = select_files(spec, local, str(source))
    except HubFailure as failure:
        refuse(str(failure))
    staging = folder.with_name(folder.name + ".copying")
    on_disk(lambda: shutil.rmtree(staging, ignore_errors=True), staging, spec)
    on_disk(lambda: staging.mkdir(parents=True), staging, spec)
    meter = Meter(progress, cancel)
    meter.total = sum(remote.size for remote in wanted)
    if os.stat(source).st_dev != os.stat(staging).st_dev:
        check_free_space(spec, staging, meter.total)
    files: dict[str, object] = {}
    try:
        for remote in wanted:
            meter.check()
            origin = (source / remote.path).resolve()
            target = staging / remote.path
            meter.start(remote.path, remote.size, 0)
            on_disk(lambda: link_or_copy(origin, target), target, spec)  # noqa: B023
            digest = sha256_of(target)
            named = origin.name.lower() if origin.parent.name == "blobs" else ""
            if (len(named) == 64 and named != digest) or (
                len(named) == 40 and named != git_sha1_of(target)
            ):
                refuse(f"{remote.path} does not match the checksum its cache recorded")
            meter.file_finished(remote.size)
            meter.emit(remote.size, force=remote is wanted[-1])
            files[remote.path] = {"size": remote.size, "sha256": digest, "source": str(source)}
        install(spec, staging, folder, files)
    except Cancelled:
        raise DownloadError("Copy cancelled") from None
    except HubFailure as failure:
        refuse(str(failure).removeprefix("the files it sent do not form a usable model: "))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(partial_folder(folder), ignore_errors=True)  # an abandoned download's parts
    logger.info("Installed %s from %s into %s", spec.display_name, source, folder)
    return folder
