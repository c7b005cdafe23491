"""``UserOnboardingWorkflow``: the welcome email, sent once, retried until it goes."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities, SendEmailInput, SendEmailResult


class RetrySpec(BaseModel):
    """Retry timing, decided by the starter from settings (workflows read no config)."""

    initial_seconds: float = 2.0
    max_interval_seconds: float = 60.0
    # A welcome email a day late is still worth sending; later than that it is not.
    give_up_after_hours: float = 24.0


class OnboardingInput(BaseModel):
    user_id: str
    email: str
    name: str
    email_retry: RetrySpec = RetrySpec()


def workflow_id(user_id: str) -> str:
    return f"user-onboarding-{user_id}"


@workflow.defn(name="UserOnboardingWorkflow")
class UserOnboardingWorkflow:
    @workflow.run
    async def run(self, input: OnboardingInput) -> SendEmailResult:
        retry = input.email_retry
        return await workflow.execute_activity_method(
            EmailActivities.send_email,
            SendEmailInput(
                idempotency_key=f"welcome:{input.user_id}",
                template="welcome",
                to=input.email,
                context={"name": input.name, "email": input.email},
            ),
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(hours=retry.give_up_after_hours),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=retry.initial_seconds),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(seconds=retry.max_interval_seconds),
                non_retryable_error_types=["email_rejected"],
            ),
        )
