"""What a failed payment means to the customer: one sentence on what failed, one on how
to try again.

The order's ``failureCode`` says which step failed (``payment_declined``, …); a card
decline also carries the provider's decline code (``insufficient_funds``, …) as the
event's ``reason``, which is the more precise of the two when we know it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FailureExplanation:
    what_failed: str
    how_to_retry: str


_ANOTHER_CARD = "Use another card, or ask your bank why it declined, then check out again."
_LATER = (
    "This was not a problem with your card: please check out again in a few minutes "
    "with the same card."
)
_THREE_DS = (
    "Check out again and complete the 3-D Secure step when your bank asks for it "
    "(in its app or on the page it opens)."
)

# Stripe's decline codes (``last_payment_error.decline_code`` / ``code``).
DECLINES: dict[str, FailureExplanation] = {
    "insufficient_funds": FailureExplanation(
        "Your card was declined because of insufficient funds.",
        "Use another card, or make sure the card has enough funds, then check out again.",
    ),
    "expired_card": FailureExplanation(
        "Your card has expired.",
        "Use a card that is still valid, then check out again.",
    ),
    "incorrect_cvc": FailureExplanation(
        "The card's security code (CVC) was not correct.",
        "Check the card's details and check out again.",
    ),
    "incorrect_number": FailureExplanation(
        "The card number was not correct.",
        "Check the card's details and check out again.",
    ),
    "authentication_required": FailureExplanation(
        "Your bank asked for 3-D Secure authentication, and it was not completed.",
        _THREE_DS,
    ),
    "processing_error": FailureExplanation(
        "An error occurred while your card was being processed.", _LATER
    ),
    "generic_decline": FailureExplanation("Your bank declined the payment.", _ANOTHER_CARD),
    "card_declined": FailureExplanation("Your bank declined the payment.", _ANOTHER_CARD),
    "do_not_honor": FailureExplanation("Your bank declined the payment.", _ANOTHER_CARD),
    # Deliberately vague, as the card networks ask: a customer is not told "stolen".
    "lost_card": FailureExplanation("Your bank declined the payment.", _ANOTHER_CARD),
    "stolen_card": FailureExplanation("Your bank declined the payment.", _ANOTHER_CARD),
}

# Our failure codes (``models.orders.PAYMENT_FAILURES``).
FAILURES: dict[str, FailureExplanation] = {
    "payment_declined": FailureExplanation("Your bank declined the payment.", _ANOTHER_CARD),
    "payment_action_timeout": FailureExplanation(
        "The 3-D Secure check (your bank's confirmation step) was not completed in time.",
        _THREE_DS,
    ),
    "invalid_payment_method": FailureExplanation(
        "The payment method could not be used for this order.",
        "Check out again with another card.",
    ),
    "payment_unavailable": FailureExplanation(
        "Our payment provider could not be reached, so no payment was taken.", _LATER
    ),
    "payment_error": FailureExplanation(
        "Our payment provider could not process the payment.", _LATER
    ),
}

UNKNOWN = FailureExplanation("The payment could not be completed.", _ANOTHER_CARD)


def explain(failure_code: str | None, reason: str | None) -> FailureExplanation:
    """The decline code's explanation if ``reason`` is one we know, else the failure
    code's, else a general one."""
    if reason and reason in DECLINES:
        return DECLINES[reason]
    return FAILURES.get(failure_code or "", UNKNOWN)
