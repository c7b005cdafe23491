"""What ``SHOP_ENV=production`` requires of the configuration, checked before any traffic.

Outside production a setting left unset is the embedded server or the provider's local
sandbox. In production neither exists (the sandboxes are not mounted), so a key left
unset would send real customers' payments, emails and labels to a path that answers
404, and a missing server would surface as a 503 at the first request. ``shop api`` and
``shop worker`` (and the API's start-up, ``api.state.AppState``) ask
``check_production`` first: every missing or invalid setting the process needs is named
at once, one line each, with what to do, and the process does not start.

``REQUIREMENTS`` is the one list: docker-compose.yml passes every variable in it
(``tests/deploy/test_compose.py``), and the README's *Production* section names them.
HubSpot is optional: without ``HUBSPOT_ACCESS_TOKEN`` the CRM subscriber is off
(``Settings.crm_enabled``), said once as a worker starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

from pydantic import SecretStr

from core.errors import DependencyUnavailable
from core.secrets import JWT_SECRET_MIN_LENGTH
from core.settings import Settings
from core.telemetry import ProcessRole

log = logging.getLogger(__name__)

API = frozenset({ProcessRole.API})
WORKER = frozenset({ProcessRole.WORKER})
BOTH = API | WORKER


@dataclass(frozen=True)
class Requirement:
    """A variable production needs in the processes of ``roles``; ``unmet`` says whether
    the settings lack it (or hold a value that cannot work), ``remedy`` what to do."""

    variable: str
    roles: frozenset[ProcessRole]
    unmet: Callable[[Settings], bool]
    remedy: str
    # The task queues whose workers need it (``temporal.queues.TaskQueue`` values; None:
    # every worker): a worker started with ``--queue default`` uses no provider.
    queues: frozenset[str] | None = None
    # Whether a deployment must always pass it (docker-compose.yml does, as
    # ``${VAR:?…}``); False for a setting that is right when left unset.
    passed: bool = True

    def line(self) -> str:
        return f"SHOP_ENV=production needs {self.variable} ({self.remedy})"


# Stripe's test-mode keys (secret and restricted) and EasyPost's test key: in production
# they take no money and buy labels no carrier honours.
STRIPE_TEST_KEYS = ("sk_test_", "rk_test_")
EASYPOST_TEST_KEY = "EZTK"
# The path the local sandboxes are mounted at, which production does not mount.
SANDBOX_PATH = "/_sandbox/"
STRIPE_QUEUES = frozenset({"orders", "payments"})  # payments, and returns' refunds
EMAIL_QUEUES = frozenset({"notifications", "events"})  # emails, and the events' handlers'
SHIPPING_QUEUES = frozenset({"orders"})  # labels, tracking and return labels
CRM_QUEUES = frozenset({"notifications", "events"})  # contacts, and orders' deals


def _secret_starts(value: SecretStr | None, prefixes: str | tuple[str, ...]) -> bool:
    return value is not None and value.get_secret_value().startswith(prefixes)


def _jwt_secret_unusable(settings: Settings) -> bool:
    secret = settings.jwt_secret
    return secret is None or len(secret.get_secret_value()) < JWT_SECRET_MIN_LENGTH


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "JWT_SECRET",
        API,
        _jwt_secret_unusable,
        f"at least {JWT_SECRET_MIN_LENGTH} random characters that sign access tokens, the "
        "same for every API process; make one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`",
    ),
    Requirement(
        "DATABASE_URL",
        BOTH,
        lambda s: s.resolved_database_url is None,
        "postgresql+asyncpg://user:password@host:5432/ecommerce, or DB_HOST with DB_PORT, "
        "DB_NAME, DB_USER and DB_PASSWORD",
    ),
    Requirement("REDIS_URL", BOTH, lambda s: not s.redis_url, "redis://host:6379/0"),
    Requirement(
        "TEMPORAL_ADDRESS",
        BOTH,
        lambda s: not s.temporal_address,
        "host:7233 of the Temporal frontend, with TEMPORAL_NAMESPACE (and TEMPORAL_API_KEY "
        "for Temporal Cloud)",
    ),
    Requirement(
        "STRIPE_SECRET_KEY",
        BOTH,
        lambda s: s.payments_use_sandbox or _secret_starts(s.stripe_secret_key, STRIPE_TEST_KEYS),
        "the Stripe account's live secret key, sk_live_… (or rk_live_…): without it payments "
        "would go to the Stripe sandbox, which production does not mount, and a test-mode "
        "key takes no money",
        STRIPE_QUEUES,
    ),
    Requirement(
        "STRIPE_WEBHOOK_SECRET",
        API,
        lambda s: s.resolved_stripe_webhook_secret is None,
        "the signing secret of the Stripe webhook endpoint, whsec_…: Stripe's webhooks "
        "(3-D Secure's outcome, refunds) cannot be verified without it",
    ),
    Requirement(
        "SENDGRID_API_KEY",
        WORKER,
        lambda s: s.email_uses_sandbox,
        "a SendGrid API key, SG.…: without it order confirmations and alerts would go to "
        "the SendGrid sandbox, which production does not mount",
        EMAIL_QUEUES,
    ),
    Requirement(
        "EASYPOST_API_KEY",
        WORKER,
        lambda s: s.shipping_uses_sandbox or _secret_starts(s.easypost_api_key, EASYPOST_TEST_KEY),
        "the EasyPost production API key, EZAK…: without it shipping labels would be bought "
        "from the EasyPost sandbox, which production does not mount, and a test key (EZTK…) "
        "buys labels no carrier honours",
        SHIPPING_QUEUES,
    ),
    Requirement(
        "EASYPOST_WEBHOOK_SECRET",
        API,
        lambda s: s.resolved_easypost_webhook_secret is None,
        "the secret of the EasyPost webhook: the carrier's tracking updates cannot be "
        "verified without it",
    ),
    # A provider's base URL left at its sandbox (copied from a development .env) answers
    # 404 in production: unset, each SDK talks to the provider itself.
    Requirement(
        "SENDGRID_BASE_URL",
        WORKER,
        lambda s: SANDBOX_PATH in (s.sendgrid_base_url or ""),
        "unset (https://api.sendgrid.com), not a sandbox's URL, which production does not mount",
        EMAIL_QUEUES,
        passed=False,
    ),
    Requirement(
        "EASYPOST_BASE_URL",
        WORKER,
        lambda s: SANDBOX_PATH in (s.easypost_base_url or ""),
        "unset (https://api.easypost.com/v2), not a sandbox's URL, which production does not mount",
        SHIPPING_QUEUES,
        passed=False,
    ),
    Requirement(
        "HUBSPOT_BASE_URL",
        WORKER,
        lambda s: s.hubspot_access_token is not None and SANDBOX_PATH in (s.hubspot_base_url or ""),
        "unset (https://api.hubapi.com), not a sandbox's URL, which production does not mount",
        CRM_QUEUES,
        passed=False,
    ),
)


def production_problems(
    settings: Settings, role: ProcessRole, queues: Collection[str] | None = None
) -> list[str]:
    """One line per requirement of ``role`` these settings leave unmet (none outside
    production); for a worker serving only ``queues``, those its queues need."""
    if settings.shop_env != "production":
        return []
    served = None if queues is None else frozenset(map(str, queues))
    return [
        r.line()
        for r in REQUIREMENTS
        if role in r.roles
        and (
            served is None
            or role is not ProcessRole.WORKER
            or r.queues is None
            or r.queues & served
        )
        and r.unmet(settings)
    ]


def check_production(
    settings: Settings, role: ProcessRole, queues: Collection[str] | None = None
) -> None:
    """Refuse to start a production process whose configuration cannot work, naming every
    unmet requirement at once (``DependencyUnavailable`` code ``config``, one line each).
    A worker that starts says once that the optional CRM is off, if it is."""
    if problems := production_problems(settings, role, queues):
        raise DependencyUnavailable("\n".join(problems), code="config")
    if role is ProcessRole.WORKER and not settings.crm_enabled:
        log.warning(
            "HUBSPOT_ACCESS_TOKEN is not set: the CRM is off, no order becomes a HubSpot "
            "deal (set it to sync orders to HubSpot)"
        )
