"""A workflow start the relay makes later (Temporal was away when it was asked for)
joins the trace that asked for it: its ``traceparent`` is kept on the row, and the
client's StartWorkflow span is a child of that span (real Temporal, real OTLP receiver)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from uuid import uuid4

import pytest
from opentelemetry import trace
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from core.settings import Settings
from core.telemetry import ProcessRole, incoming_context, tracing_for, unrecorded_span
from services import workflow_starts
from temporal.client import connect
from temporal.clients.starts import relay_pending
from tests.otlp_receiver import OtlpReceiver, otlp_receiver

TRACE = "7d2f0c4b9e1a4f3c8b6a5d4e3f2a1b0c"


class _Input(BaseModel):
    note: str


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


async def test_a_relayed_start_is_a_child_of_the_span_that_asked_for_it(
    settings: Settings, engine: AsyncEngine, receiver: OtlpReceiver
) -> None:
    traced = settings.model_copy(update={"otel_exporter_otlp_endpoint": receiver.endpoint})
    client = await connect(traced, role=ProcessRole.WORKER)
    sessions = create_session_factory(engine)
    workflow_id = f"test-relayed-start-{uuid4().hex[:12]}"
    asked = unrecorded_span(incoming_context(f"00-{TRACE}-00f067aa0ba902b7-01".encode(), None))
    with trace.use_span(asked):  # the request that asked for the start
        async with transaction(sessions) as session:
            row = workflow_starts.request(
                session,
                workflow_type="NoSuchWorkflowType",  # it is only started, never run
                workflow_id=workflow_id,
                task_queue=f"test-relayed-start-{uuid4().hex[:8]}",
                input=_Input(note="later"),
            )
    asked_id = format(asked.get_span_context().span_id, "016x")
    assert row.traceparent == f"00-{TRACE}-{asked_id}-01"
    try:
        # Outside any span now, as the relay's activity is in a trace of its own.
        assert await relay_pending(client, sessions, older_than=timedelta(0)) >= 1
        tracing = tracing_for(traced, ProcessRole.WORKER)
        assert tracing is not None
        assert tracing.flush()
        start = next(
            s
            for s in receiver.received()
            if s.name == "StartWorkflow:NoSuchWorkflowType"
            and s.attributes.get("temporalWorkflowID") == workflow_id
        )
        assert (start.trace_id, start.parent_span_id) == (TRACE, asked_id)
    finally:
        await client.get_workflow_handle(workflow_id).terminate("test over")
