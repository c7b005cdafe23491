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
    # The account's address and name, carried by runs started before the welcome read
    # them when it is sent (kept for those inputs and the start relay's owed rows). Now
    # empty: an erased account's address would stay in the run's history (its start's
    # input) until the namespace's retention. Sent as "" rather than left out, so that
    # a worker of the release before, which requires them, still takes a run started
    # by this one.
    email: str = ""
    name: str = ""
    email_retry: RetrySpec = RetrySpec()
