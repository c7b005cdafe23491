"""The SendGrid sandbox's Marketing Campaigns part: custom fields, lists and contacts.

Checked like SendGrid checks them: field names unique (case-insensitively) and not
reserved, values of a custom field's type, known field and list ids, valid emails. Kept
in PostgreSQL (``sandbox_marketing_records``) as SendGrid shows them. SendGrid applies a
contacts upsert or deletion as an asynchronous job; the sandbox applies it at once and
answers as SendGrid does (202 with a ``job_id``).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from integrations.sandbox.sendgrid import SendGridError
from models.marketing import SandboxContactView, SandboxListView, SandboxMarketingRecord

FIELD, LIST, CONTACT = "field", "list", "contact"
FIELD_TYPES = ("Text", "Number", "Date")
RESERVED_FIELDS = (
    ("_rf0_T", "first_name"),
    ("_rf1_T", "last_name"),
    ("_rf2_T", "email"),
    ("_rf3_T", "alternate_emails"),
    ("_rf4_T", "address_line_1"),
    ("_rf5_T", "city"),
    ("_rf6_T", "country"),
    ("_rf7_T", "postal_code"),
    ("_rf8_T", "phone_number"),
)
CONTACT_FIELDS = {"email", "first_name", "last_name", "custom_fields"}
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_US_DATE = re.compile(r"^(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])/\d{4}$")


class MarketingInvalid(Exception):
    def __init__(self, errors: list[SendGridError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date_ok(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if _US_DATE.match(value):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _value_ok(field_type: str, value: Any) -> bool:
    if field_type == "Number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if field_type == "Date":
        return _date_ok(value)
    return isinstance(value, str)


class SandboxMarketing:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _all(self, kind: str) -> list[SandboxMarketingRecord]:
        result = await self.session.exec(
            select(SandboxMarketingRecord)
            .where(SandboxMarketingRecord.kind == kind)
            .order_by(col(SandboxMarketingRecord.created_at), col(SandboxMarketingRecord.id))
        )
        return list(result.all())

    async def _insert(self, kind: str, key: str, record_id: str, data: dict[str, Any]) -> bool:
        """Insert unless one of ``kind`` has ``key``; False if one does (a racing twin)."""
        inserted = await self.session.exec(
            insert(SandboxMarketingRecord)
            .values(id=record_id, kind=kind, key=key, data=data)
            .on_conflict_do_nothing(index_elements=["kind", "key"])
            .returning(col(SandboxMarketingRecord.id))
        )
        return inserted.first() is not None

    # --- custom field definitions ------------------------------------------------------

    async def fields(self) -> list[dict[str, Any]]:
        return [r.data for r in await self._all(FIELD)]

    async def create_field(self, payload: Any) -> dict[str, Any]:
        body = payload if isinstance(payload, dict) else {}
        name, field_type = body.get("name"), body.get("field_type")
        errors: list[SendGridError] = []
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            errors.append(
                SendGridError(
                    "name must start with a letter or underscore and contain only "
                    "alphanumeric characters and underscores (at most 100)",
                    "name",
                )
            )
        elif name.lower() in {n for _, n in RESERVED_FIELDS}:
            errors.append(SendGridError("name collides with a reserved field", "name"))
        if field_type not in FIELD_TYPES:
            errors.append(
                SendGridError("field_type must be one of Text, Number, Date", "field_type")
            )
        if errors:
            raise MarketingInvalid(errors)
        assert isinstance(name, str)
        assert isinstance(field_type, str)
        # SendGrid's ids look like "e12_N": a number and the type's initial.
        data = {
            "id": f"e{uuid.uuid4().int % 10**9}_{field_type[0]}",
            "name": name,
            "field_type": field_type,
        }
        if not await self._insert(FIELD, name.lower(), data["id"], data):
            raise MarketingInvalid([SendGridError("field name already exists", "name")])
        return data

    # --- lists -------------------------------------------------------------------------

    async def lists(self) -> list[dict[str, Any]]:
        rows = await self._all(LIST)
        counts = await self._list_counts()
        return [r.data | {"contact_count": counts.get(r.id, 0)} for r in rows]

    async def _list_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for contact in await self._all(CONTACT):
            for list_id in contact.data.get("list_ids", []):
                counts[list_id] = counts.get(list_id, 0) + 1
        return counts

    async def create_list(self, payload: Any) -> dict[str, Any]:
        name = payload.get("name") if isinstance(payload, dict) else None
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise MarketingInvalid(
                [SendGridError("name is required (1 to 100 characters)", "name")]
            )
        list_id = str(uuid.uuid4())
        data: dict[str, Any] = {"id": list_id, "name": name, "contact_count": 0}
        if not await self._insert(LIST, name.strip().lower(), list_id, data):
            raise MarketingInvalid([SendGridError("list name already exists", "name")])
        return data

    # --- contacts ----------------------------------------------------------------------

    def upsert_recipients(self, payload: Any) -> list[str]:
        """The addresses a contacts upsert is for (the fault switch's ``to`` filter)."""
        contacts = payload.get("contacts") if isinstance(payload, dict) else None
        if not isinstance(contacts, list):
            return []
        return [str(c.get("email", "")).lower() for c in contacts if isinstance(c, dict)]

    async def check_upsert(self, payload: Any) -> None:
        """SendGrid's validation of ``PUT /v3/marketing/contacts``; raises with its errors."""
        body = payload if isinstance(payload, dict) else {}
        contacts = body.get("contacts")
        errors: list[SendGridError] = []
        if not isinstance(contacts, list) or not 1 <= len(contacts) <= 30_000:
            raise MarketingInvalid(
                [SendGridError("contacts must be an array of 1 to 30000 contacts", "contacts")]
            )
        list_ids = body.get("list_ids", [])
        known_lists = {r.id for r in await self._all(LIST)}
        if not isinstance(list_ids, list) or any(i not in known_lists for i in list_ids):
            errors.append(SendGridError("list_ids contains an unknown list id", "list_ids"))
        field_types = {f["id"]: f["field_type"] for f in await self.fields()}
        for i, contact in enumerate(contacts):
            where = f"contacts[{i}]"
            if not isinstance(contact, dict):
                errors.append(SendGridError("a contact must be an object", where))
                continue
            if not _EMAIL.match(str(contact.get("email", ""))):
                errors.append(SendGridError("email is not a valid email address", f"{where}.email"))
            custom = contact.get("custom_fields", {})
            if not isinstance(custom, dict):
                errors.append(
                    SendGridError("custom_fields must be an object", f"{where}.custom_fields")
                )
                continue
            for field_id, value in custom.items():
                if field_id not in field_types:
                    errors.append(
                        SendGridError(
                            f"custom field {field_id} does not exist",
                            f"{where}.custom_fields.{field_id}",
                        )
                    )
                elif not _value_ok(field_types[field_id], value):
                    errors.append(
                        SendGridError(
                            f"custom field {field_id} takes a {field_types[field_id]}",
                            f"{where}.custom_fields.{field_id}",
                        )
                    )
        if errors:
            raise MarketingInvalid(errors)

    async def upsert(self, payload: dict[str, Any]) -> None:
        """Apply a checked upsert: fields omitted stay as they were, lists accumulate."""
        names = {f["id"]: f["name"] for f in await self.fields()}
        list_ids = list(payload.get("list_ids", []))
        for contact in payload["contacts"]:
            email = str(contact["email"]).strip().lower()
            row = await self._contact(email)
            now = _now()
            data: dict[str, Any] = (
                dict(row.data)
                if row
                else {
                    "id": str(uuid.uuid4()),
                    "email": email,
                    "list_ids": [],
                    "custom_fields": {},
                    "created_at": now,
                }
            )
            for key in ("first_name", "last_name"):
                if key in contact:
                    data[key] = contact[key]
            data["custom_fields"] = dict(data["custom_fields"]) | {
                names[k]: v for k, v in (contact.get("custom_fields") or {}).items()
            }
            data["list_ids"] = list(dict.fromkeys([*data["list_ids"], *list_ids]))
            data["updated_at"] = now
            if row is None:
                if await self._insert(CONTACT, email, data["id"], data):
                    continue
                row = await self._contact(email)  # created by a concurrent upsert
                assert row is not None
                data["id"] = row.id
            row.data = data
            row.updated_at = datetime.now(UTC)
            self.session.add(row)
        await self.session.flush()

    async def _contact(self, email: str) -> SandboxMarketingRecord | None:
        result = await self.session.exec(
            select(SandboxMarketingRecord).where(
                SandboxMarketingRecord.kind == CONTACT, SandboxMarketingRecord.key == email
            )
        )
        return result.first()

    async def by_emails(self, emails: list[str]) -> dict[str, dict[str, Any]]:
        wanted = [e.strip().lower() for e in emails if e.strip()]
        result = await self.session.exec(
            select(SandboxMarketingRecord).where(
                SandboxMarketingRecord.kind == CONTACT, col(SandboxMarketingRecord.key).in_(wanted)
            )
        )
        return {r.key: r.data for r in result.all()}

    async def emails_of(self, ids: list[str]) -> list[str]:
        result = await self.session.exec(
            select(SandboxMarketingRecord.key).where(
                SandboxMarketingRecord.kind == CONTACT, col(SandboxMarketingRecord.id).in_(ids)
            )
        )
        return list(result.all())

    async def delete_contacts(self, ids: list[str]) -> None:
        result = await self.session.exec(
            select(SandboxMarketingRecord).where(
                SandboxMarketingRecord.kind == CONTACT, col(SandboxMarketingRecord.id).in_(ids)
            )
        )
        for row in result.all():
            await self.session.delete(row)
        await self.session.flush()

    # --- what staff see ------------------------------------------------------------------

    async def contact_views(self, email: str | None, limit: int) -> list[SandboxContactView]:
        statement = select(SandboxMarketingRecord).where(SandboxMarketingRecord.kind == CONTACT)
        if email:
            statement = statement.where(SandboxMarketingRecord.key == email.strip().lower())
        result = await self.session.exec(
            statement.order_by(col(SandboxMarketingRecord.updated_at).desc()).limit(limit)
        )
        names = {r.id: str(r.data["name"]) for r in await self._all(LIST)}
        return [
            SandboxContactView(
                id=r.id,
                email=r.key,
                first_name=r.data.get("first_name"),
                last_name=r.data.get("last_name"),
                lists=[names.get(i, i) for i in r.data.get("list_ids", [])],
                custom_fields=r.data.get("custom_fields", {}),
                created_at=r.data["created_at"],
                updated_at=r.data["updated_at"],
            )
            for r in result.all()
        ]

    async def list_views(self) -> list[SandboxListView]:
        return [
            SandboxListView(id=d["id"], name=d["name"], contact_count=d["contact_count"])
            for d in await self.lists()
        ]
