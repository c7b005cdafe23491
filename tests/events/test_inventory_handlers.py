"""``inventory.low_stock``: the inventory team's email and auto-reorder, once each per
crossing however often the event is delivered; ``inventory.stock_not_put_back``: the
team's email to count units in by hand, once per event."""

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
from models.inventory import MAX_STOCK, PurchaseOrder, ReservationLine
from models.outbox import OutboxEvent
from services.catalog.products import ProductService
from services.email import EmailService
from services.events.handlers import auto_reorder, low_stock_alert, stock_not_put_back_alert
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


async def _sent_once(
    emails: EmailService, to: str, mail: dict[str, Any], *, template: str, key: str, link: str
) -> None:
    """``mail`` is ``template``, links to ``link``, and is the one message the email
    ledger holds for ``to``, sent under ``key``."""
    assert f'href="{link}"' in mail["html"]
    assert mail["customArgs"]["template"] == template
    async with emails.sessions() as session:
        [row] = (await session.exec(select(EmailMessage).where(EmailMessage.to_email == to))).all()
    assert (row.idempotency_key, row.status) == (key, EmailStatus.SENT)


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
    await _sent_once(
        emails,
        to,
        mail,
        template="low_stock",
        key=f"low_stock_alert:{event_id}",
        link=f"{settings.api_base_url}/api/inventory/{product_id}",
    )


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


async def _not_put_back(
    sessions: SessionFactory, product_id: str, quantity: int, **origin: str
) -> str:
    """``quantity`` units put back onto the product's stock filled to one short of the
    most it holds: refused, the event written; its id."""
    async with transaction(sessions) as session:
        stock = StockService(session)
        await stock.adjust(product_id, MAX_STOCK - 1 - (await stock.get(product_id)).on_hand, "x")
        reference = origin.pop("reference", origin["order_id"])
        assert not await stock.put_back(
            product_id, quantity, reason="order undone", reference=reference, **origin
        )
    async with sessions() as session:
        [event_id] = (
            await session.exec(
                select(OutboxEvent.id).where(
                    OutboxEvent.aggregate_id == product_id,
                    OutboxEvent.type == "inventory.stock_not_put_back",
                )
            )
        ).all()
    return event_id


async def test_units_not_put_back_are_one_email_to_the_inventory_team_however_delivered(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    settings, to = _alerting_to(mail_api.settings)
    alert = stock_not_put_back_alert(emails, settings)
    product_id, sku = await _product(db_sessions, stock=4)
    order_id = unique_slug("ord")
    event_id = await _not_put_back(db_sessions, product_id, 5, order_id=order_id)

    assert await handle_once(db_sessions, alert, event_id) is True
    assert await handle_once(db_sessions, alert, event_id) is False  # delivered twice

    [mail] = await mail_api.mailbox(to)
    assert mail["subject"] == (
        f"Stock Not Put Back: 5 of Ceramic Teapot ({sku}) to count in by hand"
    )
    text = " ".join(mail["text"].split())
    base = settings.api_base_url
    for expected in (
        f"5 of Ceramic Teapot (SKU {sku}, id {product_id}) came back from order {order_id}, "
        "whose sale was undone, but were not put back on hand: they would have passed the "
        "most a product holds (2,147,483,647).",
        f'POST {base}/api/inventory/{product_id}/adjust, {{"delta": 5,',
        f"Stock and ledger (staff): {base}/api/inventory/{product_id}",
        f"Order (its timeline says the same): {base}/api/orders/{order_id}",
    ):
        assert expected in text
    assert "Return:" not in text
    await _sent_once(
        emails,
        to,
        mail,
        template="stock_not_put_back",
        key=f"stock_not_put_back_alert:{event_id}",
        link=f"{base}/api/inventory/{product_id}",
    )


async def test_units_of_a_return_not_put_back_name_the_return(
    db_sessions: SessionFactory, emails: EmailService, mail_api: MailApi
) -> None:
    settings, to = _alerting_to(mail_api.settings)
    product_id, _ = await _product(db_sessions, stock=1)
    order_id, return_id = unique_slug("ord"), unique_slug("ret")
    event_id = await _not_put_back(
        db_sessions,
        product_id,
        2,
        order_id=order_id,
        return_id=return_id,
        reference=unique_slug("rline"),
    )
    assert await handle_once(db_sessions, stock_not_put_back_alert(emails, settings), event_id)
    [mail] = await mail_api.mailbox(to)
    text = " ".join(mail["text"].split())
    assert f"came back with return {return_id} of order {order_id}, but" in text
    assert f"Return: {settings.api_base_url}/api/admin/returns/{return_id}" in text
