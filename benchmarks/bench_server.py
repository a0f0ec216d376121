"""Load test of ``turborank serve`` on loopback against the offline engine, on the turbo shape.

32 concurrent clients each send one query with 20 documents of about 150 tokens to ``/v1/rerank``
for a fixed duration. The baseline is the offline engine scoring the same pairs in the same run
(``Engine.run`` over many requests' pairs at once, same token budget, same thread count; measured
before and after the load, averaged), so the ratio is the share of the engine's throughput that
survives HTTP, JSON, tokenization and dynamic batching. Target: at least 0.85, with zero errors.
The server runs in its own process; the clients run here, on the same machine, and compete with it
for the CPU.

    python benchmarks/bench_server.py [--duration 60] [--clients 32] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import workloads as w
from common import hardware

from turborank import Reranker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_requests(count: int, docs: int, doc_tokens: int, seed: int = 0) -> list[dict]:
    """Distinct payloads (query of 8 words, documents of doc_tokens +-10% one-token words)."""
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        lengths = [rng.randint(int(doc_tokens * 0.9), int(doc_tokens * 1.1)) for _ in range(docs)]
        requests.append(
            {
                "query": w.text_of_tokens(8, rng),
                "documents": [w.text_of_tokens(n, rng) for n in lengths],
                "return_documents": False,
            }
        )
    return requests


def offline_pairs_per_second(model_dir: Path, requests: list[dict], args: argparse.Namespace) -> float:
    """The engine alone: plan every request, score all their pairs in token-budget batches."""
    reranker = Reranker.from_pretrained(
        model_dir, device="cpu", num_threads=args.threads, max_batch_tokens=args.max_batch_tokens
    )
    encodings = [e for r in requests for e in reranker.plan(r["query"], r["documents"]).encodings]
    reranker.engine.run(encodings[:64])  # warm-up
    pairs, started = 0, time.perf_counter()
    while time.perf_counter() - started < args.offline_seconds:
        reranker.engine.run(encodings)
        pairs += len(encodings)
    return pairs / (time.perf_counter() - started)


def start_server(model_dir: Path, port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "turborank.cli", "serve", "--model", f"turbo={model_dir}"]
    command += ["--port", str(port), "--device", "cpu"]
    if args.max_batch_tokens:
        command += ["--max-batch-tokens", str(args.max_batch_tokens)]
    command += ["--request-timeout", str(args.timeout)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return wait_ready(process, f"http://127.0.0.1:{port}", log)


def wait_ready(process: subprocess.Popen, url: str, log: Path) -> subprocess.Popen:
    """Poll the server's /health until it answers 200 (at most 120 s); exit with its log if it dies."""
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise SystemExit(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=10).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("server did not become ready in 120 s")
        time.sleep(0.5)


async def load(
    url: str, requests: list[dict], args: argparse.Namespace
) -> tuple[list[float], int, int, float]:
    """Run the clients for the duration; returns latencies (s), successes, errors, elapsed seconds."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as client:
        deadline = time.perf_counter() + args.duration

        async def one_client(index: int) -> None:
            nonlocal errors
            i = index
            while time.perf_counter() < deadline:
                payload = requests[i % len(requests)]
                i += args.clients
                sent = time.perf_counter()
                try:
                    response = await client.post("/v1/rerank", json=payload)
                    ok = response.status_code == 200 and len(response.json()["results"]) == args.docs
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors += 1

        probes = 0

        async def one_prober() -> None:
            # Unauthenticated health probes beside the real load (load balancers, a probe flood).
            nonlocal probes
            async with httpx.AsyncClient(base_url=url, timeout=args.timeout) as prober:
                while time.perf_counter() < deadline:
                    await prober.get(args.probe_path)
                    probes += 1

        started = time.perf_counter()
        floods = [one_prober() for _ in range(args.probers)]
        await asyncio.gather(*(one_client(i) for i in range(args.clients)), *floods)
        elapsed = time.perf_counter() - started
        if args.probers:
            rate = probes / elapsed
            print(f"probes: {probes} x GET {args.probe_path} from {args.probers} probers ({rate:.0f}/s)")
    return latencies, len(latencies), errors, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--offline-seconds", type=float, default=20.0, help="seconds of offline baseline")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--docs", type=int, default=20, help="documents per request")
    parser.add_argument("--doc-tokens", type=int, default=150)
    parser.add_argument("--threads", type=int, default=None, help="torch threads, offline and server alike")
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="default: per device")
    parser.add_argument("--timeout", type=float, default=120.0, help="client timeout per request (s)")
    parser.add_argument("--probers", type=int, default=0, help="clients looping on --probe-path meanwhile")
    parser.add_argument("--probe-path", default="/health", help="/health, /health/ready or /health/live")
    args = parser.parse_args()

    requests = make_requests(max(64, args.clients * 2), args.docs, args.doc_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = w.write_checkpoint(w.TURBO, Path(tmp) / "turbo")
        before = offline_pairs_per_second(model_dir, requests, args)
        port = free_port()
        log = Path(tmp) / "server.log"
        server = start_server(model_dir, port, args, log)
        try:
            url = f"http://127.0.0.1:{port}"
            httpx.post(url + "/v1/rerank", json=requests[0], timeout=args.timeout)  # warm-up
            latencies, ok, errors, elapsed = asyncio.run(load(url, requests, args))
        finally:
            server.terminate()
            server.wait(timeout=60)
        # Measured again after the load and averaged, so drift in a shared machine's load evens out.
        after = offline_pairs_per_second(model_dir, requests, args)
    offline = (before + after) / 2
    served = ok * args.docs / elapsed
    p50, p95, p99 = (np.percentile(latencies, q) if latencies else float("nan") for q in (50, 95, 99))
    print(f"hardware: {hardware()}, {os.cpu_count()} CPUs (server: the same thread setting)")
    print(
        f"workload: {args.clients} clients x ({args.docs} docs of ~{args.doc_tokens} tokens), "
        f"{args.duration:g} s, loopback"
    )
    print(f"offline engine: {offline:.1f} pairs/s (before {before:.1f}, after {after:.1f})")
    print(f"server:         {served:.1f} pairs/s ({ok} requests in {elapsed:.1f} s)")
    print(f"ratio server/offline: {served / offline:.3f} (target >= 0.85)")
    print(f"latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    print(f"errors: {errors}")


if __name__ == "__main__":
    main()
