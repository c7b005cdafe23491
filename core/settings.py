"""The one place configuration is read (STYLE rule 5).

Precedence, highest first: real environment variables, then ``DATA_DIR/stack.env``
(written by ``shop dev`` so a second terminal finds the running stack), then defaults.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STACK_ENV_FILE = "stack.env"


# Signs the Stripe sandbox's webhooks when STRIPE_WEBHOOK_SECRET is unset.
SANDBOX_WEBHOOK_SECRET = "whsec_sandbox_local_development_secret"
# The EasyPost sandbox's API key and webhook secret when EASYPOST_API_KEY /
# EASYPOST_WEBHOOK_SECRET are unset (outside production).
SANDBOX_EASYPOST_API_KEY = "EZTK_sandbox"
SANDBOX_EASYPOST_WEBHOOK_SECRET = "easypost_sandbox_local_development_secret"
# How long SendGrid's Email Activity feed may take to show a message it accepted.
REAL_SENDGRID_ACTIVITY_LAG = timedelta(minutes=5)
# ``models.returns.ReturnReason``'s values (a test keeps the two the same).
RETURN_REASONS = ("damaged", "wrong_item", "not_as_described", "no_longer_needed", "other")


class Settings(BaseSettings):
    """Every knob Shopweave has, named after its environment variable."""

    model_config = SettingsConfigDict(
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `KEY=` is unset, not an empty key: docker-compose's `${HUBSPOT_ACCESS_TOKEN:-}`
        # must leave the provider's sandbox in place, not call HubSpot with no token.
        env_ignore_empty=True,
    )

    # --- where the local stack keeps its data -------------------------------------
    shop_data_dir: Path = Field(default=Path(".shop"), description="Data dir of `shop dev`.")
    shop_api_port: int = Field(default=3001, ge=1, le=65535)
    shop_api_host: str = "127.0.0.1"
    # API processes: Python serves one core per process; more use more cores.
    shop_api_workers: int = Field(default=1, ge=1, le=64)
    # Worker processes a running `shop dev` started (it records them in stack.env).
    shop_dev_workers: int = Field(default=0, ge=0)
    shop_env: Literal["development", "test", "production"] = "development"
    # Largest request body the API reads (bytes); larger ones answer 413 unread.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Set by `shop api --workers N` for the processes it starts (prometheus_client's own
    # variable): each writes its metrics there, and any one's /metrics sums them all.
    prometheus_multiproc_dir: Path | None = None

    # --- PostgreSQL: DATABASE_URL, or the seed's DB_HOST/DB_PORT/DB_NAME --------------
    database_url: str | None = None
    db_host: str | None = None
    db_port: int = 5432
    db_name: str = "ecommerce"
    db_user: str = "postgres"
    db_password: SecretStr | None = None
    # Per process. An API process under 32 keep-alive clients (two processes) has 16
    # reads in flight: the pool keeps that many, rather than opening and closing an
    # overflow connection (a TLS attempt, a login, a cold statement cache) per request.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_echo: bool = False

    # --- The embedded PostgreSQL of `shop dev` (not read with DATABASE_URL or DB_HOST) ---
    # Unset, sized to the machine (its memory, or its cgroup's limit if lower) as a
    # production server would be: shared_buffers an eighth of memory (128 MB to 2 GB),
    # effective_cache_size half of it; random_page_cost for an SSD. The test suite's
    # servers keep PostgreSQL's own defaults (three run side by side).
    postgres_shared_buffers_mb: int | None = Field(default=None, ge=16, le=65_536)
    postgres_effective_cache_size_mb: int | None = Field(default=None, ge=64)
    postgres_random_page_cost: float = Field(default=1.1, gt=0, le=1000)

    # --- Redis -------------------------------------------------------------------------
    redis_url: str | None = None

    # --- Temporal ----------------------------------------------------------------------
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    temporal_tls: bool = False
    temporal_ui_url: str | None = None
    # How long a workflow task may run without yielding before the SDK calls it
    # deadlocked and interrupts the workflow's thread (temporal/deadlock.py): the SDK's 2 s;
    # raise it where workers share a starved CPU.
    workflow_deadlock_timeout_seconds: int = Field(default=2, ge=1, le=600)

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

    # --- Accounts and authentication ---------------------------------------------------
    # Signs access tokens. Required in production; in development and tests a random
    # secret is kept in DATA_DIR/jwt-secret (see core/secrets.py).
    jwt_secret: SecretStr | None = None
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=30)
    refresh_token_ttl_days: int = Field(default=30, ge=1)
    # NIST SP 800-63B-4: at least 15 characters for a password used as a single factor.
    password_min_length: int = Field(default=15, ge=8, le=64)
    # argon2id cost of new password hashes (argon2-cffi's defaults, RFC 9106's low-memory
    # profile). Production refuses less than OWASP's floor (19 MiB, 2 passes); the test
    # suite uses a cheap cost, since it registers hundreds of accounts.
    password_hash_time_cost: int = Field(default=3, ge=1, le=20)
    password_hash_memory_kib: int = Field(default=65536, ge=1024, le=4_194_304)
    password_hash_parallelism: int = Field(default=4, ge=1, le=16)
    login_max_failures_per_email: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=20, ge=1)
    login_throttle_window_seconds: int = Field(default=15 * 60, ge=1)

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
    # The base URL people and providers reach the API at (links in emails, sandbox).
    public_base_url: str | None = None

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

    # --- Returns -------------------------------------------------------------------------
    # Customers may ask for a return this long after the line's delivery.
    return_window_days: int = Field(default=30, ge=0)
    # An approved return not received within this long is cancelled.
    return_ship_by_days: int = Field(default=14, ge=1)
    # Reasons approved without staff (comma-separated, e.g. "damaged,wrong_item"); each
    # must be one of RETURN_REASONS (an unknown name is refused at start-up).
    return_auto_approve_reasons: str = ""

    # --- Analytics and logging --------------------------------------------------------
    analytics_enabled: bool = True
    # POST /api/analytics/track: events a caller may send per window (a batch counts each
    # of its events); guests are counted per anonymous id and, more loosely, per address.
    analytics_rate_limit: int = Field(default=600, ge=1)
    analytics_rate_limit_per_ip: int = Field(default=6000, ge=1)
    analytics_rate_window_seconds: int = Field(default=60, ge=1)
    # The API's batch writer: rows buffered in the process and written off the request
    # path, one multi-row INSERT per batch, at least every interval.
    analytics_batch_rows: int = Field(default=500, ge=1, le=2000)
    analytics_flush_interval_ms: int = Field(default=250, ge=10)
    # Buffer bound: when it is full, requests wait for a write instead of dropping events.
    analytics_buffer_rows: int = Field(default=10_000, ge=100)
    # A write slower than this is abandoned and retried (backing off up to 5 s).
    analytics_write_timeout_seconds: float = Field(default=5.0, gt=0)
    # At a clean stop, how long the last writes keep retrying before giving up.
    analytics_shutdown_flush_seconds: float = Field(default=30.0, gt=0)
    # Dashboards an API process keeps until the rollups' watermark moves; 0 keeps none.
    analytics_dashboard_cache_entries: int = Field(default=32, ge=0, le=1000)
    # Connections one funnel reads on side by side, each for a share of the people (1: one
    # statement); default the machine's cores, at most 4.
    analytics_parallelism: int = Field(
        default_factory=lambda: min(os.cpu_count() or 1, 4), ge=1, le=16
    )
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"

    # --- Tracing: OpenTelemetry's standard variables (core/telemetry.py) ---------------
    # True: no spans and nothing sent to Temporal; the API still makes a trace id per
    # request for its log lines and problems.
    otel_sdk_disabled: bool = False
    # Unset: by process role, `shopweave-api`, `shopweave-worker` or `shopweave-cli`.
    otel_service_name: str | None = None
    # Unset: `otlp` when an OTLP endpoint is set, else `none` (ids made, nothing sent).
    otel_traces_exporter: Literal["otlp", "none"] | None = None
    otel_exporter_otlp_endpoint: str | None = None  # the base; `/v1/traces` is added
    otel_exporter_otlp_traces_endpoint: str | None = None  # the full URL, as given
    otel_exporter_otlp_protocol: Literal["http/protobuf"] = "http/protobuf"
    otel_traces_sampler: Literal[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ] = "parentbased_always_on"
    otel_traces_sampler_arg: float = Field(default=1.0, ge=0, le=1)
    # `key=value,key2=value2` (values percent-encoded), e.g. `deployment.environment=prod`.
    otel_resource_attributes: str | None = None

    # --- Inventory -----------------------------------------------------------------------
    # How long a checkout may hold stock before the sweeper gives it back.
    reservation_ttl_seconds: int = Field(default=15 * 60, ge=10)
    # Who gets the low-stock alert emails (the seed writes to inventory@company.com).
    inventory_alert_email: str = Field(
        default="inventory@shopweave.example", min_length=3, max_length=320, pattern=r"^\S+@\S+$"
    )

    # --- Carts -----------------------------------------------------------------------
    cart_max_line_quantity: int = Field(default=99, ge=1)
    cart_max_lines: int = Field(default=100, ge=1)
    shipping_flat_rate: int = Field(default=599, ge=0, description="Minor units")
    shipping_free_threshold: int | None = Field(default=5000, ge=0)
    # Tax rates in basis points by "COUNTRY" or "COUNTRY-STATE" (the more specific wins),
    # e.g. TAX_RATES='{"US-MA": 625, "US-CA": 725, "GB": 2000, "DE": 1900}'.
    tax_rates: dict[str, int] = Field(
        default_factory=lambda: {"US-MA": 625, "US-CA": 725, "GB": 2000, "DE": 1900, "FR": 2000}
    )
    default_tax_country: str = "US"
    default_tax_state: str | None = "MA"
    # One reminder email when a signed-in shopper's cart sits untouched this long.
    cart_abandonment_enabled: bool = True
    cart_abandonment_delay_hours: float = Field(default=24.0, gt=0)

    # --- Events -------------------------------------------------------------------------
    # Delivered outbox rows (with their deliveries and receipts) are pruned after this
    # many days by the `outbox-prune` schedule; undelivered ones and dead letters stay.
    outbox_retention_days: int = Field(default=7, ge=1)

    # --- catalogue search: the in-process tantivy index ------------------------------
    # False: searches use PostgreSQL full-text search only, and no index is kept.
    search_index: bool = True
    # Where the index lives (default DATA_DIR/search-index); one writer (the worker),
    # every API process a reader.
    search_index_dir: Path | None = None

    # --- Order pipeline defaults (the seed: retryAttempts 3, timeout 30 s) -------------
    order_step_max_attempts: int = Field(default=3, ge=1)
    order_step_timeout_seconds: float = Field(default=30.0, gt=0)
    # A step's worker is taken for dead after this long without a heartbeat; the attempt
    # is then retried elsewhere without counting toward the attempts above.
    order_step_heartbeat_seconds: float = Field(default=5.0, gt=0)
    # How long an order waits for the customer to finish 3-D Secure (the stock stays held).
    payment_action_timeout_seconds: float = Field(default=15 * 60.0, gt=0)
    # GET /api/orders/{id} with `Prefer: wait=N` waits at most this long (larger N is
    # clamped): under common proxies' idle timeouts.
    order_wait_max_seconds: float = Field(default=30.0, gt=0, le=300)
    # GET /api/orders/{id}/events sends a comment line this often while nothing happens,
    # so that proxies and clients see a live connection.
    order_stream_ping_seconds: float = Field(default=15.0, gt=0)
    # A live stream (/api/events/stream, an order's events) ends when the access token it
    # was opened with expires; whether that token was revoked (sign-out, password change,
    # account deleted) is asked this often while it stays open.
    stream_token_check_seconds: float = Field(default=15.0, gt=0)
    # At most this many live streams open per user, across API processes (Redis): one
    # more is 429 too_many_streams. A stream's slot counts until it ends, or (its process
    # died) this long after its last renewal (renewed every third of it).
    stream_max_per_user: int = Field(default=10, ge=1)
    stream_slot_ttl_seconds: float = Field(default=60.0, gt=0)

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

    @field_validator("return_auto_approve_reasons")
    @classmethod
    def _known_return_reasons(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        if unknown := sorted(set(names) - set(RETURN_REASONS)):
            raise ValueError(
                f"unknown return reason(s) {', '.join(unknown)}; known: {', '.join(RETURN_REASONS)}"
            )
        return ",".join(names)

    @property
    def auto_approve_reasons(self) -> frozenset[str]:
        """RETURN_AUTO_APPROVE_REASONS as a set of ``ReturnReason`` values."""
        return frozenset(n for n in self.return_auto_approve_reasons.split(",") if n)

    @model_validator(mode="after")
    def _production_hash_cost(self) -> Settings:
        if self.shop_env == "production" and (
            self.password_hash_memory_kib < 19_456 or self.password_hash_time_cost < 2
        ):
            raise ValueError(
                "in production PASSWORD_HASH_MEMORY_KIB must be at least 19456 and "
                "PASSWORD_HASH_TIME_COST at least 2 (OWASP's argon2id floor)"
            )
        return self

    @model_validator(mode="after")
    def _grace_outlasts_the_poll(self) -> Settings:
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
    def _failed_webhooks_kept_longer(self) -> Settings:
        # Operators look at failures after the fact, and retry them: a dead letter is
        # never gone before a delivered delivery of the same age.
        if self.webhook_failed_delivery_retention_days < self.webhook_delivery_retention_days:
            raise ValueError(
                "WEBHOOK_FAILED_DELIVERY_RETENTION_DAYS must be at least "
                "WEBHOOK_DELIVERY_RETENTION_DAYS (failed deliveries are kept longer)"
            )
        return self

    @property
    def resolved_database_url(self) -> str | None:
        """DATABASE_URL if set, else one built from DB_HOST/DB_PORT/DB_NAME, else None."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        if self.db_host:
            password = self.db_password.get_secret_value() if self.db_password else ""
            auth = quote(self.db_user, safe="")
            if password:
                auth += ":" + quote(password, safe="")
            return (
                f"postgresql+asyncpg://{auth}@{self.db_host}:{self.db_port}/"
                f"{quote(self.db_name, safe='')}"
            )
        return None

    @property
    def search_index_path(self) -> Path:
        return self.search_index_dir or self.shop_data_dir / "search-index"

    @property
    def stack_env_path(self) -> Path:
        return self.shop_data_dir / STACK_ENV_FILE

    @property
    def api_base_url(self) -> str:
        """Where this deployment's API answers, without a trailing slash."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://127.0.0.1:{self.shop_api_port}"

    @property
    def sandboxes_enabled(self) -> bool:
        """The Stripe/SendGrid sandboxes and the mailbox exist outside production only."""
        return self.shop_env != "production"

    @property
    def webhook_private_addresses_allowed(self) -> bool:
        """WEBHOOK_ALLOW_PRIVATE_ADDRESSES, or (unset) whether this is not production."""
        if self.webhook_allow_private_addresses is not None:
            return self.webhook_allow_private_addresses
        return self.shop_env != "production"

    @property
    def resolved_stripe_webhook_url(self) -> str:
        return self.stripe_webhook_url or f"{self.api_base_url}/api/payments/webhooks/stripe"

    @property
    def resolved_stripe_webhook_secret(self) -> str | None:
        """The secret webhooks are signed with: STRIPE_WEBHOOK_SECRET, or the sandbox's
        own while the sandbox is the Stripe in use (no STRIPE_SECRET_KEY) outside
        production. None otherwise: webhooks are refused. The sandbox's secret is public
        (it is in this file): with a real Stripe behind us it would let anyone sign."""
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
        outside production. None otherwise: refused (the sandbox's secret is public)."""
        if self.easypost_webhook_secret is not None:
            return self.easypost_webhook_secret.get_secret_value()
        sandbox = self.sandboxes_enabled and self.shipping_uses_sandbox
        return SANDBOX_EASYPOST_WEBHOOK_SECRET if sandbox else None


def normalize_database_url(url: str) -> str:
    """Accept the usual ``postgres://`` spellings and always drive them with asyncpg."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Build settings, reading ``DATA_DIR/stack.env`` of a running `shop dev` if there is one.

    ``data_dir`` (the CLI's ``--data-dir``) wins over ``SHOP_DATA_DIR``.
    """
    kwargs: dict[str, Any] = dict(overrides)
    if data_dir is not None:
        kwargs["shop_data_dir"] = data_dir
    stack_env = Settings(**kwargs).stack_env_path
    if stack_env.is_file():
        kwargs["_env_file"] = stack_env
    return Settings(**kwargs)
