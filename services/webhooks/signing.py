"""Standard Webhooks: the envelope we send and the headers that sign it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.webhooks.endpoints import secret_key


def envelope(event_type: str, created_at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """``{"type", "timestamp", "data"}``, as Standard Webhooks recommends."""
    return {"type": event_type, "timestamp": created_at.isoformat(), "data": data}


def body_of(payload: dict[str, Any]) -> bytes:
    """The payload's bytes, the same on every attempt."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signed_headers(
    message_id: str, timestamp: int, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``: for each secret,
    ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body`` keyed with the secret's
    bytes, space-separated (during a rotation's grace, the new secret's and the old's: a
    receiver holding either accepts)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    signatures = [
        "v1," + base64.b64encode(hmac.new(secret_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    ]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }
