"""Load test of the team server: N concurrent loopback clients, a fixed number of requests,
batching off (batches of one) and on; throughput and p50/p95 latency.

Runs a local Ray cluster with one CPU replica of the tiny deterministic replica (or, with
``--full``, the full-size replica) and speech made by espeak-ng. Loopback only, bounded in
requests and time. Writes ``bench/results/server-load-<tag>.json``.

    python bench/server_load.py [--requests 24] [--concurrency 1 4 8] [--tag cpu-2-core]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import full_replica, machine_basics

from nanodictate.core.remote_transcriber import multipart, wav_bytes

RESULTS = Path(__file__).resolve().parent / "results"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _one_request(port: int, body: bytes, content_type: str) -> tuple[float, int]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request("POST", "/v1/audio/transcriptions", body, {"Content-Type": content_type})
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {answer}")
    finally:
        connection.close()
    size = int(answer.get("nanodictate", {}).get("timings", {}).get("batch_size", 1))
    return time.perf_counter() - started, size


def _run_clients(port: int, clients: int, requests: int, body: bytes, kind: str) -> dict[str, Any]:
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(lambda _: _one_request(port, body, kind), range(requests)))
    wall = time.perf_counter() - started
    latencies = sorted(latency for latency, _ in done)
    return {
        "clients": clients,
        "requests": requests,
        "seconds": round(wall, 3),
        "requests_per_second": round(requests / wall, 3),
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
        "mean_batch_size": round(statistics.mean(size for _, size in done), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=24, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batch-wait", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the replica")
    parser.add_argument("--full", action="store_true", help="the full-size replica (slow on CPU)")
    parser.add_argument("--tag", default="cpu")
    args = parser.parse_args(argv)

    import ray
    from ray import serve

    from nanodictate.server.config import ServerConfig
    from nanodictate.server.deployment import build_application
    from nanodictate.testing.replica import build_replica
    from nanodictate.testing.speech import speech
    from nanodictate.testing.vad_model import ensure_test_vad_model

    work = Path(tempfile.mkdtemp(prefix="nanodictate-server-load-"))
    model = full_replica() if args.full else work / "replica"
    if not args.full:
        build_replica(model, deterministic=True, layout="release")
    samples = speech("please schedule the team meeting for tomorrow at ten in the morning")
    body, kind = multipart([("response_format", "verbose_json")], wav_bytes(samples))
    rows: list[dict[str, Any]] = []
    # Each mode on its own fresh Ray cluster: a second deployment on the same cluster ran
    # 30–80 % slower here, whichever mode came second (the first replica's process lingers).
    for batching, size in (("off", 1), ("on", args.batch_size)):
        port = _free_port()
        ray.init(num_cpus=max(2, args.threads), include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        try:
            config = ServerConfig(
                model_dir=model,
                vad_dir=ensure_test_vad_model(),
                cache_dir=work / "cache",
                token_file=None,
                no_auth=True,
                device="cpu",
                max_batch_size=size,
                batch_wait_s=args.batch_wait if size > 1 else 0.0,
                threads=args.threads,
            )
            serve.run(build_application(config), name="load", route_prefix="/")
            _run_clients(port, 2, 4, body, kind)  # warm-up: first decode, allocator
            for clients in args.concurrency:
                row = {
                    "batching": batching,
                    **_run_clients(port, clients, args.requests, body, kind),
                }
                rows.append(row)
                p50, p95 = row["p50_s"], row["p95_s"]
                print(
                    f"batching {batching:3}  clients {clients:2}  "
                    f"{row['requests_per_second']:6.2f} req/s  p50 {p50:6.2f} s  "
                    f"p95 {p95:6.2f} s  mean batch {row['mean_batch_size']:.2f}",
                    flush=True,
                )
        finally:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
    result = {
        "machine": machine_basics(),
        "model": "full-size replica" if args.full else "tiny deterministic replica",
        "audio_seconds": round(len(samples) / 16000, 2),
        "replica_threads": args.threads,
        "batch_wait_s": args.batch_wait,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"server-load-{args.tag}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
