"""The OpenAPI document tells the truth: schemathesis against the live API, as staff.

Runs ``st run`` (schemathesis's own command line, as a developer would) against
``/api/openapi.json`` of the API served over real HTTP with workers on every queue. Five
checks, no more and no fewer: no 5xx, every status and content type declared, every
body matching its schema, and data outside the schema rejected. The seed is fixed and
generation deterministic, so a CI failure reproduces locally with the same command.
The sandboxes (``/_sandbox/…``) speak other providers' contracts, not ours, and are
left out.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.secrets import jwt_secret
from tests.factories import staff_headers
from tests.live import LiveStack

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
# Generated cases per operation (fuzzing, stateful); the examples and coverage phases run
# in full. A count, not a time budget: ``--max-time`` made every run last its 90 s however
# fast the machine, and ran fewer cases the busier it was; with a count, the fixed seed
# and deterministic generation, every machine runs the same cases, so a CI failure
# reproduces locally with the same command.
MAX_EXAMPLES = int(os.environ.get("SHOP_CONTRACT_EXAMPLES", "5"))
SEED = 20261202


async def test_openapi_document_matches_the_api(
    live: LiveStack, engine: AsyncEngine, repo_root: Path, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        staff = await staff_headers(http, engine)
        me = await http.get("/api/users/me", headers=staff)
        assert me.status_code == 200, me.text
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{live.base_url}/api/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--exclude-path-regex",
        # The notification stream answers a signed-in caller with a stream that lasts
        # until the client leaves (tests/notifications cover it).
        "^/_sandbox/|^/api/events/stream$",
        # One worker: CPython 3.11 can fail parsing source in two threads at once
        # ("AST constructor recursion depth mismatch", raised inside hypothesis).
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        # Schemathesis keeps a cache (and replays past failures first) in the working
        # directory: a fresh one each run, so every run is the same run.
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=os.environ
        | {
            "NO_COLOR": "1",
            "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
            "PYTHONPATH": str(repo_root),
            "SHOP_CONTRACT_STAFF_ID": me.json()["id"],
            "SHOP_CONTRACT_JWT_SECRET": jwt_secret(live.settings),
        },
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
