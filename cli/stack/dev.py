"""``shop dev``: every server from a wheel, then the worker(s) and the API, supervised.

Start order is PostgreSQL, Redis, Temporal, migrations, workers, API; stop order is the
reverse. A URL variable (DATABASE_URL, REDIS_URL, TEMPORAL_ADDRESS) replaces the
matching embedded server, which is then checked for reachability instead of started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Protocol

from rich.console import Console

from cli.stack.postgres import EmbeddedPostgres, sizing_for
from cli.stack.probes import (
    check_postgres,
    check_redis,
    check_temporal,
    http_ok,
    probe_workers,
    redact,
    register_search_attributes,
)
from cli.stack.process import ManagedProcess, StackError, ensure_port_free, wait_until
from cli.stack.redis import EmbeddedRedis
from cli.stack.temporal import TemporalDevServer
from core.logging import logged_to_file
from core.secrets import jwt_secret
from core.settings import STACK_ENV_FILE, Settings

STOP_BUDGET_SECONDS = 10.0
# How long the API may take to answer /ready. Importing the app in each of its processes
# took 38 s on a machine at load average 17 (a fresh clone's first `make dev`); the
# wait ends at once if the API process exits, so a long budget costs nothing.
API_READY_SECONDS = 180.0


@dataclass(frozen=True)
class DevOptions:
    data_dir: Path
    api_port: int = 3001
    workers: int = 1
    api_workers: int = 1
    temporal_port: int = 7233
    ui_port: int = 8233
    postgres_port: int = 54329
    redis_port: int = 63799


WORKER_RESTARTS_PER_MINUTE = 5


class _Server(Protocol):
    """An embedded server or a child process: something we start, watch and stop."""

    @property
    def process(self) -> ManagedProcess | None: ...

    def stop(self, timeout: float) -> None: ...


class _InterruptedError(Exception):
    pass


class DevStack:
    def __init__(self, options: DevOptions, settings: Settings, console: Console) -> None:
        self.options = options
        self.settings = settings
        self.console = console
        self.data_dir = options.data_dir.resolve()
        self.logs = self.data_dir / "logs"
        # Started things, in start order; stopped in reverse.
        self._running: list[tuple[str, _Server]] = []
        self._stopping = False

    # --- signals ---------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping:
            return
        self._stopping = True
        raise _InterruptedError(signal.Signals(signum).name)

    # --- the whole run ---------------------------------------------------------------
    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        code = 0
        try:
            self._start_everything()
            self._supervise()
        except _InterruptedError:
            self.console.print("\n[bold]stopping[/] (signal received)")
        except StackError as exc:
            self._stopping = True
            self.console.print(f"[red]error:[/] {exc}")
            code = 1
        finally:
            self._stopping = True
            # A second Ctrl-C during shutdown must not abandon children half-stopped.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            self._stop_everything()
        return code

    def _start_everything(self) -> None:
        o, s = self.options, self.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / STACK_ENV_FILE).unlink(missing_ok=True)
        database_url = s.resolved_database_url
        redis_url = s.redis_url
        temporal_address = s.temporal_address
        ui_url = s.temporal_ui_url

        # Fail fast, before starting anything, on ports that are taken.
        ensure_port_free(o.api_port, "API", "--api-port")
        if not database_url:
            ensure_port_free(o.postgres_port, "PostgreSQL", "--postgres-port")
        if not redis_url:
            ensure_port_free(o.redis_port, "Redis", "--redis-port")
        if not temporal_address:
            ensure_port_free(o.temporal_port, "Temporal", "--temporal-port")
            if o.ui_port:
                ensure_port_free(o.ui_port, "Temporal UI", "--ui-port")

        self.console.print(f"[bold]Shopweave dev stack[/] in {self.data_dir}")
        if database_url:
            with self._step("PostgreSQL (DATABASE_URL)"):
                check_postgres(database_url)
        else:
            sizing = sizing_for(s)
            pg = EmbeddedPostgres(
                self.data_dir / "postgres",
                o.postgres_port,
                log_path=self.logs / "postgres.log",
                sizing=sizing,
            )
            with self._step(f"PostgreSQL on 127.0.0.1:{o.postgres_port} ({sizing.describe()})"):
                self._track("PostgreSQL", pg)
                pg.start()
            database_url = pg.url

        if redis_url:
            with self._step("Redis (REDIS_URL)"):
                check_redis(redis_url)
        else:
            redis = EmbeddedRedis(
                self.data_dir / "redis", o.redis_port, log_path=self.logs / "redis.log"
            )
            with self._step(f"Redis on 127.0.0.1:{o.redis_port}"):
                self._track("Redis", redis)
                redis.start()
            redis_url = redis.url

        if temporal_address:
            with self._step(f"Temporal at {temporal_address} (TEMPORAL_ADDRESS)"):
                check_temporal(s, temporal_address)
        else:
            temporal = TemporalDevServer(
                self.data_dir / "temporal.db",
                o.temporal_port,
                o.ui_port or None,
                log_path=self.logs / "temporal.log",
                namespace=s.temporal_namespace,
            )
            with self._step(f"Temporal dev server on 127.0.0.1:{o.temporal_port}"):
                self._track("Temporal", temporal)
                temporal.start()
            temporal_address = temporal.address
            ui_url = temporal.ui_url

        stack_settings = s.model_copy(
            update={
                "database_url": database_url,
                "redis_url": redis_url,
                "temporal_address": temporal_address,
                "temporal_ui_url": ui_url,
                "shop_api_port": o.api_port,
            }
        )
        with self._step("search attributes"):
            asyncio.run(register_search_attributes(stack_settings))
        with self._step("migrations"), logged_to_file("alembic", self.logs / "migrations.log"):
            from migrations.runner import upgrade

            upgrade(database_url)

        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TEMPORAL_ADDRESS": temporal_address,
            "TEMPORAL_NAMESPACE": s.temporal_namespace,
            "SHOP_DATA_DIR": str(self.data_dir),
            "SHOP_API_PORT": str(o.api_port),
            "SHOP_API_WORKERS": str(o.api_workers),
            "SHOP_DEV_WORKERS": str(o.workers),
            "JWT_SECRET": jwt_secret(s.model_copy(update={"shop_data_dir": self.data_dir})),
        }
        if ui_url:
            env["TEMPORAL_UI_URL"] = ui_url
        child_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        # Written before anything can answer /ready, so a command run as soon as the API
        # is ready (`shop admin create`) finds the stack; removed again on stop.
        write_stack_env(self.data_dir / STACK_ENV_FILE, env)

        for n in range(1, o.workers + 1):
            worker = ManagedProcess(
                f"worker-{n}",
                [sys.executable, "-m", "cli.main", "worker"],
                log_path=self.logs / f"worker-{n}.log",
                env=child_env | _worker_metrics_env(s, n),
            )
            with self._step(f"worker {n} of {o.workers} (all queues)"):
                self._track(f"worker {n}", worker)
                worker.start()
        api = ManagedProcess(
            "api",
            [
                sys.executable,
                "-m",
                "cli.main",
                "api",
                "--port",
                str(o.api_port),
                "--workers",
                str(o.api_workers),
            ],
            log_path=self.logs / "api.log",
            env=child_env,
        )
        api_base = f"http://localhost:{o.api_port}"
        with self._step(f"API on :{o.api_port}"):
            self._track("API", api)
            api.start()
            wait_until(
                lambda: http_ok(f"{api_base}/ready"),
                timeout=API_READY_SECONDS,
                what="the API (/ready)",
                process=api,
                interval=0.25,
            )
        with self._step("workers answer on every queue"):
            asyncio.run(probe_workers(stack_settings))

        self.console.print()
        self.console.print("[bold green]Shopweave is running.[/] Ctrl-C stops everything.")
        rows = [
            ("API", f"{api_base}/api"),
            ("API docs", f"{api_base}/api/docs"),
            ("Dashboard", f"{api_base}/dashboard (staff: the account shop seed prints)"),
            ("Readiness", f"{api_base}/ready"),
            ("Metrics", f"{api_base}/metrics"),
            ("Temporal UI", ui_url or "(external Temporal: see its own UI)"),
            ("Temporal", temporal_address),
            ("PostgreSQL", redact(database_url)),
            ("Redis", redact(redis_url)),
            ("Logs", str(self.logs)),
            ("Stack file", str(self.data_dir / STACK_ENV_FILE)),
        ]
        if s.email_uses_sandbox:
            rows.insert(5, ("Mailbox", f"{api_base}/_sandbox/mail (SendGrid sandbox)"))
        for label, value in rows:
            self.console.print(f"  {label:<12} {value}")

    def _supervise(self) -> None:
        """Restart a worker that dies (its work resumes from Temporal on the new one);
        any other child dying, or a worker dying over and over, stops the stack."""
        restarts: dict[str, list[float]] = {}
        while True:
            for name, thing in self._running:
                child = thing.process
                if child is None or not child.exited():
                    continue
                now = time.monotonic()
                recent = [t for t in restarts.get(name, []) if now - t < 60]
                if name.startswith("worker") and len(recent) < WORKER_RESTARTS_PER_MINUTE:
                    self.console.print(
                        f"  {child.name} exited with code {child.returncode()}; restarting it"
                    )
                    child.stop(0.1)  # reap it and close its log
                    child.start()
                    restarts[name] = [*recent, now]
                    continue
                raise StackError(
                    f"{child.name} exited with code {child.returncode()}; see {child.log_path}"
                )
            time.sleep(0.5)

    def _stop_everything(self) -> None:
        (self.data_dir / STACK_ENV_FILE).unlink(missing_ok=True)
        if not self._running:
            return
        deadline = time.monotonic() + STOP_BUDGET_SECONDS - 0.5
        left = len(self._running)
        for name, thing in reversed(self._running):
            # Each gets an even share of what is left of the budget, so quick stops early
            # on leave more time for the databases at the end; overrunning means a kill.
            share = max((deadline - time.monotonic()) / left, 0.2)
            self.console.print(f"  stopping {name}")
            thing.stop(share)
            left -= 1
        self._running.clear()
        self.console.print("[bold]stopped[/]")

    # --- helpers -----------------------------------------------------------------------
    def _track(self, name: str, thing: _Server) -> None:
        """Remember ``thing`` for supervision and ordered shutdown (before it starts, so
        a failed start is still cleaned up)."""
        self._running.append((name, thing))

    @contextmanager
    def _step(self, label: str) -> Iterator[None]:
        started = time.monotonic()
        with self.console.status(f"{label} …"):
            yield
        self.console.print(f"  [green]✓[/] {label} [dim]({time.monotonic() - started:.1f}s)[/]")


def _worker_metrics_env(settings: Settings, n: int) -> dict[str, str]:
    """The n-th worker's metrics port (WORKER_METRICS_PORT + n - 1): workers on one host
    cannot share one."""
    if settings.worker_metrics_port is None:
        return {}
    return {"WORKER_METRICS_PORT": str(settings.worker_metrics_port + n - 1)}


def write_stack_env(path: Path, values: dict[str, str]) -> None:
    lines = [
        f"# Written by `shop dev` at {datetime.now().isoformat(timespec='seconds')}, "
        "removed when it stops.",
        "# Other `shop` commands with the same --data-dir read it to find this stack.",
        *(f"{key}={value}" for key, value in values.items()),
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
