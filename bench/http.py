"""Keep-alive throughput and latency of one endpoint of a running API, next to a FastAPI
"hello world" served the same way in the same run (``bench.hello``): one keep-alive
client (its latency is the per-request cost: Nagle's algorithm meeting delayed ACKs
showed as a p50 of 44 ms), then N clients."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.load import LoadResult, run_load
from cli.stack.process import free_port

ROOT = Path(__file__).resolve().parents[1]
# Two hello-world processes took 56 s to answer on the 2-core machine at a load average
# of 23 (other sessions at work): 60 s was too short a wait there.
START_SECONDS = 180.0


@contextmanager
def hello_world(processes: int) -> Iterator[str]:
    """``bench.hello`` in ``processes`` processes on a free port; yields its URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.hello", "--port", str(port), "--workers", str(processes)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        asyncio.run(_until_up(url, server))
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def _until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(int(START_SECONDS / 0.1)):
            if server.poll() is not None:
                raise RuntimeError(f"the hello world exited ({server.returncode})")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the hello world did not answer within {START_SECONDS:.0f} s")


def _row(name: str, result: LoadResult, ceiling: LoadResult | None) -> str:
    share = f"{result.rps / ceiling.rps:5.2f}x" if ceiling and ceiling.rps else "     -"
    return (
        f"{name:<14}{result.concurrency:>8}{result.requests:>9}{result.rps:>9.0f}"
        f"{result.percentile(50) * 1000:>9.2f}{result.percentile(99) * 1000:>9.2f}   {share}"
    )


def run(
    url: str, requests: int = 2000, concurrency: int = 32, processes: int = 2, seconds: float = 20
) -> list[str]:
    """Each workload stops at ``requests`` answers or ``seconds``, whichever is first."""

    def load(label: str, target: str, clients: int) -> LoadResult:
        return asyncio.run(
            run_load(
                label,
                lambda: target,
                concurrency=clients,
                max_requests=requests,
                duration=seconds,
            )
        )

    with hello_world(processes) as hello:
        results = {
            (name, clients): load(name, target, clients)
            for name, target in (("API", url), ("hello world", hello))
            for clients in (1, concurrency)
        }
    lines = [
        f"keep-alive GET {url} against a FastAPI hello world in {processes} process(es)",
        f"{'':<14}{'clients':>8}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        "   share of hello world",
    ]
    for (name, clients), result in results.items():
        ceiling = results[("hello world", clients)] if name == "API" else None
        lines.append(_row(name, result, ceiling))
    statuses = {f"{n}/{c}": dict(r.statuses) for (n, c), r in results.items()}
    lines.append(f"statuses: {statuses}")
    if unanswered := {f"{n}/{c}": dict(r.errors) for (n, c), r in results.items() if r.errors}:
        lines.append(f"without an answer: {unanswered}")
    return lines
