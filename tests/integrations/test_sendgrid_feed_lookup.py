"""A send whose answer was lost is sent again only when SendGrid's Email Activity feed
says it never arrived, or when the account has no feed (401/403/404): never because the
feed could not be asked. Before, a feed that was down (5xx) or unreachable counted as
"cannot know" and the message went out again, while the earlier send could still land: a
chaos run's refund email arrived three times, its sends queued in the listening socket of
an API (the sandbox's) being replaced. SendGrid stands in as a local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli.stack.process import free_port
from integrations.email.sender import EmailProviderUnavailable, SendGridSender


class _Feed(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = b'{"messages": []}' if self.status == 200 else b'{"errors": []}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def feed() -> Iterator[tuple[str, type[_Feed]]]:
    handler = type("Feed", (_Feed,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_a_feed_that_fails_is_retried_not_taken_for_an_answer(
    feed: tuple[str, type[_Feed]], status: int
) -> None:
    url, handler = feed
    handler.status = status
    with pytest.raises(EmailProviderUnavailable, match=str(status)):
        await SendGridSender("SG.key", url).find_accepted("message_key", "msg_1")


async def test_an_unreachable_feed_is_retried_not_taken_for_an_answer() -> None:
    sender = SendGridSender("SG.key", f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    with pytest.raises(EmailProviderUnavailable, match="unreachable"):
        await sender.find_accepted("message_key", "msg_1")


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_an_account_without_the_feed_cannot_know(
    feed: tuple[str, type[_Feed]], status: int
) -> None:
    url, handler = feed
    handler.status = status
    assert await SendGridSender("SG.key", url).find_accepted("message_key", "msg_1") is None


async def test_a_feed_without_the_message_says_it_never_arrived(
    feed: tuple[str, type[_Feed]],
) -> None:
    url, _ = feed
    assert await SendGridSender("SG.key", url).find_accepted("message_key", "msg_1") is None
