from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client

from temporal.search_attributes import SEARCH_ATTRIBUTES, dev_server_flags, ensure_search_attributes


async def _fresh_namespace(client: Client) -> str:
    name = f"sa-test-{uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name,
            workflow_execution_retention_period=Duration(
                seconds=int(timedelta(days=1).total_seconds())
            ),
        )
    )
    return name


async def test_ensure_registers_missing_attributes_once(temporal_client: Client) -> None:
    namespace = await _fresh_namespace(temporal_client)
    added = await ensure_search_attributes(temporal_client, namespace)
    assert (
        added
        == sorted(SEARCH_ATTRIBUTES)
        == [
            "CustomerId",
            "FulfillmentStatus",
            "OrderId",
            "OrderStatus",
            "OrderTotal",
            "ReturnStatus",
            "ShipmentStatus",
        ]
    )
    listed = await temporal_client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    assert listed.custom_attributes["CustomerId"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert listed.custom_attributes["OrderStatus"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert listed.custom_attributes["OrderTotal"] == IndexedValueType.INDEXED_VALUE_TYPE_INT
    assert listed.custom_attributes["ShipmentStatus"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert await ensure_search_attributes(temporal_client, namespace) == []


def test_dev_server_flags_name_every_attribute_with_its_type() -> None:
    flags = dev_server_flags()
    values = flags[1::2]
    assert flags[0::2] == ["--search-attribute"] * len(SEARCH_ATTRIBUTES)
    assert values[:3] == ["CustomerId=Keyword", "OrderStatus=Keyword", "OrderTotal=Int"]
    assert "ShipmentStatus=Keyword" in values
