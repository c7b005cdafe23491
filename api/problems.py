"""RFC 9457 problem+json: every error the API answers has this one shape."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from models.base import CamelModel

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(CamelModel):
    """An error. ``code`` is stable and meant for machines; ``detail`` is for people."""

    type: str = Field(examples=["urn:shopweave:problem:not_found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["No product prod_01JD3K7Q8M… exists"])
    code: str = Field(examples=["not_found"])
    instance: str | None = Field(default=None, examples=["/api/products/prod_01JD3K7Q8M"])
    request_id: str | None = Field(default=None, examples=["req_01JD3K7Q8MXYZ"])

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None,
    request_id: str | None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:shopweave:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        "requestId": request_id,
    }
    for key, value in (extra or {}).items():
        body.setdefault(to_camel(key) if "_" in key else key, value)
    all_headers = dict(headers or {})
    if request_id:
        all_headers.setdefault("X-Request-ID", request_id)
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=all_headers
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem+json errors for an endpoint."""
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
