"""The HubSpot sandbox: CRM v3 contacts, deals and properties as HubSpot answers them,
for the calls we make, so the real ``hubspot-api-client`` SDK is exercised end to end.

What it checks as HubSpot does: properties must exist (custom ones are created through
the properties API first), a property created with ``hasUniqueValue`` (and a contact's
email) is unique (a duplicate is a 409 ``CONFLICT``), deal stages of the default
pipeline must be real stage ids, and errors come in HubSpot's shape
(``status``, ``message``, ``correlationId``, ``category``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from integrations.sandbox.hubspot_wire import (
    ASSOCIATION_TYPES,
    BUILTIN_PROPERTIES,
    BUILTIN_UNIQUE,
    SEARCH_MAX,
    SINGULAR,
    HubSpotError,
    check_properties,
    iso,
    not_found,
    object_type_of,
    property_definition,
    property_values,
    public,
    validation_error,
)
from models.base import utcnow
from models.hubspot_sandbox import SandboxHubSpotObject


class HubSpotSandbox:
    """One per request (the API builds one for each call it answers)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # Property definitions by object type, read once per request: validating,
        # finding by a unique property and checking uniqueness each needed them, and
        # read them again (issue #15: 14 reads of sandbox objects per order, now 7).
        self._defined: dict[str, dict[str, dict[str, Any]]] = {}

    # --- storage -------------------------------------------------------------------------

    async def _lock(self, object_type: str) -> None:
        """Writes of one object type wait for each other, so that a unique value is
        checked and written by one request at a time (held until the commit)."""
        key = func.hashtext(f"sandbox_hubspot:{object_type}")
        await self.session.exec(select(func.pg_advisory_xact_lock(key)))

    async def _definitions(self, object_type: str) -> dict[str, dict[str, Any]]:
        known = self._defined.get(object_type)
        if known is not None:
            return known
        rows = await self.session.exec(
            select(SandboxHubSpotObject).where(
                SandboxHubSpotObject.object_type == f"properties/{object_type}"
            )
        )
        known = {str(r.properties["name"]): dict(r.properties) for r in rows.all()}
        self._defined[object_type] = known
        return known

    async def _unique(self, object_type: str) -> frozenset[str]:
        custom = await self._definitions(object_type)
        return BUILTIN_UNIQUE[object_type] | {n for n, d in custom.items() if d["hasUniqueValue"]}

    async def _by_value(
        self, object_type: str, name: str, value: str
    ) -> SandboxHubSpotObject | None:
        row = await self.session.exec(
            select(SandboxHubSpotObject).where(
                SandboxHubSpotObject.object_type == object_type,
                col(SandboxHubSpotObject.properties)[name].astext == value,
            )
        )
        return row.first()

    async def _by_id(self, object_type: str, object_id: str) -> SandboxHubSpotObject | None:
        if not object_id.isdigit():
            return None
        row = await self.session.get(SandboxHubSpotObject, int(object_id))
        return row if row is not None and row.object_type == object_type else None

    async def _find(
        self, object_type: str, object_id: str, id_property: str | None
    ) -> SandboxHubSpotObject:
        """The object by id, or by the value of a unique property (``id_property``)."""
        if id_property and id_property != "hs_object_id":
            if id_property not in await self._unique(object_type):
                raise validation_error(
                    f"{id_property} is not a unique identifier property for {object_type}"
                )
            value = object_id.lower() if id_property == "email" else object_id
            row = await self._by_value(object_type, id_property, value)
        else:
            row = await self._by_id(object_type, object_id)
        if row is None:
            raise not_found()
        return row

    # --- validation ----------------------------------------------------------------------

    async def _validate(self, object_type: str, properties: dict[str, str]) -> dict[str, str]:
        return check_properties(object_type, properties, set(await self._definitions(object_type)))

    async def _check_unique(
        self,
        object_type: str,
        properties: dict[str, str],
        own_id: int | None,
        looked_up: tuple[str, str] | None = None,
    ) -> None:
        """409 when another object holds one of ``properties``' unique values.
        ``looked_up``: a (property, value) the caller has just found this object by (or
        found no object by): nobody else holds it, no need to look again."""
        for name in sorted(await self._unique(object_type)):
            value = properties.get(name)
            if not value or (name, value) == looked_up:
                continue
            other = await self._by_value(object_type, name, value)
            if other is not None and other.id != own_id:
                if object_type == "contacts" and name == "email":
                    message = f"Contact already exists. Existing ID: {other.id}"
                else:
                    message = (
                        f"A {SINGULAR[object_type]} with {name}={value} already exists. "
                        f"Existing ID: {other.id}"
                    )
                raise HubSpotError(
                    409, message, "CONFLICT", errors=[{"message": message, "in": name}]
                )

    # --- objects -------------------------------------------------------------------------

    async def create(self, type_name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /crm/v3/objects/{objectType}``, with v3 ``associations``."""
        object_type = object_type_of(type_name)
        properties = await self._validate(
            object_type, property_values(body.get("properties") or {})
        )
        links = await self._association_targets(object_type, body.get("associations") or [])
        await self._lock(object_type)
        await self._check_unique(object_type, properties, None)
        row = SandboxHubSpotObject(object_type=object_type, properties=properties)
        self.session.add(row)
        await self.session.flush()
        for target in links:
            self._link(row, target)
        return public(row)

    async def update(
        self, type_name: str, object_id: str, id_property: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        """``PATCH /crm/v3/objects/{objectType}/{id}[?idProperty=…]``."""
        object_type = object_type_of(type_name)
        changes = await self._validate(object_type, property_values(body.get("properties") or {}))
        await self._lock(object_type)
        row = await self._find(object_type, object_id, id_property)
        merged = dict(row.properties) | changes
        # Found by a unique value: the object itself holds it.
        held = (
            (id_property, str(row.properties.get(id_property, "")))
            if id_property and id_property != "hs_object_id"
            else None
        )
        await self._check_unique(object_type, merged, row.id, held)
        row.properties = merged
        row.updated_at = utcnow()
        self.session.add(row)
        await self.session.flush()
        return public(row)

    async def read(self, type_name: str, object_id: str, id_property: str | None) -> dict[str, Any]:
        """``GET /crm/v3/objects/{objectType}/{id}[?idProperty=…]``."""
        return public(await self._find(object_type_of(type_name), object_id, id_property))

    async def batch_upsert(self, type_name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /crm/v3/objects/{objectType}/batch/upsert``: each input names a unique
        property (``idProperty``) and its value (``id``)."""
        object_type = object_type_of(type_name)
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise validation_error("Invalid input JSON: inputs must be a non-empty array")
        started = utcnow()
        await self._lock(object_type)
        unique = await self._unique(object_type)
        results = []
        for item in inputs:
            id_property, value = str(item.get("idProperty") or ""), str(item.get("id") or "")
            if id_property not in unique or not value:
                raise validation_error(
                    f"idProperty {id_property!r} is not a unique property of {object_type}"
                )
            if id_property == "email":
                value = value.strip().lower()
            properties = await self._validate(
                object_type, property_values(item.get("properties") or {}) | {id_property: value}
            )
            row = await self._by_value(object_type, id_property, value)
            new = row is None
            if row is None:
                await self._check_unique(object_type, properties, None, (id_property, value))
                row = SandboxHubSpotObject(object_type=object_type, properties=properties)
            else:
                merged = dict(row.properties) | properties
                await self._check_unique(object_type, merged, row.id, (id_property, value))
                row.properties = merged
                row.updated_at = utcnow()
            self.session.add(row)
            await self.session.flush()
            results.append(public(row) | {"new": new})
        return {
            "status": "COMPLETE",
            "results": results,
            "requestedAt": iso(started),
            "startedAt": iso(started),
            "completedAt": iso(utcnow()),
        }

    async def search(self, type_name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /crm/v3/objects/{objectType}/search``: ``EQ`` and ``IN`` filters; the
        filters of a group are ANDed, the groups ORed."""
        object_type = object_type_of(type_name)
        query = select(SandboxHubSpotObject).where(SandboxHubSpotObject.object_type == object_type)
        groups = []
        for group in body.get("filterGroups") or []:
            conditions = []
            for f in group.get("filters") or []:
                name, operator = str(f.get("propertyName", "")), str(f.get("operator", ""))
                column = col(SandboxHubSpotObject.properties)[name].astext
                if operator == "EQ":
                    conditions.append(column == str(f.get("value", "")))
                elif operator == "IN":
                    conditions.append(column.in_([str(v) for v in f.get("values") or []]))
                else:
                    raise validation_error(f"This sandbox does not support operator {operator}")
            if conditions:
                groups.append(conditions)
        if groups:
            query = query.where(or_(*(and_(*g) for g in groups)))
        limit = min(int(body.get("limit") or 10), SEARCH_MAX)
        offset = int(body.get("after") or 0)
        rows = list(
            (
                await self.session.exec(
                    query.order_by(col(SandboxHubSpotObject.id)).offset(offset).limit(limit + 1)
                )
            ).all()
        )
        count = await self.session.exec(
            select(func.count()).select_from(query.order_by(None).subquery())
        )
        answer: dict[str, Any] = {
            "total": int(count.one()),
            "results": [public(r) for r in rows[:limit]],
        }
        if len(rows) > limit:
            answer["paging"] = {"next": {"after": str(offset + limit)}}
        return answer

    async def gdpr_delete(self, type_name: str, body: dict[str, Any]) -> None:
        """``POST /crm/v3/objects/contacts/gdpr-delete``: the record is gone for good,
        and so are its associations."""
        object_type = object_type_of(type_name)
        object_id = str(body.get("objectId") or "")
        id_property = body.get("idProperty")
        await self._lock(object_type)
        row = await self._find(object_type, object_id, str(id_property) if id_property else None)
        for other_type, ids in row.associations.items():
            for other_id in ids:
                other = await self._by_id(other_type, other_id)
                if other is not None:
                    kept = [i for i in other.associations.get(object_type, []) if i != str(row.id)]
                    other.associations = dict(other.associations) | {object_type: kept}
                    self.session.add(other)
        await self.session.exec(
            delete(SandboxHubSpotObject).where(col(SandboxHubSpotObject.id) == row.id)
        )

    # --- associations ----------------------------------------------------------------------

    async def _association_targets(
        self, object_type: str, associations: list[Any]
    ) -> list[SandboxHubSpotObject]:
        targets = []
        for association in associations:
            to = str((association.get("to") or {}).get("id", ""))
            for spec in association.get("types") or []:
                type_id = spec.get("associationTypeId")
                kinds = [
                    t
                    for (f, t), i in ASSOCIATION_TYPES.items()
                    if f == object_type and i == type_id
                ]
                if not kinds:
                    raise validation_error(f"association type id {type_id} is not valid here")
                target = await self._by_id(kinds[0], to)
                if target is None:
                    raise validation_error(
                        f"One or more associations are invalid: {kinds[0]} {to} does not exist"
                    )
                targets.append(target)
        return targets

    def _link(self, row: SandboxHubSpotObject, other: SandboxHubSpotObject) -> None:
        for a, b in ((row, other), (other, row)):
            ids = list(a.associations.get(b.object_type, []))
            if str(b.id) not in ids:
                a.associations = dict(a.associations) | {b.object_type: [*ids, str(b.id)]}
                self.session.add(a)

    async def associate_default(
        self, from_type: str, from_id: str, to_type: str, to_id: str
    ) -> dict[str, Any]:
        """``PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{id}``."""
        source, target_type = object_type_of(from_type), object_type_of(to_type)
        started = utcnow()
        row = await self._find(source, from_id, None)
        other = await self._find(target_type, to_id, None)
        if (source, target_type) not in ASSOCIATION_TYPES:
            raise validation_error(f"{source} cannot be associated with {target_type}")
        self._link(row, other)
        await self.session.flush()
        results = [
            {
                "from": {"id": str(a.id)},
                "to": {"id": str(b.id)},
                "associationSpec": {
                    "associationCategory": "HUBSPOT_DEFINED",
                    "associationTypeId": ASSOCIATION_TYPES[(a.object_type, b.object_type)],
                },
            }
            for a, b in ((row, other), (other, row))
        ]
        return {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso(started),
            "completedAt": iso(utcnow()),
        }

    # --- properties -------------------------------------------------------------------------

    async def create_property(self, type_name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /crm/v3/properties/{objectType}``: 409 when the name is taken."""
        object_type = object_type_of(type_name)
        definition = property_definition(body)
        name = definition["name"]
        await self._lock(f"properties/{object_type}")
        if name in BUILTIN_PROPERTIES[object_type] or name in await self._definitions(object_type):
            raise HubSpotError(
                409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS"
            )
        self.session.add(
            SandboxHubSpotObject(object_type=f"properties/{object_type}", properties=definition)
        )
        await self.session.flush()
        self._defined.pop(object_type, None)
        return definition

    # --- what staff see ----------------------------------------------------------------------

    async def records(
        self, object_type: str, *, where: dict[str, str], limit: int
    ) -> list[SandboxHubSpotObject]:
        query = select(SandboxHubSpotObject).where(SandboxHubSpotObject.object_type == object_type)
        for name, value in where.items():
            query = query.where(col(SandboxHubSpotObject.properties)[name].astext == value)
        rows = await self.session.exec(
            query.order_by(col(SandboxHubSpotObject.id).desc()).limit(limit)
        )
        return list(rows.all())
