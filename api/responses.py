"""Responses the hot read paths build themselves."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JsonBody(Response):
    """JSON of plain data (dicts, lists, str, int, bool, None) serialised by orjson.

    For a body that is already wire-shaped (camelCase, JSON types), e.g. read back from
    the response cache: no pydantic model is built only to be dumped again. The route's
    ``response_model`` still documents the shape in the OpenAPI schema."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
