"""``CartAbandonmentWorkflow``'s input."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

# The workflow's name and its messages' names: recorded in every history, so never renamed.
CART_ABANDONMENT_WORKFLOW = "CartAbandonmentWorkflow"
CART_CHANGED_SIGNAL = "cart_changed"
CART_CLOSED_SIGNAL = "cart_closed"
DEADLINE_QUERY = "deadline"


class AbandonmentInput(BaseModel):
    cart_id: str
    user_id: str
    delay_seconds: float
    # The shopper's address and name, carried by runs started before the reminder read
    # them when it is sent (kept for those inputs and the start relay's owed rows). Now
    # empty: an erased account's address would stay in the run's history (the input of
    # its start, and of a continue-as-new) until the namespace's retention. Sent as ""
    # rather than left out, so that a worker of the release before, which requires
    # them, still takes a run started by this one.
    email: str = ""
    name: str = ""
    # Set when a run continues as new (the shopper changed the cart while its reminder
    # went out): the next reminder's deadline, one delay after that change.
    deadline: datetime | None = None
