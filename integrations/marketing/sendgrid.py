"""SendGrid Marketing Campaigns through the real ``sendgrid`` SDK.

Contacts are upserted by email (``PUT /v3/marketing/contacts``, answered 202 with a job
id: SendGrid applies it shortly after) with three custom fields, created once under
these names (``/v3/marketing/field_definitions``), and added to the customers list,
created once by name (``/v3/marketing/lists``). Field and list ids are looked up or
created on first use and cached for the life of the client. Erasure finds the contacts'
ids by email (``POST /v3/marketing/contacts/search/emails``) and deletes them
(``DELETE /v3/marketing/contacts?ids=…``).

The same code talks to SendGrid or to our sandbox: only the base URL and key differ.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar
from urllib.error import URLError

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from core.telemetry import Tracing
from integrations.marketing.client import (
    CustomerContact,
    MarketingProviderUnavailable,
    MarketingRejected,
)
from integrations.sdk_tracing import trace_sendgrid

T = TypeVar("T")

# Our custom fields and their SendGrid types.
CUSTOM_FIELDS: dict[str, str] = {
    "lifetime_value": "Number",
    "orders_count": "Number",
    "last_order_date": "Date",
}


class _NotFound(Exception):
    pass


class SendGridMarketing:
    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        list_name: str,
        timeout_seconds: float = 10.0,
        tracing: Tracing | None = None,
    ) -> None:
        self._client = SendGridAPIClient(api_key=api_key, host=base_url)
        # The SDK waits forever by default; a hung provider must fail the attempt.
        self._client.client.timeout = timeout_seconds
        trace_sendgrid(self._client, tracing)  # with an exporter: a span per call
        self.base_url = base_url
        self.list_name = list_name
        self._field_ids: dict[str, str] | None = None
        self._list_id: str | None = None
        self._setup = asyncio.Lock()

    # --- the MarketingClient protocol --------------------------------------------------

    async def upsert_customer(self, contact: CustomerContact, *, add_to_list: bool) -> str:
        fields = await self.field_ids()
        body: dict[str, Any] = {
            "contacts": [
                {
                    "email": contact.email,
                    **({"first_name": contact.first_name} if contact.first_name else {}),
                    **({"last_name": contact.last_name} if contact.last_name else {}),
                    "custom_fields": {
                        fields["lifetime_value"]: float(contact.lifetime_value),
                        fields["orders_count"]: contact.orders_count,
                        # SendGrid's Date fields take MM/DD/YYYY.
                        **(
                            {
                                fields["last_order_date"]: contact.last_order_date.strftime(
                                    "%m/%d/%Y"
                                )
                            }
                            if contact.last_order_date
                            else {}
                        ),
                    },
                }
            ]
        }
        if add_to_list:
            body["list_ids"] = [await self.customers_list_id()]
        try:
            answer = await self._json(
                lambda: self._client.client.marketing.contacts.put(request_body=body)
            )
        except MarketingRejected:
            # Perhaps a cached field or list was deleted at SendGrid: look them up again
            # next time (a replay of the dead letter then succeeds).
            self._field_ids, self._list_id = None, None
            raise
        return str(answer.get("job_id", ""))

    async def delete_contacts(self, emails: Sequence[str]) -> int:
        ids = await self.contact_ids(emails)
        if not ids:
            return 0
        await self._json(
            lambda: self._client.client.marketing.contacts.delete(
                query_params={"ids": ",".join(ids)}
            )
        )
        return len(ids)

    # --- lookups -----------------------------------------------------------------------

    async def contact_ids(self, emails: Sequence[str]) -> list[str]:
        """Ids of the contacts SendGrid has for these addresses (404: none of them)."""
        if not emails:
            return []
        body = {"emails": [e.strip().lower() for e in emails]}
        try:
            answer = await self._json(
                lambda: self._client.client.marketing.contacts.search.emails.post(
                    request_body=body
                ),
                not_found_ok=True,
            )
        except _NotFound:
            return []
        found = answer.get("result", {})
        return [str(r["contact"]["id"]) for r in found.values() if "contact" in r]

    async def field_ids(self) -> dict[str, str]:
        """Our custom fields' ids, creating the missing ones (once per client)."""
        if self._field_ids is not None:
            return self._field_ids
        async with self._setup:
            if self._field_ids is None:
                self._field_ids = await self._ensure_fields()
            return self._field_ids

    async def customers_list_id(self) -> str:
        if self._list_id is not None:
            return self._list_id
        async with self._setup:
            if self._list_id is None:
                self._list_id = await self._ensure_list()
            return self._list_id

    async def _existing_fields(self) -> dict[str, str]:
        answer = await self._json(lambda: self._client.client.marketing.field_definitions.get())
        return {str(f["name"]): str(f["id"]) for f in answer.get("custom_fields", [])}

    async def _ensure_fields(self) -> dict[str, str]:
        existing = await self._existing_fields()
        for name, field_type in CUSTOM_FIELDS.items():
            if name in existing:
                continue
            body = {"name": name, "field_type": field_type}
            try:
                created = await self._json(
                    partial(self._client.client.marketing.field_definitions.post, request_body=body)
                )
            except MarketingRejected:
                # Another process created it meanwhile (names are unique): use theirs.
                existing = await self._existing_fields()
                if name not in existing:
                    raise
                continue
            existing[name] = str(created["id"])
        return {name: existing[name] for name in CUSTOM_FIELDS}

    async def _find_list(self) -> str | None:
        answer = await self._json(
            lambda: self._client.client.marketing.lists.get(query_params={"page_size": 1000})
        )
        for item in answer.get("result", []):
            if str(item.get("name")) == self.list_name:
                return str(item["id"])
        return None

    async def _ensure_list(self) -> str:
        found = await self._find_list()
        if found is not None:
            return found
        try:
            created = await self._json(
                lambda: self._client.client.marketing.lists.post(
                    request_body={"name": self.list_name}
                )
            )
        except MarketingRejected:
            found = await self._find_list()  # created by another process meanwhile
            if found is None:
                raise
            return found
        return str(created["id"])

    # --- calling the SDK ---------------------------------------------------------------

    async def _json(self, fn: Callable[[], Any], *, not_found_ok: bool = False) -> dict[str, Any]:
        response = await self._call(fn, not_found_ok=not_found_ok)
        body = getattr(response, "body", b"") or b"{}"
        decoded: Any = json.loads(body)
        return decoded if isinstance(decoded, dict) else {}

    async def _call(self, fn: Callable[[], T], *, not_found_ok: bool = False) -> T:
        try:
            return await asyncio.to_thread(fn)
        except HTTPError as err:
            status = int(getattr(err, "status_code", 0) or 0)
            body = getattr(err, "body", b"") or b""
            detail = body.decode(errors="replace")[:500] if isinstance(body, bytes) else str(body)
            if status == 404 and not_found_ok:
                raise _NotFound(detail) from err
            if status == 400:
                raise MarketingRejected(f"SendGrid refused the request: {detail}") from err
            raise MarketingProviderUnavailable(f"SendGrid answered {status}: {detail}") from err
        except (URLError, OSError, TimeoutError) as err:
            raise MarketingProviderUnavailable(f"SendGrid is unreachable: {err}") from err
