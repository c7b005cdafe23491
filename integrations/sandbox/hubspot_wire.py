"""HubSpot's wire format as the sandbox speaks it: object types, the default properties
and pipeline, errors in HubSpot's shape, records as ``SimplePublicObject`` and the
checks HubSpot makes on property values and definitions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from models.base import utcnow
from models.hubspot_sandbox import SandboxHubSpotObject

OBJECT_TYPES = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
}
SINGULAR = {"contacts": "contact", "deals": "deal"}
# HubSpot-defined association type ids (v4): deal to contact 3, contact to deal 4.
ASSOCIATION_TYPES = {("deals", "contacts"): 3, ("contacts", "deals"): 4}
DEFAULT_PIPELINE_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
)
# The default properties of each object that we (and a curious developer) might set.
BUILTIN_PROPERTIES: dict[str, frozenset[str]] = {
    "contacts": frozenset(
        {"email", "firstname", "lastname", "phone", "company", "website", "lifecyclestage"}
    ),
    "deals": frozenset(
        {
            "dealname",
            "amount",
            "deal_currency_code",
            "pipeline",
            "dealstage",
            "closedate",
            "description",
            "hubspot_owner_id",
        }
    ),
}
BUILTIN_UNIQUE = {"contacts": frozenset({"email"}), "deals": frozenset[str]()}
READ_ONLY = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"})
PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
SEARCH_MAX = 200


class HubSpotError(Exception):
    """An error HubSpot would answer: its HTTP status and the body's members."""

    def __init__(self, status: int, message: str, category: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.extra = extra

    def body(self, correlation_id: str) -> dict[str, Any]:
        return {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id,
            "category": self.category,
        } | self.extra


def validation_error(message: str, **extra: Any) -> HubSpotError:
    return HubSpotError(400, message, "VALIDATION_ERROR", **extra)


def not_found() -> HubSpotError:
    return HubSpotError(404, "resource not found", "OBJECT_NOT_FOUND")


def object_type_of(name: str) -> str:
    try:
        return OBJECT_TYPES[name.lower()]
    except KeyError:
        raise validation_error(f"Unable to infer object type from: {name}") from None


def iso(value: datetime) -> str:
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def public(row: SandboxHubSpotObject) -> dict[str, Any]:
    """A record as HubSpot's ``SimplePublicObject``."""
    modified = "lastmodifieddate" if row.object_type == "contacts" else "hs_lastmodifieddate"
    properties = dict(row.properties) | {
        "hs_object_id": str(row.id),
        "createdate": iso(row.created_at),
        modified: iso(row.updated_at),
    }
    return {
        "id": str(row.id),
        "properties": properties,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
        "archived": False,
    }


@dataclass
class PropertyProblems:
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, code: str, message: str) -> None:
        self.problems.append(
            {
                "isValid": False,
                "message": message,
                "error": code,
                "name": name,
                "localizedErrorMessage": message,
            }
        )

    def raise_if_any(self) -> None:
        if self.problems:
            raise validation_error(
                f"Property values were not valid: {json.dumps(self.problems)}",
                errors=[
                    {
                        "message": p["message"],
                        "code": p["error"],
                        "context": {"propertyName": [p["name"]]},
                    }
                    for p in self.problems
                ],
            )


def property_values(properties: Any) -> dict[str, str]:
    if not isinstance(properties, dict):
        raise validation_error("Invalid input JSON: properties must be an object")
    return {str(k): "" if v is None else str(v) for k, v in properties.items()}


def check_properties(
    object_type: str, properties: dict[str, str], custom: set[str]
) -> dict[str, str]:
    """The values HubSpot would refuse (400 ``VALIDATION_ERROR``); emails lower-cased."""
    invalid = PropertyProblems()
    for name, value in properties.items():
        if name in READ_ONLY:
            invalid.add(name, "READ_ONLY_VALUE", f'Property "{name}" is read-only')
        elif name not in BUILTIN_PROPERTIES[object_type] and name not in custom:
            invalid.add(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
        elif name == "email" and value and not _EMAIL.match(value):
            invalid.add(name, "INVALID_EMAIL", f"Email address {value} is invalid")
        elif name == "amount" and value:
            try:
                Decimal(value)
            except InvalidOperation:
                invalid.add(name, "INVALID_DECIMAL", f"{value} was not a valid number.")
    stage, pipeline = properties.get("dealstage"), properties.get("pipeline", "default")
    if stage and pipeline == "default" and stage not in DEFAULT_PIPELINE_STAGES:
        invalid.add(
            "dealstage",
            "INVALID_OPTION",
            f"{stage} was not one of the allowed options: {list(DEFAULT_PIPELINE_STAGES)}",
        )
    invalid.raise_if_any()
    if "email" in properties:
        properties = properties | {"email": properties["email"].strip().lower()}
    return properties


def property_definition(body: dict[str, Any]) -> dict[str, Any]:
    """A property as ``POST /crm/v3/properties/{objectType}`` creates it."""
    name = str(body.get("name") or "")
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        raise validation_error(f"Missing required fields: {', '.join(missing)}")
    if not _NAME.match(name):
        raise validation_error(f"Property name {name!r} is not valid")
    if body["type"] not in PROPERTY_TYPES:
        raise validation_error(f"Property type {body['type']!r} is not valid")
    now = iso(utcnow())
    definition = {
        "name": name,
        "label": str(body["label"]),
        "type": str(body["type"]),
        "fieldType": str(body["fieldType"]),
        "groupName": str(body["groupName"]),
        "description": str(body.get("description") or ""),
        "options": list(body.get("options") or []),
        "displayOrder": int(body.get("displayOrder") or -1),
        "hasUniqueValue": bool(body.get("hasUniqueValue", False)),
        "hidden": bool(body.get("hidden", False)),
        "formField": bool(body.get("formField", False)),
        "calculated": False,
        "externalOptions": False,
        "hubspotDefined": False,
        "archived": False,
        "createdAt": now,
        "updatedAt": now,
        "modificationMetadata": {
            "archivable": True,
            "readOnlyDefinition": False,
            "readOnlyValue": False,
        },
    }
    return definition
