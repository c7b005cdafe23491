"""Custom search attributes, so operators can filter orders in the Temporal UI.

``ensure_search_attributes`` registers them on any server (dev server, self-hosted
cluster); the dev server started by ``shop dev`` also gets them on its command line.
"""

from __future__ import annotations

import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey,
)

log = logging.getLogger(__name__)

CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
ORDER_TOTAL = SearchAttributeKey.for_int("OrderTotal")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
FULFILLMENT_STATUS = SearchAttributeKey.for_keyword("FulfillmentStatus")
SHIPMENT_STATUS = SearchAttributeKey.for_keyword("ShipmentStatus")
RETURN_STATUS = SearchAttributeKey.for_keyword("ReturnStatus")

SEARCH_ATTRIBUTES: dict[str, IndexedValueType.ValueType] = {
    CUSTOMER_ID.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    ORDER_STATUS.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    ORDER_TOTAL.name: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    ORDER_ID.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    FULFILLMENT_STATUS.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SHIPMENT_STATUS.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    RETURN_STATUS.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}

_CLI_TYPE_NAMES = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
}


def dev_server_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    flags: list[str] = []
    for name, kind in SEARCH_ATTRIBUTES.items():
        flags += ["--search-attribute", f"{name}={_CLI_TYPE_NAMES[kind]}"]
    return flags


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register whichever of our attributes the namespace lacks; return the ones added.

    Temporal Cloud does not allow this through the operator API: there, create them in
    the Cloud console or with ``tcld`` and this finds them present.
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        name: kind
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
        )
        log.info("registered search attributes", extra={"attributes": sorted(missing)})
    return sorted(missing)
