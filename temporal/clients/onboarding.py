"""``OnboardingWorkflows``: the welcome workflow's id scheme, queue and start."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from models.workflow_starts import WorkflowStart
from services import workflow_starts
from temporal.queues import TaskQueue
from workflows.types.onboarding import USER_ONBOARDING_WORKFLOW, OnboardingInput


def workflow_id(user_id: str) -> str:
    return f"user-onboarding-{user_id}"


class OnboardingWorkflows:
    """Nothing talks to a running onboarding workflow: it is only started."""

    @staticmethod
    def request_start(session: AsyncSession, input: OnboardingInput) -> WorkflowStart:
        """Record the start in the registration's transaction."""
        return workflow_starts.request(
            session,
            workflow_type=USER_ONBOARDING_WORKFLOW,
            workflow_id=workflow_id(input.user_id),
            task_queue=str(TaskQueue.NOTIFICATIONS),
            input=input,
        )
