"""Prometheus metrics: what was sent, failed, cancelled and skipped by sequence, how late, how
many calls each API took and how often it said 429, and the intake journal's backlog.

One registry per process; the server serves it at GET /metrics, the worker on METRICS_PORT.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

REGISTRY = CollectorRegistry(auto_describe=True)

ROWS = Counter(
    "notion_queue_rows_total",
    "Email Queue rows finished by the worker, by outcome and sequence",
    ["outcome", "sequence"],
    registry=REGISTRY,
)
LATENESS = Histogram(
    "notion_queue_lateness_seconds",
    "Sent At minus Scheduled Time",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
    registry=REGISTRY,
)
API_CALLS = Counter(
    "notion_queue_api_calls_total", "Calls to Notion and Resend", ["api", "call"], registry=REGISTRY
)
RATE_LIMITED = Counter(
    "notion_queue_rate_limited_total", "429 answers received", ["api"], registry=REGISTRY
)
SENDING_PAUSED = Gauge(
    "notion_queue_sending_paused",
    "1 while an account-level error (bad key, unverified domain, quota) stops sending",
    registry=REGISTRY,
)
JOURNAL_BACKLOG = Gauge(
    "notion_queue_journal_backlog",
    "Accepted webhook events not yet written to the store",
    registry=REGISTRY,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render() -> bytes:
    return generate_latest(REGISTRY)


def serve(port: int, host: str = "127.0.0.1") -> None:
    start_http_server(port, addr=host, registry=REGISTRY)
