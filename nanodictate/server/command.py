"""``nanodictate serve``: its options, and starting Ray Serve with the deployment."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from types import FrameType

from nanodictate.server.config import (
    DEFAULT_MAX_AUDIO_SECONDS,
    DEFAULT_MAX_UPLOAD_BYTES,
    ServerConfig,
    check_config,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 8000
DEFAULT_METRICS_PORT = 8080


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--token-file", type=Path, help="file with one bearer token per line (re-read on change)"
    )
    parser.add_argument(
        "--no-auth", action="store_true", help="accept requests without a token (localhost only)"
    )
    parser.add_argument("--replicas", type=int, default=1, help="model replicas (default 1)")
    parser.add_argument(
        "--gpus-per-replica",
        type=float,
        default=0.0,
        help="GPUs per replica: 1 = one GPU each, 0.5 = two replicas share a GPU (default 0: CPU)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="most requests in one batch")
    parser.add_argument(
        "--batch-wait",
        type=float,
        default=0.05,
        metavar="SECONDS",
        help="longest wait for a batch to fill (default 0.05)",
    )
    parser.add_argument("--precision", choices=["int8", "bf16", "fp32"], default="int8")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads per replica")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2**20)
    parser.add_argument("--max-audio-minutes", type=float, default=DEFAULT_MAX_AUDIO_SECONDS / 60)
    parser.add_argument(
        "--idle-unload-minutes",
        type=float,
        default=30.0,
        help="unload a replica's model after this long without requests (0: never)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        help="Prometheus metrics port of the Ray node started here",
    )
    parser.add_argument(
        "--num-cpus",
        type=int,
        help="CPUs the Ray node started here may use (default: all of them)",
    )
    parser.add_argument(
        "--address",
        help="join a running Ray cluster (ray://… or host:port) instead of starting one",
    )


def config_from_args(args: argparse.Namespace, asr_dir: Path, vad_dir: Path | None) -> ServerConfig:
    from nanodictate.core.models.store import default_cache_dir

    return ServerConfig(
        model_dir=asr_dir,
        vad_dir=vad_dir,
        cache_dir=default_cache_dir(),
        token_file=args.token_file,
        no_auth=args.no_auth,
        precision=args.precision,
        device=args.device,
        replicas=args.replicas,
        gpus_per_replica=args.gpus_per_replica,
        max_batch_size=args.batch_size,
        batch_wait_s=args.batch_wait,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_audio_seconds=args.max_audio_minutes * 60,
        idle_unload_minutes=args.idle_unload_minutes,
        threads=args.threads,
    )


def run(args: argparse.Namespace, config: ServerConfig) -> int:
    """Start Ray (or join a cluster), deploy, and serve until interrupted."""
    check_config(config, args.host)
    from nanodictate.core.models.store import FUN_ASR_MLT_NANO, verify_model_folder

    verify_model_folder(FUN_ASR_MLT_NANO, config.model_dir)
    import ray
    from ray import serve

    from nanodictate.server.deployment import build_application

    if args.address:
        ray.init(address=args.address, include_dashboard=False)
    else:
        ray.init(
            num_cpus=args.num_cpus,
            include_dashboard=False,
            _metrics_export_port=args.metrics_port,
        )
    # After ray.init, whose core installs a SIGTERM handler that prints a stack trace and
    # aborts: systemd's stop and `kill` shut down in order, as Ctrl+C does.
    signal.signal(signal.SIGTERM, _interrupt)
    serve.start(http_options={"host": args.host, "port": args.port})
    print(
        f"nanodictate serve: http://{args.host}:{args.port}/v1/audio/transcriptions "
        f"({config.replicas} replica(s), batches of up to {config.max_batch_size}; "
        f"metrics on port {args.metrics_port}). Ctrl+C stops it.",
        flush=True,
    )
    try:
        serve.run(build_application(config), name="nanodictate", route_prefix="/", blocking=True)
    except KeyboardInterrupt:
        log.info("Stopping the server")  # asked to: no error
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    print("nanodictate serve: stopped.", flush=True)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
