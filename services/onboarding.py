"""What happens after registration: the welcome email, through a durable workflow."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings
from models.users import User
from models.workflow_starts import WorkflowStart
from services import workflow_starts
from temporal.queues import TaskQueue
from workflows.onboarding import OnboardingInput, RetrySpec, workflow_id


def request_onboarding(session: AsyncSession, user: User, settings: Settings) -> WorkflowStart:
    """Add the onboarding start to the registration's transaction."""
    return workflow_starts.request(
        session,
        workflow_type="UserOnboardingWorkflow",
        workflow_id=workflow_id(user.id),
        task_queue=str(TaskQueue.NOTIFICATIONS),
        input=OnboardingInput(
            user_id=user.id,
            email=user.email,
            name=user.name,
            email_retry=RetrySpec(
                initial_seconds=settings.email_retry_initial_seconds,
                max_interval_seconds=settings.email_retry_max_interval_seconds,
            ),
        ),
    )
