"""``/metrics`` of several API processes reads around a file another process is creating.

A process creates its samples file (prometheus_client's multiprocess mode) on its first
sample and sizes it only afterwards; a scrape by another process in between used to fail
as a whole (``struct.error`` reading 0 bytes), so ``/metrics`` answered 500 while a second
API process started (seen in a fresh-clone run of ``tests/cli/test_serve_metrics.py``).
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from api.middleware import metrics_exposition


def test_a_file_not_sized_yet_is_left_out_and_the_others_are_summed(tmp_path: Path) -> None:
    key = mmap_key(
        "http_requests_total",
        "http_requests_total",
        ["method", "route", "status"],
        ["GET", "/health", "200"],
        "HTTP requests answered",
    )
    for pid, count in ((101, 3.0), (102, 4.0)):
        samples = MmapedDict(str(tmp_path / f"counter_{pid}.db"))  # type: ignore[no-untyped-call]
        samples.write_value(key, count, 0.0)  # type: ignore[no-untyped-call]
        samples.close()  # type: ignore[no-untyped-call]
    (tmp_path / "counter_103.db").touch()  # a third process, between open and truncate

    exposition = generate_latest(metrics_exposition(CollectorRegistry(), tmp_path)).decode()

    assert 'http_requests_total{method="GET",route="/health",status="200"} 7.0' in exposition
