"""The seed's monitoring: four Grafana dashboards (E-commerce Overview, Sales Performance,
User Analytics, System Health) and custom alerts (low stock, payment failures, system
errors), under deploy/ and started by docker-compose's ``monitoring`` profile.

Docker cannot run here, so each part is checked by what it reads: every PromQL expression
names metrics that the API's /metrics declares (a worker's, ``temporal_…``, are checked
against a worker's own endpoint in tests/temporal/test_worker_metrics.py;
postgres-exporter's come from its own scrape job), and every SQL query of the PostgreSQL
data source runs on the migrated schema, with Grafana's time macro filled in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

DASHBOARDS = {
    "E-commerce Overview",
    "Sales Performance",
    "User Analytics",
    "System Health",
}
SEED_ALERTS = {"LowStock", "PaymentFailures", "SystemErrors"}
# Metric names in an expression: the API's (shop_, http_), the workers' (temporal_),
# postgres-exporter's (pg_), and Prometheus's own `up`. Label names and functions never
# start so.
METRIC = re.compile(
    r"\b(shop_[a-z0-9_]+|http_[a-z0-9_]+|temporal_[a-z0-9_]+|pg_[a-z0-9_]+|up)\b(?![(\"])"
)


def metric_names(deploy: Path) -> set[str]:
    """Every metric name the dashboards and alert rules read."""
    texts = [p.read_text() for p in (deploy / "grafana" / "dashboards").glob("*.json")]
    texts.append((deploy / "prometheus" / "alerts.yml").read_text())
    return {name for text in texts for name in METRIC.findall(text)}


TIME_FILTER = re.compile(r"\$__timeFilter\(([a-z_.]+)\)")


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


@pytest.fixture(scope="module")
def deploy(repo_root: Path) -> Path:
    return repo_root / "deploy"


@pytest.fixture(scope="module")
def dashboards(deploy: Path) -> dict[str, dict[str, Any]]:
    boards = {}
    for path in sorted((deploy / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        boards[board["title"]] = board
    return boards


@pytest.fixture(scope="module")
def rules(deploy: Path) -> list[dict[str, Any]]:
    groups = _yaml(deploy / "prometheus" / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _targets(dashboards: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        target
        for board in dashboards.values()
        for panel in board["panels"]
        for target in panel["targets"]
        if target["datasource"]["type"] == kind
    ]


def test_the_seeds_four_dashboards_are_there(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == DASHBOARDS
    uids = [board["uid"] for board in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for title, board in dashboards.items():
        ids = [panel["id"] for panel in board["panels"]]
        assert ids, title
        assert len(set(ids)) == len(ids), title
        for panel in board["panels"]:
            assert panel["targets"], (title, panel["title"])
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])


def test_every_panel_uses_a_provisioned_data_source(
    deploy: Path, dashboards: dict[str, dict[str, Any]]
) -> None:
    provisioned = _yaml(deploy / "grafana" / "provisioning" / "datasources" / "datasources.yml")
    sources = {(d["type"], d["uid"]) for d in provisioned["datasources"]}
    used = {
        (panel["datasource"]["type"], panel["datasource"]["uid"])
        for board in dashboards.values()
        for panel in board["panels"]
    }
    assert used <= sources, used - sources
    provider = _yaml(deploy / "grafana" / "provisioning" / "dashboards" / "dashboards.yml")
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_seeds_alerts_are_rules(rules: list[dict[str, Any]]) -> None:
    names = {rule["alert"] for rule in rules}
    assert names >= SEED_ALERTS, SEED_ALERTS - names
    assert len(names) == len(rules), "alert names are unique"
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def _declared(exposition: str) -> set[str]:
    """Every name a PromQL selector may use for what /metrics declares."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names |= {f"{family.name}_{part}" for part in ("bucket", "sum", "count")}
        names |= {sample.name for sample in family.samples}
    return names


async def test_every_expression_reads_a_metric_that_is_exposed(
    client: httpx.AsyncClient,
    deploy: Path,
    dashboards: dict[str, dict[str, Any]],
    rules: list[dict[str, Any]],
) -> None:
    assert (await client.get("/health")).status_code == 200  # a request, to be counted
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    declared = _declared(answer.text)
    jobs = {
        job["job_name"]: job
        for job in _yaml(deploy / "prometheus" / "prometheus.yml")["scrape_configs"]
    }
    assert jobs["shop-api"]["static_configs"][0]["targets"] == ["api:3001"]
    expressions = [t["expr"] for t in _targets(dashboards, "prometheus")]
    expressions += [rule["expr"] for rule in rules]
    used: set[str] = set()
    for expression in expressions:
        found = set(METRIC.findall(expression))
        assert found, expression
        used |= found
    ours = {name for name in used if name.startswith(("shop_", "http_"))}
    assert ours <= declared, sorted(ours - declared)
    # The workers' and postgres-exporter's names come from their own scrape jobs; `up`
    # from Prometheus.
    assert {"shop-worker", "postgres"} <= set(jobs)
    assert used <= metric_names(deploy)
    assert {"shop_low_stock_products", "shop_payment_failures_total"} <= used


async def test_every_postgresql_query_runs_on_the_schema(
    engine: AsyncEngine, dashboards: dict[str, dict[str, Any]]
) -> None:
    queries = _targets(dashboards, "grafana-postgresql-datasource")
    assert queries
    async with engine.connect() as connection:
        for target in queries:
            sql = TIME_FILTER.sub(
                r"\1 >= now() - interval '7 days' AND \1 < now()", target["rawSql"]
            )
            assert "$__" not in sql, target["rawSql"]
            result = await connection.execute(text(sql))
            columns = list(result.keys())
            if target["format"] == "time_series":
                assert columns[0] == "time", target["rawSql"]
            else:
                assert target["format"] == "table", target["rawSql"]


def test_compose_starts_monitoring_with_the_deploy_files(repo_root: Path) -> None:
    compose = _yaml(repo_root / "docker-compose.yml")
    services = compose["services"]
    for name in ("prometheus", "grafana", "postgres-exporter"):
        assert services[name]["profiles"] == ["monitoring"], name
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (repo_root / source).exists(), (name, source)
    env = services["grafana"]["environment"]
    provisioned = (
        repo_root / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yml"
    ).read_text()
    for variable in re.findall(r"\$\{(\w+)\}", provisioned):
        assert variable in env, variable


def test_compose_workers_serve_their_metrics_where_prometheus_looks(repo_root: Path) -> None:
    compose = _yaml(repo_root / "docker-compose.yml")
    worker = compose["services"]["worker"]["environment"]
    jobs = {
        job["job_name"]: job
        for job in _yaml(repo_root / "deploy" / "prometheus" / "prometheus.yml")["scrape_configs"]
    }
    [lookup] = jobs["shop-worker"]["dns_sd_configs"]
    assert lookup["names"] == ["worker"]
    assert str(lookup["port"]) == worker["WORKER_METRICS_PORT"]
    assert worker["WORKER_METRICS_HOST"] == "0.0.0.0"
