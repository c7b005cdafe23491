"""Where the stack runs and keeps its data: the local stack's data dir and the API's
address, PostgreSQL (and the embedded one of ``shop dev``), Redis, Temporal and the
catalogue's search index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

STACK_ENV_FILE = "stack.env"


class StackSettings(BaseSettings):
    """The stack's servers and addresses: the base of the groups that depend on them (a
    provider's sandbox is on the API's address; production has rules of its own)."""

    # --- where the local stack keeps its data -------------------------------------
    shop_data_dir: Path = Field(default=Path(".shop"), description="Data dir of `shop dev`.")
    shop_api_port: int = Field(default=3001, ge=1, le=65535)
    shop_api_host: str = "127.0.0.1"
    # API processes: Python serves one core per process; more use more cores.
    shop_api_workers: int = Field(default=1, ge=1, le=64)
    # Worker processes a running `shop dev` started (it records them in stack.env).
    shop_dev_workers: int = Field(default=0, ge=0)
    shop_env: Literal["development", "test", "production"] = "development"
    # How long an idle keep-alive connection stays open on the API (seconds). Longer
    # than the idle timeout of whatever keeps connections to it (AWS ALB 60 s, nginx's
    # upstream keepalive 60 s; HTTP clients' pools, httpx 5 s): the side that closes an
    # idle connection must be the client, or a request it sends just as the server
    # closes is lost (a 502 at the load balancer, a ReadError in the client). uvicorn's
    # own 5 s equalled httpx's pool expiry, and a POST sent at that moment failed.
    api_keep_alive_seconds: int = Field(default=75, ge=1, le=3600)
    # Largest request body the API reads (bytes); larger ones answer 413 unread.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Set by `shop api --workers N` for the processes it starts (prometheus_client's own
    # variable): each writes its metrics there, and any one's /metrics sums them all.
    prometheus_multiproc_dir: Path | None = None
    # The base URL people and providers reach the API at (links in emails, sandbox).
    public_base_url: str | None = None

    # --- PostgreSQL: DATABASE_URL, or the seed's DB_HOST/DB_PORT/DB_NAME --------------
    database_url: str | None = None
    db_host: str | None = None
    db_port: int = 5432
    db_name: str = "ecommerce"
    db_user: str = "postgres"
    db_password: SecretStr | None = None
    # Per process. An API process under 32 keep-alive clients (two processes) has 16
    # reads in flight: the pool keeps that many, rather than opening and closing an
    # overflow connection (a TLS attempt, a login, a cold statement cache) per request.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_echo: bool = False

    # --- The embedded PostgreSQL of `shop dev` (not read with DATABASE_URL or DB_HOST) ---
    # Unset, sized to the machine (its memory, or its cgroup's limit if lower) as a
    # production server would be: shared_buffers an eighth of memory (128 MB to 2 GB),
    # effective_cache_size half of it; random_page_cost for an SSD. The test suite's
    # servers keep PostgreSQL's own defaults (three run side by side).
    postgres_shared_buffers_mb: int | None = Field(default=None, ge=16, le=65_536)
    postgres_effective_cache_size_mb: int | None = Field(default=None, ge=64)
    postgres_random_page_cost: float = Field(default=1.1, gt=0, le=1000)

    # --- Redis -------------------------------------------------------------------------
    redis_url: str | None = None

    # --- Temporal ----------------------------------------------------------------------
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    temporal_tls: bool = False
    temporal_ui_url: str | None = None
    # How long a workflow task may run without yielding before the SDK calls it
    # deadlocked and interrupts the workflow's thread (temporal/deadlock.py): the SDK's 2 s;
    # raise it where workers share a starved CPU.
    workflow_deadlock_timeout_seconds: int = Field(default=2, ge=1, le=600)
    # A worker's Temporal SDK metrics (task latencies, schedule-to-start, slots, polls,
    # failures) in the Prometheus format at WORKER_METRICS_HOST:WORKER_METRICS_PORT/metrics;
    # unset, none. `shop dev` gives its n-th worker the port + n - 1.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    # --- catalogue search: the in-process tantivy index ------------------------------
    # False: searches use PostgreSQL full-text search only, and no index is kept.
    search_index: bool = True
    # Where the index lives (default DATA_DIR/search-index); one writer (the worker),
    # every API process a reader.
    search_index_dir: Path | None = None

    @property
    def resolved_database_url(self) -> str | None:
        """DATABASE_URL if set, else one built from DB_HOST/DB_PORT/DB_NAME, else None."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        if self.db_host:
            password = self.db_password.get_secret_value() if self.db_password else ""
            auth = quote(self.db_user, safe="")
            if password:
                auth += ":" + quote(password, safe="")
            return (
                f"postgresql+asyncpg://{auth}@{self.db_host}:{self.db_port}/"
                f"{quote(self.db_name, safe='')}"
            )
        return None

    @property
    def search_index_path(self) -> Path:
        return self.search_index_dir or self.shop_data_dir / "search-index"

    @property
    def stack_env_path(self) -> Path:
        return self.shop_data_dir / STACK_ENV_FILE

    @property
    def api_base_url(self) -> str:
        """Where this deployment's API answers, without a trailing slash."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://127.0.0.1:{self.shop_api_port}"

    @property
    def sandboxes_enabled(self) -> bool:
        """The Stripe/SendGrid sandboxes and the mailbox exist outside production only."""
        return self.shop_env != "production"


def normalize_database_url(url: str) -> str:
    """Accept the usual ``postgres://`` spellings and always drive them with asyncpg."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url
