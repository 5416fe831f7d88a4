"""funasr, tamed: imported quietly, kept offline, and made to build our lean model.

funasr changes process-wide state when it is imported and used: ``logging.basicConfig`` at
INFO, prints on stdout, ``torch.set_num_threads(4)``, a PyPI update check without a timeout,
hub look-ups for anything that is not a complete local folder. Everything that touches
funasr goes through here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_import_lock = threading.Lock()

# funasr and the libraries under it look at these before any network access.
_OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "MODELSCOPE_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


# funasr's configuration of the root logger and its prints are global side effects; this lock
# keeps two silenced sections (e.g. the VAD and the ASR model loading at once) from restoring
# each other's saved state out of order.
_quiet_lock = threading.RLock()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Undo what importing and calling funasr does to the process's logging and stdout.

    `import funasr` runs `logging.basicConfig(level=INFO)` (in funasr/bin/realtime_ws.py) and
    AutoModel calls it again; both would send every library's INFO chatter to stderr for the
    rest of the app's life. funasr also prints notices ("funasr version", "ffmpeg is not
    installed") to stdout, which the CLI uses for transcripts. So: save the root logger, keep
    basicConfig from acting, drop funasr's INFO records and move its warnings to our debug
    log, capture stdout, and restore it all;
    what was printed goes to our debug log. stdout is process-wide, so a print from another
    thread during the (≈5 s) first load lands in that debug log too: the app prints nothing
    from other threads, and the CLI prints only after transcription.
    """
    with _quiet_lock:
        root = logging.getLogger()
        saved_handlers = list(root.handlers)
        saved_level = root.level
        if not saved_handlers:
            # basicConfig does nothing while the root logger has a handler, so this keeps
            # funasr from installing its own stderr handler for the duration. In a process
            # without logging set up, funasr's warnings from inside are dropped with it.
            root.addHandler(logging.NullHandler())
        funasr_filter = _FunasrInfoFilter()
        root.addFilter(funasr_filter)
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):
                yield
        finally:
            root.removeFilter(funasr_filter)
            for handler in list(root.handlers):
                if handler not in saved_handlers:
                    root.removeHandler(handler)
            for handler in saved_handlers:
                if handler not in root.handlers:
                    root.addHandler(handler)
            root.setLevel(saved_level)
            printed = captured.getvalue().strip()
            if printed:
                log.debug("funasr printed: %s", printed)


class _FunasrInfoFilter(logging.Filter):
    """Keep funasr's root-logger chatter from users: it logs through the root logger directly.

    INFO/DEBUG records are dropped. Its warnings are notes for developers, not something a user
    can act on ("trust_remote_code: False" on every model load), so they go to our debug log
    instead; errors still get through. A filter on the root logger sees only records logged on
    the root logger itself, so the app's own loggers (and their warnings) are untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "funasr" not in Path(record.pathname).parts:
            return True
        if record.levelno >= logging.ERROR:
            return True
        if record.levelno >= logging.WARNING:
            # funasr's warnings are about configuration (none carries transcribed text).
            log.debug(
                "funasr warned (%s:%d): %.300s",
                Path(record.pathname).name,
                record.lineno,
                record.getMessage(),
            )
        return False


@contextlib.contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Restore torch's thread count, which funasr sets process-wide to `ncpu` on every call.

    Without this, running the 1-thread VAD would leave the ASR model (same process) on one
    thread too. Only called where funasr is about to be used, which imports torch anyway.
    """
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def import_funasr() -> Any:
    """Import funasr once, offline and quietly; log what failed to import inside it."""
    for key, value in _OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    with _import_lock, quiet():
        import funasr
        import transformers

        transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    errors = funasr.get_import_errors() if hasattr(funasr, "get_import_errors") else {}
    if errors:
        # Most are optional extras (vLLM, onnx…); they matter only when a class we need is
        # missing from the registry, which build_automodel reports with this list.
        log.debug("funasr modules that failed to import: %s", ", ".join(sorted(errors)))
    return funasr


