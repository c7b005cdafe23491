"""The patches ``OrderWorkflow`` asks (``workflow.patched``), oldest first, and what each
changed. A run started before a patch keeps the code of its day, so that its history
replays (``tests/workflows/test_replay.py``); the ids are part of every recorded history
and never change.
"""

from __future__ import annotations

# Orders started before this patch still email order_failed for a payment failure.
PAYMENT_FAILED_EMAIL_BY_EVENT = "payment-failed-email-by-event"
# Orders started before this patch run their database steps as remote activities and
# upsert every search attribute at every status (six upserts on the happy path).
LOCAL_DATABASE_STEPS = "local-database-steps"
# Orders started before this patch stop undoing where a cancel from Temporal (the UI, the
# CLI) reaches them while they undo: the compensation it interrupts and the ones after
# it never run (a hold not voided, a payment not refunded, the order left open). Since
# this patch the undo, once begun, finishes whatever comes (see ``order_steps.despite_cancel``).
UNDO_FINISHES = "undo-finishes-when-cancelled"
# Orders started before this patch authorise and capture even a total of 0, which Stripe
# refuses (a PaymentIntent needs an amount of at least 1): a free order (a 100 % coupon
# with free shipping) failed at process-payment. Since it, an order priced at 0 skips
# the payment steps and their compensation: nothing is charged, nothing to give back.
FREE_ORDERS_UNCHARGED = "free-orders-uncharged"
# Since this patch the two above are not asked: it came after them, so a run that has it
# takes their new code. They were first asked after a local step (the stock step's
# result, a local step's failure), and a local step's result that comes while the worker
# answers a query is recorded one workflow task before what the workflow does with it: a
# replay (a query of the closed order, a worker taking the order up after its cache
# dropped it) asked the patch before it knew of its marker, answered False and failed
# ("Non-deprecated patch marker encountered"). This one is asked in the first task.
PATCHES_DECIDED_AT_START = "order-patches-decided-at-start"
# Orders started before this patch go on from an authenticated 3-D Secure to the sale
# without looking at the stock: a hold that lapsed meanwhile (expired before the wait
# extended it, e.g. authorise retried past the TTL) failed the order at update-inventory
# (reservation_lapsed), the customer authenticated, the hold voided. Since it, the stock
# is held again when the authentication arrives; only if it is gone does the order fail
# (out_of_stock, the hold voided).
STOCK_HELD_AGAIN_AFTER_3DS = "stock-held-again-after-3ds"
# Orders started before this patch go on from an authorise that succeeded after the
# stock's hold lapsed (Stripe down longer than RESERVATION_TTL_SECONDS, authorise retried
# meanwhile) to update-inventory, which failed the order (reservation_lapsed, the hold
# voided) though the card was authorised. Since it, an authorise that ends once half the
# TTL has passed since the hold (the hold's clock is the database's, the workflow's the
# Temporal server's: half leaves room for any skew) is followed by hold-stock-again, as
# after 3-D Secure. Asked after the authorise's (remote) result, only then.
STOCK_HELD_AGAIN_AFTER_AUTHORISE = "stock-held-again-after-authorise"
# Orders started before this patch give process-payment the step's own budget (three
# attempts, each with the Stripe SDK's retries: about 8 s against a Stripe answering 5xx)
# and fail ``payment_unavailable`` past it: a 20-second Stripe outage lost orders whose
# stock was held for 15 minutes. Since it, process-payment is tried again, round after
# round, for ``OrderInput.authorize_timeout_seconds`` while the provider is unreachable
# (``payment_unavailable``: 5xx answers, lost connections, Stripe calls that timed out),
# the customer's cancel heard at once meanwhile. Asked in the run's first workflow task.
AUTHORISE_WAITS_OUT_OUTAGES = "authorise-waits-out-outages"
