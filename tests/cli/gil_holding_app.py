"""An app factory that holds the GIL for a while before it returns, as a heavy import
does on busy cores (used by ``test_serve_healthcheck``). Each call notes its pid in
``$GIL_APP_STARTS`` so the test can count the processes the supervisor started."""

from __future__ import annotations

import ctypes
import os

from fastapi import FastAPI

HOLD_SECONDS = 7  # longer than uvicorn's default 5 s health-check timeout


def create() -> FastAPI:
    with open(os.environ["GIL_APP_STARTS"], "a") as starts:
        starts.write(f"{os.getpid()}\n")
    # A PyDLL call keeps the GIL for its whole length, so the supervisor's health-check
    # thread in this process cannot answer until it returns.
    ctypes.PyDLL(None).sleep(HOLD_SECONDS)
    app = FastAPI()

    @app.get("/")
    def hello() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app


def create_holding_on_request() -> FastAPI:
    """An app that starts at once and holds the GIL for ``?seconds=`` when asked (used
    by ``test_serve_supervisor``): its health-check answer waits until then."""
    with open(os.environ["GIL_APP_STARTS"], "a") as starts:
        starts.write(f"{os.getpid()}\n")
    app = FastAPI()

    @app.get("/")
    def hello() -> dict[str, int]:
        return {"pid": os.getpid()}

    @app.get("/hold")
    def hold(seconds: int) -> None:
        ctypes.PyDLL(None).sleep(seconds)

    return app
