"""What one server is started with: limits, batching, placement. Plain data, no Ray."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

# A dictation is seconds to a few minutes; an hour-long meeting still passes. 16 kHz 16-bit
# mono WAV is 1.9 MB a minute, so 200 MB holds 100 minutes even as WAV.
DEFAULT_MAX_UPLOAD_BYTES = 200 * 2**20
DEFAULT_MAX_AUDIO_SECONDS = 3600.0
DEFAULT_MAX_HOTWORDS = 100


@dataclass(frozen=True)
class ServerConfig:
    model_dir: Path
    vad_dir: Path | None
    cache_dir: Path
    token_file: Path | None  # None only with no_auth
    no_auth: bool = False
    precision: str = "int8"
    device: str = "auto"
    replicas: int = 1
    gpus_per_replica: float = 0.0
    max_batch_size: int = 8
    batch_wait_s: float = 0.05
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
    max_hotwords: int = DEFAULT_MAX_HOTWORDS
    idle_unload_minutes: float = 30.0  # <= 0: keep the model loaded
    threads: int | None = None


class ConfigError(ValueError):
    """A start-up option that cannot work; the message is for the admin."""


def check_config(config: ServerConfig, host: str) -> None:
    """Refuse what would be unsafe or cannot work, before Ray is started."""
    if config.no_auth:
        if host not in LOCAL_HOSTS:
            raise ConfigError(
                f"--no-auth is only allowed on localhost (127.0.0.1, ::1), not on {host}: "
                "anyone on the network could use the server. Give a --token-file instead."
            )
    elif config.token_file is None:
        raise ConfigError("Give --token-file (one token per line), or --no-auth on localhost.")
    elif not config.token_file.is_file():
        raise ConfigError(f"Token file not found: {config.token_file}")
    if config.replicas < 1:
        raise ConfigError("--replicas must be at least 1")
    if config.max_batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if config.batch_wait_s < 0:
        raise ConfigError("--batch-wait must not be negative")
