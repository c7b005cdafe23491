"""What the API's own validation accepts, its HTTP server reads too."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote, urlsplit

from cli.serve import MAX_REQUEST_HEAD_BYTES
from services.catalog.product_query import SEARCH_MAX_LENGTH
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


async def _post_in_one_piece(base_url: str, path: str, body: bytes) -> tuple[int, bytes]:
    """A raw POST whose head and body go in one write, as curl sends a body under 1 MB
    (no ``Expect: 100-continue``): the server gets them in the same chunks."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split(b" ", 2)[1]), rest.partition(b"\r\n\r\n")[2]


async def test_a_body_is_not_counted_as_head_when_both_arrive_together(live: LiveStack) -> None:
    """A 77 KB analytics batch (well under MAX_BODY_BYTES) came in one piece with its
    head and got the bare 400 "Request head too large."; the API answers it."""
    events = [
        {"event": "size_guide_open", "anonymousId": "anon-head", "properties": {"note": "x" * 3000}}
        for _ in range(25)
    ]
    batch = json.dumps({"batch": events}).encode()
    assert len(batch) > 1.1 * MAX_REQUEST_HEAD_BYTES
    status, body = await _post_in_one_piece(live.base_url, "/api/analytics/track", batch)
    assert (status, json.loads(body)) == (202, {"accepted": 25})
