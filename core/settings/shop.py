"""The shop's own rules: accounts and sign-in, inventory, carts, returns and the order
pipeline (its steps, its waits and its live streams).
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from core.settings.stack import StackSettings

# ``models.returns.ReturnReason``'s values (a test keeps the two the same).
RETURN_REASONS = ("damaged", "wrong_item", "not_as_described", "no_longer_needed", "other")


class ShopSettings(StackSettings):
    """What a shopper and staff meet: limits, prices' extras, windows and timeouts."""

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

    # --- Inventory -----------------------------------------------------------------------
    # How long a checkout may hold stock before the sweeper gives it back.
    reservation_ttl_seconds: int = Field(default=15 * 60, ge=10)
    # Who gets the low-stock alert emails (the seed writes to inventory@company.com), and
    # those of units not put back on the stock.
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

    # --- Returns -------------------------------------------------------------------------
    # Customers may ask for a return this long after the line's delivery.
    return_window_days: int = Field(default=30, ge=0)
    # An approved return not received within this long is cancelled.
    return_ship_by_days: int = Field(default=14, ge=1)
    # Reasons approved without staff (comma-separated, e.g. "damaged,wrong_item"); each
    # must be one of RETURN_REASONS (an unknown name is refused at start-up).
    return_auto_approve_reasons: str = ""

    # --- Order pipeline defaults (the seed: retryAttempts 3, timeout 30 s) -------------
    order_step_max_attempts: int = Field(default=3, ge=1)
    order_step_timeout_seconds: float = Field(default=30.0, gt=0)
    # A step's worker is taken for dead after this long without a heartbeat; the attempt
    # is then retried elsewhere without counting toward the attempts above.
    order_step_heartbeat_seconds: float = Field(default=5.0, gt=0)
    # How long an order waits for the customer to finish 3-D Secure (the stock stays held).
    payment_action_timeout_seconds: float = Field(default=15 * 60.0, gt=0)
    # How long process-payment keeps trying while the payment provider is unreachable
    # (5xx answers, lost connections, timeouts), the stock held meanwhile; unset, a third
    # of RESERVATION_TTL_SECONDS (300 s). At most half of it (refused at start-up): from
    # half the TTL on, the hold may have lapsed (see ``authorize_budget_seconds``).
    payment_authorize_timeout_seconds: float | None = Field(default=None, gt=0)
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
    # A stream ticket (POST /api/events/stream-tickets, for a browser's EventSource) must
    # open its stream this soon after it is issued; its stream's reconnects then use it
    # for as long as the access token that asked for it lives.
    stream_ticket_ttl_seconds: float = Field(default=60.0, gt=0, le=600)

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

    @property
    def authorize_budget_seconds(self) -> float:
        """PAYMENT_AUTHORIZE_TIMEOUT_SECONDS, or a third of the reservation's TTL. A third
        leaves the last round of attempts (begun before the budget ran out) time to end
        before half the TTL, where the workflow starts to doubt the hold (and holds the
        stock again, ``stock-held-again-after-authorise``)."""
        if self.payment_authorize_timeout_seconds is not None:
            return self.payment_authorize_timeout_seconds
        return self.reservation_ttl_seconds / 3

    @model_validator(mode="after")
    def _authorize_budget_within_the_hold(self) -> Self:
        budget = self.payment_authorize_timeout_seconds
        if budget is not None and budget > self.reservation_ttl_seconds / 2:
            raise ValueError(
                f"PAYMENT_AUTHORIZE_TIMEOUT_SECONDS ({budget:g}) must be at most half of "
                f"RESERVATION_TTL_SECONDS ({self.reservation_ttl_seconds}): an order that "
                "waits longer for the payment provider may lose its stock's hold meanwhile"
            )
        return self

    @model_validator(mode="after")
    def _production_hash_cost(self) -> Self:
        if self.shop_env == "production" and (
            self.password_hash_memory_kib < 19_456 or self.password_hash_time_cost < 2
        ):
            raise ValueError(
                "in production PASSWORD_HASH_MEMORY_KIB must be at least 19456 and "
                "PASSWORD_HASH_TIME_COST at least 2 (OWASP's argon2id floor)"
            )
        return self
