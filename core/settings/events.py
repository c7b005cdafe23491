"""Events: the outbox kept, delivered to subscribers by the relay, and sent to outgoing
webhooks (``/api/admin/webhooks``).
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from core.settings.stack import StackSettings


class EventSettings(StackSettings):
    """How events are kept, retried, given up on and sent out."""

    # --- Events -------------------------------------------------------------------------
    # Delivered outbox rows (with their deliveries and receipts) are pruned after this
    # many days by the `outbox-prune` schedule; undelivered ones and dead letters stay.
    outbox_retention_days: int = Field(default=7, ge=1)
    # Workflow starts (`workflow_starts`, each with its workflow's input) are pruned by
    # the same schedule this many days after they started; one still owed (pending, or
    # failing and retried by the relay) never is.
    workflow_start_retention_days: int = Field(default=30, ge=1)

    # --- Events: delivering the outbox to subscribers ----------------------------------
    # A failing handler is retried with exponential backoff from the initial interval up
    # to the maximum; after EVENT_MAX_ATTEMPTS failures of its own it is a dead letter.
    event_retry_initial_seconds: float = Field(default=1.0, gt=0)
    event_retry_max_interval_seconds: float = Field(default=300.0, gt=0)
    event_max_attempts: int = Field(default=10, ge=1)
    # One handler attempt may take this long. Attempts run as local activities: one lost
    # with its worker is noticed when the workflow task times out (10 s) and runs again
    # elsewhere, uncounted.
    event_handler_timeout_seconds: float = Field(default=60.0, gt=0)
    # The relay wakes on every outbox commit (LISTEN/NOTIFY); this slow poll is the
    # safety net for a lost notification.
    event_relay_poll_seconds: float = Field(default=5.0, gt=0)
    # A delivery started this long ago whose workflow no longer runs (terminated by an
    # operator) is started afresh by the relay.
    event_restart_after_seconds: float = Field(default=300.0, gt=0)
    # Workers of several versions run side by side (a rolling deploy): each relay writes
    # the subscribers (and their event types) of its code at least every
    # EVENT_RELAY_POLL_SECONDS. A pending delivery whose subscriber no worker has known
    # for this long is dropped (it was taken out of the code); until then it waits for a
    # worker that knows it. At least three polls: a live worker is never taken for gone.
    event_subscriber_grace_seconds: float = Field(default=600.0, gt=0)
    # A (subscriber, event type) pair no worker has known for this long is deleted from
    # event_subscriptions by the next relay pass (the workers of a release long gone, a
    # subscriber taken out of the code). At least twice the grace: a pair unknown for the
    # grace already counts as unknown, so forgetting it later changes no drop.
    event_subscription_retention_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)

    # --- Outgoing webhooks (/api/admin/webhooks) ---------------------------------------
    # Each (event, endpoint) delivery: a 5xx, 408, 429, timeout or connection error is
    # retried with exponential backoff from the initial interval up to the maximum; after
    # WEBHOOK_MAX_ATTEMPTS attempts it is failed (visible, retryable by an operator).
    webhook_retry_initial_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_interval_seconds: float = Field(default=600.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    # How long one request may take in all, the DNS lookup to the answer's status.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # An endpoint whose deliveries failed WEBHOOK_DISABLE_AFTER_FAILURES times in a row
    # (each after all its attempts), the first of them at least WEBHOOK_DISABLE_AFTER_SECONDS
    # ago, is disabled and staff are emailed (WEBHOOK_ALERT_EMAIL). Svix and Stripe give
    # a failing endpoint days (Svix five) before disabling it: so do we.
    webhook_disable_after_failures: int = Field(default=10, ge=1)
    webhook_disable_after_seconds: float = Field(default=5 * 24 * 3600.0, ge=0)
    # Finished deliveries (with their attempts) are pruned by the `outbox-prune` schedule:
    # delivered ones this many days after delivery, failed ones (dead letters, which staff
    # read and retry) after the longer WEBHOOK_FAILED_DELIVERY_RETENTION_DAYS; a pending
    # one (being sent or retried) never. Skipped ones go with OUTBOX_RETENTION_DAYS.
    webhook_delivery_retention_days: int = Field(default=30, ge=1)
    webhook_failed_delivery_retention_days: int = Field(default=90, ge=1)
    # Who is told that an endpoint was disabled; default INVENTORY_ALERT_EMAIL.
    webhook_alert_email: str | None = None
    # Endpoints may be (or resolve to) private, loopback, link-local, multicast or
    # reserved addresses: unset, true outside production (dev and test receivers listen
    # on 127.0.0.1) and false in production (SSRF: a webhook url must not reach inside).
    webhook_allow_private_addresses: bool | None = None

    @model_validator(mode="after")
    def _grace_outlasts_the_poll(self) -> Self:
        # A live relay writes what it knows at least every poll (and its pass may take a
        # while): a grace of fewer polls could take a live worker's subscriber for gone.
        if self.event_subscriber_grace_seconds < 3 * self.event_relay_poll_seconds:
            raise ValueError(
                "EVENT_SUBSCRIBER_GRACE_SECONDS must be at least three "
                "EVENT_RELAY_POLL_SECONDS (a live worker's subscribers are never dropped)"
            )
        if self.event_subscription_retention_seconds < 2 * self.event_subscriber_grace_seconds:
            raise ValueError(
                "EVENT_SUBSCRIPTION_RETENTION_SECONDS must be at least twice "
                "EVENT_SUBSCRIBER_GRACE_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _failed_webhooks_kept_longer(self) -> Self:
        # Operators look at failures after the fact, and retry them: a dead letter is
        # never gone before a delivered delivery of the same age.
        if self.webhook_failed_delivery_retention_days < self.webhook_delivery_retention_days:
            raise ValueError(
                "WEBHOOK_FAILED_DELIVERY_RETENTION_DAYS must be at least "
                "WEBHOOK_DELIVERY_RETENTION_DAYS (failed deliveries are kept longer)"
            )
        return self

    @property
    def webhook_private_addresses_allowed(self) -> bool:
        """WEBHOOK_ALLOW_PRIVATE_ADDRESSES, or (unset) whether this is not production."""
        if self.webhook_allow_private_addresses is not None:
            return self.webhook_allow_private_addresses
        return self.shop_env != "production"
