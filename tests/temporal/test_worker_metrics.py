"""A worker's Temporal SDK metrics on WORKER_METRICS_PORT: what the System Health
dashboard and the WorkerBacklog alert (deploy/) read, served by a worker connected as
``shop worker`` connects (``worker_runtime``), on the real Temporal dev server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio import activity, workflow
from temporalio.worker import Worker

from cli.stack.dev import _worker_metrics_env
from cli.stack.process import free_port
from core.settings import Settings
from core.telemetry import ProcessRole
from temporal.client import connect, worker_runtime
from tests.deploy.test_monitoring import metric_names


@activity.defn(name="test_worker_metrics.echo")
async def echo(text: str) -> str:
    return text


@workflow.defn(name="TestWorkerMetrics", sandboxed=False)
class EchoWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            echo, text, start_to_close_timeout=timedelta(seconds=10)
        )


def _exposed(exposition: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names |= {sample.name for sample in family.samples}
    return names


async def test_a_worker_serves_the_sdk_metrics_the_dashboards_read(
    settings: Settings, repo_root: Path
) -> None:
    port = free_port()
    configured = settings.model_copy(update={"worker_metrics_port": port})
    client = await connect(configured, role=ProcessRole.WORKER, runtime=worker_runtime(configured))
    queue = f"test-worker-metrics-{uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[EchoWorkflow], activities=[echo]):
        result = await client.execute_workflow(
            EchoWorkflow.run, "hi", id=f"{queue}-run", task_queue=queue
        )
        assert result == "hi"
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert answer.status_code == 200
    exposed = _exposed(answer.text)
    wanted = {n for n in metric_names(repo_root / "deploy") if n.startswith("temporal_")}
    assert wanted, "the dashboards read the workers' metrics"
    assert wanted <= exposed, sorted(wanted - exposed)


def test_no_port_no_endpoint_and_each_dev_worker_its_own_port() -> None:
    assert worker_runtime(Settings(worker_metrics_port=None)) is None
    assert _worker_metrics_env(Settings(worker_metrics_port=None), 1) == {}
    base = Settings(worker_metrics_port=9500)
    assert [_worker_metrics_env(base, n) for n in (1, 2)] == [
        {"WORKER_METRICS_PORT": "9500"},
        {"WORKER_METRICS_PORT": "9501"},
    ]