def funasr_import_errors() -> dict[str, str]:
    import funasr

    errors: dict[str, str] = funasr.get_import_errors()
    return errors


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """config.yaml of a model folder as a plain dict."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(OmegaConf.load(model_dir / "config.yaml"), resolve=True)
    assert isinstance(config, dict)
    return {str(key): value for key, value in config.items()}


# The CTC branch of FunASRNano, as config.yaml declares it. FunASRNano.__init__ builds it when
# `ctc_decoder` names a class: a 5-layer Transformer plus a 512 × 60515 output layer, and the
# tiktoken tokenizer named by `ctc_tokenizer` / `ctc_tokenizer_conf` (top level, or under
# `dataset_conf`) — with `vocab_path` empty, funasr looks for the vocabulary inside its own
# package, which the wheel does not ship, so the load fails there. The branch only gives
# timestamps; the release has no CTC weights, and funasr drops the branch again after loading
# (`disable_incomplete_ctc`). Dictation never uses it, so it is never built.
_CTC_MODEL_KEYS = frozenset(
    {
        "ctc_decoder",
        "ctc_decoder_conf",
        "ctc_conf",
        "ctc_weight",
        "ctc_vocab_size",
        "detach_ctc_decoder",
        "ctc_tokenizer",
        "ctc_tokenizer_conf",
    }
)
_CTC_DATASET_KEYS = frozenset({"ctc_tokenizer", "ctc_tokenizer_conf", "ctc_target_normalize"})


def without_ctc(conf: Mapping[str, Any]) -> dict[str, Any]:
    """A model configuration (config.yaml's keys) without the CTC branch and its tokenizer.

    Stripping the keys, rather than patching funasr, leaves funasr's own code path: with no
    `ctc_decoder` entry FunASRNano builds no CTC module and reads no CTC tokenizer settings,
    and its `on_pretrained_model_loaded` has nothing to disable. `conf` is not modified.
    """
    stripped = {key: value for key, value in conf.items() if key not in _CTC_MODEL_KEYS}
    dataset = conf.get("dataset_conf")
    if isinstance(dataset, Mapping):
        stripped["dataset_conf"] = {
            key: value for key, value in dataset.items() if key not in _CTC_DATASET_KEYS
        }
    return stripped


# funasr's WavFrontend adds random noise of amplitude 1.0 to the samples before the fbank
# (dither, a training-time augmentation) unless config.yaml says otherwise, so the same
# recording could give a different text on each run. Dictation must be repeatable.
DETERMINISTIC_FRONTEND: dict[str, Any] = {"dither": 0.0}


def build_automodel(
    model_dir: Path,
    *,
    device: str,
    threads: int,
    load_weights: Callable[[Any], None],
) -> Any:
    """``funasr.AutoModel`` for a local folder, with our loader in place of funasr's.

    AutoModel still parses the folder, builds the tokenizer, frontend and model class from
    its registry, and later runs ``generate``. Four things differ: the model is built
    without its CTC branch (`without_ctc`), with parameters on the meta device, and
    ``load_weights(model)`` fills them — funasr's deep-copying loader never runs
    (``init_param=None``); and the fbank frontend does not dither (`DETERMINISTIC_FRONTEND`).
    """
    funasr = import_funasr()
    from funasr.register import tables

    from nanodictate.core.asr.weights import parameters_on_meta

    class_name = read_model_config(model_dir)["model"]
    model_class = tables.model_classes.get(class_name)
    if model_class is None:
        errors = funasr_import_errors()
        log.warning("funasr has no model class %s; import errors: %s", class_name, errors)
        raise RuntimeError(f"funasr {funasr.__version__} has no model class {class_name}")

    def build_and_load(**conf: Any) -> Any:
        # `conf` is everything AutoModel resolved from config.yaml and configuration.json;
        # AutoModel itself builds only the `tokenizer` entry (the Qwen3 one), so the model
        # class is the one place where the CTC branch and its tokenizer would be built.
        with parameters_on_meta():
            model = model_class(**without_ctc(conf))
        load_weights(model)
        return model

    tables.model_classes[class_name] = build_and_load
    try:
        with quiet():
            return funasr.AutoModel(
                model=str(model_dir.resolve()),
                init_param=None,
                device=device,
                ncpu=threads,
                disable_update=True,
                disable_pbar=True,
                disable_log=True,
                log_level="WARNING",
                # merged into config.yaml's frontend_conf (AutoModel merges deeply)
                frontend_conf=DETERMINISTIC_FRONTEND,
            )
    finally:
        tables.model_classes[class_name] = model_class
