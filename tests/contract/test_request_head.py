"""What the API's own validation accepts, its HTTP server reads too."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote, urlsplit

from cli.serve import MAX_REQUEST_HEAD_BYTES
from services.catalog.products import SEARCH_MAX_LENGTH
from tests.live import LiveStack


async def _get(base_url: str, target: str, pad_header: int = 0) -> tuple[int, dict[str, object]]:
    """A raw HTTP/1.1 GET (httpx itself refuses a query this long); ``pad_header``: with
    an ``X-Pad`` header of that many bytes."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    pad = f"X-Pad: {'p' * pad_header}\r\n" if pad_header else ""
    request = f"GET {target} HTTP/1.1\r\nHost: {url.netloc}\r\n{pad}Connection: close\r\n\r\n"
    data = request.encode()
    # In pieces, as a slow network delivers it: the server must hold the incomplete head.
    for start in range(0, len(data), 8192):
        writer.write(data[start : start + 8192])
        await writer.drain()
        await asyncio.sleep(0.005)
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"raw": body[:200].decode(errors="replace")}


async def test_the_longest_search_the_api_accepts_reaches_it(live: LiveStack) -> None:
    """500 four-byte characters are 6 KB percent-encoded: the API's own validation, not
    the HTTP server, answers the search one character longer (schemathesis found a bare
    400 of uvicorn's when the two disagreed)."""
    search = "\U0001d11e" * SEARCH_MAX_LENGTH
    status, body = await _get(live.base_url, f"/api/products?search={quote(search)}")
    assert status == 200, body
    assert body["items"] == []
    status, body = await _get(live.base_url, f"/api/products?search={quote(search + 'x')}")
    assert (status, body["code"]) == (422, "validation_error")


async def test_a_request_head_over_the_limit_is_refused_and_the_connection_closed(
    live: LiveStack,
) -> None:
    """uvicorn's httptools protocol reads headers for as long as they come; ours stops
    past MAX_REQUEST_HEAD_BYTES (here in the last piece the client sends, so the server
    has read everything and closes cleanly: the client reads the answer, not a reset)."""
    status, body = await _get(live.base_url, "/health", pad_header=MAX_REQUEST_HEAD_BYTES)
    assert status == 400
    assert body == {"raw": "Request head too large."}
    # A head just under the limit (headers included) is read and answered.
    status, _ = await _get(live.base_url, "/health", pad_header=MAX_REQUEST_HEAD_BYTES - 1024)
    assert status == 200
