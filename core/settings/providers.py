"""The providers: payments (Stripe), email (SendGrid), the CRM (HubSpot) and shipping
(EasyPost). A provider whose key is unset is its local sandbox, outside production.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr

from core.settings.stack import StackSettings

# Signs the Stripe sandbox's webhooks when STRIPE_WEBHOOK_SECRET is unset.
SANDBOX_WEBHOOK_SECRET = "whsec_sandbox_local_development_secret"
# The EasyPost sandbox's API key and webhook secret when EASYPOST_API_KEY /
# EASYPOST_WEBHOOK_SECRET are unset (outside production).
SANDBOX_EASYPOST_API_KEY = "EZTK_sandbox"
SANDBOX_EASYPOST_WEBHOOK_SECRET = "easypost_sandbox_local_development_secret"
# How long SendGrid's Email Activity feed may take to show a message it accepted.
REAL_SENDGRID_ACTIVITY_LAG = timedelta(minutes=5)


class ProviderSettings(StackSettings):
    """Each provider's key, where its SDK sends requests and where its webhooks come."""

    # --- Payments (Stripe) and email (SendGrid); unset means the local sandbox ----------
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    sendgrid_api_key: SecretStr | None = None
    # Where Stripe (or its sandbox) delivers webhooks; default: our own endpoint.
    stripe_webhook_url: str | None = None
    # The SDK's own retries of 409/429/5xx and lost connections (same idempotency key).
    stripe_max_network_retries: int = Field(default=2, ge=0, le=10)
    stripe_timeout_seconds: float = Field(default=20.0, gt=0)
    # The event types our webhook endpoint is subscribed to (a Stripe endpoint's
    # ``enabled_events``; ``["*"]``: all), which the sandbox sends. Not
    # payment_intent.created: nothing waits for it, and it was a third of the webhooks
    # every order made the API send and receive (issue #15).
    stripe_webhook_events: frozenset[str] = frozenset(
        {
            "payment_intent.requires_action",
            "payment_intent.amount_capturable_updated",
            "payment_intent.succeeded",
            "payment_intent.payment_failed",
            "payment_intent.canceled",
            "charge.refunded",
            "refund.failed",
        }
    )

    # --- Email -------------------------------------------------------------------------
    email_from: str = "Shopweave <no-reply@shopweave.example>"
    # Where the SendGrid SDK sends requests; unset means the real service when
    # SENDGRID_API_KEY is set, otherwise the sandbox mounted on our own API.
    sendgrid_base_url: str | None = None
    # SendGrid Marketing: the list customers join at their first order (an automation
    # there can start on list entry); custom fields are created by name on first use.
    sendgrid_customers_list: str = Field(default="customers", min_length=1, max_length=100)
    # How long after a send SendGrid's Email Activity feed can be trusted to show it: a
    # retry whose earlier attempt's answer was lost sends again only after this long
    # (until then it retries later). Unset: 300 s with real SendGrid (the feed lags by
    # minutes), 0 with the sandbox (its feed is immediate unless told to lag).
    email_activity_lag_seconds: float | None = Field(default=None, ge=0)
    email_retry_initial_seconds: float = Field(default=2.0, gt=0)
    email_retry_max_interval_seconds: float = Field(default=60.0, gt=0)

    # --- CRM (HubSpot); unset token means the local sandbox ------------------------------
    hubspot_access_token: SecretStr | None = None
    # Where the HubSpot SDK sends requests; unset means the real service when
    # HUBSPOT_ACCESS_TOKEN is set, otherwise the sandbox mounted on our own API.
    hubspot_base_url: str | None = None
    hubspot_timeout_seconds: float = Field(default=10.0, gt=0)
    # Deal pipeline and the internal ids of the stages an order's deal moves through
    # (HubSpot's default sales pipeline: a placed, paid order is as good as a signed
    # contract; it is won when handed to fulfilment, lost when cancelled).
    hubspot_pipeline: str = "default"
    hubspot_stage_placed: str = "contractsent"
    hubspot_stage_won: str = "closedwon"
    hubspot_stage_lost: str = "closedlost"

    # --- Shipping (EasyPost); unset key means the local sandbox ----------------------------
    easypost_api_key: SecretStr | None = None
    # Verifies EasyPost's webhooks (X-Hmac-Signature); outside production the sandbox's.
    easypost_webhook_secret: SecretStr | None = None
    # Where the EasyPost SDK sends requests; unset means the real service when
    # EASYPOST_API_KEY is set, otherwise the sandbox mounted on our own API.
    easypost_base_url: str | None = None
    # Where the EasyPost sandbox delivers tracker webhooks; default: our own endpoint.
    easypost_webhook_url: str | None = None
    easypost_timeout_seconds: float = Field(default=20.0, gt=0)
    # The warehouse parcels ship from (and returns go back to).
    ship_from_name: str = "Shopweave Warehouse"
    ship_from_street: str = "1 Warehouse Way"
    ship_from_city: str = "Boston"
    ship_from_state: str = "MA"
    ship_from_zip: str = "02118"
    ship_from_country: str = Field(default="US", min_length=2, max_length=2)
    # A parcel without a carrier update for this long is flagged delayed (staff alerted).
    shipment_stall_hours: float = Field(default=72.0, gt=0)
    # Staff are alerted here about delayed parcels and fulfilments put on hold.
    fulfillment_alert_email: str | None = None

    @property
    def resolved_stripe_webhook_url(self) -> str:
        return self.stripe_webhook_url or f"{self.api_base_url}/api/payments/webhooks/stripe"

    @property
    def resolved_stripe_webhook_secret(self) -> str | None:
        """The secret webhooks are signed with: STRIPE_WEBHOOK_SECRET, or the sandbox's
        own while the sandbox is the Stripe in use (no STRIPE_SECRET_KEY) outside
        production. None otherwise: production does not start, and elsewhere webhooks
        answer 503 ``webhook_secret_missing`` (``core.secrets.warn_unverifiable_webhooks``).
        The sandbox's secret is public (it is in this file): with a real Stripe behind us
        it would let anyone sign."""
        if self.stripe_webhook_secret is not None:
            return self.stripe_webhook_secret.get_secret_value()
        sandbox = self.sandboxes_enabled and self.stripe_secret_key is None
        return SANDBOX_WEBHOOK_SECRET if sandbox else None

    @property
    def payments_use_sandbox(self) -> bool:
        return self.stripe_secret_key is None

    @property
    def email_uses_sandbox(self) -> bool:
        return self.sendgrid_api_key is None

    @property
    def resolved_email_activity_lag(self) -> timedelta:
        if self.email_activity_lag_seconds is not None:
            return timedelta(seconds=self.email_activity_lag_seconds)
        return timedelta(0) if self.email_uses_sandbox else REAL_SENDGRID_ACTIVITY_LAG

    @property
    def resolved_sendgrid_base_url(self) -> str:
        if self.sendgrid_base_url:
            return self.sendgrid_base_url.rstrip("/")
        if self.email_uses_sandbox:
            return f"{self.api_base_url}/_sandbox/sendgrid"
        return "https://api.sendgrid.com"

    @property
    def crm_uses_sandbox(self) -> bool:
        return self.hubspot_access_token is None

    @property
    def crm_enabled(self) -> bool:
        """HubSpot is optional: in production without HUBSPOT_ACCESS_TOKEN (its sandbox is
        not mounted there) the CRM subscriber is off (``core.production``)."""
        return self.sandboxes_enabled or not self.crm_uses_sandbox

    @property
    def resolved_hubspot_base_url(self) -> str:
        if self.hubspot_base_url:
            return self.hubspot_base_url.rstrip("/")
        if self.crm_uses_sandbox:
            return f"{self.api_base_url}/_sandbox/hubspot"
        return "https://api.hubapi.com"

    @property
    def shipping_uses_sandbox(self) -> bool:
        return self.easypost_api_key is None

    @property
    def resolved_easypost_base_url(self) -> str:
        if self.easypost_base_url:
            return self.easypost_base_url.rstrip("/")
        if self.shipping_uses_sandbox:
            return f"{self.api_base_url}/_sandbox/easypost/v2"
        return "https://api.easypost.com/v2"

    @property
    def resolved_easypost_api_key(self) -> str:
        if self.easypost_api_key is not None:
            return self.easypost_api_key.get_secret_value()
        return SANDBOX_EASYPOST_API_KEY

    @property
    def resolved_easypost_webhook_url(self) -> str:
        """Where the EasyPost sandbox sends ``tracker.updated``: our own endpoint."""
        return self.easypost_webhook_url or f"{self.api_base_url}/api/shipping/webhooks/easypost"

    @property
    def resolved_easypost_webhook_secret(self) -> str | None:
        """The secret EasyPost webhooks are signed with: EASYPOST_WEBHOOK_SECRET, or the
        sandbox's own while the sandbox is the EasyPost in use (no EASYPOST_API_KEY)
        outside production. None otherwise (the sandbox's secret is public): production
        does not start, and elsewhere webhooks answer 503 ``webhook_secret_missing``."""
        if self.easypost_webhook_secret is not None:
            return self.easypost_webhook_secret.get_secret_value()
        sandbox = self.sandboxes_enabled and self.shipping_uses_sandbox
        return SANDBOX_EASYPOST_WEBHOOK_SECRET if sandbox else None
