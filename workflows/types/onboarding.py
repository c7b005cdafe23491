"""``UserOnboardingWorkflow``'s input."""

from __future__ import annotations

from pydantic import BaseModel

# Recorded in every history, so never renamed.
USER_ONBOARDING_WORKFLOW = "UserOnboardingWorkflow"


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
