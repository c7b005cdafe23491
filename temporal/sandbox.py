"""The workflow sandbox our workers run workflows in: the SDK's, with our workflow
modules passed through.

The SDK's sandbox re-imports a workflow's module for every run it builds (a new workflow,
or one rebuilt after leaving the worker's cache): it compiles ``workflows/orders.py``
from source, runs its body and ``@workflow.defn`` again, ~40 ms of worker CPU per run
here (cProfile of recorded histories replayed: 79 ms per order run with the default
sandbox, 27 ms with ``workflows`` passed through, 15 ms unsandboxed). The two runs every
order makes (its ``OrderWorkflow`` and its ``FulfillmentWorkflow``) and the event
workflows are now unsandboxed altogether (``sandboxed=False``); the other workflows run
in this sandbox.

Passing the ``workflows`` package through imports each workflow module once per process.
That is safe because those modules keep nothing at module level but constants and
definitions (each run still gets its own workflow object); what the sandbox no longer
catches for them, a call of the clock, randomness or I/O from their own code, a test
forbids by reading them (``tests/temporal/test_sandbox.py``). Everything else stays as
the SDK has it: the default restrictions, builtins restricted while a workflow runs,
and every other module a workflow imports re-imported or passed through as before.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# Our workflow modules (and their light ``workflows.types``), imported once per process.
PASSED_THROUGH = ("workflows",)
RESTRICTIONS = SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The runner every worker of ours runs sandboxed workflows with."""
    return SandboxedWorkflowRunner(restrictions=RESTRICTIONS)
