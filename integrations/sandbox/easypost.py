"""The EasyPost sandbox: shipments, rates, labels, refunds and trackers as EasyPost v2
answers them, for the calls we make, so the real ``easypost`` SDK is exercised end to end.

Buying a rate creates a tracker (``pre_transit``, one tracking detail). Trackers move on
``pre_transit → in_transit → out_for_delivery → delivered`` (or to ``failure`` /
``return_to_sender``) by hand or by auto-advance; each move appends a tracking detail
and queues a signed ``tracker.updated`` webhook, which the caller sends after commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from integrations.sandbox.easypost_wire import (
    FINAL_STATUSES,
    NEXT_STATUS,
    NO_RATES_ZIP,
    STATUSES,
    UNVERIFIABLE_ZIP,
    EasyPostError,
    address,
    address_location,
    event,
    iso,
    new_id,
    not_found,
    parcel,
    rates,
    sign,
    tracking_code,
    tracking_detail,
)
from models.base import utcnow
from models.easypost_sandbox import SandboxEasyPostObject


@dataclass(frozen=True)
class Webhook:
    event_id: str
    payload: bytes
    signature: str


class TrackerCannotMove(Exception):
    """A hand-driven advance that the tracker's state does not allow (a switch error)."""


class EasyPostSandbox:
    def __init__(
        self, session: AsyncSession, *, base_url: str, webhook_url: str, webhook_secret: str
    ) -> None:
        self.session = session
        self.base_url = base_url  # …/_sandbox/easypost
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.webhooks: list[Webhook] = []  # to send after commit

    # --- storage -------------------------------------------------------------------------

    async def _row(self, object_id: str, kind: str, *, lock: bool = False) -> SandboxEasyPostObject:
        query = select(SandboxEasyPostObject).where(
            SandboxEasyPostObject.id == object_id, SandboxEasyPostObject.kind == kind
        )
        if lock:
            query = locked(query)
        row = (await self.session.exec(query)).first()
        if row is None:
            raise not_found()
        return row

    def _save(self, row: SandboxEasyPostObject, data: dict[str, Any]) -> dict[str, Any]:
        row.data = dict(data)
        self.session.add(row)
        return data

    async def _shown(self, shipment: dict[str, Any]) -> dict[str, Any]:
        """A shipment with its tracker as it stands now (EasyPost embeds it)."""
        tracker_id = shipment.get("tracker_id")
        if not tracker_id:
            return {k: v for k, v in shipment.items() if k != "tracker_id"}
        tracker = (await self._row(str(tracker_id), "tracker")).data
        shown = {k: v for k, v in shipment.items() if k != "tracker_id"}
        return shown | {"tracker": tracker, "status": tracker["status"]}

    # --- shipments -------------------------------------------------------------------------

    async def create_shipment(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v2/shipments`` with ``{"shipment": {...}}``."""
        params = body.get("shipment")
        if not isinstance(params, dict):
            raise EasyPostError(
                422, "PARAMETER.REQUIRED", "Missing required parameter: shipment.", []
            )
        now = utcnow()
        to_address = address(params.get("to_address"), "to_address", now)
        from_address = address(params.get("from_address"), "from_address", now)
        box = parcel(params.get("parcel"), now)
        if str(to_address["zip"]).strip() == UNVERIFIABLE_ZIP:
            raise EasyPostError(
                422,
                "ADDRESS.VERIFY.FAILURE",
                "Unable to verify address.",
                [{"field": "to_address.zip", "message": "Address not found"}],
            )
        shipment_id = new_id("shp")
        offered, messages = rates(shipment_id, box["weight"], now), []
        if str(to_address["zip"]).strip() == NO_RATES_ZIP:
            offered = []
            messages = [
                {
                    "carrier": c,
                    "type": "rate_error",
                    "message": "No service available to the destination address",
                }
                for c in ("USPS", "UPS", "FedEx")
            ]
        data = {
            "id": shipment_id,
            "object": "Shipment",
            "mode": "test",
            "reference": params.get("reference"),
            "is_return": bool(params.get("is_return") or False),
            "status": "unknown",
            "to_address": to_address,
            "from_address": from_address,
            "return_address": from_address,
            "buyer_address": to_address,
            "parcel": box,
            "rates": offered,
            "messages": messages,
            "selected_rate": None,
            "postage_label": None,
            "tracking_code": None,
            "tracker_id": None,
            "refund_status": None,
            "options": params.get("options") or {},
            "fees": [],
            "forms": [],
            "insurance": None,
            "customs_info": None,
            "batch_id": None,
            "created_at": iso(now),
            "updated_at": iso(now),
        }
        self.session.add(SandboxEasyPostObject(id=shipment_id, kind="shipment", data=data))
        await self.session.flush()
        return await self._shown(data)

    async def retrieve_shipment(self, shipment_id: str) -> dict[str, Any]:
        return await self._shown((await self._row(shipment_id, "shipment")).data)

    async def buy(self, shipment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v2/shipments/{id}/buy`` with ``{"rate": {"id": …}}``; a shipment is
        bought once (then ``SHIPMENT.POSTAGE.EXISTS``)."""
        row = await self._row(shipment_id, "shipment", lock=True)
        shipment = dict(row.data)
        if shipment.get("postage_label") is not None:
            raise EasyPostError(
                422, "SHIPMENT.POSTAGE.EXISTS", "Postage already exists for this shipment."
            )
        rate_id = str((body.get("rate") or {}).get("id") or "")
        rate = next((r for r in shipment["rates"] if r["id"] == rate_id), None)
        if rate is None:
            raise EasyPostError(
                422,
                "SHIPMENT.RATE.INVALID",
                "The rate is not one of this shipment's rates.",
                [{"field": "rate.id", "message": f"unknown rate {rate_id!r}"}],
            )
        now = utcnow()
        code = tracking_code(rate["carrier"])
        tracker_id = new_id("trk")
        tracker = {
            "id": tracker_id,
            "object": "Tracker",
            "mode": "test",
            "tracking_code": code,
            "status": "pre_transit",
            "status_detail": "status_update",
            "signed_by": None,
            "weight": None,
            "est_delivery_date": iso(now + timedelta(days=int(rate["delivery_days"]))),
            "shipment_id": shipment_id,
            "carrier": rate["carrier"],
            "tracking_details": [
                tracking_detail(
                    "pre_transit",
                    None,
                    address_location(shipment["from_address"]),
                    rate["carrier"],
                    now,
                )
            ],
            "carrier_detail": {"object": "CarrierDetail", "service": rate["service"]},
            "public_url": f"{self.base_url}/track/{tracker_id}",
            "fees": [],
            "created_at": iso(now),
            "updated_at": iso(now),
        }
        self.session.add(
            SandboxEasyPostObject(id=tracker_id, kind="tracker", data=tracker, advanced_at=now)
        )
        label_id = new_id("pl")
        shipment |= {
            "selected_rate": rate,
            "tracking_code": code,
            "tracker_id": tracker_id,
            "postage_label": {
                "id": label_id,
                "object": "PostageLabel",
                "label_url": f"{self.base_url}/labels/{shipment_id}",
                "label_file_type": "text/html",
                "label_size": "4x6",
                "label_resolution": 300,
                "label_date": iso(now),
                "created_at": iso(now),
                "updated_at": iso(now),
            },
            "updated_at": iso(now),
        }
        self._save(row, shipment)
        await self.session.flush()
        return await self._shown(shipment)

    async def refund(self, shipment_id: str) -> dict[str, Any]:
        """``POST /v2/shipments/{id}/refund``: an unused label is voided (its tracker is
        cancelled); a label the carrier has scanned is ``rejected``."""
        row = await self._row(shipment_id, "shipment", lock=True)
        shipment = dict(row.data)
        if shipment.get("postage_label") is None:
            raise EasyPostError(
                422, "SHIPMENT.REFUND.UNAVAILABLE", "This shipment has no postage to refund."
            )
        if shipment.get("refund_status") in ("submitted", "refunded"):
            raise EasyPostError(
                422,
                "SHIPMENT.REFUND.ALREADY_SUBMITTED",
                "A refund has already been submitted for this shipment.",
            )
        now = utcnow()
        tracker_row = await self._row(str(shipment["tracker_id"]), "tracker", lock=True)
        tracker = dict(tracker_row.data)
        if tracker["status"] not in ("pre_transit", "unknown"):
            shipment["refund_status"] = "rejected"
        else:
            shipment["refund_status"] = "submitted"
            tracker |= {
                "status": "cancelled",
                "tracking_details": [
                    *tracker["tracking_details"],
                    tracking_detail("cancelled", None, None, tracker["carrier"], now),
                ],
                "updated_at": iso(now),
            }
            tracker_row.advanced_at = None
            self._save(tracker_row, tracker)
        shipment["updated_at"] = iso(now)
        self._save(row, shipment)
        await self.session.flush()
        return await self._shown(shipment)

    # --- trackers --------------------------------------------------------------------------

    async def retrieve_tracker(self, tracker_id: str) -> dict[str, Any]:
        return (await self._row(tracker_id, "tracker")).data

    async def advance(
        self,
        tracker_id: str,
        status: str | None = None,
        message: str | None = None,
        where: str | None = None,
        *,
        at: datetime | None = None,
        label_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Move a tracker by hand: to ``status``, or else to the next normal one. ``at``
        is when the carrier saw it (default now; never before the tracker's last entry,
        never in the future); ``label_at`` re-dates the label's entry of a tracker that
        has not moved yet (seeding a past shipment)."""
        row = await self._row(tracker_id, "tracker", lock=True)
        if label_at is not None:
            self._date_label(row, label_at, at)
        return await self._advance(row, status, message, where, at)

    def _date_label(
        self, row: SandboxEasyPostObject, label_at: datetime, at: datetime | None
    ) -> None:
        tracker = dict(row.data)
        details = list(tracker["tracking_details"])
        if len(details) != 1 or tracker["status"] != "pre_transit":
            raise TrackerCannotMove(f"tracker {row.id} has moved: its label's date is told")
        if label_at > (at or utcnow()):
            raise TrackerCannotMove("the label cannot be dated after the update")
        details[0] = dict(details[0]) | {"datetime": iso(label_at)}
        tracker |= {"tracking_details": details, "created_at": iso(label_at)}
        self._save(row, tracker)

    async def advance_due(self, interval: timedelta, limit: int = 100) -> list[dict[str, Any]]:
        """Auto-advance: move each tracker that has stood still for ``interval`` one step.
        Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and re-stamped in the same
        transaction, so with several API processes each tracker moves once a step."""
        due = await self.session.exec(
            locked(
                select(SandboxEasyPostObject)
                .where(
                    SandboxEasyPostObject.kind == "tracker",
                    col(SandboxEasyPostObject.advanced_at) <= utcnow() - interval,
                )
                .order_by(col(SandboxEasyPostObject.advanced_at))
                .limit(limit),
                skip_locked=True,
            )
        )
        return [await self._advance(row, None, None, None) for row in due.all()]

    async def _advance(
        self,
        row: SandboxEasyPostObject,
        status: str | None,
        message: str | None,
        where: str | None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        tracker = dict(row.data)
        previous = str(tracker["status"])
        if previous == "cancelled":
            raise TrackerCannotMove(f"tracker {row.id} belongs to a voided label")
        if status is None:
            status = NEXT_STATUS.get(previous)
            if status is None:
                raise TrackerCannotMove(f"tracker {row.id} is {previous}: no next status")
        if status not in STATUSES:
            raise TrackerCannotMove(f"{status!r} is not an EasyPost tracker status")
        now = utcnow()
        when = now if at is None else at
        if when > now:
            raise TrackerCannotMove("a carrier update cannot come from the future")
        last = datetime.fromisoformat(str(tracker["tracking_details"][-1]["datetime"]))
        if when.replace(microsecond=0) < last:
            raise TrackerCannotMove(
                f"tracker {row.id} last moved at {iso(last)}: an update cannot come before it"
            )
        shipment = (await self._row(str(tracker["shipment_id"]), "shipment")).data
        if where is None:
            origin, destination = shipment["from_address"], shipment["to_address"]
            where = address_location(origin if status == "in_transit" else destination)
        tracker |= {
            "status": status,
            "tracking_details": [
                *tracker["tracking_details"],
                tracking_detail(status, message, where, str(tracker["carrier"]), when),
            ],
            "updated_at": iso(when),
        }
        if status == "delivered":
            tracker["signed_by"] = "Sandbox Recipient"
        row.advanced_at = None if status in FINAL_STATUSES or status not in NEXT_STATUS else now
        self._save(row, tracker)
        await self.session.flush()
        sent = event(tracker, previous, self.webhook_url, now)
        payload = json.dumps(sent).encode()
        self.webhooks.append(Webhook(sent["id"], payload, sign(payload, self.webhook_secret)))
        return tracker

    # --- what staff see ----------------------------------------------------------------------

    async def objects(
        self, kind: str, *, reference: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        query = select(SandboxEasyPostObject).where(SandboxEasyPostObject.kind == kind)
        if reference is not None:
            query = query.where(col(SandboxEasyPostObject.data)["reference"].astext == reference)
        rows = await self.session.exec(
            query.order_by(col(SandboxEasyPostObject.seq).desc()).limit(limit)
        )
        found = [r.data for r in rows.all()]
        return [await self._shown(d) for d in found] if kind == "shipment" else found
