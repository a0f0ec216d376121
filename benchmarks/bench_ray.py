"""Ray against turborank's single-process paths, on the same machine and the same total threads.

1. Offline: ``turborank score`` on a Parquet file of pairs, in one process (``--threads T``) and as a
   Ray Data job (T actors of one thread each, on a local Ray started here with T CPUs). Target: Ray at
   least 0.9x the single-process pairs/s; the single-process run is timed before and after the Ray run.
2. Online: ``turborank serve`` (T threads) and ``turborank serve --ray`` (T replicas x 1 thread) under
   the same concurrent clients (``bench_server.load``). Target: Ray Serve at least 0.9x, with p99.
Also: Ray's startup and deploy time, and the memory of each replica and of Ray's own processes.
Both use the shipped default model (turborank-default) unless ``--model`` says otherwise.

    python benchmarks/bench_ray.py [--pairs 2000] [--threads 2] [--clients 16] [--duration 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_server
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import workloads as w

from turborank.score.command import RayOptions
from turborank.score.inputs import PairFile
from turborank.score.local import ScoreJob, run
from turborank.score.scoring import ModelOptions, ScoreOptions

RAY_PROCESSES = ("raylet", "gcs_server", "ray::", "dashboard", "ray/_private")


def write_pairs(path: Path, count: int, seed: int = 0) -> Path:
    """Queries of 8 words, 20 documents each, of 30-300 one-token words."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        query = w.text_of_tokens(8, random.Random(seed + i // 20))
        rows.append({"id": i, "query": query, "document": w.text_of_tokens(rng.randint(30, 300), rng)})
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def score_seconds(source: Path, out: Path, options: ScoreOptions, ray: RayOptions | None) -> float:
    job = ScoreJob(
        PairFile.open(source), out, "parquet", options, chunk_rows=256, overwrite=True, progress=False
    )
    started = time.perf_counter()
    if ray is None:
        run(job)
    else:
        from turborank.score.ray_job import run_on_ray

        run_on_ray(job, ray)
    return time.perf_counter() - started


