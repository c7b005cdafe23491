"""What happens after registration: the welcome email, through a durable workflow."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings
from models.users import User
from models.workflow_starts import WorkflowStart
from temporal.clients.onboarding import OnboardingWorkflows
from workflows.types.onboarding import OnboardingInput, RetrySpec


def request_onboarding(session: AsyncSession, user: User, settings: Settings) -> WorkflowStart:
    """Add the onboarding start to the registration's transaction: the account's id, not
    its address or name (the welcome reads them when it is sent)."""
    return OnboardingWorkflows.request_start(
        session,
        OnboardingInput(
            user_id=user.id,
            email_retry=RetrySpec(
                initial_seconds=settings.email_retry_initial_seconds,
                max_interval_seconds=settings.email_retry_max_interval_seconds,
            ),
        ),
    )
