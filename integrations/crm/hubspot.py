"""The HubSpot adapter: CRM v3 objects through the real ``hubspot-api-client`` SDK.

With no ``HUBSPOT_ACCESS_TOKEN`` it talks to our HubSpot sandbox (``/_sandbox/hubspot``)
with the same SDK, so the code path is the production one.

How each call stays idempotent at HubSpot:

- contacts: batch upsert with ``idProperty=email`` (one contact per email);
- deals: created with ``shopweave_order_id``, a property whose values HubSpot keeps
  unique (created on first use). A second create for the order, say a retry after the
  first answer was lost, answers 409, and the adapter then updates the existing deal by
  that property. A retry never makes two deals.
- GDPR erasure: contacts carry ``shopweave_user_id``; erasing searches for it and
  permanently deletes each match (a deleted contact is simply gone the second time).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4 import ApiException as AssociationsApiException
from hubspot.crm.contacts import (
    ApiException as ContactsApiException,
)
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    Filter,
    FilterGroup,
    PublicGdprDeleteInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
)
from hubspot.crm.deals import (
    ApiException as DealsApiException,
)
from hubspot.crm.deals import (
    AssociationSpec,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties import PropertyCreate
from urllib3.util.retry import Retry

from core.money import exponent
from core.settings import Settings
from core.telemetry import Tracing
from integrations.crm.client import Contact, CrmRejected, CrmUnavailable, Deal, DealStage
from integrations.sdk_tracing import trace_hubspot

log = logging.getLogger(__name__)

T = TypeVar("T")
SANDBOX_TOKEN = "pat-sandbox-shopweave-local"
ORDER_ID_PROPERTY = "shopweave_order_id"
USER_ID_PROPERTY = "shopweave_user_id"
# HubSpot-defined association type ids (CRM v4): deal to contact.
DEAL_TO_CONTACT = 3
API_ERRORS = (
    ContactsApiException,
    DealsApiException,
    PropertiesApiException,
    AssociationsApiException,
)
# Our own properties, created on first use (an existing one is fine).
CUSTOM_PROPERTIES: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "deals",
        {
            "name": ORDER_ID_PROPERTY,
            "label": "Shopweave order id",
            "description": "The Shopweave order this deal is; unique per deal.",
            "group_name": "dealinformation",
            "type": "string",
            "field_type": "text",
            "has_unique_value": True,
        },
    ),
    (
        "contacts",
        {
            "name": USER_ID_PROPERTY,
            "label": "Shopweave customer id",
            "description": "The Shopweave account this contact belongs to.",
            "group_name": "contactinformation",
            "type": "string",
            "field_type": "text",
            "has_unique_value": False,
        },
    ),
)


def hubspot_datetime(value: datetime) -> str:
    """HubSpot's datetime property format: ISO 8601 in UTC, milliseconds, ``Z``."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def deal_properties(deal: Deal, pipeline: str, stage_id: str) -> dict[str, str]:
    places = exponent(deal.amount.currency)
    return {
        "dealname": deal.name,
        "amount": f"{deal.amount.to_major():.{places}f}",
        "deal_currency_code": deal.amount.currency,
        "pipeline": pipeline,
        "dealstage": stage_id,
        "closedate": hubspot_datetime(deal.close_date),
        ORDER_ID_PROPERTY: deal.order_id,
    }


def _status(exc: Exception) -> int:
    return int(getattr(exc, "status", 0) or 0)


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict) and parsed.get("message"):
        category = parsed.get("category")
        return f"{parsed['message']} ({category})" if category else str(parsed["message"])
    return str(getattr(exc, "reason", "") or exc)


