"""``temporal.sandbox``: our workflow modules pass through the sandbox (imported once per
process, not per run), the SDK's restrictions stay, and what the sandbox then no longer
catches in our workflow modules' own code, reading them does."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from temporal.sandbox import PASSED_THROUGH, RESTRICTIONS, workflow_runner
from tests.workflows.record_histories import HISTORIES, WORKFLOWS
from workflows.fulfillment import FulfillmentWorkflow
from workflows.orders import OrderWorkflow
from workflows.shipments import ShipmentWorkflow

WORKFLOW_MODULES = sorted(Path(__file__).parents[2].joinpath("workflows").glob("*.py"))
# Modules whose use in a workflow's own code would make a replay take another path.
NONDETERMINISTIC_MODULES = frozenset(
    {"time", "random", "uuid", "secrets", "os", "socket", "threading", "subprocess"}
)
# ``datetime.now()`` and friends: the clock (``workflow.now()`` is the workflow's).
CLOCK_CALLS = frozenset({"now", "utcnow", "today"})


class _RunClasses(Interceptor):
    """Notes the class of every workflow object a run is executed on."""

    def __init__(self) -> None:
        self.seen: list[type] = []

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        seen = self.seen

        class Inbound(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                seen.append(input.type)
                return await super().execute_workflow(input)

        return Inbound


async def _run_class(
    runner: SandboxedWorkflowRunner, name: str = "shipment_delivered_local_steps"
) -> type:
    noted = _RunClasses()
    history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=runner,
        interceptors=[noted],
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
    [run_class] = noted.seen
    return run_class


async def test_a_run_uses_the_workflow_class_imported_once_not_a_fresh_import() -> None:
    # The SDK's default sandbox builds a fresh module, hence a fresh class, for the run.
    assert await _run_class(SandboxedWorkflowRunner()) is not ShipmentWorkflow
    assert await _run_class(workflow_runner()) is ShipmentWorkflow


@pytest.mark.parametrize(
    ("name", "workflow_class"),
    [
        ("order_fulfillment_queued_local_steps", OrderWorkflow),
        ("fulfillment_delivered_in_two_parcels_local_steps", FulfillmentWorkflow),
    ],
)
async def test_the_workflows_every_order_runs_build_no_sandbox(
    name: str, workflow_class: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``OrderWorkflow`` and ``FulfillmentWorkflow`` are unsandboxed (issue #15: about
    10 ms of worker CPU per run went to building the sandbox), whatever runner a worker
    is given, and still replay their recorded histories."""
    built: list[str] = []
    create_instance = SandboxedWorkflowRunner.create_instance

    def counted(self: SandboxedWorkflowRunner, det: Any) -> Any:
        built.append(det.defn.name)
        return create_instance(self, det)

    monkeypatch.setattr(SandboxedWorkflowRunner, "create_instance", counted)
    # (A replayer checks every sandboxed workflow it registers by building it once.)
    assert await _run_class(workflow_runner(), name) is workflow_class
    assert workflow_class.__name__ not in built, built
    # A workflow left in the sandbox builds one for its run (the count can see it).
    built.clear()
    await _run_class(workflow_runner())
    assert built.count("ShipmentWorkflow") == 2, built


def test_the_sdk_restrictions_stay_and_only_our_workflow_modules_are_added() -> None:
    ours = RESTRICTIONS
    default = SandboxRestrictions.default
    assert ours.passthrough_modules - default.passthrough_modules == {"workflows"}
    assert PASSED_THROUGH == ("workflows",)
    assert ours.invalid_module_members is default.invalid_module_members
    assert ours.invalid_modules is default.invalid_modules
    assert not ours.passthrough_all_modules


def _nondeterminism(source: str) -> list[str]:
    """What in a module's own code would reach the clock, randomness or the OS."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                a.name for a in node.names if a.name.split(".")[0] in NONDETERMINISTIC_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in NONDETERMINISTIC_MODULES:
                found.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLOCK_CALLS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in {"datetime", "date"}
        ):
            found.append(f"{node.func.value.id}.{node.func.attr}()")
    return found


def test_the_check_finds_the_clock_randomness_and_the_os() -> None:
    source = (
        "import time\nfrom uuid import uuid4\nimport os.path\nfrom datetime import datetime\n"
        "def f():\n    return datetime.now(), date.today(), workflow.now()\n"
    )
    assert _nondeterminism(source) == ["time", "uuid", "os.path", "datetime.now()", "date.today()"]


@pytest.mark.parametrize("path", WORKFLOW_MODULES, ids=[p.stem for p in WORKFLOW_MODULES])
def test_workflow_modules_use_neither_the_clock_nor_randomness_nor_the_os(path: Path) -> None:
    assert _nondeterminism(path.read_text()) == []


TEST_MODULES = sorted(Path(__file__).parents[1].rglob("*.py"))
# What a test module of sandboxed stand-in workflows may import outside
# ``imports_passed_through``: modules the sandbox passes through by default.
SANDBOX_SAFE_TOP_LEVEL = frozenset(sys.stdlib_module_names) | {"temporalio", "__future__"}


def sandbox_reimports(source: str) -> list[str]:
    """The modules a test module of sandboxed workflows (a ``@workflow.defn`` without
    ``sandboxed=False``) imports at top level that the sandbox imports again in every run
    it builds. A second import of ``tests.stack`` there (its asyncpg, in the sandbox's
    own copy) crashed the test process at its engine's last close."""
    tree = ast.parse(source)
    sandboxed = any(
        ast.unparse(decorator).startswith("workflow.defn")
        and "sandboxed=False" not in ast.unparse(decorator)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for decorator in node.decorator_list
    )
    if not sandboxed:
        return []
    imported = [
        name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
        )
    ]
    return [name for name in imported if name.split(".")[0] not in SANDBOX_SAFE_TOP_LEVEL]


def test_the_check_finds_a_top_level_import_the_sandbox_would_repeat() -> None:
    source = (
        "from temporalio import workflow\nfrom tests.stack import suite_worker\n"
        "with workflow.unsafe.imports_passed_through():\n    from models.orders import Order\n"
        "@workflow.defn\nclass W: ...\n"
    )
    assert sandbox_reimports(source) == ["tests.stack"]
    unsandboxed = source.replace("@workflow.defn", "@workflow.defn(sandboxed=False)")
    assert sandbox_reimports(unsandboxed) == []


def test_sandboxed_test_workflows_pass_their_imports_through() -> None:
    repeated = {
        str(path): names for path in TEST_MODULES if (names := sandbox_reimports(path.read_text()))
    }
    assert repeated == {}
