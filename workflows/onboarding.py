"""``UserOnboardingWorkflow``: the welcome email, sent once, retried until it goes."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities, SendEmailInput, SendEmailResult
    from workflows.types.onboarding import (
        USER_ONBOARDING_WORKFLOW,
        OnboardingInput,
        RetrySpec,
    )


@workflow.defn(name=USER_ONBOARDING_WORKFLOW)
class UserOnboardingWorkflow:
    @workflow.run
    async def run(self, input: OnboardingInput) -> SendEmailResult:
        return await self._send(
            SendEmailInput(
                idempotency_key=f"welcome:{input.user_id}",
                template="welcome",
                # Nobody named here (nor by an input of a run started before, which
                # named them): the step writes to the account's address and name as
                # they are when it sends, to no one once the account is erased. The
                # context's keys are the ones it fills (a worker of the release before
                # fills only those it is given).
                to="",
                context={"name": "", "email": ""},
                user_id=input.user_id,
            ),
            input.email_retry,
        )

    async def _send(self, email: SendEmailInput, retry: RetrySpec) -> SendEmailResult:
        """The one step: retried until the provider takes it, or ``retry`` gives up."""
        return await workflow.execute_activity_method(
            EmailActivities.send_email,
            email,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(hours=retry.give_up_after_hours),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=retry.initial_seconds),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(seconds=retry.max_interval_seconds),
                non_retryable_error_types=["email_rejected"],
            ),
        )
