"""A FastAPI "hello world" served as a user would deploy it (uvicorn with httptools and
uvloop), with ``shop api``'s socket (``TcpConfig``) and number of processes: the ceiling
``shop bench http`` and ``shop bench catalog`` measure our API against.
``python -m bench.hello --port P --workers N``."""

from __future__ import annotations

import argparse

from fastapi import FastAPI

from cli.serve import serve_processes
from cli.stack.process import die_with_parent


def hello_app() -> FastAPI:
    # As the API's processes do: a process the supervisor started while it was being
    # stopped outlived it (the bench left two orphans serving nothing).
    die_with_parent()
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    serve_processes(
        "bench.hello:hello_app",
        args.workers,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
