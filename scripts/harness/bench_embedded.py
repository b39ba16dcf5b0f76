"""`make bench`'s embedded section (issue 15): the default backend (SQLite queue, outbox folder).

- drain at each size in `drain_sizes`: the worker's CPU per email, its rate, and the ratio to
  the machine's own limit, a minimal loop writing and fsyncing the same .eml files (measured in
  the same run); each drain in a process of its own (drain_child.py), whose peak RSS is the
  "RSS after history" figure;
- intake at each rate in `intake_rates` for `intake_seconds`: the real server.py on the embedded
  default, 202 latency p99 from a separate load process (load.py), refused requests, and the
  drainer's lag, estimated from the journal backlog sampled on /readyz (backlog ÷ arrival rate);
- first email: webhook → email 1 handed to the mailer, with the default 60 s poll, on the
  embedded default and on Notion (the fakes at their real rate limits).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .cpu_steal import StealMeter
from .processes import free_port, wait_until

HARNESS = Path(__file__).resolve().parent


@dataclass
class EmbeddedConfig:
    drain_sizes: list[int] = field(default_factory=lambda: [1000, 10_000, 100_000])
    fsync_files: int = 2000
    intake_rates: list[float] = field(default_factory=lambda: [100.0, 300.0, 500.0])
    intake_seconds: float = 60.0
    first_email_signups: int = 5
    first_email_poll: float = 60.0
    drain_wait: float = 300.0  # after the load: how long intake may take to empty its backlog
    timeout: float = 3600.0


QUICK_EMBEDDED = EmbeddedConfig(
    drain_sizes=[200, 1000],
    fsync_files=300,
    intake_rates=[50.0, 100.0],
    intake_seconds=5.0,
    first_email_signups=2,
)


def _child(what: str, count: int, folder: Path, timeout: float) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, str(HARNESS / "drain_child.py"), what, str(count), str(folder)],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=timeout,
        env=os.environ | {"PYTHONPATH": str(HARNESS.parent.parent)},
    )
    result: dict[str, Any] = json.loads((folder / "result.json").read_text())
    return result


def bench_drain(
    config: EmbeddedConfig, workdir: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    say(f"embedded: fsync loop, {config.fsync_files} files")
    limit = _child("fsync", config.fsync_files, workdir / "fsync", config.timeout)
    ceiling = limit["files_per_second"]
    drains = []
    for size in config.drain_sizes:
        say(f"embedded: draining {size} rows")
        result = _child("drain", size, workdir / f"drain-{size}", config.timeout)
        rate = result["emails_per_second"]
        result["ratio_to_fsync_loop"] = round(rate / ceiling, 3) if rate and ceiling else None
        drains.append(result)
        say(
            f"embedded: {size} rows: {result['cpu_ms_per_email']} ms CPU per email, "
            f"{rate}/s ({result['ratio_to_fsync_loop']} of the fsync loop)"
        )
    first, last = drains[0]["cpu_ms_per_email"], drains[-1]["cpu_ms_per_email"]
    return {
        "fsync_loop": limit,
        "drains": drains,
        "cpu_growth": round(last / first, 3) if first else None,
    }


def embedded_env(workdir: Path, **extra: str) -> dict[str, str]:
    drop = ("NOTION_", "RESEND_", "QUEUE_", "MAIL_", "TESTING_MODE", "SEQUENCES_FILE", "POLL_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    env.update(
        STATE_DIR=str(workdir / "state"),
        SQLITE_PATH=str(workdir / "queue.sqlite3"),
        OUTBOX_DIR=str(workdir / "outbox"),
        LOG_FORMAT="json",
        LOG_LEVEL="warning",
        UNSIGNED_REQUESTS_PER_MINUTE_PER_CLIENT="1000000",
        UNSIGNED_REQUESTS_PER_HOUR_PER_ADDRESS="1000000",
    )
    env.update(extra)
    return env


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, -(-int(q * len(ordered)) // 100))) - 1]


def bench_intake(
    config: EmbeddedConfig,
    workdir: Path,
    say: Callable[[str], None],
    running: Any,
) -> list[dict[str, Any]]:
    results = []
    for rate in config.intake_rates:
        say(f"embedded: intake at {rate:g}/s for {config.intake_seconds:g} s")
        result = _intake_at(rate, config, workdir / f"intake-{rate:g}", running)
        say(
            f"embedded: intake {rate:g}/s: p99 {result['p99_ms']} ms, lag p99 "
            f"{result['lag_p99_seconds']} s, refused {result['refused']}, CPU stolen by the "
            f"host {result['cpu_steal_percent']} %"
        )
        results.append(result)
    return results


def _intake_at(rate: float, config: EmbeddedConfig, folder: Path, running: Any) -> dict[str, Any]:
    folder.mkdir(parents=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    backlog: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            try:
                backlog.append(int(_readyz(url)["journal_backlog"]))
            except (httpx.HTTPError, KeyError, ValueError):
                continue

    with running("server.py", embedded_env(folder, PORT=str(port)), folder) as server:
        wait_until(lambda: _ready(url), 60, "the embedded server")
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        steal = StealMeter()
        load = subprocess.run(
            [
                sys.executable,
                str(HARNESS / "load.py"),
                f"{url}/webhook/christmas-signup",
                str(rate),
                str(config.intake_seconds),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=folder,
            timeout=config.intake_seconds + 300,
        )
        stolen = steal.percent()
        stop.set()
        sampler.join()
        ended = time.monotonic()
        drained_after: float | None = None
        left = int(_readyz(url)["journal_backlog"])
        while time.monotonic() - ended < config.drain_wait:  # a backlog that never drains
            if left == 0:
                drained_after = time.monotonic() - ended
                break
            time.sleep(0.5)
            left = int(_readyz(url)["journal_backlog"])
    measured = json.loads(load.stdout)
    latencies = [v / 1000 for v in measured["latencies_ms"]]
    lags = [b / rate for b in backlog]
    statuses = measured["statuses"]
    return {
        "rate_per_second": rate,
        "seconds": config.intake_seconds,
        "requests": measured["requests"],
        "statuses": statuses,
        "refused": sum(n for code, n in statuses.items() if code != "202"),
        "p50_ms": _ms(_percentile(latencies, 50)),
        "p99_ms": _ms(_percentile(latencies, 99)),
        "backlog_max": max(backlog, default=0),
        "lag_p99_seconds": round(_percentile(lags, 99) or 0.0, 2),
        "drained_seconds_after_load": round(drained_after, 2) if drained_after else None,
        "backlog_left": left,
        "server_peak_rss_kib": server.peak_kib,
        "cpu_steal_percent": stolen,
    }


def _ms(value: float | None) -> float | None:
    return round(value * 1000, 2) if value is not None else None


def _readyz(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}/readyz", timeout=5).json()
    return answer


def _ready(url: str) -> bool:
    try:
        return bool(_readyz(url).get("store_ok"))
    except httpx.HTTPError:
        return False


def first_email(
    config: EmbeddedConfig,
    env: dict[str, str],
    folder: Path,
    sent: Callable[[], int],
    running: Any,
) -> dict[str, Any]:
    """Signups one at a time into a running server and worker (poll POLL_INTERVAL_SECONDS):
    seconds from the POST to email 1 handed to the mailer (`sent()` counts what it got)."""
    port = free_port()
    env = env | {"PORT": str(port), "POLL_INTERVAL_SECONDS": f"{config.first_email_poll:g}"}
    latencies: list[float] = []
    with running("server.py", env, folder) as server, running("worker.py", env, folder):
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(url), 120, "the server")
        time.sleep(3.0)  # the worker's first (empty) poll is behind it: it waits for the next
        for n in range(config.first_email_signups):
            before = sent()
            posted = time.monotonic()
            answer = httpx.post(
                f"{url}/webhook/christmas-signup",
                json={"email": f"first{n}@example.com", "first_name": f"First{n}"},
                timeout=30,
            )
            answer.raise_for_status()
            wait_until(_more_than(sent, before), 2 * config.first_email_poll + 60, "email 1")
            latencies.append(time.monotonic() - posted)
            time.sleep(2.0)
        server.sample()
    return {
        "signups": len(latencies),
        "poll_seconds": config.first_email_poll,
        "latencies_seconds": [round(v, 2) for v in latencies],
        "p99_seconds": round(_percentile(latencies, 99) or 0.0, 2),
    }


def _more_than(count: Callable[[], int], before: int) -> Callable[[], bool]:
    return lambda: count() > before


def outbox_count(folder: Path) -> Callable[[], int]:
    def count() -> int:
        return len(list(folder.glob("*.eml"))) if folder.exists() else 0

    return count
