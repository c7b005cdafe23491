"""The HubSpot sandbox reads what it needs once per request (issue #15): the three calls
of an order (the contact upserted, its deal created, the deal moved) read 7 sandbox
rows, not 14, and a duplicate unique value is still refused."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.ids import IdPrefix, new_id
from integrations.crm.hubspot import DEAL_TO_CONTACT, ORDER_ID_PROPERTY, USER_ID_PROPERTY
from integrations.sandbox.hubspot import HubSpotSandbox
from integrations.sandbox.hubspot_wire import HubSpotError
from tests.factories import unique_email

PROPERTIES = (
    ("deals", ORDER_ID_PROPERTY, True, "dealinformation"),
    ("contacts", USER_ID_PROPERTY, False, "contactinformation"),
)


async def _with_properties(session: AsyncSession) -> None:
    for object_type, name, unique, group in PROPERTIES:
        try:
            await HubSpotSandbox(session).create_property(
                object_type,
                {
                    "name": name,
                    "label": name,
                    "type": "string",
                    "fieldType": "text",
                    "groupName": group,
                    "hasUniqueValue": unique,
                },
            )
        except HubSpotError as exc:
            if exc.status != 409:  # 409: created before, fine
                raise


async def test_an_orders_three_calls_read_seven_rows(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    await _with_properties(db_session)
    reads: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "sandbox_hubspot_objects" in statement:
            reads.append(statement)

    email, order_id = unique_email("crm-reads"), new_id(IdPrefix.ORDER)
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        upserted = await HubSpotSandbox(db_session).batch_upsert(
            "contacts",
            {
                "inputs": [
                    {
                        "idProperty": "email",
                        "id": email,
                        "properties": {"email": email, USER_ID_PROPERTY: "user_x"},
                    }
                ]
            },
        )
        contact_reads = len(reads)
        contact_id = upserted["results"][0]["id"]
        await HubSpotSandbox(db_session).create(
            "deals",
            {
                "properties": {"dealname": "Order", ORDER_ID_PROPERTY: order_id},
                "associations": [
                    {
                        "to": {"id": contact_id},
                        "types": [
                            {
                                "associationCategory": "HUBSPOT_DEFINED",
                                "associationTypeId": DEAL_TO_CONTACT,
                            }
                        ],
                    }
                ],
            },
        )
        deal_reads = len(reads) - contact_reads
        moved = await HubSpotSandbox(db_session).update(
            "deals",
            order_id,
            ORDER_ID_PROPERTY,
            {"properties": {"dealstage": "closedwon"}},
        )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert moved["properties"]["dealstage"] == "closedwon"
    # Definitions once and the object by its email; definitions, the contact, the order
    # id's holder; definitions and the deal by its order id.
    assert (contact_reads, deal_reads, len(reads) - contact_reads - deal_reads) == (2, 3, 2)


async def test_a_unique_value_held_by_another_is_still_refused(db_session: AsyncSession) -> None:
    await _with_properties(db_session)
    first, second = new_id(IdPrefix.ORDER), new_id(IdPrefix.ORDER)
    for order_id in (first, second):
        await HubSpotSandbox(db_session).create(
            "deals", {"properties": {"dealname": "Order", ORDER_ID_PROPERTY: order_id}}
        )
    with pytest.raises(HubSpotError) as refused:
        # Found by its own order id, moved onto the other deal's.
        await HubSpotSandbox(db_session).update(
            "deals", first, ORDER_ID_PROPERTY, {"properties": {ORDER_ID_PROPERTY: second}}
        )
    assert refused.value.status == 409
    email = unique_email("crm-unique")
    upsert = {"inputs": [{"idProperty": "email", "id": email, "properties": {}}]}
    again = await HubSpotSandbox(db_session).batch_upsert("contacts", upsert)
    assert (await HubSpotSandbox(db_session).batch_upsert("contacts", upsert))["results"][0][
        "id"
    ] == again["results"][0]["id"]
