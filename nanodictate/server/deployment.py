"""The Ray Serve deployment: HTTP routes, batching across users, metrics, idle unload.

Each replica holds one `Engine`. A request is authenticated, read (with a size cap) and
decoded to 16 kHz audio on the replica's event loop threads; then `serve.batch` gathers the
requests that arrive within ``batch_wait_s`` (at most ``max_batch_size``) and one model
thread transcribes them together (`BatchDecoder`). Ray Serve's own metrics give queue length
and request latency; this module adds batch sizes, decode time and audio seconds.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime
# through Ray Serve's wrapper, where a string "Request" is not resolved.
import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from ray import serve
from ray.serve import metrics
from starlette.requests import ClientDisconnect

from nanodictate.core.asr.engine import Engine
from nanodictate.core.errors import NanodictateError
from nanodictate.core.transcriber import EngineState, Transcription
from nanodictate.server import responses
from nanodictate.server.auth import TokenFile
from nanodictate.server.batch_decode import BatchDecoder
from nanodictate.server.config import ServerConfig
from nanodictate.server.upload import (
    ParsedRequest,
    RequestRefused,
    TranscriptionJob,
    build_request,
    parse_form,
)

log = logging.getLogger("nanodictate.server")

MODEL_ID = "fun-asr-mlt-nano"
_IDLE_CHECK_S = 10.0

api = FastAPI(title="nanodictate", docs_url=None, redoc_url=None)


@serve.deployment(name="transcriber")
@serve.ingress(api)
class TranscriptionServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.tokens = None if config.no_auth else TokenFile(config.token_file)  # type: ignore[arg-type]
        self.engine = Engine(
            config.model_dir,
            vad_dir=config.vad_dir,
            cache_dir=config.cache_dir,
            threads=config.threads,
        )
        self.decoder = BatchDecoder(self.engine, max_chunks_per_call=2 * config.max_batch_size)
        # One thread drives the engine, as in the app; a lock keeps the idle unload out of a
        # batch that is running.
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="model")
        self.model_lock = threading.Lock()
        self.last_used = time.monotonic()
        self.idle_watch: asyncio.Task[None] | None = None
        # `serve.batch` takes its limits at decoration; these set this server's own.
        batch: Any = self._transcribe_batch
        batch.set_max_batch_size(config.max_batch_size)
        batch.set_batch_wait_timeout_s(config.batch_wait_s)
        self.load_report = self.engine.load(config.precision, config.device)
        self.batch_sizes = metrics.Histogram(
            "nanodictate_batch_size",
            description="Requests transcribed together in one batch.",
            boundaries=[1, 2, 4, 8, 16, 32, 64],
        )
        self.decode_seconds = metrics.Histogram(
            "nanodictate_batch_seconds",
            description="Time to transcribe one batch (VAD and decoding).",
            boundaries=[0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
        )
        self.audio_seconds = metrics.Counter(
            "nanodictate_audio_seconds", description="Seconds of audio transcribed."
        )
        self.refused = metrics.Counter(
            "nanodictate_requests_refused",
            description="Requests answered with an error, by HTTP status.",
            tag_keys=("status",),
        )

    # ------------------------------------------------------------------ routes

    @api.get("/health")
    async def health(self) -> dict[str, Any]:
        placement = self.engine.placement
        return {
            "status": "ok",
            "model": MODEL_ID,
            "state": self.engine.state.value,
            "precision": (placement or self.load_report).precision.value,
            "device": (placement or self.load_report).device,
            "auth": not self.config.no_auth,
            "max_batch_size": self.config.max_batch_size,
            "max_audio_seconds": self.config.max_audio_seconds,
            "max_upload_bytes": self.config.max_upload_bytes,
        }

    @api.get("/v1/models")
    async def models(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refuse(401, "A bearer token is required (Authorization: Bearer ...).")
        return JSONResponse(
            {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "local"}]}
        )

    @api.post("/v1/audio/transcriptions")
    async def transcriptions(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refuse(401, "A bearer token is required (Authorization: Bearer ...).")
        try:
            body = await self._read_body(request)
            loop = asyncio.get_running_loop()
            parsed: ParsedRequest = await loop.run_in_executor(None, self._parse, request, body)
        except RequestRefused as refused:
            return self._refuse(refused.status, refused.message)
        except ClientDisconnect:
            log.info("A client disconnected during its upload")
            self.refused.inc(tags={"status": "499"})
            return Response(status_code=499)
        self._start_idle_watch()
        result = await self._transcribe_batch(parsed.job)
        if isinstance(result, NanodictateError):
            return self._refuse(422, str(result))
        if isinstance(result, Exception):
            log.error("Transcription failed: %s", type(result).__name__)
            return self._refuse(500, "The transcription failed; the server's log has details.")
        placement = self.engine.placement or self.load_report
        answer = responses.body(
            result,
            parsed.response_format,
            {"precision": placement.precision.value, "device": placement.device},
        )
        if isinstance(answer, str):
            return PlainTextResponse(answer)
        return JSONResponse(answer)

    # ------------------------------------------------------------------ batching

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def _transcribe_batch(
        self, jobs: list[TranscriptionJob]
    ) -> list[Transcription | Exception]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.model_thread, self._run_batch, jobs)
        except Exception as error:  # the whole batch failed: every caller is told
            log.exception("A batch of %d failed", len(jobs))
            results = [error] * len(jobs)
        self.batch_sizes.observe(len(jobs))
        self.decode_seconds.observe(time.perf_counter() - started)
        self.audio_seconds.inc(sum(len(job.samples) for job in jobs) / 16000)
        self.last_used = time.monotonic()
        return results

    def _run_batch(self, jobs: list[TranscriptionJob]) -> list[Transcription | Exception]:
        with self.model_lock:
            if self.engine.state is EngineState.UNLOADED:
                self.load_report = self.engine.load(self.config.precision, self.config.device)
            return self.decoder.transcribe(jobs)

    # ------------------------------------------------------------------ helpers

    def _authorized(self, request: Request) -> bool:
        return self.tokens is None or self.tokens.allows(request.headers.get("authorization"))

    def _refuse(self, status: int, message: str) -> Response:
        self.refused.inc(tags={"status": str(status)})
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(responses.error(status, message), status_code=status, headers=headers)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_upload_bytes
        too_big = RequestRefused(
            413, f"The upload is larger than this server's limit of {limit / 2**20:g} MB."
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_big
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > limit:
                raise too_big
        return bytes(body)

    def _parse(self, request: Request, body: bytes) -> ParsedRequest:
        fields, audio = parse_form(request.headers.get("content-type", ""), body)
        return build_request(fields, audio, self.config)

    def _start_idle_watch(self) -> None:
        if self.idle_watch is None and self.config.idle_unload_minutes > 0:
            self.idle_watch = asyncio.get_running_loop().create_task(self._unload_when_idle())

    async def _unload_when_idle(self) -> None:
        loop = asyncio.get_running_loop()
        limit = self.config.idle_unload_minutes * 60
        while True:
            await asyncio.sleep(min(_IDLE_CHECK_S, limit))
            idle = time.monotonic() - self.last_used
            if idle >= limit and self.engine.state is not EngineState.UNLOADED:
                log.info("Idle for %.0f s: unloading the model", idle)
                await loop.run_in_executor(self.model_thread, self._unload)

    def _unload(self) -> None:
        with self.model_lock:
            self.engine.unload()


def build_application(config: ServerConfig) -> Any:
    """The Ray Serve application for `serve.run`: replicas, GPUs, concurrency."""
    deployment: Any = TranscriptionServer
    return deployment.options(
        num_replicas=config.replicas,
        ray_actor_options={"num_gpus": config.gpus_per_replica, "num_cpus": 1},
        # Enough requests in a replica to fill a batch while the previous one decodes.
        max_ongoing_requests=max(16, 4 * config.max_batch_size),
    ).bind(config)
