"""Which INT8 cache file belongs to a checkpoint: its checksum, the cache's format, torch.

A cache is only ever read by the torch version and format that wrote it; a new checkpoint
(another checksum) gets its own file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import torch

# 1: per-row int8 weights and scales, fused layers concatenated when loaded.
CACHE_FORMAT = 1


def file_checksum(path: Path, memo_dir: Path) -> str:
    """SHA-256 of a (large) file, remembered by path, size and mtime so it is read once."""
    stat = path.stat()
    memo_dir.mkdir(parents=True, exist_ok=True)
    memo = memo_dir / "checksums.json"
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    known: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(memo.read_text())
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(8 << 20), b""):
            digest.update(block)
    known[key] = digest.hexdigest()
    with contextlib.suppress(OSError):
        memo.write_text(json.dumps(known, indent=1))
    return known[key]


def int8_cache_path(cache_dir: Path, checksum: str) -> Path:
    version = torch.__version__.split("+")[0]
    return cache_dir / f"{checksum[:20]}-int8-v{CACHE_FORMAT}-torch{version}.pt"