class HubSpotCrm:
    name = "hubspot"

    def __init__(
        self,
        client: HubSpot,
        *,
        pipeline: str,
        stages: Mapping[DealStage, str],
        timeout_seconds: float = 10.0,
        tracing: Tracing | None = None,
    ) -> None:
        # The SDK builds a new HTTP pool per ``…_api`` access: build each API once.
        crm = client.crm
        self._contacts = crm.contacts.batch_api
        self._contacts_basic = crm.contacts.basic_api
        self._contacts_search = crm.contacts.search_api
        self._deals = crm.deals.basic_api
        self._properties = crm.properties.core_api
        self._associations = crm.associations.v4.basic_api
        trace_hubspot(  # with an exporter: a span per call
            (
                self._contacts,
                self._contacts_basic,
                self._contacts_search,
                self._deals,
                self._properties,
                self._associations,
            ),
            tracing,
        )
        self._pipeline = pipeline
        self._stages = dict(stages)
        self._timeout = timeout_seconds
        self._properties_ready = False
        self._properties_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, tracing: Tracing | None = None) -> HubSpotCrm:
        token = settings.hubspot_access_token
        client = HubSpot(
            access_token=token.get_secret_value() if token is not None else SANDBOX_TOKEN,
            host=settings.resolved_hubspot_base_url,
            # No retries inside the SDK: the event relay retries with backoff.
            retry=Retry(total=0, redirect=0, raise_on_status=False),
        )
        return cls(
            client,
            pipeline=settings.hubspot_pipeline,
            stages={
                DealStage.PLACED: settings.hubspot_stage_placed,
                DealStage.WON: settings.hubspot_stage_won,
                DealStage.LOST: settings.hubspot_stage_lost,
            },
            timeout_seconds=settings.hubspot_timeout_seconds,
            tracing=tracing,
        )

    # --- the CrmClient protocol --------------------------------------------------------

    async def upsert_contact(self, contact: Contact) -> str:
        await self._ensure_properties()
        batch = BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id=contact.email,
                    id_property="email",
                    properties={
                        "email": contact.email,
                        "firstname": contact.first_name,
                        "lastname": contact.last_name,
                        USER_ID_PROPERTY: contact.user_id,
                    },
                )
            ]
        )
        answer: Any = await self._call(
            lambda: self._contacts.upsert(batch, _request_timeout=self._timeout)
        )
        results = list(getattr(answer, "results", None) or [])
        if not results:
            errors = [str(getattr(e, "message", e)) for e in getattr(answer, "errors", None) or []]
            raise CrmRejected(f"HubSpot did not upsert the contact: {'; '.join(errors)}")
        return str(results[0].id)

    async def upsert_deal(self, deal: Deal, contact_id: str | None) -> str:
        await self._ensure_properties()
        properties = deal_properties(deal, self._pipeline, self._stages[deal.stage])
        associations = []
        if contact_id is not None:
            associations.append(
                PublicAssociationsForObject(
                    to=PublicObjectId(id=contact_id),
                    types=[
                        AssociationSpec(
                            association_category="HUBSPOT_DEFINED",
                            association_type_id=DEAL_TO_CONTACT,
                        )
                    ],
                )
            )
        create = SimplePublicObjectInputForCreate(properties=properties, associations=associations)
        try:
            created: Any = await self._call(
                lambda: self._deals.create(create, _request_timeout=self._timeout), expect=(409,)
            )
            return str(created.id)
        except _Expected:
            pass
        # The deal exists (an earlier attempt made it): bring it up to date, but leave its
        # stage and close date, which later events may have moved on.
        changes = {k: v for k, v in properties.items() if k not in ("dealstage", "closedate")}
        try:
            updated: Any = await self._call(
                lambda: self._deals.update(
                    deal.order_id,
                    SimplePublicObjectInput(properties=changes),
                    id_property=ORDER_ID_PROPERTY,
                    _request_timeout=self._timeout,
                ),
                expect=(404,),
            )
        except _Expected:
            # A conflict, yet no deal by that value: HubSpot has not caught up. Later.
            raise CrmUnavailable(
                f"the deal of {deal.order_id} exists but cannot be found yet"
            ) from None
        deal_id = str(updated.id)
        if contact_id is not None:
            await self._call(
                lambda: self._associations.create_default(
                    "deal", deal_id, "contact", contact_id, _request_timeout=self._timeout
                )
            )
        return deal_id

    async def set_deal_stage(self, order_id: str, stage: DealStage, at: datetime) -> bool:
        await self._ensure_properties()
        properties = {"dealstage": self._stages[stage]}
        if stage is not DealStage.PLACED:
            properties["closedate"] = hubspot_datetime(at)
        try:
            await self._call(
                lambda: self._deals.update(
                    order_id,
                    SimplePublicObjectInput(properties=properties),
                    id_property=ORDER_ID_PROPERTY,
                    _request_timeout=self._timeout,
                ),
                expect=(404,),
            )
        except _Expected:
            return False
        return True

    async def forget_contacts(self, user_id: str) -> int:
        await self._ensure_properties()
        search = PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(
                    filters=[Filter(property_name=USER_ID_PROPERTY, operator="EQ", value=user_id)]
                )
            ],
            properties=["email"],
            limit=100,
        )
        found: Any = await self._call(
            lambda: self._contacts_search.do_search(search, _request_timeout=self._timeout)
        )
        erased = 0
        for contact in found.results or []:
            erase = PublicGdprDeleteInput(object_id=str(contact.id))
            try:
                await self._call(
                    partial(self._contacts_basic.purge, erase, _request_timeout=self._timeout),
                    expect=(404,),
                )
                erased += 1
            except _Expected:
                pass  # erased meanwhile (an earlier attempt)
        return erased

    # --- plumbing ----------------------------------------------------------------------

    async def _ensure_properties(self) -> None:
        """Create our custom properties once per process; 409 means they exist."""
        if self._properties_ready:
            return
        async with self._properties_lock:
            if self._properties_ready:
                return
            for object_type, definition in CUSTOM_PROPERTIES:
                create = PropertyCreate(**definition)
                try:
                    await self._call(
                        partial(
                            self._properties.create,
                            object_type,
                            create,
                            _request_timeout=self._timeout,
                        ),
                        expect=(409,),
                    )
                    log.info("created HubSpot %s property %s", object_type, definition["name"])
                except _Expected:
                    pass
            self._properties_ready = True

    async def _call(self, fn: Callable[[], T], expect: tuple[int, ...] = ()) -> T:
        """Run one SDK call off the event loop; HubSpot's errors as ours. A status in
        ``expect`` raises ``_Expected`` for the caller to handle."""
        try:
            return await asyncio.to_thread(fn)
        except API_ERRORS as exc:
            status = _status(exc)
            if status in expect:
                raise _Expected(status) from exc
            detail = f"HubSpot answered {status or 'nothing'}: {_message(exc)}"
            if status == 0 or status >= 500 or status in (401, 403, 408, 423, 429):
                raise CrmUnavailable(detail) from exc
            raise CrmRejected(detail) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CrmUnavailable(f"HubSpot is unreachable: {exc}") from exc


class _Expected(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status
