"""Every public operation shows a success example in /api/docs, and each example is what
the API would really send: it passes the route's response model and comes back the same
when the model serialises it (an example that drifts from its model fails here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import Body, FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import TypeAdapter, ValidationError

from api.app import create_app
from api.examples import REQUEST_EXAMPLES, RESPONSE_EXAMPLES
from api.openapi import install_openapi
from core.settings import Settings

JSON = "application/json"


def _public(path: str) -> bool:
    return path.startswith("/api/") or path in ("/health", "/ready")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(shop_env="test", jwt_secret="x" * 40, search_index=False))


def _routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path_format
        if isinstance(route, APIRoute) and route.include_in_schema and path and _public(path):
            for method in sorted(route.methods or ()):
                yield method, path, route


def _examples(content: dict[str, Any]) -> list[Any]:
    if "example" in content:
        return [content["example"]]
    return [named["value"] for named in content.get("examples", {}).values()]


def _model(route: APIRoute, status: int) -> Any:
    declared = route.responses.get(status) or route.responses.get(str(status)) or {}
    return declared.get("model") or route.response_model


def test_every_success_answer_with_a_body_has_an_example_of_its_model(app: FastAPI) -> None:
    spec = app.openapi()
    missing: list[str] = []
    drifted: list[str] = []
    for method, path, route in _routes(app):
        responses = spec["paths"][path][method.lower()]["responses"]
        for status, response in responses.items():
            content = response.get("content", {})
            if not status.startswith("2") or not content:
                continue  # 204 No Content has nothing to show
            name = f"{method} {path} {status}"
            json_examples = _examples(content.get(JSON, {}))
            if not any(_examples(media) for media in content.values()):
                missing.append(name)
                continue
            model = _model(route, int(status))
            if JSON not in content or model is None:
                continue  # a stream or a page: its example is text
            if not json_examples:
                missing.append(name)
            adapter: TypeAdapter[Any] = TypeAdapter(model)
            for example in json_examples:
                try:
                    wire = adapter.dump_python(
                        adapter.validate_json(json.dumps(example)), mode="json", by_alias=True
                    )
                except ValidationError as exc:
                    drifted.append(f"{name}: {exc}")
                    continue
                if wire != example:
                    drifted.append(f"{name}: serialised differently:\n{wire}\n!=\n{example}")
    assert not missing, "operations without a success example:\n" + "\n".join(missing)
    assert not drifted, "examples that are not what the model sends:\n" + "\n\n".join(drifted)


def test_every_request_body_has_an_example_its_model_accepts(app: FastAPI) -> None:
    spec = app.openapi()
    missing: list[str] = []
    refused: list[str] = []
    for method, path, route in _routes(app):
        body = spec["paths"][path][method.lower()].get("requestBody")
        if body is None or route.body_field is None:
            continue
        examples = _examples(body["content"].get(JSON, {}))
        if not examples:
            missing.append(f"{method} {path}")
        annotation = route.body_field.field_info.annotation
        assert annotation is not None, f"{method} {path}"
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        for example in examples:
            try:
                adapter.validate_json(json.dumps(example))
            except ValidationError as exc:
                refused.append(f"{method} {path}: {exc}")
    assert not missing, "request bodies without an example:\n" + "\n".join(missing)
    assert not refused, "request examples the API refuses:\n" + "\n\n".join(refused)


def test_every_example_in_the_tables_belongs_to_an_operation(app: FastAPI) -> None:
    operations = {f"{method} {path}": route for method, path, route in _routes(app)}
    assert not set(RESPONSE_EXAMPLES) - set(operations)
    assert not set(REQUEST_EXAMPLES) - set(operations)
    spec = app.openapi()
    for key, by_status in RESPONSE_EXAMPLES.items():
        method, path = key.split(" ", 1)
        responses = spec["paths"][path][method.lower()]["responses"]
        for status in by_status:
            assert JSON in responses[str(status)].get("content", {}), f"{key} {status}"


_CLEARED = {"description": None, "tags": [None], "nested": {"at": None}}
_ClearingBody = Annotated[
    dict[str, Any], Body(openapi_examples={"clear": {"summary": "Clear it", "value": _CLEARED}})
]


def test_request_examples_keep_their_nulls() -> None:
    """FastAPI writes the document with ``exclude_none``, which dropped every null from a
    request example given with ``Body(openapi_examples=…)`` or ``openapi_extra`` (a PATCH
    that clears a field showed as one that changes nothing): they read as written."""
    app = FastAPI()
    install_openapi(app)

    @app.patch("/named")
    def named(body: _ClearingBody) -> None:
        """A body with named examples."""

    @app.post(
        "/extra",
        openapi_extra={"requestBody": {"content": {JSON: {"example": _CLEARED}}}},
    )
    def extra(body: dict[str, Any]) -> None:
        """A body whose example is declared beside the route."""

    spec = app.openapi()
    named_body = spec["paths"]["/named"]["patch"]["requestBody"]["content"][JSON]
    assert named_body["examples"]["clear"] == {"summary": "Clear it", "value": _CLEARED}
    assert spec["paths"]["/extra"]["post"]["requestBody"]["content"][JSON]["example"] == _CLEARED


def test_every_declared_request_example_is_in_the_document_as_written(app: FastAPI) -> None:
    spec = app.openapi()
    declared = 0
    for method, path, route in _routes(app):
        if route.body_field is None:
            continue
        examples = getattr(route.body_field.field_info, "openapi_examples", None) or {}
        content = spec["paths"][path][method.lower()].get("requestBody", {}).get("content", {})
        for name, example in examples.items():
            declared += 1
            assert content[JSON]["examples"][name] == jsonable_encoder(example), path
    assert declared > 5
