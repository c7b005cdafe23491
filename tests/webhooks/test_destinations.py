"""SSRF protection: where a webhook may go, checked when an endpoint is saved (the API,
with private addresses refused as in production) and when a delivery is sent (the real
sender, a real receiver, the real database)."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from core.db import create_session_factory, transaction
from core.settings import Settings
from models.webhooks import WebhookEndpoint
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.destinations import (
    DestinationPolicy,
    InvalidWebhookUrl,
    checked_url,
    pinned,
    why_blocked,
)
from services.webhooks.endpoints import new_secret
from services.webhooks.repository import WebhookEndpointRepository
from services.webhooks.sending import WebhookRejected, WebhookSender, webhook_client
from tests.conftest import random_client_ip
from tests.webhooks.receiver import Receiver, receiver

# A type no event has: the relay of a parallel test never adds deliveries to these.
NO_EVENTS = ["test.none"]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_which_addresses_are_blocked(address: str, kind: str | None) -> None:
    assert why_blocked(ipaddress.ip_address(address)) == kind


def test_production_takes_https_only_and_refuses_private_addresses(settings: Settings) -> None:
    production = DestinationPolicy.of(settings.model_copy(update={"shop_env": "production"}))
    assert production == DestinationPolicy(https_only=True, allow_private=False)
    assert DestinationPolicy.of(settings) == DestinationPolicy(https_only=False, allow_private=True)
    opted_in = settings.model_copy(
        update={"shop_env": "production", "webhook_allow_private_addresses": True}
    )
    assert DestinationPolicy.of(opted_in).allow_private is True
    with pytest.raises(InvalidWebhookUrl):
        checked_url("http://127.0.0.1:9000/h", production)
    assert checked_url("https://hooks.example.com/h", production) == "https://hooks.example.com/h"
    assert checked_url("http://127.0.0.1:9000/h", DestinationPolicy.of(settings))


@pytest.mark.parametrize("url", ["https://256.1.1.1/h", "https://999.1.1.1:8443/h"])
def test_a_url_the_sender_cannot_parse_is_refused_when_saved(url: str, settings: Settings) -> None:
    for policy in (DestinationPolicy.of(settings), DestinationPolicy()):
        with pytest.raises(InvalidWebhookUrl, match="is not a url"):
            checked_url(url, policy)


@pytest.fixture
async def strict_app(settings: Settings) -> AsyncIterator[FastAPI]:
    strict = settings.model_copy(update={"webhook_allow_private_addresses": False})
    application = create_app(strict)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def strict(strict_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(
        app=strict_app, raise_app_exceptions=False, client=(random_client_ip(), 50000)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
        yield http


async def test_an_endpoint_reaching_a_private_address_is_refused(
    strict: httpx.AsyncClient, staff: dict[str, str], made: list[str]
) -> None:
    async def create(url: str) -> httpx.Response:
        return await strict.post(
            "/api/admin/webhooks", json={"url": url, "eventTypes": ["*"]}, headers=staff
        )

    for url, shown in [
        ("http://127.0.0.1:9000/h", "127.0.0.1 is a loopback address"),
        ("https://localhost/h", "localhost resolves to"),
        ("https://10.1.2.3/h", "10.1.2.3 is a private address"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::ffff:10.0.0.1]/h", "private"),
        ("https://[::1]:8443/h", "loopback"),
        ("https://224.0.0.1/h", "multicast"),
        ("https://240.0.0.1/h", "reserved"),
        ("https://0.0.0.0/h", "unspecified"),
    ]:
        response = await create(url)
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem: dict[str, Any] = response.json()
        assert problem["code"] == "webhook_url_not_allowed", (url, problem)
        assert shown in problem["detail"], (url, problem)
        assert problem["reason"] == "address"

    # Production's check read such a url with httpx after urlsplit took it: a 500.
    unparsed = await create("https://256.1.1.1/h")
    assert (unparsed.status_code, unparsed.json()["code"]) == (422, "invalid_webhook_url")

    unresolved = await create("https://nowhere.invalid/h")
    assert (unresolved.status_code, unresolved.json()["code"]) == (422, "webhook_url_not_allowed")
    assert unresolved.json()["reason"] == "unresolved"

    public = await create("https://93.184.215.14/h")
    assert public.status_code == 201, public.text
    made.append(public.json()["id"])
    path = f"/api/admin/webhooks/{public.json()['id']}"
    moved = await strict.patch(path, json={"url": "https://192.168.0.10/h"}, headers=staff)
    assert (moved.status_code, moved.json()["code"]) == (422, "webhook_url_not_allowed")
    still = await strict.get(path, headers=staff)
    assert still.json()["url"] == "https://93.184.215.14/h"


@pytest.fixture
async def hooks() -> AsyncIterator[Receiver]:
    async with receiver() as running:
        yield running


async def _pending_delivery(
    engine: AsyncEngine, made: list[str], url: str, event_id: str
) -> tuple[str, str]:
    """A committed endpoint at ``url`` with one pending delivery: (endpoint id, its id)."""
    async with transaction(create_session_factory(engine)) as session:
        endpoint = await WebhookEndpointRepository(session).add(
            WebhookEndpoint(url=url, event_types=NO_EVENTS, secret=new_secret())
        )
        made.append(endpoint.id)
        deliveries = WebhookDeliveryRepository(session)
        await deliveries.add_once(
            endpoint_id=endpoint.id,
            event_id=event_id,
            event_type="order.created",
            payload={"type": "order.created", "timestamp": "t", "data": {}},
        )
        found = await deliveries.target(event_id, endpoint.id)
        assert found is not None
        return endpoint.id, found[0].id


async def test_a_send_to_a_blocked_address_fails_for_good_with_the_reason_recorded(
    settings: Settings, engine: AsyncEngine, made: list[str], hooks: Receiver
) -> None:
    # Saved while private addresses were allowed; sent once they no longer are.
    endpoint_id, delivery_id = await _pending_delivery(
        engine, made, hooks.url("inside"), "evt_blocked_send"
    )
    strict = settings.model_copy(update={"webhook_allow_private_addresses": False})
    sessions = create_session_factory(engine)
    async with webhook_client(strict) as http:
        sender = WebhookSender(sessions, http, strict)
        with pytest.raises(WebhookRejected, match=r"blocked: 127\.0\.0\.1 is a loopback address"):
            await sender.send("evt_blocked_send", endpoint_id, 0)
    assert hooks.got("inside") == []
    async with transaction(sessions) as session:
        [attempt] = await WebhookDeliveryRepository(session).attempts_of(delivery_id)
    assert (attempt.succeeded, attempt.status_code) == (False, None)
    assert attempt.error == (
        "blocked: 127.0.0.1 is a loopback address, and WEBHOOK_ALLOW_PRIVATE_ADDRESSES is false"
    )


async def test_a_send_to_a_url_saved_unparsable_fails_for_good_with_the_reason_recorded(
    settings: Settings, engine: AsyncEngine, made: list[str]
) -> None:
    # Saved before the save parsed urls as a send does: each attempt raised InvalidURL,
    # and the delivery stayed pending with no attempt and no error to show staff.
    endpoint_id, delivery_id = await _pending_delivery(
        engine, made, "https://256.1.1.1/h", "evt_unparsable_send"
    )
    sessions = create_session_factory(engine)
    async with webhook_client(settings) as http:
        sender = WebhookSender(sessions, http, settings)
        with pytest.raises(WebhookRejected, match="is not a url"):
            await sender.send("evt_unparsable_send", endpoint_id, 0)
    async with transaction(sessions) as session:
        [attempt] = await WebhookDeliveryRepository(session).attempts_of(delivery_id)
    assert attempt.succeeded is False
    assert attempt.error is not None
    assert "Invalid IPv4 address" in attempt.error


async def test_a_send_connects_to_the_checked_address_under_the_url_s_host(
    settings: Settings, engine: AsyncEngine, made: list[str], hooks: Receiver
) -> None:
    url = hooks.url("named").replace("127.0.0.1", "localhost")
    endpoint_id, _ = await _pending_delivery(engine, made, url, "evt_pinned_send")
    targets = await pinned(url, DestinationPolicy.of(settings))
    assert "127.0.0.1" in [t.url.host for t in targets]
    port = url.split(":")[2].split("/")[0]
    assert all(t.headers == {"host": f"localhost:{port}"} for t in targets)
    async with webhook_client(settings) as http:
        sender = WebhookSender(create_session_factory(engine), http, settings)
        assert await sender.send("evt_pinned_send", endpoint_id, 0) == "delivered"
    [received] = hooks.got("named")
    assert received.headers["host"] == f"localhost:{port}"


def _certificate_for_localhost(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate naming only ``localhost`` (no IP address), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


async def test_https_to_the_checked_address_still_verifies_the_url_s_host_name(
    settings: Settings, engine: AsyncEngine, made: list[str], tmp_path: Path
) -> None:
    """The connection goes to 127.0.0.1, whose certificate names only ``localhost``: it
    verifies because the url's host is the TLS server name (SNI), not the address."""
    certfile, keyfile = _certificate_for_localhost(tmp_path)
    trusting = ssl.create_default_context(cafile=str(certfile))
    async with receiver(tls=(certfile, keyfile)) as hooks:
        url = hooks.url("secure").replace("127.0.0.1", "localhost")
        event_id = f"evt_tls_{uuid4().hex[:8]}"
        endpoint_id, _ = await _pending_delivery(engine, made, url, event_id)
        async with webhook_client(settings, verify=trusting) as http:
            sender = WebhookSender(create_session_factory(engine), http, settings)
            assert await sender.send(event_id, endpoint_id, 0) == "delivered"
            # The same certificate does not name the address: without SNI it would fail.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.post(hooks.url("direct"), content=b"{}")
        [received] = hooks.got("secure")
        assert received.headers["host"] == url.split("/")[2]
        assert hooks.got("direct") == []
