"""Which transcriber the tray app's engine worker drives: this computer's engine (in a child
process), or the team server the user configured, with this computer behind it if wanted.

Chosen once at start-up from the settings; nothing here imports torch, funasr or Qt.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def models_dir_from(settings: Any) -> Path:
    from nanodictate import settings as S
    from nanodictate.core.models.store import MODELS_DIR_ENV, default_models_dir

    if os.environ.get(MODELS_DIR_ENV):
        return default_models_dir()
    chosen = settings.get(S.MODEL_DIR).strip()
    return Path(chosen).expanduser() if chosen else default_models_dir()


def engine_factory(
    models_dir: Path, cache_dir: Path, settings: Any, tell: Callable[[str, str], None]
) -> Any:
    """What the engine worker drives: this computer's engine, or the team server (chosen at
    start-up from the settings), with this computer behind the server if the user wants.
    `tell(title, message)`, called on the engine thread, says when that fallback starts."""
    from nanodictate import settings as S

    def make_local() -> Any:
        # Runs on the engine thread at the first request. The engine itself runs in a child
        # process: a crash in native code cannot take the tray and the recording with it.
        from nanodictate.core.asr.engine_process import EngineConfig, EngineProcess
        from nanodictate.core.models.store import FSMN_VAD, model_folder, spec_for

        vad = model_folder(FSMN_VAD, models_dir)
        return EngineProcess(
            EngineConfig(
                model_folder(spec_for(settings.get(S.MODEL)), models_dir),
                vad_dir=vad if vad.is_dir() else None,
                cache_dir=cache_dir,
            )
        )

    url = settings.get(S.SERVER_URL).strip()
    if settings.get(S.TRANSCRIPTION_ENGINE) != "server" or not url:
        return make_local
    token, fallback = settings.get(S.SERVER_TOKEN).strip(), settings.get(S.SERVER_FALLBACK_LOCAL)
    log.info("Transcribing on the server %s%s", url, " (this computer as fallback)" * fallback)

    def make_remote() -> Any:
        from nanodictate.core.remote_transcriber import FallbackTranscriber, RemoteTranscriber

        remote = RemoteTranscriber(url, token)
        if not fallback:
            return remote
        server_first = FallbackTranscriber(remote, make_local)
        server_first.on_fallback = tell
        return server_first

    return make_remote