def rss_mb(match: tuple[str, ...]) -> dict[str, float]:
    """Resident memory (MB) of this machine's processes whose command line starts with one of ``match``."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            title = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if any(part in title.split(" ")[0] or title.startswith(part) for part in match) and "VmRSS" in fields:
            found[f"{status.parent.name} {title[:60]}"] = int(fields["VmRSS"].split()[0]) / 1024
    return found


def offline(args: argparse.Namespace, tmp: Path) -> None:
    import ray

    source = write_pairs(tmp / "pairs.parquet", args.pairs)
    single = ScoreOptions(model=ModelOptions(args.model, "cpu", threads=args.threads))
    before = score_seconds(source, tmp / "single.parquet", single, None)
    started = time.perf_counter()
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=args.threads + 1, log_to_driver=False, include_dashboard=False)
    ray_start = time.perf_counter() - started
    # One 1-thread actor per thread, half a logical CPU each, so Ray's reads and writes find a CPU.
    pool = RayOptions(concurrency=args.threads, num_cpus=0.5)
    on_ray = ScoreOptions(model=ModelOptions(args.model, "cpu", threads=1))
    ray_seconds = score_seconds(source, tmp / "ray", on_ray, pool)
    ray.shutdown()
    after = score_seconds(source, tmp / "single.parquet", single, None)
    single_rate = args.pairs / ((before + after) / 2)
    ray_rate = args.pairs / ray_seconds
    print(f"offline, {args.pairs} pairs of 30-300 tokens, {args.threads} threads in all:")
    print(f"  single process: {single_rate:.1f} pairs/s (runs of {before:.1f} s and {after:.1f} s)")
    print(f"  Ray Data: {ray_rate:.1f} pairs/s ({ray_seconds:.1f} s incl. actor start and model load)")
    print(
        f"  ratio Ray/single: {ray_rate / single_rate:.3f} (target >= 0.9); ray.init took {ray_start:.1f} s"
    )


def start(command: list[str], port: int, log: Path) -> tuple[subprocess.Popen, float]:
    """Start a server; return it and the seconds until /health answered 200."""
    started = time.perf_counter()
    env = {**os.environ, "RAY_worker_niceness": "0"}
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    while True:
        if process.poll() is not None:
            raise SystemExit(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200:
                return process, time.perf_counter() - started
        except httpx.TransportError:
            pass
        if time.perf_counter() - started > 300:
            process.kill()
            raise SystemExit("server did not become ready in 300 s")
        time.sleep(0.5)


def serve_under_load(command: list[str], args: argparse.Namespace, tmp: Path, label: str) -> dict:
    port = bench_server.free_port()
    base = [sys.executable, "-m", "turborank.cli", "serve", "--device", "cpu", "--port", str(port)]
    base += ["--model", f"bench={args.model}"] if args.model else []
    process, ready = start(base + command, port, tmp / f"{label}.log")
    try:
        url = f"http://127.0.0.1:{port}"
        requests = bench_server.make_requests(64, args.docs, args.doc_tokens)
        memory = rss_mb(("ray::ServeReplica",)) if "--ray" in command else {}
        fixed = rss_mb(RAY_PROCESSES) if "--ray" in command else {}
        for payload in requests[:4]:  # warm-up, one per replica at least
            httpx.post(url + "/v1/rerank", json=payload, timeout=args.timeout)
        latencies, ok, errors, elapsed = asyncio.run(bench_server.load(url, requests, args))
    finally:
        process.terminate()
        process.wait(timeout=120)
    replicas = list(memory.values())
    return {
        "rate": ok * args.docs / elapsed,
        "p50": np.percentile(latencies, 50) if latencies else float("nan"),
        "p99": np.percentile(latencies, 99) if latencies else float("nan"),
        "errors": errors,
        "ready": ready,
        "replica_mb": replicas,
        "ray_fixed_mb": sum(fixed.values()) - sum(replicas),
    }


def online(args: argparse.Namespace, tmp: Path) -> None:
    plain = serve_under_load(["--threads", str(args.threads)], args, tmp, "plain")
    ray_flags = ["--ray", "--replicas", str(args.threads), "--num-cpus", "0.5", "--threads", "1"]
    on_ray = serve_under_load(ray_flags, args, tmp, "ray")
    workload = f"{args.clients} clients x ({args.docs} docs of ~{args.doc_tokens} tokens)"
    print(f"online, {workload}, {args.duration:g} s:")
    for label, r in (("plain serve", plain), ("Ray Serve", on_ray)):
        print(
            f"  {label}: {r['rate']:.1f} pairs/s, p50 {r['p50'] * 1000:.0f} ms, "
            f"p99 {r['p99'] * 1000:.0f} ms, {r['errors']} errors, ready after {r['ready']:.1f} s"
        )
    print(f"  ratio Ray Serve/plain: {on_ray['rate'] / plain['rate']:.3f} (target >= 0.9)")
    print(
        f"  memory: replicas {', '.join(f'{m:.0f}' for m in on_ray['replica_mb'])} MB RSS each; "
        f"Ray's own processes {on_ray['ray_fixed_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped turborank-default)")
    parser.add_argument("--pairs", type=int, default=2000, help="pairs scored offline")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in all, per side")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--docs", type=int, default=20, help="documents per request")
    parser.add_argument("--doc-tokens", type=int, default=150)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per server")
    parser.add_argument("--timeout", type=float, default=120.0, help="client timeout per request (s)")
    parser.add_argument("--skip", choices=["offline", "online"], default=None)
    args = parser.parse_args()
    print(f"hardware: {w.hardware()}, {os.cpu_count()} CPUs; load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.skip != "offline":
            offline(args, Path(tmp))
        if args.skip != "online":
            online(args, Path(tmp))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
