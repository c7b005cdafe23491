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
    email: str
    name: str
    delay_seconds: float
    # Set when a run continues as new (the shopper changed the cart while its reminder
    # went out): the next reminder's deadline, one delay after that change.
    deadline: datetime | None = None
