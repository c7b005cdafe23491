"""Import rules that keep one way of talking to Temporal (README, Design notes).

Routers and services reach workflows only through ``temporal.clients``: no router imports
``temporalio``, no service imports ``temporalio`` or a workflow module (the light
``workflows.types`` are fine), and no router verifies provider webhooks with a provider's
SDK. Workflow types load without Temporal, services or activities.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def _under(top: str, name: str) -> bool:
    return name == top or name.startswith(f"{top}.")


def _violations(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = sorted(
            name
            for name in _imports(path)
            if any(_under(top, name) for top in forbidden) and not _under("workflows.types", name)
        )
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_the_rule_sees_forbidden_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import temporalio.client\nfrom workflows import orders\n"
        "from workflows.types.orders import OrderRef\n"
    )
    names = {n for n in _imports(module) if _under("temporalio", n) or _under("workflows", n)}
    bad = {n for n in names if not _under("workflows.types", n)}
    assert bad == {"temporalio.client", "workflows", "workflows.orders"}


def test_routers_do_not_import_temporalio_workflows_or_provider_sdks() -> None:
    assert _violations("api/routes", ("temporalio", "workflows", "activities", "stripe")) == {}


def test_services_do_not_import_temporalio_or_workflow_modules() -> None:
    assert _violations("services", ("temporalio", "workflows", "activities")) == {}


def test_workflow_types_load_without_temporal_services_or_activities() -> None:
    code = (
        "import sys\n"
        "import workflows.types.carts, workflows.types.onboarding, workflows.types.orders\n"
        "heavy = ('temporalio', 'services', 'activities', 'temporal', 'stripe')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
        "print(sorted(m for m in sys.modules if m.startswith('workflows.')"
        " and not m.startswith('workflows.types')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:2] == ["[]", "[]"]


# How analytics are read: an ``AnalyticsStore``, one implementation chosen in
# ``api/deps.py``; the readers' own modules stay behind it (README, "Growing out of one
# machine: ClickHouse").
ANALYTICS_READ_SIDE = (
    "services.analytics.postgres",
    "services.analytics.clickhouse",
    "services.analytics.dashboard_repository",
    "services.analytics.funnel_repository",
    "services.analytics.funnel_statements",
    "services.analytics.funnel_walk",
    "services.analytics.people",
    "services.analytics.bitmaps",
    "services.analytics.rollups",
    "services.analytics.rollup_repository",
)


def test_the_api_reads_analytics_only_through_the_store() -> None:
    found = {
        path: names
        for path, names in _violations("api", ANALYTICS_READ_SIDE).items()
        if path != "api/deps.py"
    }
    assert found == {}
    # deps.py picks the implementation and hands out the interface, nothing else.
    deps = {n for n in _imports(ROOT / "api/deps.py") if _under("services.analytics", n)}
    assert deps <= {
        "services.analytics.postgres",
        "services.analytics.postgres.PostgresAnalyticsStore",
        "services.analytics.store",
        "services.analytics.store.AnalyticsStore",
    }
