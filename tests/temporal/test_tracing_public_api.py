"""Our tracing of workflows reaches no private member of the Temporal SDK: a private
name changes or goes in any release, and what used it would break silently (the SDK's
``TracingWorkflowInboundInterceptor``'s ``_load_workflow_context_carrier`` and
``_workflow_context_carrier``, which ``temporal/run_traces.py`` overrode and set)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRACING = [ROOT / "temporal" / "run_traces.py", ROOT / "temporal" / "workflow_spans.py"]


def private(name: str) -> bool:
    """``_name``; not a dunder, nor ``__name``, a name of ours that Python mangles with
    its class's (``_RunSpansInbound__parent``): it cannot meet a name of an SDK class."""
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str) -> list[str]:
    """Private names ``source`` imports from temporalio or reads on any object."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("temporalio"):
            parts = (node.module or "").split(".") + [alias.name for alias in node.names]
            found += [f"{node.module}: {part}" for part in parts if private(part)]
        elif isinstance(node, ast.Import):
            found += [
                alias.name
                for alias in node.names
                if alias.name.startswith("temporalio") and any(map(private, alias.name.split(".")))
            ]
        elif isinstance(node, ast.Attribute) and private(node.attr):
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_the_check_finds_private_uses() -> None:
    source = (
        "from temporalio.contrib.opentelemetry._interceptor import TracingInterceptor\n"
        "from temporalio.worker import _workflow\n"
        "import temporalio.worker._interceptor\n"
        "carrier = self._load_workflow_context_carrier()\n"
        "self.__ours = self.__class__\n"
    )
    assert private_uses(source) == [
        "temporalio.contrib.opentelemetry._interceptor: _interceptor",
        "temporalio.worker: _workflow",
        "temporalio.worker._interceptor",
        "line 4: ._load_workflow_context_carrier",
    ]


def test_workflow_tracing_uses_the_sdks_public_api_only() -> None:
    assert {path.name: private_uses(path.read_text()) for path in TRACING} == {
        path.name: [] for path in TRACING
    }
