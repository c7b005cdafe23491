"""``shop search reindex``: the search index rebuilt from PostgreSQL, ready for the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from services.catalog.search import IndexedSearch, SearchEngines
from tests.stack import StackServers


@pytest.fixture
def cli_env(servers: StackServers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("DATABASE_URL", servers.database_url)
    monkeypatch.setenv("REDIS_URL", servers.redis_url)
    index = tmp_path / "search-index"
    monkeypatch.setenv("SEARCH_INDEX_DIR", str(index))
    return index


def test_reindex_builds_an_index_the_api_reads(cli_env: Path) -> None:
    assert SearchEngines(cli_env).current().name == "postgres"  # nothing built yet
    result = CliRunner().invoke(app, ["search", "reindex"])
    assert result.exit_code == 0, result.output
    assert "search index rebuilt:" in result.output
    assert isinstance(SearchEngines(cli_env).current(), IndexedSearch)


def test_reindex_says_when_the_index_is_switched_off(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARCH_INDEX", "false")
    result = CliRunner().invoke(app, ["search", "reindex"])
    assert result.exit_code == 1
    assert "switched off" in result.output
