"""A small closed-loop load generator: N clients, each sending its next request as soon
as the previous one answers, for a fixed time or request count. Localhost only."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    label: str
    requests: int
    seconds: float
    concurrency: int
    latencies: list[float] = field(repr=False)
    statuses: dict[int, int]
    # Requests that got no answer, by kind: "timeout" (no answer within the client's
    # timeout) or the transport error's name. Not in ``requests`` nor the latencies.
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100)[p - 1]

    def lines(self) -> list[str]:
        return [
            f"{self.label}: {self.requests} requests, {self.concurrency} concurrent, "
            f"{self.seconds:.1f} s",
            f"  throughput {self.rps:8.0f} req/s",
            f"  latency    p50 {self.percentile(50) * 1000:6.1f} ms   "
            f"p95 {self.percentile(95) * 1000:6.1f} ms   p99 {self.percentile(99) * 1000:6.1f} ms",
            f"  statuses   {dict(sorted(self.statuses.items()))}",
            *([f"  no answer  {dict(sorted(self.errors.items()))}"] if self.errors else []),
        ]


async def run_load(
    label: str,
    next_url: Callable[[], str],
    *,
    concurrency: int,
    duration: float | None = None,
    max_requests: int | None = None,
    headers: dict[str, str] | None = None,
    request_timeout: float = 60,
) -> LoadResult:
    """Run until ``duration`` seconds pass or ``max_requests`` are sent. A request with
    no answer within ``request_timeout`` seconds (or a failed connection) is counted in the
    result's ``errors``, the warm-up's too, and the run goes on: one slow answer must
    not end a whole bench with no figures."""
    assert duration is not None or max_requests is not None
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    sent = 0
    deadline = time.perf_counter() + (duration if duration is not None else 3600)

    async def get(http: httpx.AsyncClient) -> httpx.Response | None:
        try:
            return await http.get(next_url())
        except httpx.HTTPError as exc:
            kind = "timeout" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
            errors[kind] = errors.get(kind, 0) + 1
            return None

    async def client_loop(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.perf_counter() < deadline:
            if max_requests is not None and sent >= max_requests:
                return
            sent += 1
            started = time.perf_counter()
            response = await get(http)
            if response is not None:
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=request_timeout, headers=headers) as http:
        await get(http)  # warm the pool and the app
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(label, len(latencies), elapsed, concurrency, latencies, statuses, errors)


# A factory of request targets: given a client's random generator, the function that
# draws its next path (``/api/products?…``). Picklable (a module-level function or a
# ``functools.partial`` of one), since it is sent to the generator processes.
TargetFactory = Callable[[random.Random], Callable[[], str]]


def fixed(path: str, rng: random.Random) -> Callable[[], str]:
    """``partial(fixed, "/")``: the same target every time."""
    return lambda: path


@dataclass(frozen=True)
class _Share:
    host: str
    port: int
    targets: TargetFactory
    clients: int
    seed: int
    start_at: float  # time.time() at which every generator process starts sending
    duration: float


@dataclass
class _ShareResult:
    latencies: list[float]
    statuses: dict[int, int]
    seconds: float
    cpu_seconds: float


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lowered.index(b"\r\n", at + 2)
        await reader.readexactly(int(lowered[at + 17 : end]))
    elif b"transfer-encoding: chunked" in lowered:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _run_share(share: _Share) -> _ShareResult:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    host_header = f"Host: {share.host}:{share.port}\r\n\r\n".encode()

    async def client(index: int) -> None:
        next_target = share.targets(random.Random(share.seed * 1_000 + index))
        reader, writer = await asyncio.open_connection(share.host, share.port)
        await asyncio.sleep(max(0.0, share.start_at - time.time()))
        deadline = time.perf_counter() + share.duration
        try:
            while time.perf_counter() < deadline:
                request = b"GET " + next_target().encode() + b" HTTP/1.1\r\n" + host_header
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    cpu = time.process_time()
    await asyncio.gather(*(client(i) for i in range(share.clients)))
    seconds = time.time() - share.start_at
    return _ShareResult(latencies, statuses, seconds, time.process_time() - cpu)


def _generate(share: _Share) -> _ShareResult:
    try:
        import uvloop

        return uvloop.run(_run_share(share))
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(_run_share(share))


@dataclass
class GeneratedLoad(LoadResult):
    # CPU the generator processes used, as a share of the run's wall time each: near 1.0
    # means a generator saturated its core and the figure is the generator's ceiling.
    generator_cpu: list[float] = field(default_factory=list)
    # CPU seconds the measured stack's processes used during the run, by role
    # (``bench.stack_cost``): empty when not measured.
    server_cpu: dict[str, float] = field(default_factory=dict)


def run_load_processes(
    label: str,
    base_url: str,
    targets: TargetFactory,
    *,
    concurrency: int,
    duration: float,
    processes: int = 2,
    seed: int = 7,
    start_delay: float | None = None,
) -> GeneratedLoad:
    """``concurrency`` keep-alive clients spread over ``processes`` generator processes
    (raw HTTP/1.1 on uvloop: a fraction of httpx's cost per request, and off the
    caller's process), each sending its next request when the previous one answered."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    processes = max(1, min(processes, concurrency))
    # Every generator starts sending at once, after the spawned processes' imports.
    start_at = time.time() + (1.5 + 0.5 * processes if start_delay is None else start_delay)
    shares = [
        _Share(
            host,
            port,
            targets,
            concurrency // processes + (1 if i < concurrency % processes else 0),
            seed * 100 + i,
            start_at,
            duration,
        )
        for i in range(processes)
    ]
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_generate, shares))
    latencies = sorted(x for r in results for x in r.latencies)
    statuses: dict[int, int] = {}
    for r in results:
        for code, n in r.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    seconds = max(r.seconds for r in results)
    return GeneratedLoad(
        label,
        len(latencies),
        seconds,
        concurrency,
        latencies,
        statuses,
        generator_cpu=[r.cpu_seconds / r.seconds for r in results],
    )
