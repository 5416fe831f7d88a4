"""Command line: ``nanodictate`` (tray app), ``transcribe``, ``models``, ``serve`` (the team
server), ``doctor``, ``update``, and ``toggle``, ``start``, ``stop``, ``cancel`` for the
running tray app (bind them to keys on Wayland).

Failures the user can act on print one line and exit non-zero; no traceback reaches the
terminal unless ``-vv`` asks for debugging output.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nanodictate import __version__
from nanodictate.log_setup import configure_logging

log = logging.getLogger("nanodictate")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# Sent to the running tray app; a compositor key binding runs these on Wayland.
REMOTE_COMMANDS = {
    "toggle": "start or stop dictation in the running app",
    "start": "start dictation in the running app",
    "stop": "stop dictation in the running app and paste the text",
    "cancel": "cancel the dictation in progress",
}
# Commands whose module may be absent from a build: `add_arguments(parser)`, `run(args) -> int`.
PLUGGED_COMMANDS = {
    "doctor": "check microphone, hotkeys, GPU and model, and say what to fix",
    "update": "update nanodictate (and its runtime when that changed)",
}
SERVER_TOKEN_ENV = "NANODICTATE_SERVER_TOKEN"


def _add_speech_model(parser: argparse.ArgumentParser) -> None:
    from nanodictate.core.models.store import FUN_ASR_MLT_NANO, SPEECH_MODELS

    parser.add_argument(
        "--model",
        choices=[spec.name for spec in SPEECH_MODELS],
        default=FUN_ASR_MLT_NANO.name,
        help="speech model, as the app's model setting (default: %(default)s; fun-asr-nano "
        "knows only Chinese, English and Japanese); its folder is looked up under --model-dir",
    )


def _add_model_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="folder holding the models (default: the user data folder); "
        "a Fun-ASR model folder itself is accepted too",
    )


def build_parser() -> argparse.ArgumentParser:
    from nanodictate.core.languages import LANGUAGES
    from nanodictate.core.transcriber import DeviceChoice, Precision

    parser = argparse.ArgumentParser(
        prog="nanodictate",
        description="Local, private dictation with Fun-ASR-MLT-Nano.",
    )
    parser.add_argument("--version", action="version", version=f"nanodictate {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    transcribe = commands.add_parser("transcribe", help="transcribe audio files")
    transcribe.add_argument("files", nargs="+", type=Path, metavar="FILE")
    transcribe.add_argument(
        "--language",
        "-l",
        default="en",
        help=f"language code, one of the model's {len(LANGUAGES)} (no German, French, Spanish, "
        "Italian or Russian): " + " ".join(language.code for language in LANGUAGES),
    )
    transcribe.add_argument(
        "--precision", choices=[p.value for p in Precision], default=Precision.INT8.value
    )
    transcribe.add_argument(
        "--device", choices=[d.value for d in DeviceChoice], default=DeviceChoice.AUTO.value
    )
    transcribe.add_argument(
        "--hotword",
        action="append",
        default=[],
        metavar="WORD",
        help="a word or name to favour (repeatable)",
    )
    transcribe.add_argument("--no-itn", action="store_true", help="keep numbers as spoken words")
    transcribe.add_argument("--threads", type=int, help="CPU threads (default: cores, at most 8)")
    transcribe.add_argument(
        "--json", action="store_true", help="print JSON with timings and memory"
    )
    transcribe.add_argument(
        "--server", metavar="URL", help="transcribe on a `nanodictate serve` server instead"
    )
    transcribe.add_argument(
        "--token", help=f"the server's access token (default: ${SERVER_TOKEN_ENV})"
    )
    _add_speech_model(transcribe)
    _add_model_dir(transcribe)

    models = commands.add_parser("models", help="list, download or verify models")
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = model_commands.add_parser("list", help="show installed models")
    _add_model_dir(listing)
    download = model_commands.add_parser("download", help="download a model")
    download.add_argument("name", help="fun-asr-mlt-nano, fun-asr-nano or fsmn-vad")
    download.add_argument(
        "--source",
        choices=["huggingface", "modelscope"],
        default="huggingface",
        help="hub to download from (the other is tried if it fails)",
    )
    _add_model_dir(download)
    verify = model_commands.add_parser("verify", help="check a model folder")
    verify.add_argument("name", help="fun-asr-mlt-nano, fun-asr-nano or fsmn-vad")
    _add_model_dir(verify)

    from nanodictate.server.command import add_arguments as add_serve_arguments

    serve = commands.add_parser("serve", help="run the team transcription server (Ray Serve)")
    add_serve_arguments(serve)
    _add_speech_model(serve)
    _add_model_dir(serve)
    for name, summary in PLUGGED_COMMANDS.items():
        module = _plugged_module(name)
        if module is not None:
            module.add_arguments(commands.add_parser(name, help=summary))
    for name, summary in REMOTE_COMMANDS.items():
        commands.add_parser(name, help=summary)
    return parser


def _plugged_module(name: str) -> Any:
    try:
        return importlib.import_module(f"nanodictate.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"nanodictate.{name}":
            raise
        return None


def _model_folders(model_dir: Path | None, model: str) -> tuple[Path, Path]:
    """(ASR folder, VAD folder) for a ``--model-dir`` that is a models root or an ASR folder;
    ``model`` (a speech model's name) chooses the ASR folder within a models root."""
    from nanodictate.core.models.store import (
        FSMN_VAD,
        default_models_dir,
        model_folder,
        spec_for,
    )

    if model_dir is not None and (model_dir / "configuration.json").is_file():
        asr = model_dir
        vad = model_folder(FSMN_VAD, model_dir.parent)
        if not vad.is_dir():
            vad = model_folder(FSMN_VAD, default_models_dir())
        return asr, vad
    root = model_dir or default_models_dir()
    return model_folder(spec_for(model), root), model_folder(FSMN_VAD, root)


# Languages people ask for that Fun-ASR-MLT-Nano was not trained on, named in the error.
_MISSING_LANGUAGES = {
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "ru": "Russian",
    "uk": "Ukrainian",
    "tr": "Turkish",
    "fa": "Persian",
    "he": "Hebrew",
    "no": "Norwegian",
    "nb": "Norwegian",
    "ca": "Catalan",
}


def unknown_language_message(code: str) -> str:
    """What to tell a user whose language code the model does not know."""
    from nanodictate.core.languages import LANGUAGES

    key = code.strip().lower().replace("_", "-").split("-")[0]
    name = _MISSING_LANGUAGES.get(key)
    what = f"{name} ({code})" if name else f"{code!r}"
    codes = " ".join(language.code for language in LANGUAGES)
    return (
        f"{what} is not one of the model's {len(LANGUAGES)} languages: {codes}. "
        "Fun-ASR-MLT-Nano has no German, French, Spanish, Italian or Russian."
    )


def _model_language_message(code: str, model: str) -> str | None:
    """Why the speech model `model` cannot take the language `code`; None if it can."""
    from nanodictate.core.languages import language_for, languages_of
    from nanodictate.core.models.store import spec_for

    try:
        language = language_for(code)
    except ValueError:
        return unknown_language_message(code)
    known = languages_of(model)
    if language in known:
        return None
    codes = " ".join(known_language.code for known_language in known)
    return (
        f"{language.english_name} ({code}) is not one of {spec_for(model).display_name}'s "
        f"{len(known)} languages: {codes}. Fun-ASR-MLT-Nano-2512 (--model fun-asr-mlt-nano) "
        "knows it."
    )


def run_transcribe(args: argparse.Namespace) -> int:
    from nanodictate.core.asr.engine import Engine
    from nanodictate.core.models.store import default_cache_dir
    from nanodictate.core.transcriber import Transcriber

    problem = _model_language_message(args.language, args.model)
    if problem:
        print(f"nanodictate: {problem}", file=sys.stderr)
        return EXIT_USAGE
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        print(f"nanodictate: no such file: {', '.join(missing)}", file=sys.stderr)
        return EXIT_FAILED
    engine: Transcriber
    if args.server:
        from nanodictate.core.remote_transcriber import RemoteTranscriber

        engine = RemoteTranscriber(args.server, args.token or os.environ.get(SERVER_TOKEN_ENV, ""))
    else:
        asr_dir, vad_dir = _model_folders(args.model_dir, args.model)
        engine = Engine(
            asr_dir, vad_dir=vad_dir, cache_dir=default_cache_dir(), threads=args.threads
        )
    report = engine.load(args.precision, args.device)
    if report.fallback_reason:
        print(
            f"nanodictate: using {report.precision.value.upper()} on {report.device.upper()} "
            f"({report.fallback_reason})",
            file=sys.stderr,
        )
    failures = 0
    for path in args.files:
        started = time.perf_counter()
        try:
            result = engine.transcribe(
                path, language=args.language, hotwords=args.hotword, itn=not args.no_itn
            )
        except Exception as error:
            from nanodictate.core.errors import NanodictateError

            if not isinstance(error, NanodictateError):
                raise
            print(f"nanodictate: {path}: {error}", file=sys.stderr)
            failures += 1
            continue
        if args.json:
            output: dict[str, Any] = {
                "file": str(path),
                "text": result.text,
                "language": result.language,
                "speech_found": result.speech_found,
                "audio_seconds": round(result.audio_seconds, 3),
                "segments": [asdict(segment) for segment in result.segments],
                "timings": {
                    "load_seconds": round(report.seconds, 3),
                    "transcribe_seconds": round(time.perf_counter() - started, 3),
                    **{f"{k}_seconds": round(v, 3) for k, v in result.timings.items()},
                },
                "precision": report.precision.value,
                "device": report.device,
                "memory": asdict(engine.memory_report()),
            }
            print(json.dumps(output, ensure_ascii=False))
        else:
            if not result.speech_found:
                print(f"nanodictate: {path}: no speech detected", file=sys.stderr)
            print(result.text)
    engine.unload()
    return EXIT_FAILED if failures else EXIT_OK


def run_models(args: argparse.Namespace) -> int:
    from nanodictate.core.models import store as model_store

    root = args.model_dir or model_store.default_models_dir()
    if args.models_command == "list":
        for status in model_store.describe_models(root):
            size = model_store.human_size(status.size_bytes) if status.installed else ""
            print(f"{status.name:18} {status.state:12} {size:>9}  {status.folder}")
        return EXIT_OK
    spec = model_store.spec_for(args.name)
    if args.models_command == "verify":
        folder = model_store.model_folder(spec, root)
        model_store.verify_model_folder(spec, folder)
        print(f"{spec.display_name}: complete ({folder})")
        return EXIT_OK
    from nanodictate.core.models.download import download_model, terminal_progress

    progress = terminal_progress()
    try:
        folder = download_model(spec, root, source=args.source, progress=progress)
    finally:
        progress.finish()  # end the progress line also when the download fails
    print(f"{spec.display_name}: downloaded to {folder}")
    return EXIT_OK


def run_serve(args: argparse.Namespace) -> int:
    from nanodictate.server import command

    asr_dir, vad_dir = _model_folders(args.model_dir, args.model)
    config = command.config_from_args(args, asr_dir, vad_dir if vad_dir.is_dir() else None)
    try:
        return command.run(args, config)
    except ModuleNotFoundError as error:
        if error.name not in {"ray", "fastapi", "starlette"}:
            raise
        print(
            "nanodictate: the server needs its extra: pip install 'nanodictate[server]'",
            file=sys.stderr,
        )
        return EXIT_FAILED


def run_remote(command: str) -> int:
    from nanodictate.ui.single_instance import send_command

    answer = send_command(command)
    if answer is None:
        print(
            "nanodictate: the tray app is not running; start it with `nanodictate` first",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if answer != "ok":
        print(
            f"nanodictate: the running app did not accept {command!r} ({answer})", file=sys.stderr
        )
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    from nanodictate.core.errors import NanodictateError

    try:
        if args.command == "transcribe":
            return run_transcribe(args)
        if args.command == "models":
            return run_models(args)
        if args.command == "serve":
            return run_serve(args)
        if args.command in PLUGGED_COMMANDS:
            return int(_plugged_module(args.command).run(args))
        if args.command in REMOTE_COMMANDS:
            return run_remote(args.command)
        from nanodictate.app import run_app

        return int(run_app(argv or []))
    except NanodictateError as error:
        print(f"nanodictate: {error}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as error:
        print(f"nanodictate: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except MemoryError:
        print("nanodictate: out of memory; try --precision int8 --device cpu", file=sys.stderr)
        return EXIT_FAILED
    except Exception:
        # A bug: keep the details in the log, give the user one line.
        log.debug("Unexpected error", exc_info=True)
        print(
            "nanodictate: unexpected error; run again with -vv for details",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
