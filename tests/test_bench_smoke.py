"""The benchmark runs end to end with tiny numbers and writes its JSON and Markdown (no timing
assertions: the numbers themselves are `make bench`'s business)."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.harness.bench import main


def test_bench_runs_end_to_end_with_tiny_numbers(tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = main(
        [
            "--quick",
            "--quiet",
            "--leads=1",
            "--backlog=20",
            "--finished-rows=200",
            "--idle-window=2",
            "--lateness-rows=2",
            "--lateness-poll=2",
            "--intake-rate=20",
            "--intake-seconds=1",
            "--batch-rows=50",
            "--timeout=60",
            f"--out={out}",
        ]
    )

    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert {
        "config",
        "requests_per_email",
        "drain",
        "idle_poll",
        "lateness",
        "intake",
        "rss",
        "batch",
        "wall_seconds",
    } <= results.keys()
    assert results["requests_per_email"]["emails_sent"] == 5
    assert {"notion_queue", "baseline"} <= results["drain"].keys()
    assert {"empty", "full"} <= results["idle_poll"].keys()
    batch = results["batch"]
    assert batch["sent"] == batch["distinct_addresses"] == 50  # each row once, 100 a request
    assert batch["resend_requests"] == 1
    markdown = (out / "results.md").read_text()
    assert "| metric | notion-queue | baseline | target | ratio/verdict |" in markdown
