"""Bearer tokens from a file the admin manages: one token per line, ``#`` starts a comment.

The file is read again when it changes, so adding or revoking a user needs no restart. Tokens
are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16


def read_tokens(path: Path) -> frozenset[str]:
    tokens = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        token = line.split("#", 1)[0].strip()
        if not token:
            continue
        if len(token) < MIN_TOKEN_LENGTH:
            log.warning("Ignoring a token shorter than %d characters in %s", MIN_TOKEN_LENGTH, path)
            continue
        tokens.add(token)
    return frozenset(tokens)


class TokenFile:
    """Answers "may this Authorization header use the server?"."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._tokens: frozenset[str] = frozenset()
        self._refresh()

    def _refresh(self) -> None:
        try:
            info = os.stat(self.path)
        except OSError as error:
            # Keep the last good set: a file being replaced must not lock everyone out.
            log.warning("Token file unreadable (%s); keeping the tokens read before", error)
            return
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return
        self._tokens = read_tokens(self.path)
        self._stamp = stamp
        log.info("Token file read: %d tokens", len(self._tokens))

    def allows(self, authorization: str | None) -> bool:
        self._refresh()
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        given = token.strip().encode()
        # Every token is compared, so the time taken says nothing about which one matched.
        matches = [hmac.compare_digest(given, known.encode()) for known in self._tokens]
        return any(matches)
