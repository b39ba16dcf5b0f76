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
            "--skip-embedded",  # its own smoke test below
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
    # idle is counted over an hour of default polls, the worker's Templates jobs included
    hour = results["idle_poll"]["full"]["hour_at_default_poll"]
    assert hour["polls"] == 60 and hour["requests_by_call"]["query templates"] >= 60
    batch = results["batch"]
    assert batch["sent"] == batch["distinct_addresses"] == 50  # each row once, 100 a request
    assert batch["resend_requests"] == 1
    markdown = (out / "results.md").read_text()
    assert "| metric | notion-queue | baseline | target | ratio/verdict |" in markdown


def test_the_embedded_section_runs_end_to_end_with_tiny_numbers(tmp_path: Path) -> None:
    from scripts.harness import bench_embedded as embedded
    from scripts.harness.bench import embedded_markdown, running

    config = embedded.EmbeddedConfig(
        drain_sizes=[10, 20],
        fsync_files=20,
        intake_rates=[20.0],
        intake_seconds=1.0,
        first_email_signups=1,
    )
    drain = embedded.bench_drain(config, tmp_path / "drain", lambda message: None)
    intake = embedded.bench_intake(config, tmp_path / "intake", lambda message: None, running)
    folder = tmp_path / "first"
    folder.mkdir()
    first = embedded.first_email(
        config,
        embedded.embedded_env(folder),
        folder,
        embedded.outbox_count(folder / "outbox"),
        running,
    )

    assert [d["sent"] for d in drain["drains"]] == [10, 20]
    assert drain["fsync_loop"]["files"] == 20
    assert intake[0]["refused"] == 0 and intake[0]["requests"] == 20
    assert first["signups"] == 1
    text = embedded_markdown(
        {
            "drain": drain,
            "intake": intake,
            "first_email_embedded": first,
            "first_email_notion": first,
        }
    )
    assert "| drain rows | CPU ms/email |" in text
