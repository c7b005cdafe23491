"""``inventory.low_stock``: the inventory team's email and auto-reorder, once each per
crossing however often the event is delivered."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from core.db import SessionFactory, transaction
from core.errors import ShopError
from core.events import EventType
from core.outbox import publish
from core.settings import Settings
from integrations.email.sender import EmailProviderUnavailable
from models.catalog import ProductCreate
from models.email import EmailMessage, EmailStatus
from models.inventory import PurchaseOrder, ReservationLine
from models.outbox import OutboxEvent
from services.catalog.products import ProductService
from services.email import EmailService
from services.events.handlers import auto_reorder, low_stock_alert
from services.events.handling import handle_once
from services.inventory import ReservationService, StockService
from tests.events.conftest import MailApi
from tests.factories import unique_email, unique_slug


async def _product(sessions: SessionFactory, stock: int, **fields: Any) -> tuple[str, str]:
    sku = unique_slug("low")
    async with transaction(sessions) as session:
        product = await ProductService(session).create(
            ProductCreate(sku=sku, name="Ceramic Teapot", price=2500, **fields)
        )
        await StockService(session).adjust(product.id, stock, "initial count")
        return product.id, sku


async def _take(sessions: SessionFactory, product_id: str, quantity: int) -> None:
    async with transaction(sessions) as session:
        await StockService(session).adjust(product_id, -quantity, "sold at the counter")


async def _low_stock_events(sessions: SessionFactory, product_id: str) -> list[str]:
    async with sessions() as session:
        rows = await session.exec(
            select(OutboxEvent.id)
            .where(
                OutboxEvent.aggregate_id == product_id, OutboxEvent.type == "inventory.low_stock"
            )
            .order_by(col(OutboxEvent.seq))
        )
        return list(rows.all())


async def _purchase_orders(sessions: SessionFactory, product_id: str) -> list[tuple[int, str]]:
    async with sessions() as session:
        rows = await session.exec(
            select(PurchaseOrder)
            .where(PurchaseOrder.product_id == product_id)
            .order_by(col(PurchaseOrder.created_at))
        )
        return [(po.quantity, po.status) for po in rows.all()]


def _alerting_to(settings: Settings) -> tuple[Settings, str]:
    to = unique_email("inventory")
    return settings.model_copy(update={"inventory_alert_email": to}), to


async def test_the_inventory_team_gets_one_email_with_the_product_stock_and_threshold(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    settings, to = _alerting_to(mail_api.settings)
    alert = low_stock_alert(emails, settings)
    product_id, sku = await _product(
        db_sessions, stock=10, low_stock_threshold=5, auto_reorder=True, reorder_quantity=40
    )
    await _take(db_sessions, product_id, 7)  # 3 left, below 5
    [event_id] = await _low_stock_events(db_sessions, product_id)

    assert await handle_once(db_sessions, alert, event_id) is True
    assert await handle_once(db_sessions, alert, event_id) is False  # delivered twice

    [mail] = await mail_api.mailbox(to)
    # The seed's subject ("Low Stock Alert") first, for inbox rules, then what is low.
    assert mail["subject"] == f"Low Stock Alert: Ceramic Teapot ({sku}) is down to 3"
    text = mail["text"]
    for expected in (
        f"Ceramic Teapot (SKU {sku}, id {product_id}) has fallen below its threshold.",
        "Available now: 3",
        "Threshold: 5",
        "a purchase order for 40",
        f"Stock and ledger (staff): {settings.api_base_url}/api/inventory/{product_id}",
    ):
        assert expected in text
    assert f'href="{settings.api_base_url}/api/inventory/{product_id}"' in mail["html"]
    assert mail["customArgs"]["template"] == "low_stock"
    async with emails.sessions() as session:
        [ledger] = (
            await session.exec(select(EmailMessage).where(EmailMessage.to_email == to))
        ).all()
    assert ledger.idempotency_key == f"low_stock_alert:{event_id}"
    assert ledger.status == EmailStatus.SENT


async def test_a_lost_provider_answer_does_not_send_the_alert_twice(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    settings, to = _alerting_to(mail_api.settings)
    alert = low_stock_alert(emails, settings)
    product_id, _ = await _product(db_sessions, stock=6, low_stock_threshold=5)
    await _take(db_sessions, product_id, 2)
    [event_id] = await _low_stock_events(db_sessions, product_id)
    # The sandbox keeps the message, then answers 500: the handler fails (retryable), so
    # the delivery is retried; the retry finds the message at the provider.
    fault = {"mode": "accept_then_fail", "count": 1, "to": to}
    assert (await mail_api.http.put("/_sandbox/sendgrid/faults", json=fault)).status_code == 204
    with pytest.raises(EmailProviderUnavailable) as failed:
        await handle_once(db_sessions, alert, event_id)
    assert failed.value.retryable
    assert await handle_once(db_sessions, alert, event_id) is True
    [mail] = await mail_api.mailbox(to)
    assert "Auto-reorder is off for this product" in mail["text"]


async def test_an_alert_for_a_product_that_is_gone_is_a_business_error(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    alert = low_stock_alert(emails, mail_api.settings)
    async with transaction(db_sessions) as session:
        event = await publish(
            session,
            EventType.INVENTORY_LOW_STOCK,
            "prod_gone",
            {"productId": "prod_gone", "currentStock": 1, "threshold": 2},
        )
    with pytest.raises(ShopError) as gone:
        await handle_once(db_sessions, alert, event.id)
    assert (gone.value.code, gone.value.retryable) == ("product_not_found", False)


async def test_auto_reorder_opens_one_purchase_order_per_product_until_it_is_received(
    db_sessions: SessionFactory,
) -> None:
    reorder = auto_reorder()
    product_id, _ = await _product(
        db_sessions, stock=10, low_stock_threshold=5, auto_reorder=True, reorder_quantity=40
    )
    await _take(db_sessions, product_id, 6)  # 4 < 5: a crossing
    assert await _purchase_orders(db_sessions, product_id) == []  # not inline any more
    [first] = await _low_stock_events(db_sessions, product_id)
    assert await handle_once(db_sessions, reorder, first) is True
    assert await handle_once(db_sessions, reorder, first) is False  # delivered twice
    assert await _purchase_orders(db_sessions, product_id) == [(40, "open")]

    async with transaction(db_sessions) as session:
        await StockService(session).adjust(product_id, 6, "found some")  # 10: re-armed
    await _take(db_sessions, product_id, 8)  # 2 < 5: a second crossing
    second = (await _low_stock_events(db_sessions, product_id))[-1]
    assert second != first
    assert await handle_once(db_sessions, reorder, second) is True
    assert await _purchase_orders(db_sessions, product_id) == [(40, "open")]  # still one


async def test_auto_reorder_leaves_products_without_it_alone(db_sessions: SessionFactory) -> None:
    product_id, _ = await _product(db_sessions, stock=10, low_stock_threshold=5)
    async with transaction(db_sessions) as session:
        await ReservationService(session).reserve(
            unique_slug("ord"),
            [ReservationLine(product_id=product_id, quantity=8)],
            timedelta(minutes=5),
        )
    [event_id] = await _low_stock_events(db_sessions, product_id)
    assert await handle_once(db_sessions, auto_reorder(), event_id) is True
    assert await _purchase_orders(db_sessions, product_id) == []
