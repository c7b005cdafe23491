"""Recorded histories replayed against today's workflow code.

A change that would make a running workflow take a different path (non-determinism)
fails here, before it can break orders in flight. See ``record_histories.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from core.settings import Settings
from core.telemetry import ProcessRole, tracing_for
from temporal.run_traces import RunTracingInterceptor
from temporal.sandbox import workflow_runner
from tests.workflows.record_histories import HISTORIES, WORKFLOWS

FILES = sorted(HISTORIES.glob("*.json"))
TEXTS = {f.stem: f.read_text() for f in FILES}  # read once, at collection


def test_there_are_histories_to_replay() -> None:
    assert {f.stem for f in FILES} >= {
        "cart_abandonment_reminded",
        "cart_abandonment_closed",
        # Since "cart-checked-at-deadline".
        "cart_abandonment_checked_out",
        # Since "cart-change-at-deadline".
        "cart_abandonment_changed_at_deadline",
        # Since "cart-change-during-reminder" (the first run: it continues as new).
        "cart_abandonment_changed_during_reminder",
        # Since the reminder reads the address when it sends (no patch: the same steps).
        "cart_abandonment_reminded_without_address",
        "user_onboarding_sent",
        # Since the welcome reads the address when it is sent (no patch: the same step).
        "user_onboarding_sent_without_address",
        "stack_probe_ok",
        "analytics_rollup_ok",
        "order_fulfillment_queued",
        "order_fulfillment_queued_local_steps",
        "order_out_of_stock_local_steps",
        "order_payment_declined",
        "order_payment_declined_by_event",
        "order_out_of_stock",
        "order_cancelled_during_3ds",
        "order_3ds_completed",
        "order_3ds_timed_out",
        # Since "undo-finishes-when-cancelled".
        "order_cancelled_from_temporal_while_undoing",
        # Since "free-orders-uncharged".
        "order_free_fulfillment_queued",
        # Since "stock-held-again-after-3ds".
        "order_3ds_stock_held_again",
        # Since "stock-held-again-after-authorise".
        "order_authorised_stock_held_again",
        # Since "order-patches-decided-at-start".
        "order_fulfillment_queued_patches_decided_at_start",
        "order_free_patches_decided_at_start",
        "order_out_of_stock_patches_decided_at_start",
        # Since "authorise-waits-out-outages".
        "order_authorised_after_a_provider_outage",
        "event_delivery_delivered",
        "event_delivery_dead_letter",
        "event_fanout_delivered",
        "event_fanout_dead_letter",
        # Since the relay starts one workflow per pass.
        "event_batch_with_a_dead_letter",
        "fulfillment_delivered_in_two_parcels",
        "fulfillment_cancelled_before_label",
        "fulfillment_held_by_carrier_then_released",
        "return_refunded",
        "return_auto_approved",
        "return_declined",
        "return_not_sent_back",
        # Since "return-refund-refused".
        "return_refund_refused",
        # Since "return-approval-before-run-kept".
        "return_staff_approved_with_the_start",
        # Since "return-late-parcel-awaited".
        "return_sent_late",
        "shipment_delivered",
        "shipment_delayed_then_delivered",
        "shipment_stalled_from_carrier_time",
        "shipment_label_refused_then_retried",
        "shipment_continued_as_new",
        "shipment_cancelled_label_refunded",
        # Since "local-tracking-steps" and "local-fulfillment-steps".
        "shipment_delivered_local_steps",
        "shipment_delayed_then_delivered_local_steps",
        "fulfillment_delivered_in_two_parcels_local_steps",
        "fulfillment_cancelled_before_label_local_steps",
        "fulfillment_held_by_carrier_then_released_local_steps",
        # Since "updates-wait-for-open".
        "fulfillment_parcel_with_the_start",
        # Since "parcel-id-from-update".
        "fulfillment_parcels_named_by_their_updates",
        # Since "handlers-finish-when-cancelled".
        "fulfillment_cancelled_from_temporal_while_undoing",
        # Since "early-carrier-updates-deduped".
        "shipment_redelivered_with_the_start",
        # Since "cancel-until-answered".
        "fulfillment_cancel_step_answered_late",
        # Since "cancel-refused-keeps-tracking" (and the fulfilment's hold for it).
        "shipment_cancel_refused_kept_tracking",
        "fulfillment_held_for_a_refused_parcel_cancel",
        # Since "repeated-cancel-refused".
        "shipment_cancel_refused_remembered",
        "shipment_cancel_refused_again_in_a_later_run",
        # Since "cancel-keeps-unrecorded-updates".
        "shipment_cancelled_with_an_update",
        # Since "moving-parcel-cancel-refused".
        "shipment_moving_parcel_cancel_refused",
        # Since "shipment-patches-decided-at-start".
        "shipment_delivered_patches_decided_at_start",
        "shipment_stalled_patches_decided_at_start",
        # Since "fulfillment-patches-decided-at-start".
        "fulfillment_delivered_patches_decided_at_start",
        "fulfillment_cancelled_from_temporal_patches_decided_at_start",
        "fulfillment_cancel_answered_late_patches_decided_at_start",
        # Since "fulfillment-reset-reads-the-database" (record_reset_histories.py: the
        # reset runs' histories).
        "fulfillment_delivered_reset_reads_the_database",
        "fulfillment_reset_to_the_first_task",
        "fulfillment_reset_without_its_updates",
        "fulfillment_reset_after_a_released_hold",
        # Since "return-deadline-takes-stored-status".
        "return_received_unseen_at_the_deadline",
        "return_reset_before_the_receipt_while_refunding",
        # Since "return-reset-reads-the-return" (the reset runs' histories by
        # record_reset_histories.py).
        "return_refunded_reading_the_return",
        "return_approved_unseen_at_the_start",
        "return_reset_before_the_approval",
        "return_reset_before_the_receipt_reads_the_return",
        "return_reset_to_the_first_task_once_closed",
        # Since "retry-label-once-per-correction" (retry_label names its correction).
        "shipment_label_correction_sent_twice",
        # Recorded on a worker of the release before (its retry_label takes no argument)
        # receiving named corrections: a parcel it served replays as it ran.
        "shipment_correction_repeated_on_an_older_worker",
    }


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
@pytest.mark.parametrize(
    "runner",
    # The SDK's sandbox (what catches a non-deterministic call), and what our workers run.
    [SandboxedWorkflowRunner(), workflow_runner()],
    ids=["sdk-sandbox", "our-workers"],
)
async def test_history_replays_deterministically(
    path: Path, runner: SandboxedWorkflowRunner
) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=runner
    )
    history = WorkflowHistory.from_json(path.stem, TEXTS[path.stem])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_every_history_replays_on_a_traced_worker() -> None:
    """Our workers trace (``temporal/client.py``): the interceptor, which gives a run
    started without a trace one of its own while replaying it (``temporal/run_traces.py``),
    changes none of the commands a run makes."""
    tracing = tracing_for(Settings(otel_service_name="replay"), ProcessRole.WORKER)
    assert tracing is not None
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
        interceptors=[RunTracingInterceptor(tracing)],
    )
    failed = {}
    for path in FILES:
        history = WorkflowHistory.from_json(path.stem, TEXTS[path.stem])
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failed[path.stem] = result.replay_failure
    assert failed == {}
