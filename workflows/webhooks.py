"""``WebhookDeliveryWorkflow``: one (event, endpoint) delivery, sent with its own retries.

``webhooks.send`` is a remote activity (an external call, with its own timeout and
backoff): a 5xx, 408, 429, timeout or connection error is retried; a permanent refusal
(another 4xx, a disabled endpoint) or running out of attempts ends in ``webhooks.give_up``,
which marks the delivery failed with the last error, for operators to see and retry.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import WebhookActivities
    from workflows.events import DEAD_LETTER_RETRY, describe_failure
    from workflows.types.webhooks import (
        WEBHOOK_DELIVERY_WORKFLOW,
        GiveUpInput,
        SendResult,
        WebhookSendInput,
    )


# Unsandboxed: a few deterministic lines over passed-through types (as the relay's).
@workflow.defn(name=WEBHOOK_DELIVERY_WORKFLOW, sandboxed=False)
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, input: WebhookSendInput) -> SendResult:
        retry = input.retry
        try:
            return await workflow.execute_activity_method(
                WebhookActivities.send,
                input,
                summary=f"send {input.event_id} to {input.endpoint_id}",
                start_to_close_timeout=retry.timeout,
                retry_policy=retry.policy(),
            )
        except ActivityError as exc:
            error = describe_failure(exc)
        return await workflow.execute_activity_method(
            WebhookActivities.give_up,
            GiveUpInput(
                event_id=input.event_id,
                endpoint_id=input.endpoint_id,
                generation=input.generation,
                error=error,
            ),
            summary=f"give up {input.event_id} to {input.endpoint_id}",
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DEAD_LETTER_RETRY,
        )
