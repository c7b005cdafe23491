"""Pages of the EasyPost sandbox for people: a tracker's public tracking page (its
``public_url``) and a shipment's printable label (its ``label_url``)."""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import DbSession, State
from api.problems import problem_responses
from api.routes.easypost_sandbox import sandbox_for
from core.errors import NotFound
from integrations.sandbox.easypost_wire import EasyPostError

router = APIRouter(prefix="/_sandbox/easypost", tags=["sandbox"])
_STYLE = "font-family:system-ui;max-width:800px;margin:2em auto"


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<body style='{_STYLE}'><h1>{html.escape(title)}</h1>{body}"
    )


@router.get(
    "/track/{tracker_id}",
    summary="EasyPost sandbox: tracking page",
    response_class=HTMLResponse,
    responses=problem_responses((NotFound, "tracker_not_found")),
)
async def tracking_page(tracker_id: str, state: State, session: DbSession) -> HTMLResponse:
    """Where a parcel is, newest update first: the page a tracker's `public_url` opens."""
    try:
        tracker = await sandbox_for(state, session).retrieve_tracker(tracker_id)
    except EasyPostError:
        raise NotFound(f"No tracker {tracker_id}", code="tracker_not_found") from None
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v or ''))}</td>"
            for v in (
                d["datetime"],
                d["status"],
                d["message"],
                ", ".join(
                    str(d["tracking_location"].get(k) or "")
                    for k in ("city", "state", "zip", "country")
                ).strip(", "),
            )
        )
        + "</tr>"
        for d in reversed(tracker["tracking_details"])
    )
    return _page(
        f"{tracker['carrier']} {tracker['tracking_code']}",
        f"<p>Status: <b>{html.escape(tracker['status'])}</b></p>"
        "<table border=1 cellpadding=4><tr><th>When</th><th>Status</th><th>Message</th>"
        f"<th>Where</th></tr>{rows}</table>",
    )


@router.get(
    "/labels/{shipment_id}",
    summary="EasyPost sandbox: a shipment's label",
    response_class=HTMLResponse,
    responses=problem_responses((NotFound, "label_not_found")),
)
async def label_page(shipment_id: str, state: State, session: DbSession) -> HTMLResponse:
    """The printable label of a bought shipment: the page its `label_url` opens."""
    try:
        shipment = await sandbox_for(state, session).retrieve_shipment(shipment_id)
    except EasyPostError:
        shipment = {}
    rate = shipment.get("selected_rate")
    if not rate:
        raise NotFound(f"No label for {shipment_id}", code="label_not_found")

    def lines(address: dict[str, str | None]) -> str:
        parts = [address.get(k) for k in ("name", "street1", "street2")]
        parts.append(" ".join(str(address.get(k) or "") for k in ("city", "state", "zip")))
        parts.append(address.get("country"))
        return "<br>".join(html.escape(str(p)) for p in parts if p)

    return _page(
        f"{rate['carrier']} {rate['service']}",
        f"<p>From:<br>{lines(shipment['from_address'])}</p>"
        f"<p style='font-size:1.4em'>To:<br>{lines(shipment['to_address'])}</p>"
        f"<p>Tracking: <b>{html.escape(str(shipment['tracking_code']))}</b></p>"
        f"<p>Reference: {html.escape(str(shipment.get('reference') or ''))}</p>",
    )
