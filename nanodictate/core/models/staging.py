"""Staging folders on disk, and swapping a finished one in as the model folder.

A download (download.py) or a copy from a hub cache (cache_copy.py) fills a staging folder next
to the model folder. `install` then writes the manifest, drops leftovers, verifies the staging
folder and swaps it in by renames: the model folder is never half-written.

Disk problems (a full disk, a folder that is not writable) become a DownloadError that says
what to do. They are not a hub's fault, so trying the other hub would not help.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from nanodictate.core.errors import DownloadError
from nanodictate.core.models.hubs import HubFailure
from nanodictate.core.models.store import (
    MANIFEST_NAME,
    ModelSpec,
    folder_problem,
    human_size,
    verify_model_folder,
)

DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def install(spec: ModelSpec, staging: Path, folder: Path, files: dict[str, object]) -> None:
    """Write the manifest, drop leftovers, verify `staging`, then swap it in by renames."""
    manifest = {"format": 1, "model": spec.name, "files": files}
    write_json(staging / MANIFEST_NAME, manifest, spec)
    keep = set(files) | {MANIFEST_NAME}

    def remove_strays() -> None:  # earlier attempts' parts, another hub's extras
        for path in sorted(staging.rglob("*"), reverse=True):
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            elif not path.is_dir() and path.relative_to(staging).as_posix() not in keep:
                path.unlink()

    on_disk(remove_strays, staging, spec)
    problem = folder_problem(spec, staging)
    if problem is not None:
        raise HubFailure(f"the files it sent do not form a usable model: {problem}")
    old = folder.with_name(folder.name + ".old")

    def swap() -> None:
        if old.exists():
            shutil.rmtree(old)
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)

    on_disk(swap, folder, spec)
    shutil.rmtree(old, ignore_errors=True)
    verify_model_folder(spec, folder)


def check_free_space(spec: ModelSpec, folder: Path, needed: int) -> None:
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


def on_disk(action: Callable[[], object], path: Path, spec: ModelSpec) -> None:
    """Run a disk operation, turning its OSError into a DownloadError for the user."""
    try:
        action()
    except OSError as exc:
        raise_disk_error(exc, path, spec)


def raise_disk_error(exc: OSError, path: Path, spec: ModelSpec) -> NoReturn:
    # Disk problems are not the hub's fault: the other hub would not help.
    if exc.errno in DISK_FULL:
        raise DownloadError(
            f"The disk holding {path.parent} is full. Free some space, then run "
            f"`{spec.download_command}` again; it resumes where it stopped."
        ) from exc
    raise DownloadError(
        f"Could not write {path}: {exc.strerror or exc}. Check that the folder is writable, "
        "then try again."
    ) from exc


def write_json(path: Path, data: object, spec: ModelSpec) -> None:
    temporary = path.with_name(path.name + ".tmp")

    def write() -> None:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)

    on_disk(write, path, spec)


def link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
