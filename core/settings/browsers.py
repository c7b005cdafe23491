"""Which web pages of other origins may call the API from a browser (CORS): a
storefront's JavaScript at ``https://shop.example.com`` calling ``https://api.example.com``.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, field_validator, model_validator

from core.settings.stack import StackSettings

# Outside production, unless CORS_ALLOWED_ORIGINS says otherwise: the usual dev servers of
# a storefront on this machine (Next.js, Create React App, Remix and others on 3000; Vite
# on 5173), by either name of the loopback address a browser shows.
DEV_CORS_ORIGINS = (
    "http://localhost:3000",
    "http://127.0.0.1:3000",
    "http://localhost:5173",
    "http://127.0.0.1:5173",
)

# scheme "://" host [":" port], nothing after: what a browser sends as `Origin`.
_ORIGIN = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(?P<port>\d{1,5}))?$",
    re.IGNORECASE,
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _origin(value: str) -> str:
    """``value`` as a browser serialises the origin (lower case, no default port), or a
    ValueError saying what is wrong with it."""
    if value == "null":
        # Sandboxed iframes and file:// pages all send "null": allowing it allows them all.
        raise ValueError("the origin 'null' cannot be allowed (any sandboxed page sends it)")
    match = _ORIGIN.match(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not an origin: scheme://host[:port], without a path "
            "(not even a trailing /), e.g. https://shop.example.com"
        )
    scheme, host, port = match["scheme"].lower(), match["host"].lower(), match["port"]
    if port is not None and int(port) > 65535:
        raise ValueError(f"{value!r}: port {port} is out of range")
    if port == _DEFAULT_PORTS.get(scheme):
        port = None  # a browser leaves the default port out of `Origin`
    return f"{scheme}://{host}" + (f":{port}" if port else "")


class BrowserSettings(StackSettings):
    """CORS: the origins whose pages may call the API, and what the browser may keep."""

    # Comma-separated exact origins (https://shop.example.com,https://www.example.com), or
    # `*` for any page (only without credentials). Unset: none in production, the local
    # dev servers (DEV_CORS_ORIGINS) otherwise; empty (given in code): none.
    cors_allowed_origins: str | None = None
    # Access-Control-Allow-Credentials: true, for a storefront that sends cookies or TLS
    # client certificates along (a proxy in front that needs them): our own API reads only
    # the Authorization header, which needs no credentials mode.
    cors_allow_credentials: bool = False
    # How long a browser may keep a preflight's answer (Chrome keeps it at most 2 hours).
    cors_max_age_seconds: int = Field(default=600, ge=0, le=86_400)

    @field_validator("cors_allowed_origins")
    @classmethod
    def _exact_origins(cls, value: str | None) -> str | None:
        if value is None:
            return None
        origins = [o.strip() for o in value.split(",") if o.strip()]
        if "*" in origins:
            if len(origins) > 1:
                raise ValueError("CORS_ALLOWED_ORIGINS: `*` stands alone (it allows any origin)")
            return "*"
        try:
            return ",".join(dict.fromkeys(_origin(o) for o in origins))
        except ValueError as exc:
            raise ValueError(f"CORS_ALLOWED_ORIGINS: {exc}") from None

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> Self:
        # The Fetch standard refuses `Access-Control-Allow-Origin: *` with credentials; echoing
        # every origin instead would let any page act with the visitor's credentials.
        if self.cors_allow_credentials and self.cors_allowed_origins == "*":
            raise ValueError(
                "CORS_ALLOWED_ORIGINS=* cannot be combined with CORS_ALLOW_CREDENTIALS=true: "
                "name the origins"
            )
        return self

    @property
    def cors_origins(self) -> frozenset[str]:
        """The allowed origins (``{"*"}`` for any), after the environment's default."""
        if self.cors_allowed_origins is None:
            return frozenset() if self.shop_env == "production" else frozenset(DEV_CORS_ORIGINS)
        return frozenset(o for o in self.cors_allowed_origins.split(",") if o)
