"""Where a webhook may be sent (SSRF protection), checked when an endpoint is saved and
again at every send.

A url names a host; the host's addresses are what a request reaches. Unless private
addresses are allowed (``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``: by default outside production
only), every address the host resolves to must be public: not private, loopback,
link-local, multicast, reserved or unspecified (an IPv4 address written as IPv6 is judged
as the IPv4 one). In production the url must be https.

DNS can change between the save and a send (or between a check and the connection:
DNS rebinding), so a send resolves the host itself, checks the addresses and connects to
an address it checked: the request goes to that IP (the next checked one if it does not
connect), with the url's host in ``Host`` and as the TLS server name (SNI and
certificate check), so https still verifies the name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from core.errors import ValidationFailed
from core.settings import Settings

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})
# A lookup that takes longer is a failure (retried at send time; a 422 on save).
RESOLVE_SECONDS = 5.0


class InvalidWebhookUrl(ValidationFailed):
    code = "invalid_webhook_url"
    title = "The webhook url is not allowed"


class WebhookUrlNotAllowed(ValidationFailed):
    """The url is well formed but reaches an address webhooks may not be sent to."""

    code = "webhook_url_not_allowed"
    title = "The webhook url reaches an address webhooks may not be sent to"


class DestinationUnresolved(Exception):
    """The host has no address now (a DNS failure): worth retrying."""


@dataclass(frozen=True)
class DestinationPolicy:
    """The rules in force: by default the strictest (production's)."""

    https_only: bool = True
    allow_private: bool = False

    @classmethod
    def of(cls, settings: Settings) -> DestinationPolicy:
        """https only in production; private addresses as WEBHOOK_ALLOW_PRIVATE_ADDRESSES."""
        return cls(
            https_only=settings.shop_env == "production",
            allow_private=settings.webhook_private_addresses_allowed,
        )


@dataclass(frozen=True)
class Destination:
    """A request to make to a checked address: its url (the host replaced by the IP),
    and the headers and extensions that keep the url's host as the name spoken to."""

    url: httpx.URL
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


def checked_url(url: str, policy: DestinationPolicy) -> str:
    """``url`` if it is https, or (outside production) http to localhost / 127.0.0.1."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number
        # What a send parses it with: a host it cannot take (`256.1.1.1`) was
        # saved, then every delivery raised InvalidURL and stayed pending, unexplained.
        httpx.URL(url.strip())
    except (ValueError, httpx.InvalidURL) as error:
        raise InvalidWebhookUrl(f"{url!r} is not a url: {error}") from None
    if not host or parts.username or parts.password:
        raise InvalidWebhookUrl("The url needs a host and no user or password in it")
    if parts.scheme == "https":
        return url.strip()
    if policy.https_only:
        raise InvalidWebhookUrl("A webhook url must be https", url=url)
    if parts.scheme == "http" and host in LOCAL_HOSTS:
        return url.strip()
    raise InvalidWebhookUrl(
        "A webhook url must be https (http only to localhost or 127.0.0.1)", url=url
    )


def why_blocked(address: IpAddress) -> str | None:
    """What kind of address webhooks may not go to ``address`` is (``"loopback"``…);
    None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            address = embedded
    for kind, matches in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    ):
        if matches:
            return kind
    return None


async def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address ``host`` resolves to now (an IP literal: itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
    except (socket.gaierror, UnicodeError) as error:
        raise DestinationUnresolved(f"{host} does not resolve: {error}") from None
    except TimeoutError:
        raise DestinationUnresolved(
            f"{host} did not resolve within {RESOLVE_SECONDS:g} s"
        ) from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
    if not addresses:
        raise DestinationUnresolved(f"{host} does not resolve")
    return addresses


def _blocked(host: str, addresses: list[IpAddress]) -> str | None:
    """Why ``host`` may not be sent to (the first address that may not), or None."""
    for address in addresses:
        kind = why_blocked(address)
        if kind is not None:
            if host == str(address):
                return f"{address} is a {kind} address"
            return f"{host} resolves to {address}, a {kind} address"
    return None


async def check_saved_url(url: str, policy: DestinationPolicy) -> str:
    """The url to store, once it is well formed and (unless private addresses are
    allowed) its host resolves to public addresses only."""
    url = checked_url(url, policy)
    if policy.allow_private:
        return url
    parsed = httpx.URL(url)
    try:
        addresses = await resolve(parsed.host, parsed.port or _default_port(parsed))
    except DestinationUnresolved as error:
        raise WebhookUrlNotAllowed(str(error), url=url, reason="unresolved") from None
    reason = _blocked(parsed.host, addresses)
    if reason is not None:
        raise WebhookUrlNotAllowed(
            f"{reason}: webhooks go to public addresses only", url=url, reason="address"
        )
    return url


class DestinationBlocked(Exception):
    """The url reaches an address webhooks may not go to (a permanent refusal)."""


async def pinned(url: str, policy: DestinationPolicy) -> list[Destination]:
    """The requests that may be made for ``url``, one per address its host resolves to
    now, every address checked (try them in order until one connects). Raises
    ``DestinationBlocked`` or ``DestinationUnresolved``."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:  # saved before the save checked it so
        raise DestinationBlocked(f"{url!r} is not a url: {error}") from None
    if policy.https_only and parsed.scheme != "https":
        raise DestinationBlocked(f"{parsed.scheme} is not allowed: webhooks go to https urls")
    port = parsed.port or _default_port(parsed)
    addresses = await resolve(parsed.host, port)
    if not policy.allow_private:
        reason = _blocked(parsed.host, addresses)
        if reason is not None:
            raise DestinationBlocked(f"{reason}, and WEBHOOK_ALLOW_PRIVATE_ADDRESSES is false")
    if [str(a) for a in addresses] == [parsed.host]:
        return [Destination(url=parsed)]
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    host = {"host": parsed.netloc.decode("ascii")}
    return [
        Destination(url=parsed.copy_with(host=str(a)), headers=host, extensions=extensions)
        for a in addresses
    ]


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80
