"""Spans of the SendGrid, HubSpot and EasyPost SDKs' HTTP calls, attached to one SDK
client object when spans are exported (``core.instrumentation.provider_spans``; the
spans themselves are ``core/client_spans.py``'s): a client span per request, a child of
the activity's or delivery's span, whose ``traceparent`` the request carries.

Each hook wraps the SDK's own transport, on that object only:

- SendGrid (``python_http_client``, over urllib): the SDK's HTTP client becomes a
  ``TracedSendGridHttp``, which traces ``_make_request`` (the one call that opens a
  request, kept apart by the library for tests to replace) and hands the same to each
  client it builds per URL segment (``client.mail.send``);
- HubSpot (``urllib3``): each API object's ``PoolManager`` gets a traced ``urlopen``;
- EasyPost (``requests``): each transport adapter its ``Session`` mounts is wrapped in a
  ``TracedAdapter`` (requests' own transport hook).

Not the ``opentelemetry-instrumentation-urllib``, ``-urllib3`` or ``-requests`` packages:
the first two have no release for our ``opentelemetry-instrumentation`` (0.66b2; their
0.66b1 pins its own), and ``-requests`` (like ``-urllib``) patches the library's class
for the whole process, the API's and the worker's calls alike, with one provider.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.request import OpenerDirector, Request

import python_http_client
from python_http_client.exceptions import HTTPError
from requests import PreparedRequest, Response
from requests.adapters import BaseAdapter
from urllib3 import BaseHTTPResponse, HTTPHeaderDict

from core.instrumentation import provider_spans
from core.telemetry import Tracing

if TYPE_CHECKING:
    # Imported by ``provider_spans``, and only when spans are exported.
    from core.client_spans import ProviderSpans

log = logging.getLogger(__name__)


# python_http_client ships no types: its Client is Any to mypy.
class TracedSendGridHttp(python_http_client.Client):  # type: ignore[misc]
    """A SendGrid SDK's HTTP client whose requests are client spans."""

    _spans: ProviderSpans

    @classmethod
    def of(cls, client: python_http_client.Client, spans: ProviderSpans) -> TracedSendGridHttp:
        traced = cls.__new__(cls)
        traced.__dict__.update(vars(client))
        traced._spans = spans
        return traced

    def _build_client(self, name: str | None = None) -> TracedSendGridHttp:
        # Each URL segment (``client.mail.send``) is a new client: a traced one too.
        return TracedSendGridHttp.of(super()._build_client(name), self._spans)

    def _make_request(
        self, opener: OpenerDirector, request: Request, timeout: float | None = None
    ) -> Any:
        with self._spans.call(request.get_method(), request.full_url) as call:
            for name, value in call.headers.items():
                request.add_header(name, value)
            try:
                response = super()._make_request(opener, request, timeout)
            except HTTPError as err:  # the library raises for every 4xx and 5xx
                call.answered(int(err.status_code))
                raise
            call.answered(int(response.getcode()))
            return response


def trace_sendgrid(sdk: Any, tracing: Tracing | None) -> None:
    """``sdk`` (a ``SendGridAPIClient``): a client span per request it sends."""
    spans = provider_spans(tracing, "sendgrid")
    if spans is not None:
        sdk.client = TracedSendGridHttp.of(sdk.client, spans)


def _traced_urlopen(
    urlopen: Callable[..., BaseHTTPResponse], headers: Any, spans: ProviderSpans
) -> Callable[..., BaseHTTPResponse]:
    @functools.wraps(urlopen)
    def traced(method: str, url: str, *args: Any, **kw: Any) -> BaseHTTPResponse:
        with spans.call(method, url) as call:
            if call.headers:
                # A copy: the headers may be the pool's defaults, shared by every call.
                sent = HTTPHeaderDict(kw.get("headers") or headers)
                sent.update(call.headers)
                kw["headers"] = sent
            response = urlopen(method, url, *args, **kw)
            call.answered(response.status)
            return response

    return traced


def trace_hubspot(apis: Iterable[Any], tracing: Tracing | None) -> None:
    """Each of ``apis`` (a HubSpot SDK API object, e.g. ``crm.deals.basic_api``, each
    with an HTTP pool of its own): a client span per request it sends."""
    spans = provider_spans(tracing, "hubspot")
    if spans is None:
        return
    for api in apis:
        pool = api.api_client.rest_client.pool_manager
        # On this pool only: its class, and every other pool, stay as they are.
        pool.urlopen = _traced_urlopen(pool.urlopen, pool.headers, spans)


class TracedAdapter(BaseAdapter):
    """A ``requests`` transport adapter that sends through ``adapter``, each request a
    client span."""

    def __init__(self, adapter: BaseAdapter, spans: ProviderSpans) -> None:
        super().__init__()
        self.adapter = adapter
        self._spans = spans

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        with self._spans.call(request.method or "GET", request.url or "") as call:
            request.headers.update(call.headers)
            response = self.adapter.send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
            call.answered(response.status_code)
            return response

    def close(self) -> None:
        self.adapter.close()


def trace_easypost(client: Any, tracing: Tracing | None) -> None:
    """``client`` (an ``EasyPostClient``): a client span per request its ``requests``
    session sends."""
    spans = provider_spans(tracing, "easypost")
    if spans is None:
        return
    session = getattr(client, "_requests_session", None)
    if session is None:
        log.warning("EasyPost's client has no requests session to trace; its calls get no spans")
        return
    for prefix, adapter in list(session.adapters.items()):
        session.mount(prefix, TracedAdapter(adapter, spans))
