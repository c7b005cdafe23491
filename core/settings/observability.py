"""What the shop records of itself: analytics events, logs and traces (OpenTelemetry's
standard variables, ``core/telemetry.py``).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings


class ObservabilitySettings(BaseSettings):
    """Analytics' intake and writer, the log's level and format, tracing."""

    # --- Analytics and logging --------------------------------------------------------
    analytics_enabled: bool = True
    # POST /api/analytics/track: events a caller may send per window (a batch counts each
    # of its events); guests are counted per anonymous id and, more loosely, per address.
    analytics_rate_limit: int = Field(default=600, ge=1)
    analytics_rate_limit_per_ip: int = Field(default=6000, ge=1)
    analytics_rate_window_seconds: int = Field(default=60, ge=1)
    # The API's batch writer: rows buffered in the process and written off the request
    # path, one multi-row INSERT per batch, at least every interval.
    analytics_batch_rows: int = Field(default=500, ge=1, le=2000)
    analytics_flush_interval_ms: int = Field(default=250, ge=10)
    # Buffer bound: when it is full, requests wait for a write instead of dropping events.
    analytics_buffer_rows: int = Field(default=10_000, ge=100)
    # A write slower than this is abandoned and retried (backing off up to 5 s).
    analytics_write_timeout_seconds: float = Field(default=5.0, gt=0)
    # At a clean stop, how long the last writes keep retrying before giving up.
    analytics_shutdown_flush_seconds: float = Field(default=30.0, gt=0)
    # Dashboards an API process keeps until the rollups' watermark moves; 0 keeps none.
    analytics_dashboard_cache_entries: int = Field(default=32, ge=0, le=1000)
    # Connections one funnel reads on side by side, each for a share of the people (1: one
    # statement); default the machine's cores, at most 4.
    analytics_parallelism: int = Field(
        default_factory=lambda: min(os.cpu_count() or 1, 4), ge=1, le=16
    )
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"

    # --- Tracing: OpenTelemetry's standard variables (core/telemetry.py) ---------------
    # True: no spans and nothing sent to Temporal; the API still makes a trace id per
    # request for its log lines and problems.
    otel_sdk_disabled: bool = False
    # Unset: by process role, `shopweave-api`, `shopweave-worker` or `shopweave-cli`.
    otel_service_name: str | None = None
    # Unset: `otlp` when an OTLP endpoint is set, else `none` (ids made, nothing sent).
    otel_traces_exporter: Literal["otlp", "none"] | None = None
    otel_exporter_otlp_endpoint: str | None = None  # the base; `/v1/traces` is added
    otel_exporter_otlp_traces_endpoint: str | None = None  # the full URL, as given
    otel_exporter_otlp_protocol: Literal["http/protobuf"] = "http/protobuf"
    otel_traces_sampler: Literal[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ] = "parentbased_always_on"
    otel_traces_sampler_arg: float = Field(default=1.0, ge=0, le=1)
    # `key=value,key2=value2` (values percent-encoded), e.g. `deployment.environment=prod`.
    otel_resource_attributes: str | None = None
